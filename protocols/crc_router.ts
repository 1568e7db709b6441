/**
 * CRC routing as a pure state machine (SPEC.md 3.2 and 6.6): decoded frames
 * and link events go in, frames to send on each link come out through a
 * {@link CrcRouterOutput}. No sockets, no timers, no logging: the node
 * (`servers/crc_node.ts`) is the I/O shell around it.
 *
 * Links have owners. A link is unowned until its first frame: a server
 * registration with last_hop 0 (or equal to its source) makes it a server
 * link, a client registration with last_hop 0 a client link; any other first
 * frame closes it. A client link may only send chats from its client and its
 * own quit; anything else closes it (and announces the client's quit). A
 * server link may only speak for hosts that are new or whose first link is
 * that link; other registrations, chats and quits are dropped and counted as
 * spoofed.
 *
 * Every operation costs O(1) per frame it sends: the hosts behind each link,
 * the clients in the order learned and each host's forwarded registration are
 * kept ready, so absorbing N registrations costs O(N).
 *
 * @example
 * ```ts
 * import { CrcRouter } from "./crc_router.ts";
 * import { CrcFrameDecoder, encodeCrc } from "./crc.ts";
 * const sent: [number, string][] = [];
 * const router = new CrcRouter({ id: 1, name: "hub" }, {
 *   send: (link, kind) => sent.push([link, kind]),
 *   close: () => {},
 * });
 * router.open(7);
 * const [frame] = new CrcFrameDecoder().decode(
 *   encodeCrc({ kind: "client_registration", source: 100, lastHop: 0, name: "al", info: "" }),
 * );
 * router.receive(7, frame);
 * console.assert(sent[0][0] === 7 && sent[0][1] === "status"); // the welcome
 * ```
 *
 * @module
 */

import {
  CRC_STATUS,
  CRC_TEXTS,
  type CrcFrame,
  type CrcKind,
  type CrcMessage,
  type CrcRegistration,
  encodeCrc,
} from "./crc.ts";

/** Default cap on known hosts (`--max-hosts`). */
export const CRC_MAX_HOSTS = 100_000;
/** Entries a node's status log keeps (the newest). */
export const CRC_STATUS_LOG_ENTRIES = 1000;
/** Bytes of one status text the log keeps (the rest is cut at a character boundary). */
export const CRC_STATUS_ENTRY_BYTES = 1024;

/** The kinds of frame, in the order metrics list them. */
export const CRC_KINDS: readonly CrcKind[] = [
  "server_registration",
  "client_registration",
  "status",
  "chat",
  "client_quit",
  "server_quit",
];

/** Where the router's output goes: the node's sockets, or a test's arrays. */
export interface CrcRouterOutput {
  /** Queue `bytes` (one frame of `kind`) on `link`. */
  send(link: number, kind: CrcKind, bytes: Uint8Array): void;
  /**
   * The next `bytes` sent on client `link` are the welcome's list of every
   * client, owed to it whatever its queue limit (optional).
   */
  reserve?(link: number, bytes: number): void;
  /** Close `link` (the router has already forgotten what was behind it). */
  close(link: number, reason: string): void;
  /** Something an operator should see (a registration, a refusal, a lost link). */
  event?(event: CrcRouterEvent): void;
}

/** What the router reports for the log. */
export type CrcRouterEvent =
  /** A host registered; `link` is set when it is adjacent (the link it owns). */
  | { type: "registered"; kind: "server" | "client"; id: number; name: string; link?: number }
  | { type: "refused"; kind: "server" | "client"; id: number; link: number; reason: string }
  | { type: "quit"; kind: "server" | "client"; id: number }
  | { type: "lost"; link: number; owner: number; hosts: number }
  | { type: "spoofed"; link: number; kind: CrcKind; source: number }
  | { type: "closed"; link: number; reason: string }
  /** The node this one joined refused it (its id is taken): `text` is the refusal. */
  | { type: "join_refused"; text: string }
  /** The node this one joined accepted it. */
  | { type: "joined"; id: number; name: string };

/** A host as the router's state shows it. */
export interface CrcHostView {
  /** Its id. */
  id: number;
  /** `server` or `client`. */
  kind: "server" | "client";
  /** Its name. */
  name: string;
  /** Its info. */
  info: string;
  /** The adjacent host on the path to it (itself when adjacent). */
  firstLink: number;
}

/** Options of a {@link CrcRouter}. */
export interface CrcRouterOptions {
  /** This node's id (not 0). */
  id: number;
  /** This node's name. */
  name: string;
  /** This node's info. */
  info?: string;
  /** Most hosts this node records (default 100000); registrations past it are refused. */
  maxHosts?: number;
}

