// What the webhook serves and what the API server must trust, and facts read back
// from the PEM text with Node's X509Certificate (no state kept beside the PEM).

import { X509Certificate, createPrivateKey } from "node:crypto";

export interface CertificateSet {
  /** PEM bundle for the webhook's caBundle: the signing CA first, then older CAs still valid. */
  caBundlePem: string;
  /** The signing CA's key; undefined when certificates are issued elsewhere (e.g. cert-manager). */
  caKeyPem: string | undefined;
  /** Serving certificate (leaf first) and its key. */
  certPem: string;
  keyPem: string;
}

export function splitPemCertificates(bundle: string): string[] {
  return bundle.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g)?.map((p) => `${p}\n`) ?? [];
}

export function signingCaPem(set: CertificateSet): string {
  const first = splitPemCertificates(set.caBundlePem)[0];
  if (!first) throw new Error("CA bundle holds no certificate");
  return first;
}

export interface CertificateFacts {
  serialNumber: string;
  notBefore: Date;
  notAfter: Date;
  /** DNS names and IP addresses from subjectAltName. */
  names: string[];
}

export function certificateFacts(pem: string): CertificateFacts {
  const x = new X509Certificate(pem);
  const names = (x.subjectAltName ?? "")
    .split(", ")
    .filter((n) => n.startsWith("DNS:") || n.startsWith("IP Address:"))
    .map((n) => n.slice(n.indexOf(":") + 1));
  return { serialNumber: x.serialNumber, notBefore: new Date(x.validFrom), notAfter: new Date(x.validTo), names };
}

/** Is `certPem` signed by `caPem`, and does `keyPem` belong to it? */
export function servingMatches(set: CertificateSet, caPem: string): { ok: boolean; why?: string } {
  const leaf = new X509Certificate(set.certPem);
  if (!leaf.verify(new X509Certificate(caPem).publicKey)) return { ok: false, why: "serving certificate is not signed by the current CA" };
  if (!leaf.checkPrivateKey(createPrivateKey(set.keyPem))) return { ok: false, why: "serving key does not match the certificate" };
  return { ok: true };
}
