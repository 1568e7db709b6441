/**
 * A real `nats-server` (Debian package) for the cluster tests and benches, on a
 * free loopback port, stopped by `await using`.
 *
 * @module
 */

import { within } from "./_helpers.ts";

/** A loopback TCP port that was free a moment ago (bound to port 0, then released). */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/** Where `nats-server` is: on the PATH, or where Debian puts it (`/usr/sbin`, off a user's PATH). */
function natsBinary(): string {
  for (const dir of (Deno.env.get("PATH") ?? "").split(":").concat(["/usr/sbin", "/usr/bin"])) {
    try {
      if (Deno.statSync(`${dir}/nats-server`).isFile) return `${dir}/nats-server`;
    } catch { /* not here */ }
  }
  throw new Error("nats-server is not installed (apt-get install -y nats-server)");
}

/** One `nats-server` process on 127.0.0.1. */
export class NatsServer {
  readonly port: number;
  #child?: Deno.ChildProcess;

  private constructor(port: number) {
    this.port = port;
  }

  /** The URL a server's `--nats` takes. */
  get url(): string {
    return `nats://127.0.0.1:${this.port}`;
  }

  /** Starts a NATS server on `port` (default: a free one) and waits until it accepts. */
  static async start(port = freePort()): Promise<NatsServer> {
    const server = new NatsServer(port);
    await server.restart();
    return server;
  }

  /** A NATS server not started yet, on a port free now ({@link NatsServer.restart} starts it). */
  static notYet(port = freePort()): NatsServer {
    return new NatsServer(port);
  }

  /** Starts the process (again, after {@link NatsServer.stop}) on the same port. */
  async restart(): Promise<void> {
    this.#child = new Deno.Command(natsBinary(), {
      args: ["-a", "127.0.0.1", "-p", String(this.port)],
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    const deadline = performance.now() + 5000;
    while (true) {
      try {
        const conn = await Deno.connect({ hostname: "127.0.0.1", port: this.port });
        conn.close();
        return;
      } catch (error) {
        if (performance.now() > deadline) throw error;
        await new Promise((r) => setTimeout(r, 20));
      }
    }
  }

  /** Stops the process (SIGKILL: the clients see the connection drop at once). */
  async stop(): Promise<void> {
    const child = this.#child;
    this.#child = undefined;
    if (!child) return;
    try {
      child.kill("SIGKILL");
    } catch { /* gone */ }
    await within(child.status, 5000, "nats-server to exit");
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }
}
