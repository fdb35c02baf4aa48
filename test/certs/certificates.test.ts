import { test } from "node:test";
import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { mkdtempSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createCertificateAuthority, issueServingCertificate, SERVICE_DNS_NAMES } from "../../certs/authority.js";
import { certificateFacts, splitPemCertificates, type CertificateSet } from "../../certs/certificate-set.js";
import { FileCertificateStore } from "../../certs/file-store.js";
import { planRenewal, renew, type RenewalPolicy } from "../../certs/renewal.js";

const DAY = 86_400_000;
const policy: RenewalPolicy = { caValidityMs: 3650 * DAY, servingValidityMs: 90 * DAY, renewBeforeMs: 30 * DAY, names: [...SERVICE_DNS_NAMES, "127.0.0.1"] };

test("CA and serving certificate: SANs for the Service, chain verifies, right usages", () => {
  const ca = createCertificateAuthority({ validityMs: 10 * DAY });
  const serving = issueServingCertificate(ca, { names: [...SERVICE_DNS_NAMES, "127.0.0.1", "localhost"], validityMs: DAY });
  const caX = new X509Certificate(ca.certPem);
  const leaf = new X509Certificate(serving.certPem);
  assert.equal(caX.ca, true);
  assert.equal(leaf.ca, false);
  assert.ok(leaf.verify(caX.publicKey), "leaf is signed by the CA");
  assert.ok(leaf.checkIssued(caX));
  assert.equal(leaf.checkHost("meshlane-webhook.meshlane-system.svc"), "meshlane-webhook.meshlane-system.svc");
  assert.equal(leaf.checkHost("meshlane-webhook.meshlane-system.svc.cluster.local"), "meshlane-webhook.meshlane-system.svc.cluster.local");
  assert.equal(leaf.checkIP("127.0.0.1"), "127.0.0.1");
  assert.equal(leaf.checkHost("other.example"), undefined);
  assert.deepEqual(leaf.keyUsage, ["1.3.6.1.5.5.7.3.1"], "serverAuth only");
  const facts = certificateFacts(serving.certPem);
  assert.ok(Math.abs(facts.notAfter.getTime() - Date.now() - DAY) < 60_000);
});

test("a serving certificate never outlives its CA", () => {
  const ca = createCertificateAuthority({ validityMs: DAY });
  const serving = issueServingCertificate(ca, { names: ["localhost"], validityMs: 30 * DAY });
  assert.ok(certificateFacts(serving.certPem).notAfter <= certificateFacts(ca.certPem).notAfter);
});

test("renewal plan: new CA when none, keep when fresh, reissue near expiry, on SAN change, on a foreign cert", () => {
  const now = new Date();
  assert.equal(planRenewal(undefined, now, policy).action, "new-ca");
  const set = renew(undefined, { action: "new-ca", why: "test" }, now, policy);
  assert.deepEqual(planRenewal(set, now, policy), { action: "keep" });

  const nearExpiry = planRenewal(set, new Date(now.getTime() + 61 * DAY), policy);
  assert.equal(nearExpiry.action, "issue-serving");
  assert.match((nearExpiry as { why: string }).why, /expires at/);

  const moreNames = planRenewal(set, now, { ...policy, names: [...policy.names, "extra.example"] });
  assert.deepEqual(moreNames, { action: "issue-serving", why: "serving certificate lacks extra.example" });

  const other = createCertificateAuthority({ validityMs: DAY });
  const foreign: CertificateSet = { ...set, ...issueServingCertificate(other, { names: policy.names, validityMs: DAY }) };
  assert.equal(planRenewal(foreign, now, policy).action, "issue-serving");

  const caNearEnd = planRenewal(set, new Date(now.getTime() + 3600 * DAY), policy);
  assert.equal(caNearEnd.action, "new-ca");
});

test("reissuing keeps the CA; a new CA keeps the old one trusted until it expires", () => {
  const now = new Date();
  const first = renew(undefined, { action: "new-ca", why: "test" }, now, policy);
  const reissued = renew(first, { action: "issue-serving", why: "test" }, now, policy);
  assert.equal(reissued.caBundlePem, first.caBundlePem);
  assert.equal(reissued.caKeyPem, first.caKeyPem);
  assert.notEqual(reissued.certPem, first.certPem);

  const tenDaysOn = new Date(now.getTime() + 10 * DAY);
  const rolled = renew(first, { action: "new-ca", why: "test" }, tenDaysOn, policy);
  const bundle = splitPemCertificates(rolled.caBundlePem);
  assert.equal(bundle.length, 2);
  assert.equal(bundle[1], splitPemCertificates(first.caBundlePem)[0]);
  assert.ok(new X509Certificate(rolled.certPem).verify(new X509Certificate(bundle[0]!).publicKey), "signed by the new CA");
  // Once the first CA has expired it is dropped; the second, still valid, stays.
  const firstExpired = new Date(now.getTime() + 3651 * DAY);
  const third = splitPemCertificates(renew(rolled, { action: "new-ca", why: "test" }, firstExpired, policy).caBundlePem);
  assert.equal(third.length, 2);
  assert.equal(third[1], bundle[0]);
});

test("file store: round trip, keys 0600, nothing when empty", async () => {
  const dir = join(mkdtempSync(join(tmpdir(), "meshlane-certs-")), "nested");
  const store = new FileCertificateStore(dir);
  assert.equal(await store.load(), undefined);
  const set = renew(undefined, { action: "new-ca", why: "test" }, new Date(), policy);
  await store.save(set);
  assert.deepEqual(await store.load(), set);
  assert.equal(statSync(join(dir, "tls.key")).mode & 0o777, 0o600);
  assert.equal(statSync(join(dir, "ca.key")).mode & 0o777, 0o600);
  assert.equal(statSync(join(dir, "tls.crt")).mode & 0o777, 0o644);
});
