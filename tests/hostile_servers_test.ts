/**
 * SPEC 6.2 on every stream server, through its real entry point: a frame
 * that is not complete within `--frame-timeout` of its first byte closes the
 * connection (slowloris, one byte at a time), and a connection that does not
 * register within `--register-timeout` is closed. Small timeouts keep it fast;
 * the servers run side by side.
 */
import { ok } from "node:assert/strict";
import { EntryProcess, within } from "./_helpers.ts";
import { encodeChannelFrame } from "../protocols/channel.ts";
import { encodeCrc } from "../protocols/crc.ts";
import { encodeEurechat } from "../protocols/eurechat.ts";
import { encodeIm } from "../protocols/im.ts";

interface Target {
  script: string;
  args: string[];
  flags: string[];
  /** A first frame of the protocol; the attack sends all of it but its last byte. */
  frame: Uint8Array;
}

const TARGETS = (dir: string): Target[] => [
  {
    script: "servers/channel.ts",
    args: [],
    flags: ["--allow-net"],
    frame: encodeChannelFrame("slow"),
  },
  {
    script: "servers/im.ts",
    args: [],
    flags: ["--allow-net"],
    frame: encodeIm({ command: "REGISTER", username: "slow", status: "online" }),
  },
  {
    script: "servers/directory.ts",
    args: ["--db", `${dir}/accounts.db`],
    flags: ["--allow-net", "--allow-read", "--allow-write"],
    frame: encodeEurechat("USER", ["slow"]),
  },
  {
    script: "servers/crc_node.ts",
    args: ["--id", "9"],
    flags: ["--allow-net"],
    frame: encodeCrc({
      kind: "client_registration",
      source: 77,
      lastHop: 0,
      name: "slow",
      info: "x".repeat(40),
    }),
  },
];

/** Waits until the server closes `conn`, draining what it sends; resolves with the ms it took. */
async function closedAfter(
  conn: Deno.Conn,
  since: number,
  ms: number,
  what: string,
): Promise<number> {
  const buffer = new Uint8Array(4096);
  await within(
    (async () => {
      while ((await conn.read(buffer).catch(() => null)) !== null) { /* drain */ }
    })(),
    ms,
    `${what} to close the connection`,
  );
  return performance.now() - since;
}

async function withServers(
  flags: string[],
  attack: (target: Target, port: number) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir();
  try {
    await Promise.all(
      TARGETS(dir).map(async (target) => {
        await using server = EntryProcess.start(
          target.script,
          [...target.args, "--port", "0", "--exempt", "", ...flags],
          target.flags,
        );
        await attack(target, await server.listeningPort());
      }),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("every server: a frame sent one byte at a time and never finished is closed after --frame-timeout", async () => {
  await withServers(
    ["--frame-timeout", "0.4", "--register-timeout", "30"],
    async (target, port) => {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      try {
        const started = performance.now();
        const closed = closedAfter(conn, started, 5000, target.script);
        let finished = false;
        closed.finally(() => finished = true).catch(() => {});
        // One byte every 40 ms: each byte comes long before the frame timeout, the frame never ends.
        for (let i = 0; i < target.frame.length - 1 && !finished; i++) {
          await conn.write(target.frame.subarray(i, i + 1)).catch(() => {});
          let timer: ReturnType<typeof setTimeout> | undefined;
          await Promise.race([closed, new Promise((r) => timer = setTimeout(r, 40))]).catch(
            () => {},
          );
          clearTimeout(timer);
        }
        const ms = await closed;
        ok(
          ms >= 350,
          `${target.script} closed the slow frame after ${ms} ms, before the frame timeout`,
        );
      } finally {
        conn.close();
      }
    },
  );
});

Deno.test("every server: a connection that never registers is closed after --register-timeout", async () => {
  await withServers(
    ["--register-timeout", "0.4", "--frame-timeout", "30"],
    async (target, port) => {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      try {
        const ms = await closedAfter(conn, performance.now(), 5000, target.script);
        ok(ms >= 350, `${target.script} closed a silent connection after ${ms} ms, too early`);
      } finally {
        conn.close();
      }
    },
  );
});
