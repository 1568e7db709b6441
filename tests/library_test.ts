/**
 * Parley used as a library from another project, the way the README shows it:
 * the other project's `deno.json` links this folder and imports `@parley/parley`.
 */
import { deepStrictEqual, match } from "node:assert/strict";

Deno.test("mod.ts used from another folder through deno.json links: imports resolve and a server runs", async () => {
  const root = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
  const project = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(
      `${project}/deno.json`,
      JSON.stringify({
        imports: { "@parley/parley": "jsr:@parley/parley@^0.1.0" },
        links: [root],
      }),
    );
    await Deno.writeTextFile(
      `${project}/main.ts`,
      [
        'import { encodeChannelFrame, serveTimestamp } from "@parley/parley";',
        'import { ChannelDecoder } from "@parley/parley/channel";',
        "await using server = await serveTimestamp({ port: 0 });",
        'const [text] = new ChannelDecoder().decode(encodeChannelFrame("hi"));',
        "console.log(server.addr.transport, text);",
      ].join("\n"),
    );
    const result = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--quiet", "--allow-net", "main.ts"],
      cwd: project,
      env: { NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stderr = new TextDecoder().decode(result.stderr);
    deepStrictEqual(result.code, 0, stderr);
    match(new TextDecoder().decode(result.stdout), /^tcp hi\n$/);
  } finally {
    await Deno.remove(project, { recursive: true });
  }
});
