/**
 * Formatting socket addresses for logs and replies.
 *
 * @module
 */

/** Formats an address for logs and replies: `host:port` or a socket path. */
export function formatAddr(addr: Deno.Addr): string {
  if ("path" in addr) return addr.path || "unix";
  if (!("hostname" in addr)) return addr.transport;
  return addr.hostname.includes(":")
    ? `[${addr.hostname}]:${addr.port}`
    : `${addr.hostname}:${addr.port}`;
}
