// Renders the compatibility table of docs/kernels.md from matrix rows, and puts it
// between the page's markers. Pure: the caller reads and writes the file.

import type { Row } from "./matrix.js";

export const BEGIN = "<!-- test:kernels table begin (written by npm run test:kernels) -->";
export const END = "<!-- test:kernels table end -->";

function cell(row: Row, suite: string): string {
  const s = row.suites.find((x) => x.suite === suite);
  if (!s) return "–";
  if (!s.summary) return `**crashed** (exit ${s.code})`;
  const bad = s.summary.fail + s.summary.cancelled;
  const text = `${s.summary.pass}/${s.summary.tests} pass${bad ? `, **${bad} fail**` : ""}`;
  return `${text} (${Math.round(s.seconds)} s)`;
}

function doctorCell(row: Row): string {
  if (row.doctor.ok) return `pass (${Math.round(row.doctor.seconds)} s)`;
  const why = row.doctor.reasons.length ? row.doctor.reasons.join("; ") : "exited non-zero without a reason";
  return `**refuses**: ${why}`;
}

/** A multi-line failure message as one list item: its lines indented under the bullet, at most MAX_LINES of them. */
const MAX_LINES = 30;
function listItem(text: string): string {
  const lines = text.split("\n");
  const shown = lines.length > MAX_LINES ? [...lines.slice(0, MAX_LINES), `… ${lines.length - MAX_LINES} more lines`] : lines;
  return shown.join("\n  ");
}

/** A kernel of the run without a row: still running when the page was written, or its guest failed. */
export interface Missing {
  kernel: string;
  why: string;
}

export function renderTable(rows: Row[], suites: string[], date: string, missing: Missing[] = []): string {
  const head = ["kernel", "release", "doctor", ...suites, "attach on a refused kernel", "wall time (qemu CPU)"];
  const lines = [
    `Run of ${date}.`,
    ...(missing.length ? ["", ...missing.map((m) => `- **${m.kernel}: no result**: ${listItem(m.why)}`)] : []),
    "",
    `| ${head.join(" | ")} |`,
    `|${head.map(() => "---").join("|")}|`,
  ];
  for (const r of rows) {
    const attach = r.attach
      ? r.attach.code !== 0 && r.attach.leftovers.length === 0
        ? `refused (exit ${r.attach.code}), nothing left behind`
        : `**exit ${r.attach.code}, left: ${r.attach.leftovers.join("; ") || "nothing"}**`
      : "–";
    lines.push(`| ${[r.kernel, `\`${r.release}\``, doctorCell(r), ...suites.map((s) => cell(r, s)), attach, `${Math.round(r.seconds)} s${r.cpuSeconds === undefined ? "" : ` (${Math.round(r.cpuSeconds)} s)`}`].join(" | ")} |`);
  }
  const failures = rows.flatMap((r) => r.suites.flatMap((s) => s.failures.map((f) => `- ${r.kernel}, ${s.suite}: ${listItem(f)}`)));
  if (failures.length) lines.push("", "Failures:", "", ...failures);
  return lines.join("\n");
}

/** The page with its table replaced; the markers must be there, each once. */
export function replaceTable(page: string, table: string): string {
  const b = page.indexOf(BEGIN);
  const e = page.indexOf(END);
  if (b < 0 || e < b || page.indexOf(BEGIN, b + 1) >= 0) throw new Error(`docs/kernels.md: expected one "${BEGIN}" before one "${END}"`);
  return `${page.slice(0, b + BEGIN.length)}\n${table}\n${page.slice(e)}`;
}

/** Whether a row shows a working kernel (supported) or a clean refusal (too old). */
export function rowProblems(row: Row, expect: "supported" | "too-old"): string[] {
  const p: string[] = [];
  if (expect === "too-old") {
    if (row.doctor.ok) p.push(`doctor accepted ${row.release}, which it must refuse`);
    else if (!row.doctor.reasons.length) p.push("doctor refused without naming what is missing");
    if (!row.attach) p.push("attach was not tried");
    else {
      if (row.attach.code === 0) p.push("attach succeeded on a kernel doctor refuses");
      if (row.attach.leftovers.length) p.push(`attach left behind: ${row.attach.leftovers.join("; ")}`);
    }
    return p;
  }
  if (!row.doctor.ok) p.push(`doctor refused ${row.release}: ${row.doctor.reasons.join("; ") || "no reason given"}`);
  for (const s of row.suites) {
    if (!s.summary) p.push(`${s.suite}: no test summary (exit ${s.code})`);
    else if (s.summary.fail || s.summary.cancelled || s.summary.tests === 0 || s.code !== 0) p.push(`${s.suite}: ${s.summary.fail + s.summary.cancelled} of ${s.summary.tests} failed (exit ${s.code})`);
  }
  return p;
}
