// Keeps the webhook's certificates current: loads the stored set, renews it when the
// plan says so, publishes the CA bundle on every check (someone may have re-applied
// the webhook configuration with an empty caBundle), and hands every new set to
// `onChange` only after it was published, so the API server trusts a CA before any
// connection is served with it. Without a policy it only reloads the store, for
// certificates issued elsewhere (cert-manager writing the mounted Secret).

import { isDeepStrictEqual } from "node:util";
import type { CertificateSet } from "./certificate-set.js";
import { planRenewal, renew, type RenewalPolicy } from "./renewal.js";
import { StoreConflictError, type CertificateStore } from "./store.js";

export interface CertificateManagerOptions {
  store: CertificateStore;
  /** Undefined: never issue, only follow the store. */
  policy: RenewalPolicy | undefined;
  /** Makes the set's CA bundle trusted (idempotent); runs on every check. */
  publish?: (set: CertificateSet) => Promise<void>;
  onChange: (set: CertificateSet, why: string) => Promise<void>;
  onError?: (e: Error) => void;
  now?: () => Date;
}

export class CertificateManager {
  private current: CertificateSet | undefined;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<CertificateSet | undefined> | undefined;

  constructor(private readonly opts: CertificateManagerOptions) {}

  get certificates(): CertificateSet | undefined {
    return this.current;
  }

  /** One check; concurrent callers share it. Resolves to the set in use afterwards. */
  check(): Promise<CertificateSet | undefined> {
    this.running ??= this.checkOnce().finally(() => (this.running = undefined));
    return this.running;
  }

  /** Periodic checks; errors go to onError and the next tick tries again. */
  start(intervalMs: number): void {
    this.stop();
    this.timer = setInterval(() => {
      this.check().catch((e: Error) => this.opts.onError?.(e));
    }, intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  private async checkOnce(): Promise<CertificateSet | undefined> {
    const { store, policy } = this.opts;
    const now = this.opts.now?.() ?? new Date();
    let stored = await store.load();
    let why = `loaded from ${store.where}`;
    const plan = policy ? planRenewal(stored, now, policy) : { action: "keep" as const };
    if (plan.action !== "keep" && policy) {
      const renewed = renew(stored, plan, now, policy);
      try {
        await store.save(renewed);
        stored = renewed;
        why = `${plan.action}: ${plan.why}`;
      } catch (e) {
        if (!(e instanceof StoreConflictError)) throw e;
        // Another replica renewed first; its set is as good as ours and now shared.
        stored = await store.load();
        why = `adopted the set another writer saved to ${store.where}`;
      }
    }
    if (stored) await this.opts.publish?.(stored);
    if (stored && !isDeepStrictEqual(stored, this.current)) {
      await this.opts.onChange(stored, why);
      this.current = stored;
    }
    return this.current;
  }
}
