/**
 * Start-up and socket rules (SPEC 6.7) on real server processes: a listen
 * failure is one line naming the address with exit 2 (bad value) or 1 (in
 * use), for every server; the timestamp server's Unix socket refuses a live
 * server, replaces only a stale file, and removes only its own file on exit.
 */
import { deepStrictEqual, match, ok } from "node:assert/strict";
import { EntryProcess, within } from "./_helpers.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const UNIX_FLAGS = ["--allow-net", "--allow-read", "--allow-write"];

/** Every server entry point with the arguments it needs besides host and port. */
function everyServer(dir: string): [string, string[], string[]][] {
  return [
    ["servers/timestamp.ts", [], ["--allow-net"]],
    ["servers/channel.ts", [], ["--allow-net"]],
    ["servers/im.ts", [], ["--allow-net"]],
    ["servers/directory.ts", ["--db", `${dir}/accounts.db`], UNIX_FLAGS],
    ["servers/crc_node.ts", ["--id", "7"], ["--allow-net"]],
    ["servers/web.ts", [], ["--allow-net"]],
  ];
}

Deno.test("every server: a port in use is one line '127.0.0.1:PORT is already in use', exit 1", async () => {
  const dir = await Deno.makeTempDir();
  using busy = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (busy.addr as Deno.NetAddr).port;
  try {
    for (const [script, args, flags] of everyServer(dir)) {
      await using server = EntryProcess.start(script, [...args, "--port", String(port)], flags);
      const status = await server.exited();
      deepStrictEqual(
        [status.code, server.output],
        [1, `127.0.0.1:${port} is already in use\n`],
        script,
      );
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the CRC admin endpoint on a port in use: the same one line, exit 1", async () => {
  using busy = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (busy.addr as Deno.NetAddr).port;
  await using node = EntryProcess.start(
    "servers/crc_node.ts",
    ["--id", "8", "--port", "0", "--admin", `127.0.0.1:${port}`],
    ["--allow-net"],
  );
  const status = await node.exited();
  deepStrictEqual(status.code, 1, node.output);
  match(node.output, new RegExp(`(^|\\n)127\\.0\\.0\\.1:${port} is already in use\\n`));
  ok(!/ at |AddrInUse/.test(node.output), node.output);
});

Deno.test("every server: a --host that does not resolve, or is not this machine's, is one line, exit 2", async () => {
  const dir = await Deno.makeTempDir();
  try {
    for (const [script, args, flags] of everyServer(dir)) {
      for (const host of ["no-such-host.invalid", "192.0.2.1"]) {
        await using server = EntryProcess.start(
          script,
          [...args, "--host", host, "--port", "0"],
          flags,
        );
        const status = await server.exited();
        deepStrictEqual(status.code, 2, `${script} --host ${host}: ${server.output}`);
        match(
          server.output,
          new RegExp(`^cannot listen on ${host.replaceAll(".", "\\.")}:0: [^\\n]+\\n$`),
        );
      }
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** Starts the timestamp server on a Unix socket. */
function unixServer(path: string): EntryProcess {
  return EntryProcess.start(
    "servers/timestamp.ts",
    ["--transport", "unix", "--path", path],
    UNIX_FLAGS,
  );
}

/** One request over the Unix socket at `path`; resolves with the reply. */
async function askUnix(path: string, text: string): Promise<string> {
  const conn = await Deno.connect({ transport: "unix", path });
  try {
    await conn.write(encoder.encode(text));
    const buffer = new Uint8Array(256);
    const n = await within(conn.read(buffer), 3000, "a reply over the Unix socket");
    return decoder.decode(buffer.subarray(0, n ?? 0));
  } finally {
    conn.close();
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch {
    return false;
  }
}

Deno.test("unix socket: a second server at a live server's path exits 1 and leaves the first alone", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/ts.sock`;
  try {
    await using first = unixServer(path);
    await first.waitFor(/Listening on/);
    await using second = unixServer(path);
    const status = await second.exited();
    deepStrictEqual([status.code, second.output], [1, `${path} is already in use\n`]);
    match(await askUnix(path, "first?"), /\] first\?$/);
    deepStrictEqual((await first.stop()).code, 0);
    ok(!(await exists(path)), "the first server left its socket file behind");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("unix socket: a stale socket file is replaced; a file that is not a socket is never touched", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/ts.sock`;
  try {
    await using crashed = unixServer(path);
    await crashed.waitFor(/Listening on/);
    await crashed.stop("SIGKILL"); // no clean-up: the socket file stays, nobody answers
    ok(await exists(path), "SIGKILL removed the file?");
    await using next = unixServer(path);
    await next.waitFor(/Listening on/);
    match(await askUnix(path, "fresh"), /\] fresh$/);
    deepStrictEqual((await next.stop()).code, 0);

    await Deno.writeTextFile(path, "precious");
    await using refused = unixServer(path);
    const status = await refused.exited();
    deepStrictEqual([status.code, refused.output], [1, `${path} exists and is not a socket\n`]);
    deepStrictEqual(await Deno.readTextFile(path), "precious");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("unix socket: a server that exits removes the socket file only if it is still its own", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/ts.sock`;
  try {
    await using old = unixServer(path);
    await old.waitFor(/Listening on/);
    await Deno.remove(path); // an operator removed it; a new server takes the path
    await using current = unixServer(path);
    await current.waitFor(/Listening on/);
    deepStrictEqual((await old.stop()).code, 0);
    ok(await exists(path), "the old server deleted the new server's socket");
    match(await askUnix(path, "still"), /\] still$/);
    deepStrictEqual((await current.stop()).code, 0);
    ok(!(await exists(path)), "the current server left its own socket file behind");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
