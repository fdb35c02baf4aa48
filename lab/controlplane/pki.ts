// The control plane's own certificates: one CA that signs the API server's serving
// certificate and every client certificate (the API server trusts it as --client-ca-file),
// and the RSA key that signs ServiceAccount tokens. The CA and serving certificate come
// from certs/authority.ts, the same code that makes the webhook's.

import { generateKeyPairSync, randomBytes } from "node:crypto";
import forge from "node-forge";
import { createCertificateAuthority, issueServingCertificate, type KeyPairPem } from "../../certs/authority.js";

export type { KeyPairPem };

const DAY = 86_400_000;
/** A control plane lives for one test file or one demo; a week covers a long-running demo. */
const VALIDITY_MS = 7 * DAY;

export interface ControlPlanePki {
  ca: KeyPairPem;
  serving: KeyPairPem;
  /** PKCS#8 private key and SPKI public key, PEM: --service-account-signing-key-file / --service-account-key-file. */
  serviceAccountKey: { privatePem: string; publicPem: string };
}

export function createPki(): ControlPlanePki {
  const ca = createCertificateAuthority({ commonName: "meshlane lab control-plane CA", validityMs: VALIDITY_MS });
  // kubectl and client-node connect to 127.0.0.1; "kubernetes.default.svc" is the name in-cluster clients verify.
  const serving = issueServingCertificate(ca, { names: ["127.0.0.1", "localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"], validityMs: VALIDITY_MS });
  const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  return {
    ca,
    serving,
    serviceAccountKey: {
      privatePem: privateKey.export({ type: "pkcs8", format: "pem" }).toString(),
      publicPem: publicKey.export({ type: "spki", format: "pem" }).toString(),
    },
  };
}

/**
 * A client certificate: the API server's x509 authenticator takes the user from the
 * common name and the groups from the organisations (system:masters for the admin,
 * system:node:<name> in system:nodes for a kubelet).
 */
export function issueClientCertificate(ca: KeyPairPem, user: string, groups: string[]): KeyPairPem {
  const caCert = forge.pki.certificateFromPem(ca.certPem);
  const keys = forge.pki.rsa.generateKeyPair({ bits: 2048 });
  const cert = forge.pki.createCertificate();
  cert.publicKey = keys.publicKey;
  cert.serialNumber = `01${randomBytes(8).toString("hex")}`;
  cert.validity.notBefore = new Date(Date.now() - 5 * 60_000);
  cert.validity.notAfter = new Date(Math.min(Date.now() + VALIDITY_MS, caCert.validity.notAfter.getTime()));
  cert.setSubject([{ name: "commonName", value: user }, ...groups.map((value) => ({ name: "organizationName", value }))]);
  cert.setIssuer(caCert.subject.attributes);
  cert.setExtensions([
    { name: "basicConstraints", cA: false, critical: true },
    { name: "keyUsage", digitalSignature: true, keyEncipherment: true, critical: true },
    { name: "extKeyUsage", clientAuth: true },
  ]);
  cert.sign(forge.pki.privateKeyFromPem(ca.keyPem), forge.md.sha256.create());
  const lf = (pem: string) => pem.replace(/\r\n/g, "\n");
  return { certPem: lf(forge.pki.certificateToPem(cert)), keyPem: lf(forge.pki.privateKeyToPem(keys.privateKey)) };
}
