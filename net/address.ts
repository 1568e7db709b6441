/**
 * Socket addresses: formatting them for logs and replies, and matching peer
 * addresses against CIDR lists (`--exempt`).
 *
 * @module
 */

/** Formats an address for logs and replies: `host:port` or a socket path. */
export function formatAddr(addr: Deno.Addr): string {
  if ("path" in addr) return addr.path || "unix";
  if (!("hostname" in addr)) return addr.transport;
  return formatHostPort(addr.hostname, addr.port);
}

/**
 * Formats a host and port as `host:port`, bracketing IPv6 literals (`[::1]:80`).
 *
 * @example
 * ```ts
 * import { formatHostPort } from "./address.ts";
 * console.assert(formatHostPort("::1", 80) === "[::1]:80");
 * console.assert(formatHostPort("127.0.0.1", 55555) === "127.0.0.1:55555");
 * ```
 */
export function formatHostPort(hostname: string, port: number): string {
  return hostname.includes(":") ? `[${hostname}]:${port}` : `${hostname}:${port}`;
}

/**
 * Parses an IPv4 or IPv6 literal into its bytes (4 or 16); undefined when it
 * is not one. An IPv4-mapped IPv6 address (`::ffff:10.0.0.1`) gives the 4
 * IPv4 bytes, so it counts as the same peer as `10.0.0.1`.
 *
 * @example
 * ```ts
 * import { parseIp } from "./address.ts";
 * console.assert(parseIp("10.0.0.1")?.join(".") === "10.0.0.1");
 * console.assert(parseIp("::ffff:10.0.0.1")?.length === 4);
 * console.assert(parseIp("::1")?.length === 16 && parseIp("example.com") === undefined);
 * ```
 */
export function parseIp(text: string): Uint8Array | undefined {
  const v4 = parseIpv4(text);
  if (v4) return v4;
  const v6 = parseIpv6(text);
  if (!v6) return undefined;
  const mapped = v6.subarray(0, 10).every((b) => b === 0) && v6[10] === 0xff && v6[11] === 0xff;
  return mapped ? v6.slice(12) : v6;
}

function parseIpv4(text: string): Uint8Array | undefined {
  const parts = text.split(".");
  if (parts.length !== 4) return undefined;
  const out = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    if (!/^\d{1,3}$/.test(parts[i]) || Number(parts[i]) > 255) return undefined;
    out[i] = Number(parts[i]);
  }
  return out;
}

function parseIpv6(text: string): Uint8Array | undefined {
  const zone = text.indexOf("%");
  if (zone !== -1) text = text.slice(0, zone);
  if (!/^[0-9a-fA-F:.]+$/.test(text)) return undefined;
  const halves = text.split("::");
  if (halves.length > 2) return undefined;
  const groups = (half: string): number[] | undefined => {
    if (half === "") return [];
    const out: number[] = [];
    const parts = half.split(":");
    for (let i = 0; i < parts.length; i++) {
      const part = parts[i];
      if (i === parts.length - 1 && part.includes(".")) {
        const v4 = parseIpv4(part);
        if (!v4) return undefined;
        out.push((v4[0] << 8) | v4[1], (v4[2] << 8) | v4[3]);
      } else if (/^[0-9a-fA-F]{1,4}$/.test(part)) {
        out.push(parseInt(part, 16));
      } else return undefined;
    }
    return out;
  };
  const head = groups(halves[0]);
  const tail = halves.length === 2 ? groups(halves[1]) : [];
  if (!head || !tail) return undefined;
  const missing = 8 - head.length - tail.length;
  if (halves.length === 2 ? missing < 1 : missing !== 0) return undefined;
  const all = [...head, ...new Array(missing).fill(0), ...tail];
  const out = new Uint8Array(16);
  all.forEach((g, i) => {
    out[2 * i] = g >> 8;
    out[2 * i + 1] = g & 0xff;
  });
  return out;
}

/** One parsed CIDR block. */
interface Block {
  bytes: Uint8Array;
  bits: number;
}

function parseCidr(text: string): Block {
  const slash = text.indexOf("/");
  const ip = parseIp(slash === -1 ? text : text.slice(0, slash));
  if (!ip) throw new TypeError(`'${text}' is not an IP address or CIDR block`);
  const max = ip.length * 8;
  const bitsText = slash === -1 ? String(max) : text.slice(slash + 1);
  // An IPv4-mapped block (::ffff:10.0.0.0/104) is kept as the IPv4 block it names.
  const bits = Number(bitsText) - (slash !== -1 && ip.length === 4 && text.includes(":") ? 96 : 0);
  if (!/^\d{1,3}$/.test(bitsText) || bits < 0 || bits > max) {
    throw new TypeError(`'${text}' has a bad prefix length (at most ${max})`);
  }
  return { bytes: ip, bits };
}

function inBlock(ip: Uint8Array, block: Block): boolean {
  if (ip.length !== block.bytes.length) return false;
  const whole = block.bits >> 3;
  for (let i = 0; i < whole; i++) if (ip[i] !== block.bytes[i]) return false;
  const rest = block.bits & 7;
  if (rest === 0) return true;
  const mask = (0xff << (8 - rest)) & 0xff;
  return (ip[whole] & mask) === (block.bytes[whole] & mask);
}

/**
 * A set of CIDR blocks (`127.0.0.0/8`, `::1`, `10.0.0.0/8`) that peer
 * addresses are matched against. A bare address is a block of one.
 *
 * @example
 * ```ts
 * import { CidrSet } from "./address.ts";
 * const exempt = CidrSet.parse("127.0.0.0/8,::1");
 * console.assert(exempt.has("127.3.4.5") && exempt.has("::1") && exempt.has("::ffff:127.0.0.1"));
 * console.assert(!exempt.has("10.0.0.1") && !CidrSet.parse("").has("127.0.0.1"));
 * ```
 */
export class CidrSet {
  #blocks: Block[];

  private constructor(blocks: Block[]) {
    this.#blocks = blocks;
  }

  /**
   * Parses a comma-separated list; the empty string is the empty set.
   * @throws {TypeError} naming the first entry that is not an address or block.
   */
  static parse(list: string | readonly string[]): CidrSet {
    const entries = typeof list === "string" ? list.split(",") : list;
    return new CidrSet(entries.map((e) => e.trim()).filter((e) => e !== "").map(parseCidr));
  }

  /** True when `hostname` (an IP literal) lies in one of the blocks. */
  has(hostname: string): boolean {
    if (this.#blocks.length === 0) return false;
    const ip = parseIp(hostname);
    return ip !== undefined && this.#blocks.some((block) => inBlock(ip, block));
  }
}

/**
 * The key a peer address is counted under for `--max-per-ip`: the address in
 * canonical form, IPv4-mapped IPv6 folded to IPv4.
 */
export function peerKey(hostname: string): string {
  const ip = parseIp(hostname);
  if (!ip) return hostname;
  if (ip.length === 4) return ip.join(".");
  return hostname.toLowerCase();
}
