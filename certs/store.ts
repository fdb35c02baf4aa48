// Where a certificate set lives between restarts and replicas. File names and Secret
// keys are the ones Kubernetes TLS Secrets use, so a Secret mounted as a directory
// reads back through the file store unchanged.

import type { CertificateSet } from "./certificate-set.js";

export const TLS_CERT_KEY = "tls.crt";
export const TLS_KEY_KEY = "tls.key";
export const CA_CERT_KEY = "ca.crt";
export const CA_KEY_KEY = "ca.key";
export const STORE_KEYS = [CA_CERT_KEY, CA_KEY_KEY, TLS_CERT_KEY, TLS_KEY_KEY] as const;

export interface CertificateStore {
  /** For messages: where the certificates are. */
  readonly where: string;
  load(): Promise<CertificateSet | undefined>;
  /** Throws StoreConflictError when someone else saved since our load. */
  save(set: CertificateSet): Promise<void>;
}

export class StoreConflictError extends Error {
  constructor(where: string) {
    super(`${where}: changed by another writer since it was read`);
    this.name = "StoreConflictError";
  }
}

/** Key → PEM entries of a set, as both stores write them. */
export function setEntries(set: CertificateSet): Record<string, string> {
  return {
    [CA_CERT_KEY]: set.caBundlePem,
    ...(set.caKeyPem ? { [CA_KEY_KEY]: set.caKeyPem } : {}),
    [TLS_CERT_KEY]: set.certPem,
    [TLS_KEY_KEY]: set.keyPem,
  };
}

/** The inverse of setEntries; undefined unless the serving pair is complete. */
export function setFromEntries(get: (key: string) => string | undefined): CertificateSet | undefined {
  const certPem = get(TLS_CERT_KEY);
  const keyPem = get(TLS_KEY_KEY);
  if (!certPem || !keyPem) return undefined;
  return { caBundlePem: get(CA_CERT_KEY) ?? "", caKeyPem: get(CA_KEY_KEY) || undefined, certPem, keyPem };
}