/** The router's counters (for /metrics). */
export interface CrcRouterCounters {
  /** Frames received, by kind. */
  framesIn: Record<CrcKind, number>;
  /** Frames sent, by kind. */
  framesOut: Record<CrcKind, number>;
  /** Bytes received, by kind. */
  bytesIn: Record<CrcKind, number>;
  /** Bytes sent, by kind. */
  bytesOut: Record<CrcKind, number>;
  /** Chats and statuses for ids this node does not know. */
  routingFailures: number;
  /** Frames from a server link speaking for a host that is not behind it. */
  spoofedFrames: number;
  /** Links closed for a frame their owner may not send. */
  ruleViolations: number;
  /** Registrations refused because `maxHosts` hosts are known. */
  hostsRefused: number;
}

interface Host {
  id: number;
  kind: "server" | "client";
  name: string;
  info: string;
  link: Link;
  /** Its registration as this node forwards it (last_hop = this node). */
  wire: Uint8Array;
}

interface Link {
  id: number;
  /** `unowned` until its first accepted registration. */
  role: "unowned" | "server" | "client";
  /** The adjacent host that owns it. */
  owner?: Host;
  /** Every host whose first link is this one (the owner included). */
  behind: Set<Host>;
  /** This node dialled it to join a network and waits for the answer. */
  joining: boolean;
}

const zero = () => Object.fromEntries(CRC_KINDS.map((k) => [k, 0])) as Record<CrcKind, number>;

/** The routing state machine of one CRC node. */
export class CrcRouter {
  /** This node's id. */
  readonly id: number;
  /** This node's name. */
  readonly name: string;
  /** This node's info. */
  readonly info: string;
  /** Counters for /metrics. */
  readonly counters: CrcRouterCounters = {
    framesIn: zero(),
    framesOut: zero(),
    bytesIn: zero(),
    bytesOut: zero(),
    routingFailures: 0,
    spoofedFrames: 0,
    ruleViolations: 0,
    hostsRefused: 0,
  };
  #out: CrcRouterOutput;
  #maxHosts: number;
  #hosts = new Map<number, Host>();
  #clients = new Map<number, Host>();
  #links = new Map<number, Link>();
  #adjacentServers = new Map<number, Link>();
  #adjacentClients = new Map<number, Link>();
  #serverCount = 0;
  #ownRegistration: Uint8Array;
  #statusLog: string[] = [];
  #statusNext = 0;

