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
    }).output();
    if (!result.success) {
      const why = new TextDecoder().decode(result.stderr).trim();
      console.error(why);
      console.error(
        `\nCould not build ${file}: deno compile needs its runtime (denort) for ${target}.\n` +
          (Deno.env.get("DENORT_BIN")
            ? `DENORT_BIN is set to ${
              Deno.env.get("DENORT_BIN")
            }; check that it is the denort of Deno ${Deno.version.deno} for ${target}.`
            : `It downloads it from dl.deno.land, which this machine cannot reach. Provide it instead:\n` +
              `  DENORT_BIN=/path/to/denort deno task compile\n` +
              `(denort-${target}.zip of Deno ${Deno.version.deno}, from the Deno release page), or build where the download works.`),
      );
      Deno.exit(1);
    }
    built.push(file);
  }
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
