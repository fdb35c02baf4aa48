// Reads what came back from a guest: the node test runner's closing summary and
// doctor's verdict. Pure functions of the text.

export interface RunnerSummary {
  tests: number;
  pass: number;
  fail: number;
  cancelled: number;
  skipped: number;
  todo: number;
}

const COUNTERS = ["tests", "pass", "fail", "cancelled", "skipped", "todo"] as const;

/** The closing "ℹ pass N" lines of node's spec reporter (or "# pass N" of TAP); null if there are none. */
export function parseRunnerSummary(log: string): RunnerSummary | null {
  const found: Partial<RunnerSummary> = {};
  for (const line of log.split("\n")) {
    const m = /^(?:ℹ|#) (tests|pass|fail|cancelled|skipped|todo) (\d+)\s*$/.exec(line.trim());
    if (m) found[m[1] as keyof RunnerSummary] = Number(m[2]);
  }
  if (found.tests === undefined || found.pass === undefined || found.fail === undefined) return null;
  return Object.fromEntries(COUNTERS.map((c) => [c, found[c] ?? 0])) as unknown as RunnerSummary;
}

/**
 * Each failed test of a spec-reporter log: its name, then its whole error message
 * (a matrix's assertion lists every differing row, one a line), without the stack.
 */
const STACK_FRAME = /^\s+at (?:async )?\S.*(?:\(.*:\d+:\d+\)|:\d+:\d+|\(index \d+\))(?: \{)?$/;

export function failedTests(log: string): string[] {
  const lines = log.split("\n");
  const failures: string[] = [];
  const start = lines.findIndex((l) => l.trim() === "✖ failing tests:");
  for (let i = start < 0 ? lines.length : start + 1; i < lines.length; i++) {
    const m = /^✖ (.+?)(?: \([\d.]+ms\))?$/.exec(lines[i]!.trim());
    if (!m) continue;
    const message: string[] = [];
    for (let j = i + 1; j < lines.length; j++) {
      const l = lines[j]!;
      if (STACK_FRAME.test(l) || l.startsWith("test at ") || l.trim().startsWith("✖")) break;
      message.push(l.trim());
    }
    // assert's messages have blank lines of their own ("what\n\n3 !== 0"); the block's end has some too.
    while (message.length && !message.at(-1)) message.pop();
    failures.push(message.length ? `${m[1]}: ${message.join("\n")}` : m[1]!);
  }
  return failures;
}

export interface DoctorVerdict {
  ok: boolean;
  /** The sentences after "meshlane cannot run on this node:". */
  reasons: string[];
}

export function parseDoctor(log: string, code: number): DoctorVerdict {
  const lines = log.split("\n");
  const at = lines.findIndex((l) => l.startsWith("meshlane cannot run on this node:"));
  const reasons = at < 0 ? [] : lines.slice(at + 1).filter((l) => l.startsWith("- ")).map((l) => l.slice(2));
  const passed = lines.some((l) => l.startsWith("all checks passed"));
  return { ok: code === 0 && passed && reasons.length === 0, reasons };
}
