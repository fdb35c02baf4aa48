// npm test's share of the kernel matrix on Debian's 6.1 under qemu (TCG): doctor and
// the suites CI can afford (docs/kernels.md has the measured cost); the full matrix is
// npm run test:kernels. Runs as root, like every kernel suite.

import { describeKernel } from "../../lab/qemu/ci-suite.js";

describeKernel("6.1", ["steering", "integrity"]);
