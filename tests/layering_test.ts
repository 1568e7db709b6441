/**
 * The layering rule, checked on the real module graph (`deno info --json`):
 * imports point down only.
 *
 * - `protocols/` imports only `protocols/`.
 * - `net/` imports `protocols/` and `net/`; `cli/` imports `protocols/`, `net/`, `cli/`.
 * - `servers/` and `clients/` import `protocols/`, `net/`, `cli/`, and never each other
 *   (a `servers/_private.ts` helper may be imported by the servers only).
 * - `mod.ts` exports no `_`-private module.
 *
 * A file imported `with { type: "text" }` or `"bytes"` is data, not code (the web server's page
 * files in `clients/web/`, embedded so it needs no `--allow-read`): such edges are not imports here.
 */
import { deepStrictEqual, ok } from "node:assert/strict";

const ROOT = new URL("../", import.meta.url);
const LAYERS = ["protocols", "net", "cli", "servers", "clients"] as const;
type Layer = typeof LAYERS[number];

/** Which layers each layer may import (besides npm and node: modules). */
const ALLOWED: Record<Layer, readonly Layer[]> = {
  protocols: ["protocols"],
  net: ["protocols", "net"],
  cli: ["protocols", "net", "cli"],
  servers: ["protocols", "net", "cli"],
  clients: ["protocols", "net", "cli"],
};

interface Edge {
  from: string;
  to: string;
}

/** Every local import edge reachable from `entries`, as paths relative to the project. */
export async function importEdges(entries: readonly string[]): Promise<Edge[]> {
  const edges: Edge[] = [];
  for (const entry of entries) {
    const output = await new Deno.Command(Deno.execPath(), {
      args: ["info", "--json", entry],
      cwd: ROOT,
      stdout: "piped",
      stderr: "piped",
    }).output();
    ok(output.success, new TextDecoder().decode(output.stderr));
    const graph = JSON.parse(new TextDecoder().decode(output.stdout)) as {
      modules: {
        specifier: string;
        dependencies?: { code?: { specifier: string }; assertionType?: string }[];
      }[];
    };
    for (const module of graph.modules) {
      const from = local(module.specifier);
      if (from === undefined) continue;
      for (const dep of module.dependencies ?? []) {
        if (dep.assertionType === "text" || dep.assertionType === "bytes") continue;
        const to = dep.code ? local(dep.code.specifier) : undefined;
        if (to !== undefined) edges.push({ from, to });
      }
    }
  }
  return edges;
}

function local(specifier: string): string | undefined {
  if (!specifier.startsWith(ROOT.href)) return undefined;
  return specifier.slice(ROOT.href.length);
}

function layerOf(path: string): Layer | undefined {
  const top = path.split("/")[0];
  return (LAYERS as readonly string[]).includes(top) ? top as Layer : undefined;
}

/** The edges of `edges` that break the layering rule, as `from -> to` lines. */
export function violations(edges: readonly Edge[]): string[] {
  const bad = new Set<string>();
  for (const { from, to } of edges) {
    const a = layerOf(from);
    const b = layerOf(to);
    if (a === undefined || b === undefined) continue;
    const sameFolderPrivate = a === b && a === "servers" && to.split("/")[1].startsWith("_");
    if (!ALLOWED[a].includes(b) && !sameFolderPrivate) bad.add(`${from} -> ${to}`);
  }
  return [...bad].sort();
}

async function entryPoints(): Promise<string[]> {
  const entries = ["mod.ts", "start.ts"];
  for (const dir of LAYERS) {
    for await (const e of Deno.readDir(new URL(`${dir}/`, ROOT))) {
      if (e.isFile && e.name.endsWith(".ts")) entries.push(`${dir}/${e.name}`);
    }
  }
  return entries.sort();
}

Deno.test("layering: every import points down (protocols < net < cli < servers, clients)", async () => {
  const edges = await importEdges(await entryPoints());
  ok(edges.length > 50, `expected a real graph, got ${edges.length} edges`);
  deepStrictEqual(violations(edges), []);
});

Deno.test("layering: violations() names a client importing a server module", () => {
  deepStrictEqual(
    violations([
      { from: "clients/im.ts", to: "servers/im.ts" },
      { from: "servers/directory.ts", to: "clients/_terminal.ts" },
      { from: "protocols/crc.ts", to: "net/connection.ts" },
      { from: "servers/directory.ts", to: "servers/_accounts.ts" },
      { from: "clients/im.ts", to: "protocols/im.ts" },
    ]),
    [
      "clients/im.ts -> servers/im.ts",
      "protocols/crc.ts -> net/connection.ts",
      "servers/directory.ts -> clients/_terminal.ts",
    ],
  );
});

Deno.test("layering: mod.ts re-exports no _-private module", async () => {
  const text = await Deno.readTextFile(new URL("mod.ts", ROOT));
  const privates = [...text.matchAll(/from "([^"]+)"/g)].map((m) => m[1])
    .filter((path) => path.split("/").some((part) => part.startsWith("_")));
  deepStrictEqual(privates, []);
});
