// Just enough of a Dockerfile reader for the image tests: stages with their base and
// instructions, line continuations joined, comments dropped.

import { readFileSync } from "node:fs";

export interface Instruction {
  op: string;
  args: string;
}

export interface Stage {
  name: string;
  from: string;
  instructions: Instruction[];
}

export function parseDockerfile(path: string): Stage[] {
  const lines: string[] = [];
  let pending = "";
  for (const raw of readFileSync(path, "utf8").split("\n")) {
    if (/^\s*#/.test(raw)) continue;
    const line = raw.trimEnd();
    if (line.endsWith("\\")) {
      pending += line.slice(0, -1) + " ";
      continue;
    }
    const full = (pending + line).trim();
    pending = "";
    if (full) lines.push(full);
  }
  const stages: Stage[] = [];
  for (const line of lines) {
    const [, op, args] = /^(\S+)\s+(.*)$/.exec(line) ?? [];
    if (!op || args === undefined) throw new Error(`cannot read Dockerfile line: ${line}`);
    if (op.toUpperCase() === "FROM") {
      const m = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(args);
      if (!m) throw new Error(`cannot read FROM ${args}`);
      stages.push({ from: m[1]!, name: m[2] ?? String(stages.length), instructions: [] });
      continue;
    }
    const stage = stages.at(-1);
    if (!stage) throw new Error(`${op} before the first FROM`);
    stage.instructions.push({ op: op.toUpperCase(), args: args.replace(/\s+/g, " ").trim() });
  }
  return stages;
}

export function stage(stages: Stage[], name: string): Stage {
  const s = stages.find((x) => x.name === name);
  if (!s) throw new Error(`no stage ${name} in the Dockerfile`);
  return s;
}

/** A stage's instructions after those of the stages it is built FROM (within the file). */
export function lineage(stages: Stage[], name: string): Instruction[] {
  const s = stage(stages, name);
  const parent = stages.find((x) => x.name === s.from);
  return [...(parent ? lineage(stages, parent.name) : []), ...s.instructions];
}

/** The shell commands of a stage's RUN instructions, split at `&&`. */
export function runCommands(instructions: Instruction[]): string[] {
  return instructions.filter((i) => i.op === "RUN").flatMap((i) => i.args.split("&&").map((c) => c.trim()));
}

/** Packages named by `apt-get install` commands. */
export function aptPackages(instructions: Instruction[]): string[] {
  return runCommands(instructions)
    .filter((c) => /^apt-get install\b/.test(c))
    .flatMap((c) => c.split(" ").slice(2).filter((w) => !w.startsWith("-")));
}

export interface Copy {
  from: string | undefined;
  src: string;
  dest: string;
}

export function copies(instructions: Instruction[]): Copy[] {
  return instructions
    .filter((i) => i.op === "COPY")
    .map((i) => {
      const words = i.args.split(" ");
      const from = words.find((w) => w.startsWith("--from="))?.slice("--from=".length);
      const paths = words.filter((w) => !w.startsWith("--"));
      if (paths.length !== 2) throw new Error(`COPY with other than one source: ${i.args}`);
      return { from, src: paths[0]!, dest: paths[1]! };
    });
}

/** The JSON-array form of ENTRYPOINT or CMD, as the last one in the lineage says. */
export function execForm(instructions: Instruction[], op: "ENTRYPOINT" | "CMD"): string[] | undefined {
  const last = instructions.filter((i) => i.op === op).at(-1);
  return last ? (JSON.parse(last.args) as string[]) : undefined;
}
