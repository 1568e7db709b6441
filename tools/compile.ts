/**
 * `deno task compile [--all-targets] [--out DIR]`: builds the standalone
 * binaries of {@link BINARIES} into `dist/` (for this machine, or for every
 * target) and writes `dist/SHA256SUMS`.
 *
 * `deno compile` needs its runtime (`denort`) for each target: it downloads
 * it, or takes it from `DENORT_BIN` (for the host target). Where neither
 * works, this stops at the first failure and says so.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { BINARIES, TARGETS } from "./binaries.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    "all-targets": { type: "boolean", default: false },
    out: { type: "string", default: "dist" },
    help: { type: "boolean", default: false },
  },
});
if (values.help) {
  console.log(
    "Usage: deno task compile [--all-targets] [--out DIR]\n\nBuilds parley-directory, parley-crc-node and " +
      "parley-channel-server into DIR (default dist/) with SHA256SUMS.",
  );
  Deno.exit(0);
}

const root = new URL("..", import.meta.url).pathname;
const out = values.out.startsWith("/") ? values.out : `${root}${values.out}`;
const hostTarget = TARGETS.find((t) =>
  t.startsWith(Deno.build.arch) &&
  t.includes(
    Deno.build.os === "darwin" ? "apple" : Deno.build.os === "windows" ? "windows" : "linux",
  )
) ?? TARGETS[0];
const targets = values["all-targets"] ? TARGETS : [hostTarget];

const denort = Deno.env.get("DENORT_BIN");
if (denort !== undefined) {
  const info = await Deno.stat(denort).catch(() => undefined);
  if (!info?.isFile) {
    console.error(`DENORT_BIN is set to ${denort}, which is not a file. Give the path of denort.`);
    Deno.exit(1);
  }
}

/** Removes `out` again if this run created it and nothing was built into it. */
const outExisted = await Deno.stat(out).then(() => true, () => false);
async function giveUp(): Promise<never> {
  if (!outExisted) await Deno.remove(out, { recursive: true }).catch(() => {});
  Deno.exit(1);
}
await Deno.mkdir(out, { recursive: true });

const built: string[] = [];
for (const target of targets) {
  for (const binary of BINARIES) {
    const suffix = values["all-targets"] ? `-${target}` : "";
    const file = `${binary.name}${suffix}${target.includes("windows") ? ".exe" : ""}`;
    const args = [
      "compile",
      ...binary.permissions,
      "--target",
      target,
      "--output",
      `${out}/${file}`,
      `${root}${binary.entry}`,
    ];
    console.log(`deno ${args.join(" ")}`);
    const result = await new Deno.Command(Deno.execPath(), {
      args,
      stdout: "inherit",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).output();
    if (!result.success) {
      console.error(`Could not build ${file}: ${firstError(result.stderr)}`);
      console.error(
        `deno compile needs its runtime (denort) for ${target}.\n` +
          (denort
            ? `DENORT_BIN is set to ${denort}; check that it is the denort of Deno ${Deno.version.deno} for ${target}.`
            : `It downloads it, and the download failed. Provide it instead:\n` +
              `  DENORT_BIN=/path/to/denort deno task compile\n` +
              `(denort-${target}.zip of Deno ${Deno.version.deno}, from the Deno release page), or build where the download works.`),
      );
      await giveUp();
    }
    built.push(file);
  }
}

/** What went wrong, from deno's error output: its error line and the innermost cause, no backtrace. */
function firstError(stderr: Uint8Array): string {
  const text = new TextDecoder().decode(stderr);
  const lines = text.split("\n").map((line) => line.trim());
  const error = lines.find((line) => /^error:/i.test(line)) ?? lines.find((line) => line) ?? "";
  const causes = lines.slice(0, lines.findIndex((l) => /^Stack backtrace/.test(l)) >>> 0)
    .filter((line) => /^\d+: /.test(line));
  const cause = causes.at(-1)?.replace(/^\d+: /, "");
  return error.replace(/^error:\s*/i, "") + (cause ? ` (${cause})` : "");
}

const lines: string[] = [];
for (const file of built) {
  const digest = new Uint8Array(
    await crypto.subtle.digest("SHA-256", await Deno.readFile(`${out}/${file}`)),
  );
  lines.push(`${[...digest].map((b) => b.toString(16).padStart(2, "0")).join("")}  ${file}`);
}
await Deno.writeTextFile(`${out}/SHA256SUMS`, `${lines.join("\n")}\n`);
console.log(`\nBuilt ${built.length} binaries in ${out} with SHA256SUMS.`);
