// Debian 11's 5.10, older than the minimum, under qemu (TCG): doctor must refuse it
// with a sentence naming what is missing, and attach must fail leaving nothing behind.

import { describeKernel } from "../../lab/qemu/ci-suite.js";

describeKernel("5.10", []);
