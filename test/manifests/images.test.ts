// The Dockerfile against what CI does and what the manifests expect. No container
// engine runs here, so: the builder runs the commands CI runs (scripts/bootstrap.sh,
// from `npm test`); the runtime stages' files, laid out as the COPY lines put them,
// start both commands and find the BPF object; every package their code imports is a
// production dependency; the image tags and users agree with the manifest.

import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync } from "node:fs";
import { isBuiltin } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join, posix } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { aptPackages, copies, execForm, lineage, parseDockerfile, runCommands, stage, type Instruction } from "./dockerfile.js";
import { find, loadManifest } from "./manifest.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const read = (p: string): string => readFileSync(join(ROOT, p), "utf8");
const pkg = JSON.parse(read("package.json")) as { version: string; engines: { node: string }; scripts: Record<string, string>; bin: Record<string, string>; dependencies: Record<string, string> };
const stages = parseDockerfile(join(ROOT, "Dockerfile"));
const builder = stage(stages, "builder");
const objects = loadManifest();

/** Commands of scripts/bootstrap.sh that start with npm, in order. */
const bootstrapNpm = read("scripts/bootstrap.sh").split("\n").map((l) => l.trim()).filter((l) => /^npm /.test(l));
/** The Debian packages bootstrap.sh installs where missing (its WANT table). */
const bootstrapPackages = [...read("scripts/bootstrap.sh").matchAll(/^\s*\[([\w.+-]+)\]=/gm)].map((m) => m[1]!);

describe("the builder stage builds as CI does", () => {
  it("CI runs npm test, which runs bootstrap.sh before the tests", () => {
    assert.match(read(".ci/run"), /^npm test$/m);
    assert.match(pkg.scripts.test!, /^bash scripts\/bootstrap\.sh && /);
    assert.deepEqual(bootstrapNpm, ["npm ci --no-audit --no-fund --loglevel=error", "npm run --silent build"]);
    assert.ok(pkg.scripts.build, "package.json has the build script that bootstrap runs");
  });

  it("runs exactly bootstrap.sh's npm commands, then keeps production dependencies only", () => {
    const npm = runCommands(builder.instructions).filter((c) => c.startsWith("npm "));
    assert.deepEqual(npm, [...bootstrapNpm, "npm prune --omit=dev --no-audit --no-fund"]);
  });

  it("on the Node major that package.json asks for, with bootstrap's build packages", () => {
    const major = /(\d+)/.exec(pkg.engines.node)![1];
    assert.equal(builder.from, `node:${major}-bookworm`);
    assert.equal(stage(stages, "runtime").from, `node:${major}-bookworm-slim`);
    // clang and llvm-strip (bpf/Makefile), the BPF helper and UAPI headers.
    const buildPackages = ["clang", "llvm", "libbpf-dev", "linux-libc-dev"];
    for (const p of buildPackages) {
      assert.ok(bootstrapPackages.includes(p), `bootstrap.sh no longer installs ${p}: update the Dockerfile with it`);
      assert.ok(aptPackages(builder.instructions).includes(p), `the builder does not install ${p}`);
    }
  });

  it("builds from the sources alone: the build context leaves out what the host built or installed", () => {
    const ignored = read(".dockerignore").split("\n").map((l) => l.trim());
    for (const p of ["node_modules", "dist", "bpf/*.o", ".git"]) assert.ok(ignored.includes(p), p);
  });
});

/** Where each runtime target's files come from (repo paths) and go (paths in the image). */
function layout(target: string): { from: string; to: string }[] {
  let workdir = "/";
  const out: { from: string; to: string }[] = [];
  for (const i of lineage(stages, target) as Instruction[]) {
    if (i.op === "WORKDIR") workdir = i.args;
    if (i.op !== "COPY") continue;
    const [c] = copies([i]);
    assert.equal(c!.from, "builder", `${target}: ${i.args} copies from the builder`);
    assert.ok(c!.src.startsWith("/src/"), c!.src);
    out.push({ from: c!.src.slice("/src/".length), to: posix.resolve(workdir, c!.dest) });
  }
  return out;
}

