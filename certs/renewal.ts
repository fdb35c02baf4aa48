// When to issue certificates, as a pure plan over the stored set and the clock, and
// how to carry the plan out. Certificates are renewed well before they expire so that
// a missed check or two never lets one lapse.

import { createCertificateAuthority, issueServingCertificate } from "./authority.js";
import { certificateFacts, servingMatches, signingCaPem, splitPemCertificates, type CertificateSet } from "./certificate-set.js";

export interface RenewalPolicy {
  caValidityMs: number;
  servingValidityMs: number;
  /** Reissue the serving certificate once it has less than this left. */
  renewBeforeMs: number;
  /** Subject alternative names the serving certificate must carry. */
  names: string[];
}

const DAY = 24 * 3600 * 1000;
export const DEFAULT_POLICY_TIMES = { caValidityMs: 3650 * DAY, servingValidityMs: 90 * DAY, renewBeforeMs: 30 * DAY } as const;

export type RenewalPlan = { action: "keep" } | { action: "issue-serving" | "new-ca"; why: string };

export function planRenewal(set: CertificateSet | undefined, now: Date, policy: RenewalPolicy): RenewalPlan {
  if (!set) return { action: "new-ca", why: "no certificates stored" };
  if (!set.caKeyPem) return { action: "new-ca", why: "no CA key stored" };
  const caPem = signingCaPem(set);
  const ca = certificateFacts(caPem);
  // A CA must outlive every serving certificate it signs, with the same margin.
  if (ca.notAfter.getTime() - now.getTime() < policy.servingValidityMs + policy.renewBeforeMs) {
    return { action: "new-ca", why: `CA expires at ${ca.notAfter.toISOString()}` };
  }
  const match = servingMatches(set, caPem);
  if (!match.ok) return { action: "issue-serving", why: match.why! };
  const serving = certificateFacts(set.certPem);
  if (serving.notAfter.getTime() - now.getTime() < policy.renewBeforeMs) {
    return { action: "issue-serving", why: `serving certificate expires at ${serving.notAfter.toISOString()}` };
  }
  const missing = policy.names.filter((n) => !serving.names.includes(n));
  if (missing.length > 0) return { action: "issue-serving", why: `serving certificate lacks ${missing.join(", ")}` };
  return { action: "keep" };
}

/** Carries out a plan that is not "keep". A new CA keeps the old ones trusted until they expire. */
export function renew(set: CertificateSet | undefined, plan: Exclude<RenewalPlan, { action: "keep" }>, now: Date, policy: RenewalPolicy): CertificateSet {
  let caCertPem: string;
  let caKeyPem: string;
  let olderCas: string[] = [];
  if (plan.action === "new-ca" || !set?.caKeyPem) {
    ({ certPem: caCertPem, keyPem: caKeyPem } = createCertificateAuthority({ validityMs: policy.caValidityMs, now }));
    olderCas = set ? splitPemCertificates(set.caBundlePem) : [];
  } else {
    [caCertPem, ...olderCas] = splitPemCertificates(set.caBundlePem) as [string, ...string[]];
    caKeyPem = set.caKeyPem;
  }
  const stillValid = olderCas.filter((pem) => certificateFacts(pem).notAfter > now);
  const serving = issueServingCertificate({ certPem: caCertPem, keyPem: caKeyPem }, { names: policy.names, validityMs: policy.servingValidityMs, now });
  return { caBundlePem: [caCertPem, ...stillValid].join(""), caKeyPem, certPem: serving.certPem, keyPem: serving.keyPem };
}