  /** Makes a router for the node `options.id`; output goes to `out`. */
  constructor(options: CrcRouterOptions, out: CrcRouterOutput) {
    if (options.id === 0) throw new RangeError("CRC id 0 is reserved");
    this.id = options.id;
    this.name = options.name;
    this.info = options.info ?? "";
    this.#maxHosts = options.maxHosts ?? CRC_MAX_HOSTS;
    this.#out = out;
    this.#ownRegistration = encodeCrc({
      kind: "server_registration",
      source: this.id,
      lastHop: this.id,
      name: this.name,
      info: this.info,
    });
  }

  /** Known hosts (servers and clients). */
  get hostCount(): number {
    return this.#hosts.size;
  }

  /** Known servers. */
  get serverCount(): number {
    return this.#serverCount;
  }

  /** Open links. */
  get linkCount(): number {
    return this.#links.size;
  }

  /** The role of `link` (`undefined` once closed). */
  roleOf(link: number): "unowned" | "server" | "client" | undefined {
    return this.#links.get(link)?.role;
  }

  /**
   * A new link. With `join`, this node dialled it to join a network: it sends
   * its registration with last_hop 0 and waits for the answer.
   */
  open(link: number, options: { join?: boolean } = {}): void {
    const join = options.join ?? false;
    this.#links.set(link, { id: link, role: "unowned", behind: new Set(), joining: join });
    if (join) {
      this.#send(
        link,
        "server_registration",
        encodeCrc({
          kind: "server_registration",
          source: this.id,
          lastHop: 0,
          name: this.name,
          info: this.info,
        }),
      );
    }
  }

  /** A frame arrived on `link`. Frames on a closed or unknown link are ignored. */
  receive(link: number, frame: CrcFrame): void {
    const l = this.#links.get(link);
    if (!l) return;
    const m = frame.message;
    this.counters.framesIn[m.kind]++;
    this.counters.bytesIn[m.kind] += frame.bytes.length;
    if (l.role === "unowned") this.#unowned(l, m, frame.bytes);
    else if (l.role === "client") this.#fromClient(l, m, frame.bytes);
    else this.#fromServer(l, m, frame.bytes);
  }

  /** `link` closed (by the peer, an error, or after {@link CrcRouterOutput.close}). */
  close(link: number): void {
    const l = this.#links.get(link);
    if (!l) return;
    this.#links.delete(link);
    this.#dropLink(l);
  }

  /** Every known host, in the order learned. */
  hosts(): CrcHostView[] {
    return [...this.#hosts.values()].map((h) => this.#view(h));
  }

  /** Visits every known host in the order learned (for streaming a large state). */
  *eachHost(): Generator<CrcHostView> {
    for (const h of this.#hosts.values()) yield this.#view(h);
  }

  /** Ids of adjacent servers, in the order they joined. */
  adjacentServers(): number[] {
    return [...this.#adjacentServers.keys()];
  }

  /** Ids of adjacent clients, in the order they joined. */
  adjacentClients(): number[] {
    return [...this.#adjacentClients.keys()];
  }

  /** The status log (the newest {@link CRC_STATUS_LOG_ENTRIES} texts), oldest first. */
  statusLog(): string[] {
    const log = this.#statusLog;
    if (log.length < CRC_STATUS_LOG_ENTRIES) return [...log];
    return [...log.slice(this.#statusNext), ...log.slice(0, this.#statusNext)];
  }

  #view(h: Host): CrcHostView {
    return {
      id: h.id,
      kind: h.kind,
      name: h.name,
      info: h.info,
      firstLink: h.link.owner?.id ?? 0,
    };
  }

  #send(link: number, kind: CrcKind, bytes: Uint8Array): void {
    this.counters.framesOut[kind]++;
    this.counters.bytesOut[kind] += bytes.length;
    this.#out.send(link, kind, bytes);
  }

  #status(link: number, destination: number, code: number, content: string): void {
    this.#send(
      link,
      "status",
      encodeCrc({ kind: "status", source: this.id, destination, code, content }),
    );
  }

  /** Sends to every adjacent server but `except`, and with `clients` to every adjacent client but `skip`. */
  #flood(kind: CrcKind, bytes: Uint8Array, except: Link | undefined, clients: boolean, skip = -1) {
    for (const link of this.#adjacentServers.values()) {
      if (link !== except) this.#send(link.id, kind, bytes);
    }
    if (!clients) return;
    for (const [id, link] of this.#adjacentClients) {
      if (id !== skip) this.#send(link.id, kind, bytes);
    }
  }

  #violation(l: Link, reason: string): void {
    this.counters.ruleViolations++;
    this.#out.event?.({ type: "closed", link: l.id, reason });
    this.#links.delete(l.id);
    this.#dropLink(l);
    this.#out.close(l.id, reason);
  }

  #logStatus(content: string): void {
    let text = content;
    if (text.length > CRC_STATUS_ENTRY_BYTES / 3) {
      const bytes = new TextEncoder().encode(text);
      if (bytes.length > CRC_STATUS_ENTRY_BYTES) {
        let end = CRC_STATUS_ENTRY_BYTES;
        while (end > 0 && (bytes[end] & 0xc0) === 0x80) end--;
        text = new TextDecoder().decode(bytes.subarray(0, end));
      }
    }
    if (this.#statusLog.length < CRC_STATUS_LOG_ENTRIES) {
      this.#statusLog.push(text);
    } else {
      this.#statusLog[this.#statusNext] = text;
      this.#statusNext = (this.#statusNext + 1) % CRC_STATUS_LOG_ENTRIES;
    }
  }

  // --- unowned links -------------------------------------------------------

  #unowned(l: Link, m: CrcMessage, bytes: Uint8Array): void {
    if (l.joining) return this.#joinAnswer(l, m, bytes);
    if (m.kind === "server_registration" && (m.lastHop === 0 || m.lastHop === m.source)) {
      if (!this.#admissible(l, m)) return;
      const host = this.#adopt(l, "server", m, bytes);
      if (m.lastHop === 0) this.#dump(l, host);
      return this.#flood(m.kind, host.wire, l, false);
    }
    if (m.kind === "client_registration" && m.lastHop === 0) {
      if (!this.#admissible(l, m)) return;
      const host = this.#adopt(l, "client", m, bytes);
      this.#status(l.id, m.source, CRC_STATUS.welcome, CRC_TEXTS.welcome(m.name));
      let size = 0;
      for (const client of this.#clients.values()) size += client.wire.length;
      this.#out.reserve?.(l.id, size - host.wire.length);
      for (const client of this.#clients.values()) {
        if (client !== host) this.#send(l.id, "client_registration", client.wire);
      }
      return this.#flood(m.kind, host.wire, l, true, m.source);
    }
    this.#violation(l, `${m.kind} before a registration`);
  }

  /** The node this one dialled answers: its own registration (accepted) or a refusal. */
  #joinAnswer(l: Link, m: CrcMessage, bytes: Uint8Array): void {
    if (m.kind === "server_registration" && m.lastHop === m.source && m.source !== 0) {
      l.joining = false;
      if (!this.#admissible(l, m)) return;
      this.#adopt(l, "server", m, bytes);
      this.#out.event?.({ type: "joined", id: m.source, name: m.name });
      return this.#flood(m.kind, this.#hosts.get(m.source)!.wire, l, false);
    }
    if (m.kind === "status" && (m.destination === 0 || m.destination === this.id)) {
      this.#logStatus(m.content);
      if (m.code === CRC_STATUS.duplicateId) {
        this.#out.event?.({ type: "join_refused", text: m.content });
      }
      return;
    }
    this.#violation(l, `${m.kind} instead of an answer to this node's registration`);
  }

  /** Id 0, this node's id, a known id, or a full table: refused with a status on the link. */
  #admissible(l: Link, m: CrcRegistration): boolean {
    const kind = m.kind === "server_registration" ? "server" : "client";
    if (m.source === 0 || m.source === this.id || this.#hosts.has(m.source)) {
      const text = kind === "server"
        ? CRC_TEXTS.duplicateServer(m.source)
        : CRC_TEXTS.duplicateClient(m.source);
      this.#out.event?.({ type: "refused", kind, id: m.source, link: l.id, reason: text });
      this.#status(l.id, 0, CRC_STATUS.duplicateId, text);
      return false;
    }
    if (this.#hosts.size >= this.#maxHosts) {
      this.counters.hostsRefused++;
      const text = CRC_TEXTS.tooManyHosts(this.#maxHosts);
      this.#out.event?.({ type: "refused", kind, id: m.source, link: l.id, reason: text });
      this.#status(l.id, 0, CRC_STATUS.duplicateId, text);
      return false;
    }
    return true;
  }

  /** A brand-new server neighbour gets this node's registration, then every host known before it. */
  #dump(l: Link, newcomer: Host): void {
    this.#send(l.id, "server_registration", this.#ownRegistration);
    for (const host of this.#hosts.values()) {
      if (host === newcomer) continue;
      const kind = host.kind === "server" ? "server_registration" : "client_registration";
      this.#send(l.id, kind, host.wire);
    }
  }

  /** Makes `l` the link of a new adjacent host. */
  #adopt(l: Link, kind: "server" | "client", m: CrcRegistration, bytes: Uint8Array): Host {
    const host = this.#record(l, kind, m, bytes);
    l.role = kind;
    l.owner = host;
    (kind === "server" ? this.#adjacentServers : this.#adjacentClients).set(m.source, l);
    this.#out.event?.({ type: "registered", kind, id: m.source, name: m.name, link: l.id });
    return host;
  }

  #record(l: Link, kind: "server" | "client", m: CrcRegistration, bytes: Uint8Array): Host {
    // The frame as this node forwards it: the same bytes with last_hop = this node.
    // Its own copy: a shared slab would let one long-lived host pin a whole block.
    const wire = bytes.slice();
    wire[5] = this.id >>> 24;
    wire[6] = (this.id >>> 16) & 0xff;
    wire[7] = (this.id >>> 8) & 0xff;
    wire[8] = this.id & 0xff;
    const host: Host = { id: m.source, kind, name: m.name, info: m.info, link: l, wire };
    this.#hosts.set(host.id, host);
    if (kind === "client") this.#clients.set(host.id, host);
    else this.#serverCount++;
    l.behind.add(host);
    return host;
  }

  #forget(host: Host): void {
    this.#hosts.delete(host.id);
    if (host.kind === "client") this.#clients.delete(host.id);
    else this.#serverCount--;
    host.link.behind.delete(host);
    if (host.link.owner === host) {
      host.link.owner = undefined;
      host.link.role = "unowned";
      this.#adjacentServers.delete(host.id);
      this.#adjacentClients.delete(host.id);
    }
  }

  // --- client links ----------------------------------------------------------

  #fromClient(l: Link, m: CrcMessage, bytes: Uint8Array): void {
    const owner = l.owner!;
    if (m.kind === "chat" && m.source === owner.id) return this.#route(l, m, bytes);
    if (m.kind === "client_quit" && m.source === owner.id) {
      this.#flood(m.kind, bytes, l, true, m.source);
      this.#forget(owner);
      this.#out.event?.({ type: "quit", kind: "client", id: m.source });
      return;
    }
    this.#violation(
      l,
      m.source === owner.id
        ? `client sent ${m.kind}`
        : `client ${owner.id} sent ${m.kind} as ${m.source}`,
    );
  }

  #route(l: Link, m: CrcMessage & { kind: "chat" }, bytes: Uint8Array): void {
    const target = this.#hosts.get(m.destination);
    if (target) return this.#send(target.link.id, m.kind, bytes);
    this.counters.routingFailures++;
    this.#status(l.id, m.source, CRC_STATUS.unknownId, CRC_TEXTS.unknownId(m.destination));
  }

  // --- server links ----------------------------------------------------------

  /** True when `source` may speak over `l`: a new host, or one behind `l`. */
  #speaksFor(l: Link, m: CrcMessage): boolean {
    const host = this.#hosts.get(m.source);
    if (m.source !== this.id && (host === undefined || host.link === l)) return true;
    this.counters.spoofedFrames++;
    this.#out.event?.({ type: "spoofed", link: l.id, kind: m.kind, source: m.source });
    return false;
  }

  #fromServer(l: Link, m: CrcMessage, bytes: Uint8Array): void {
    switch (m.kind) {
      case "server_registration":
      case "client_registration":
        return this.#forwardedRegistration(l, m, bytes);
      case "chat":
        if (this.#speaksFor(l, m)) this.#route(l, m, bytes);
        return;
      case "status":
        return this.#statusFrame(m, bytes);
      case "client_quit":
      case "server_quit":
        return this.#quit(l, m, bytes);
    }
  }

  #forwardedRegistration(l: Link, m: CrcRegistration, bytes: Uint8Array): void {
    if (!this.#speaksFor(l, m) || !this.#admissible(l, m)) return;
    const kind = m.kind === "server_registration" ? "server" : "client";
    const host = this.#record(l, kind, m, bytes);
    this.#out.event?.({ type: "registered", kind, id: m.source, name: m.name });
    this.#flood(m.kind, host.wire, l, kind === "client");
  }

  #statusFrame(m: CrcMessage & { kind: "status" }, bytes: Uint8Array): void {
    if (m.destination === this.id || m.destination === 0) return this.#logStatus(m.content);
    const target = this.#hosts.get(m.destination);
    if (target) return this.#send(target.link.id, m.kind, bytes);
    this.counters.routingFailures++;
  }

  #quit(l: Link, m: CrcMessage & { kind: "client_quit" | "server_quit" }, bytes: Uint8Array) {
    const host = this.#hosts.get(m.source);
    if (host === undefined) return; // unknown: this is what stops the flood
    const kind = m.kind === "client_quit" ? "client" : "server";
    if (host.link !== l || host.kind !== kind || host.id === this.id) {
      this.counters.spoofedFrames++;
      this.#out.event?.({ type: "spoofed", link: l.id, kind: m.kind, source: m.source });
      return;
    }
    if (host === l.owner) {
      // The neighbour itself says it is leaving: the same as its link dropping.
      return this.#violation(l, "the neighbour quit");
    }
    this.#flood(m.kind, bytes, l, kind === "client", m.source);
    this.#forget(host);
    this.#out.event?.({ type: "quit", kind, id: m.source });
  }

  // --- links that drop -------------------------------------------------------

  /** Forgets every host behind `l` and announces each to the rest of the network. */
  #dropLink(l: Link): void {
    const owner = l.owner;
    if (owner === undefined) {
      // Unowned (never registered, refused, or its client quit): nothing to announce.
      for (const host of l.behind) this.#forget(host);
      return;
    }
    const lost = [...l.behind];
    for (const host of lost) this.#forget(host);
    for (const host of lost) {
      if (host.kind === "server") {
        const quit = encodeCrc({
          kind: "server_quit",
          source: host.id,
          replacement: 0,
          content: CRC_TEXTS.connectionLost,
        });
        this.#flood("server_quit", quit, undefined, false);
      } else {
        const quit = encodeCrc({
          kind: "client_quit",
          source: host.id,
          content: CRC_TEXTS.connectionLost,
        });
        this.#flood("client_quit", quit, undefined, true);
      }
    }
    this.#out.event?.({ type: "lost", link: l.id, owner: owner.id, hosts: lost.length });
  }
}
