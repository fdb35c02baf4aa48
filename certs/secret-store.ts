// Certificates in a Kubernetes Secret, shared by every webhook replica. Writes carry the
// resourceVersion that was read, so two replicas renewing at once cannot both win: the
// loser gets a StoreConflictError and adopts the stored set. A Secret's type cannot
// change, so an existing one is written back with the type it has (the manifest's is
// Opaque, with no data for `kubectl apply` to own); one this store creates is
// kubernetes.io/tls.

import { ApiException, CoreV1Api, type KubeConfig, type V1Secret } from "@kubernetes/client-node";
import { PART_OF_LABEL, PART_OF_VALUE } from "../registry/names.js";
import type { CertificateSet } from "./certificate-set.js";
import { StoreConflictError, setEntries, setFromEntries, type CertificateStore } from "./store.js";

function isApiError(e: unknown, code: number): boolean {
  return e instanceof ApiException && e.code === code;
}

export class SecretCertificateStore implements CertificateStore {
  private readonly api: CoreV1Api;
  /** resourceVersion and type seen by the last load; undefined when the Secret did not exist. */
  private resourceVersion: string | undefined;
  private type: string | undefined;

  constructor(kubeConfig: KubeConfig, private readonly namespace: string, private readonly name: string) {
    this.api = kubeConfig.makeApiClient(CoreV1Api);
  }

  get where(): string {
    return `Secret ${this.namespace}/${this.name}`;
  }

  async load(): Promise<CertificateSet | undefined> {
    let secret: V1Secret;
    try {
      secret = await this.api.readNamespacedSecret({ name: this.name, namespace: this.namespace });
    } catch (e) {
      if (isApiError(e, 404)) {
        this.resourceVersion = undefined;
        this.type = undefined;
        return undefined;
      }
      throw new Error(`${this.where}: read failed: ${(e as Error).message}`);
    }
    this.resourceVersion = secret.metadata?.resourceVersion;
    this.type = secret.type;
    const data = secret.data ?? {};
    return setFromEntries((k) => (data[k] === undefined ? undefined : Buffer.from(data[k]!, "base64").toString("utf8")));
  }

  async save(set: CertificateSet): Promise<void> {
    const body: V1Secret = {
      apiVersion: "v1",
      kind: "Secret",
      type: this.type ?? "kubernetes.io/tls",
      metadata: {
        name: this.name,
        namespace: this.namespace,
        labels: { [PART_OF_LABEL]: PART_OF_VALUE },
        ...(this.resourceVersion ? { resourceVersion: this.resourceVersion } : {}),
      },
      data: Object.fromEntries(Object.entries(setEntries(set)).map(([k, v]) => [k, Buffer.from(v).toString("base64")])),
    };
    try {
      const saved = this.resourceVersion
        ? await this.api.replaceNamespacedSecret({ name: this.name, namespace: this.namespace, body })
        : await this.api.createNamespacedSecret({ namespace: this.namespace, body });
      this.resourceVersion = saved.metadata?.resourceVersion;
    } catch (e) {
      // 409 on create (someone created it) or on replace (stale resourceVersion).
      if (isApiError(e, 409)) throw new StoreConflictError(this.where);
      throw new Error(`${this.where}: write failed: ${(e as Error).message}`);
    }
  }
}