describe("the runtime images", () => {
  let root: string;
  const inImage = (target: string, p: string): string => join(root, target, p);

  before(() => {
    assert.ok(existsSync(join(ROOT, "dist/loader/cli.js")) && existsSync(join(ROOT, "bpf/meshlane.bpf.o")), 'run "npm run build" first (npm test does)');
    root = mkdtempSync(join(tmpdir(), "meshlane-images-"));
    for (const target of ["loader", "webhook"]) {
      for (const { from, to } of layout(target)) {
        const dest = inImage(target, to);
        mkdirSync(dirname(dest), { recursive: true });
        // node_modules is linked, not copied: which packages it must hold is checked below.
        if (from === "node_modules") symlinkSync(join(ROOT, from), dest);
        else cpSync(join(ROOT, from), dest, { recursive: true });
      }
    }
  });

  after(() => rmSync(root, { recursive: true, force: true }));

  for (const [target, command] of [["loader", "meshlane-loader"], ["webhook", "meshlane-webhook"]] as const) {
    it(`${target}: ${command} is on PATH and is package.json's bin`, () => {
      const all = lineage(stages, target);
      const bin = posix.join("/app", pkg.bin[command]!);
      assert.ok(runCommands(all).includes(`ln -s ${bin} /usr/local/bin/${command}`), `ln -s ${bin} /usr/local/bin/${command}`);
      assert.ok(runCommands(all).includes(`chmod 755 ${bin}`), "the script is executable (tsc writes 0644)");
      assert.deepEqual(execForm(all, "ENTRYPOINT"), [command]);
      assert.ok(existsSync(inImage(target, bin)), `${bin} is in the image`);
    });

    it(`${target}: the files the COPY lines lay out start ${command}`, () => {
      const bin = inImage(target, posix.join("/app", pkg.bin[command]!));
      const r = spawnSync(process.execPath, [bin, "--help"], { encoding: "utf8", cwd: inImage(target, "/app") });
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stdout, new RegExp(command));
    });

    it(`${target}: every package its code imports is a production dependency`, () => {
      const missing = new Set<string>();
      for (const file of jsFiles(inImage(target, "/app/dist"))) {
        for (const m of readFileSync(file, "utf8").matchAll(/(?:\bfrom\s*|\bimport\s*\(\s*|^import\s*)["']([^"']+)["']/gm)) {
          const spec = m[1]!;
          if (spec.startsWith(".") || isBuiltin(spec)) continue;
          const name = spec.startsWith("@") ? spec.split("/").slice(0, 2).join("/") : spec.split("/")[0]!;
          if (!pkg.dependencies[name]) missing.add(`${name} (${file.slice(root.length)})`);
        }
      }
      assert.deepEqual([...missing], []);
    });
  }

  it("loader: finds its BPF object where the image puts it, and has libbpf.so.1", () => {
    const objectJs = inImage("loader", "/app/dist/loader/object.js");
    const found = execFileSync(process.execPath, ["--input-type=module", "-e", `import(${JSON.stringify(objectJs)}).then((m) => process.stdout.write(m.defaultObjectPath()))`], { encoding: "utf8" });
    assert.equal(found, inImage("loader", "/app/bpf/meshlane.bpf.o"));
    assert.match(read("loader/libbpf.ts"), /"libbpf\.so\.1"/);
    assert.ok(aptPackages(lineage(stages, "loader")).includes("libbpf1"));
  });

  it("webhook: no BPF, no libbpf", () => {
    assert.ok(!existsSync(inImage("webhook", "/app/dist/loader")));
    assert.ok(!aptPackages(lineage(stages, "webhook")).includes("libbpf1"));
  });
});

describe("images and the manifest agree", () => {
  const webhook = find(objects, "Deployment", "meshlane-webhook").spec!.template.spec!;
  const loader = find(objects, "DaemonSet", "meshlane-loader").spec!.template.spec!;

  it("each image is the Dockerfile target of its name, tagged with package.json's version", () => {
    for (const c of webhook.containers) assert.equal(c.image, `ghcr.io/meshlane/webhook:${pkg.version}`);
    for (const c of [...loader.initContainers!, ...loader.containers]) assert.equal(c.image, `ghcr.io/meshlane/loader:${pkg.version}`);
  });

  it("the webhook image's user is the Deployment's non-root user; the loader image runs as root", () => {
    const user = lineage(stages, "webhook").filter((i) => i.op === "USER").at(-1)?.args;
    const sc = webhook.securityContext!;
    assert.equal(user, `${sc.runAsUser}:${sc.runAsGroup}`);
    assert.equal(lineage(stages, "loader").filter((i) => i.op === "USER").length, 0);
    for (const c of [...loader.initContainers!, ...loader.containers]) assert.equal(c.securityContext!.runAsUser, 0);
  });

  it("the webhook's manifest args need the image's entrypoint; the loader's commands name it", () => {
    assert.equal(webhook.containers[0]!.command, undefined);
    assert.equal(webhook.containers[0]!.args![0], execForm(lineage(stages, "webhook"), "CMD")![0]);
    for (const c of [...loader.initContainers!, ...loader.containers]) assert.equal(c.command![0], execForm(lineage(stages, "loader"), "ENTRYPOINT")![0]);
  });
});

function jsFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? jsFiles(p) : p.endsWith(".js") ? [p] : [];
  });
}
