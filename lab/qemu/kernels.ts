// The Debian kernels the data path is proven on, pinned to one package version each.
// Generic (not cloud) images: Debian's cloud kernels leave out 9p, which the guest's
// root filesystem needs. When the archive drops a pinned version (it keeps the
// newest ABIs of a release), fetching fails and names the pin to move here.

export interface Kernel {
  /** Short name used in the table, the test files and the cache. */
  id: string;
  /** Debian suite whose archive carries the package. */
  suite: "bookworm" | "trixie" | "bullseye";
  package: string;
  version: string;
  /** "supported": doctor passes and the suites run; "too-old": doctor must refuse it. */
  expect: "supported" | "too-old";
  /** What users run it as. */
  note: string;
}

export const KERNELS: readonly Kernel[] = [
  { id: "6.1", suite: "bookworm", package: "linux-image-6.1.0-50-amd64-unsigned", version: "6.1.176-1", expect: "supported", note: "Debian 12 (bookworm)" },
  { id: "6.12", suite: "trixie", package: "linux-image-6.12.117+deb13-amd64-unsigned", version: "6.12.117-1", expect: "supported", note: "Debian 13 (trixie), also bookworm-backports" },
  { id: "5.10", suite: "bullseye", package: "linux-image-5.10.0-32-amd64-unsigned", version: "5.10.223-1", expect: "too-old", note: "Debian 11 (bullseye)" },
];

export function kernelById(id: string): Kernel {
  const k = KERNELS.find((x) => x.id === id);
  if (!k) throw new Error(`unknown kernel "${id}"; known: ${KERNELS.map((x) => x.id).join(", ")}`);
  return k;
}

/**
 * Modules loaded in the guest before the suites run (the kernel also autoloads
 * others on demand): the test topology's veth pairs and bridge, and what Istio's
 * nat rules need under iptables-nft.
 */
export const GUEST_MODULES = ["veth", "bridge", "nf_tables", "nft_compat", "nft_chain_nat", "xt_REDIRECT", "xt_owner", "xt_multiport", "xt_conntrack", "xt_mark", "xt_tcpudp"];
