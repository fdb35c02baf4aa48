#!/usr/bin/env node
// meshlane-webhook: the admission webhook's command line.

import pino from "pino";
import { parseServeArgs, USAGE, UsageError } from "./options.js";
import { startWebhook } from "./service.js";

async function main(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseServeArgs(argv);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    process.stderr.write(`meshlane-webhook: ${e.message}\n`);
    return 2;
  }
  if (parsed.command === "help") {
    process.stdout.write(USAGE);
    return 0;
  }
  // Operational messages go to stderr; stdout may be the audit log.
  const log = pino({ name: "meshlane-webhook" }, pino.destination({ dest: 2, sync: true }));
  const running = await startWebhook(parsed.options, { log });
  await new Promise<void>((resolve) => {
    const onSignal = (signal: NodeJS.Signals): void => {
      log.info({ signal }, "shutting down: finishing requests in flight");
      // A second signal means the operator does not want to wait.
      process.once("SIGTERM", () => process.exit(1));
      process.once("SIGINT", () => process.exit(1));
      resolve();
    };
    process.once("SIGTERM", onSignal);
    process.once("SIGINT", onSignal);
  });
  await running.stop();
  log.info("stopped");
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: Error) => {
    process.stderr.write(`meshlane-webhook: ${e.message}\n`);
    process.exit(1);
  },
);
