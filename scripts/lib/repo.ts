// The checkout a script runs from, whether as TypeScript (tsx) or as built JavaScript
// under dist/: results belong in the checkout's bench/results, not under dist/.

import { fileURLToPath } from "node:url";

const FROM_SOURCES = import.meta.url.endsWith(".ts");
export const REPO = fileURLToPath(new URL(FROM_SOURCES ? "../../" : "../../../", import.meta.url));
/** How to start one of the repo's command lines: its TypeScript through tsx, or its built JavaScript. */
export const cli = (name: "webhook" | "loader") => (FROM_SOURCES ? ["--import", "tsx", `${REPO}${name}/cli.ts`] : [`${REPO}dist/${name}/cli.js`]);
