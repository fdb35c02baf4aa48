// A throwaway CA for the stand-in's own HTTPS listener and for test webhook servers.
// Keys come from node's native RSA generator (forge's pure-JS one takes seconds);
// forge only assembles and signs the certificates.

import { generateKeyPairSync, randomBytes } from "node:crypto";
import forge from "node-forge";

export interface KeyAndCert {
  keyPem: string;
  certPem: string;
}

export interface TestCa extends KeyAndCert {
  /** A serving certificate for these DNS names and IP addresses, signed by this CA. */
  issue(names: { dnsNames?: string[]; ips?: string[] }): KeyAndCert;
}

function newKeyPair(): { keyPem: string; publicKey: forge.pki.rsa.PublicKey; privateKey: forge.pki.rsa.PrivateKey } {
  const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const keyPem = privateKey.export({ type: "pkcs1", format: "pem" }).toString();
  const forgeKey = forge.pki.privateKeyFromPem(keyPem) as forge.pki.rsa.PrivateKey;
  return { keyPem, privateKey: forgeKey, publicKey: forge.pki.setRsaPublicKey(forgeKey.n, forgeKey.e) };
}

function newCertificate(publicKey: forge.pki.PublicKey, commonName: string): forge.pki.Certificate {
  const cert = forge.pki.createCertificate();
  cert.publicKey = publicKey;
  // A positive serial: forge encodes it as given, and a leading 1 bit would make it negative.
  cert.serialNumber = "01" + randomBytes(8).toString("hex");
  cert.validity.notBefore = new Date(Date.now() - 60_000);
  cert.validity.notAfter = new Date(Date.now() + 24 * 3600_000);
  cert.setSubject([{ name: "commonName", value: commonName }]);
  return cert;
}

export function createTestCa(commonName = "meshlane test CA"): TestCa {
  const ca = newKeyPair();
  const caCert = newCertificate(ca.publicKey, commonName);
  caCert.setIssuer(caCert.subject.attributes);
  caCert.setExtensions([
    { name: "basicConstraints", cA: true, critical: true },
    { name: "keyUsage", keyCertSign: true, cRLSign: true, critical: true },
  ]);
  caCert.sign(ca.privateKey, forge.md.sha256.create());

  return {
    keyPem: ca.keyPem,
    certPem: forge.pki.certificateToPem(caCert),
    issue({ dnsNames = [], ips = [] }) {
      const leaf = newKeyPair();
      const cert = newCertificate(leaf.publicKey, dnsNames[0] ?? ips[0] ?? "meshlane test server");
      cert.setIssuer(caCert.subject.attributes);
      cert.setExtensions([
        { name: "basicConstraints", cA: false },
        { name: "keyUsage", digitalSignature: true, keyEncipherment: true, critical: true },
        { name: "extKeyUsage", serverAuth: true },
        { name: "subjectAltName", altNames: [...dnsNames.map((value) => ({ type: 2, value })), ...ips.map((ip) => ({ type: 7, ip }))] },
      ]);
      cert.sign(ca.privateKey, forge.md.sha256.create());
      return { keyPem: leaf.keyPem, certPem: forge.pki.certificateToPem(cert) };
    },
  };
}
