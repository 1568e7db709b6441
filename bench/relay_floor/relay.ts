/**
 * The floor of a Deno relay hop (issue 14, `bash bench/relay_floor.sh`): accept
 * connections on PORT; pipe each both ways to a new connection to NEXT, or echo
 * it back when NEXT is 0. Plain `Deno.Conn` reads and writes, nothing else.
 *
 *     deno run --allow-net bench/relay_floor/relay.ts PORT NEXT
 *
 * @module
 */

const [port, next] = Deno.args.map(Number);

async function pump(from: Deno.Conn, to: Deno.Conn): Promise<void> {
  const buffer = new Uint8Array(65536);
  for (let n; (n = await from.read(buffer)) !== null;) {
    for (let offset = 0; offset < n;) offset += await to.write(buffer.subarray(offset, n));
  }
}

for await (const conn of Deno.listen({ hostname: "127.0.0.1", port })) {
  conn.setNoDelay(true);
  const out = next ? await Deno.connect({ hostname: "127.0.0.1", port: next }) : conn;
  if (out !== conn) out.setNoDelay(true);
  pump(conn, out).catch(() => {});
  if (out !== conn) pump(out, conn).catch(() => {});
}
