// A private CA and the webhook's serving certificate, made with node-forge (RSA 2048,
// SHA-256). node-forge generates the keys with Node's native crypto when it can, so
// issuing takes milliseconds.

import { randomBytes } from "node:crypto";
import { isIP } from "node:net";
import forge from "node-forge";
import { SYSTEM_NAMESPACE } from "../registry/names.js";

export interface KeyPairPem {
  certPem: string;
  keyPem: string;
}

export const WEBHOOK_SERVICE = "meshlane-webhook";
/** The names the API server may use to reach the webhook Service. */
export const SERVICE_DNS_NAMES = [`${WEBHOOK_SERVICE}.${SYSTEM_NAMESPACE}.svc`, `${WEBHOOK_SERVICE}.${SYSTEM_NAMESPACE}.svc.cluster.local`];

/** Backdating absorbs clock skew between this node and the API server. */
const BACKDATE_MS = 5 * 60 * 1000;

/** node-forge writes CRLF; files, Secrets and caBundle comparisons want plain LF. */
function lf(pem: string): string {
  return pem.replace(/\r\n/g, "\n");
}

function serialNumber(): string {
  // Positive (top bit clear), 64 random bits: unique without a counter to keep.
  const bytes = randomBytes(8);
  bytes[0]! &= 0x7f;
  return bytes.toString("hex");
}

function newCertificate(publicKey: forge.pki.PublicKey, now: Date, validityMs: number): forge.pki.Certificate {
  const cert = forge.pki.createCertificate();
  cert.publicKey = publicKey;
  cert.serialNumber = serialNumber();
  cert.validity.notBefore = new Date(now.getTime() - BACKDATE_MS);
  cert.validity.notAfter = new Date(now.getTime() + validityMs);
  return cert;
}

export function createCertificateAuthority(opts: { commonName?: string; validityMs: number; now?: Date }): KeyPairPem {
  const keys = forge.pki.rsa.generateKeyPair({ bits: 2048 });
  const cert = newCertificate(keys.publicKey, opts.now ?? new Date(), opts.validityMs);
  const subject = [{ name: "commonName", value: opts.commonName ?? `meshlane webhook CA ${cert.serialNumber}` }];
  cert.setSubject(subject);
  cert.setIssuer(subject);
  cert.setExtensions([
    { name: "basicConstraints", cA: true, pathLenConstraint: 0, critical: true },
    { name: "keyUsage", keyCertSign: true, cRLSign: true, critical: true },
    { name: "subjectKeyIdentifier" },
  ]);
  cert.sign(keys.privateKey, forge.md.sha256.create());
  return { certPem: lf(forge.pki.certificateToPem(cert)), keyPem: lf(forge.pki.privateKeyToPem(keys.privateKey)) };
}

/** `names` may mix DNS names and IP addresses (tests add 127.0.0.1 and localhost). */
export function issueServingCertificate(ca: KeyPairPem, opts: { names: string[]; validityMs: number; now?: Date }): KeyPairPem {
  if (opts.names.length === 0) throw new Error("a serving certificate needs at least one subject alternative name");
  const caCert = forge.pki.certificateFromPem(ca.certPem);
  const caKey = forge.pki.privateKeyFromPem(ca.keyPem);
  const keys = forge.pki.rsa.generateKeyPair({ bits: 2048 });
  const cert = newCertificate(keys.publicKey, opts.now ?? new Date(), opts.validityMs);
  cert.setSubject([{ name: "commonName", value: opts.names[0]! }]);
  cert.setIssuer(caCert.subject.attributes);
  cert.setExtensions([
    { name: "basicConstraints", cA: false, critical: true },
    { name: "keyUsage", digitalSignature: true, keyEncipherment: true, critical: true },
    { name: "extKeyUsage", serverAuth: true },
    { name: "subjectAltName", altNames: opts.names.map((n) => (isIP(n) ? { type: 7, ip: n } : { type: 2, value: n })) },
    { name: "subjectKeyIdentifier" },
    { name: "authorityKeyIdentifier", keyIdentifier: caCert.generateSubjectKeyIdentifier().getBytes() },
  ]);
  if (new Date(cert.validity.notAfter) > caCert.validity.notAfter) cert.validity.notAfter = caCert.validity.notAfter;
  cert.sign(caKey, forge.md.sha256.create());
  return { certPem: lf(forge.pki.certificateToPem(cert)), keyPem: lf(forge.pki.privateKeyToPem(keys.privateKey)) };
}
