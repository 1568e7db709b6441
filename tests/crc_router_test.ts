// The CRC routing state machine without sockets: frames in, frames out per link (SPEC 3.2, 6.4, 6.6).
import { deepStrictEqual, ok, throws } from "node:assert/strict";
import {
  CRC_STATUS,
  CrcDecoder,
  CrcFrameDecoder,
  type CrcMessage,
  encodeCrc,
} from "../protocols/crc.ts";
import { CRC_STATUS_LOG_ENTRIES, CrcRouter, type CrcRouterEvent } from "../protocols/crc_router.ts";

/** A router wired to arrays: what each link was sent, which links it closed, what it reported. */
function harness(options: { id?: number; maxHosts?: number } = {}) {
  const sent = new Map<number, CrcMessage[]>();
  const closed: number[] = [];
  const events: CrcRouterEvent[] = [];
  const decoder = new CrcDecoder();
  const router = new CrcRouter(
    { id: options.id ?? 1, name: "hub", info: "i", maxHosts: options.maxHosts },
    {
      send: (link, _kind, bytes) => {
        const list = sent.get(link) ?? [];
        list.push(...decoder.decode(bytes));
        sent.set(link, list);
      },
      close: (link) => {
        closed.push(link);
        router.close(link);
      },
      event: (e) => events.push(e),
    },
  );
  const frameDecoder = new CrcFrameDecoder();
  const feed = (link: number, message: CrcMessage) => {
    for (const frame of frameDecoder.decode(encodeCrc(message))) router.receive(link, frame);
  };
  /** Everything sent to `link` since the last call. */
  const out = (link: number) => {
    const list = sent.get(link) ?? [];
    sent.set(link, []);
    return list;
  };
  const client = (link: number, id: number, name = `c${id}`) => {
    router.open(link);
    feed(link, { kind: "client_registration", source: id, lastHop: 0, name, info: "" });
  };
  const server = (link: number, id: number, name = `s${id}`) => {
    router.open(link);
    feed(link, { kind: "server_registration", source: id, lastHop: 0, name, info: "" });
  };
  const clearAll = () => {
    for (const link of sent.keys()) out(link);
  };
  return { router, feed, out, client, server, closed, events, clearAll };
}

const chat = (source: number, destination: number, content = "hi"): CrcMessage => ({
  kind: "chat",
  source,
  destination,
  content,
});
const reg = (
  kind: "server_registration" | "client_registration",
  source: number,
  lastHop: number,
  name = `h${source}`,
): CrcMessage => ({ kind, source, lastHop, name, info: "" });

Deno.test("CrcRouter: a client is welcomed, told of every known client (never servers), and announced", () => {
  const h = harness();
  h.server(1, 50);
  h.client(2, 100, "alice");
  deepStrictEqual(h.out(2), [
    {
      kind: "status",
      source: 1,
      destination: 100,
      code: CRC_STATUS.welcome,
      content: "Welcome to the Clemson Relay Chat network alice",
    },
  ]);
  h.out(1);
  h.client(3, 101, "bob");
  deepStrictEqual(h.out(3).map((m) => [m.kind, m.source]), [["status", 1], [
    "client_registration",
    100,
  ]]);
  deepStrictEqual(h.out(2), [reg("client_registration", 101, 1, "bob")]);
  deepStrictEqual(h.out(1), [reg("client_registration", 101, 1, "bob")]);
  deepStrictEqual(h.router.adjacentClients(), [100, 101]);
});

Deno.test("CrcRouter: a brand-new server gets this node's registration and every host in order; a returning introduction gets no dump", () => {
  const h = harness();
  h.client(1, 100);
  h.server(2, 50);
  deepStrictEqual(h.out(2), [
    { kind: "server_registration", source: 1, lastHop: 1, name: "hub", info: "i" },
    reg("client_registration", 100, 1, "c100"),
  ]);
  h.router.open(3);
  h.feed(3, reg("server_registration", 60, 60));
  deepStrictEqual(h.out(3), []);
  deepStrictEqual(h.out(2), [reg("server_registration", 60, 1, "h60")]);
  deepStrictEqual(h.router.adjacentServers(), [50, 60]);
});

Deno.test("CrcRouter: id 0, this node's id and a known id are refused with a status; nothing is recorded and the link stays open", () => {
  const h = harness();
  h.client(1, 100);
  for (
    const [link, message, text] of [
      [2, reg("client_registration", 0, 0), "Someone has already registered with ID 0"],
      [3, reg("server_registration", 0, 0), "A machine has already registered with ID 0"],
      [4, reg("client_registration", 100, 0), "Someone has already registered with ID 100"],
      [5, reg("server_registration", 1, 0), "A machine has already registered with ID 1"],
    ] as const
  ) {
    h.router.open(link);
    h.feed(link, message);
    deepStrictEqual(h.out(link), [{
      kind: "status",
      source: 1,
      destination: 0,
      code: CRC_STATUS.duplicateId,
      content: text,
    }]);
    deepStrictEqual(h.router.roleOf(link), "unowned");
  }
  deepStrictEqual(h.closed, []);
  deepStrictEqual(h.router.hosts().map((x) => x.id), [100]);
  // The refused link closing announces nothing.
  h.clearAll();
  h.router.close(4);
  deepStrictEqual(h.out(1), []);
});

Deno.test("CrcRouter: an unowned link's first frame must be a registration from a neighbour: no ghost hosts", () => {
  const h = harness();
  h.client(1, 100);
  const firsts: CrcMessage[] = [
    reg("client_registration", 7, 3), // forwarded-looking client registration
    reg("server_registration", 8, 3), // forwarded-looking server registration
    chat(9, 100),
    { kind: "client_quit", source: 100, content: "" },
    { kind: "server_quit", source: 1, replacement: 0, content: "" },
    { kind: "status", source: 9, destination: 0, code: 0, content: "x" },
  ];
  firsts.forEach((message, i) => {
    h.router.open(10 + i);
    h.feed(10 + i, message);
  });
  deepStrictEqual(h.closed, [10, 11, 12, 13, 14, 15]);
  deepStrictEqual(h.router.hosts().map((x) => x.id), [100]);
  deepStrictEqual(h.router.statusLog(), []);
  deepStrictEqual(h.out(1).length, 1); // only alice's welcome
  // A chat to a would-be ghost is answered "Unknown ID".
  h.feed(1, chat(100, 7));
  deepStrictEqual(h.out(1), [{
    kind: "status",
    source: 1,
    destination: 100,
    code: CRC_STATUS.unknownId,
    content: "Unknown ID 7",
  }]);
});

Deno.test("CrcRouter: a client link may send only its own chats and quit; anything else closes it and announces its quit", () => {
  const others: CrcMessage[] = [
    chat(555, 101),
    { kind: "client_quit", source: 101, content: "" },
    reg("client_registration", 102, 0),
    reg("server_registration", 103, 0),
    { kind: "status", source: 100, destination: 101, code: 0, content: "fake" },
    { kind: "server_quit", source: 50, replacement: 0, content: "" },
  ];
  for (const message of others) {
    const h = harness();
    h.server(1, 50);
    h.client(2, 100);
    h.client(3, 101);
    h.clearAll();
    h.feed(2, message);
    deepStrictEqual(h.closed, [2], JSON.stringify(message));
    deepStrictEqual(h.router.hosts().map((x) => x.id), [50, 101]);
    deepStrictEqual(h.out(3), [{ kind: "client_quit", source: 100, content: "connection lost" }]);
    deepStrictEqual(h.out(1), [{ kind: "client_quit", source: 100, content: "connection lost" }]);
  }
  const h = harness();
  h.client(2, 100);
  h.client(3, 101);
  h.clearAll();
  h.feed(2, chat(100, 101, "mine"));
  deepStrictEqual(h.out(3), [chat(100, 101, "mine")]);
  h.feed(2, { kind: "client_quit", source: 100, content: "bye" });
  deepStrictEqual(h.out(3), [{ kind: "client_quit", source: 100, content: "bye" }]);
  deepStrictEqual(h.router.roleOf(2), "unowned");
  deepStrictEqual(h.closed, []);
});

Deno.test("CrcRouter: a server link speaking for a host behind another link is dropped and counted; nobody's state changes", () => {
  const h = harness();
  h.server(1, 50); // honest neighbour
  h.feed(1, reg("client_registration", 200, 50, "carol")); // carol is behind 50
  h.client(2, 100, "alice");
  h.server(3, 66); // the attacker
  h.clearAll();
  const before = JSON.stringify([
    h.router.hosts(),
    h.router.adjacentServers(),
    h.router.adjacentClients(),
  ]);
  const spoofs: CrcMessage[] = [
    chat(100, 200, "I am alice"),
    chat(1, 100, "I am the hub"),
    { kind: "client_quit", source: 100, content: "" },
    { kind: "client_quit", source: 200, content: "" },
    { kind: "server_quit", source: 50, replacement: 0, content: "" },
    reg("client_registration", 200, 66),
    reg("server_registration", 50, 66),
  ];
  for (const m of spoofs) h.feed(3, m);
  deepStrictEqual(h.router.counters.spoofedFrames, spoofs.length);
  deepStrictEqual(h.closed, []);
  deepStrictEqual(
    JSON.stringify([h.router.hosts(), h.router.adjacentServers(), h.router.adjacentClients()]),
    before,
  );
  deepStrictEqual([h.out(1), h.out(2), h.out(3)], [[], [], []]);
  // Hosts behind the attacker's own link it may speak for.
  h.feed(3, reg("client_registration", 300, 66, "mallory"));
  h.feed(3, chat(300, 100, "hello"));
  deepStrictEqual(h.out(2), [
    reg("client_registration", 300, 1, "mallory"),
    chat(300, 100, "hello"),
  ]);
  h.feed(3, { kind: "client_quit", source: 300, content: "" });
  ok(!h.router.hosts().some((x) => x.id === 300));
});

Deno.test("CrcRouter: a dropped server link forgets and announces every host behind it, and only those", () => {
  const h = harness();
  h.server(1, 50);
  h.feed(1, reg("server_registration", 51, 50));
  h.feed(1, reg("client_registration", 200, 50));
  h.server(2, 60);
  h.client(3, 100);
  h.clearAll();
  h.router.close(1);
  deepStrictEqual(h.router.hosts().map((x) => x.id), [60, 100]);
  deepStrictEqual(h.out(2), [
    { kind: "server_quit", source: 50, replacement: 0, content: "connection lost" },
    { kind: "server_quit", source: 51, replacement: 0, content: "connection lost" },
    { kind: "client_quit", source: 200, content: "connection lost" },
  ]);
  deepStrictEqual(h.out(3), [{ kind: "client_quit", source: 200, content: "connection lost" }]);
  h.router.close(1); // twice: nothing more
  deepStrictEqual(h.out(2), []);
});

Deno.test("CrcRouter: quits for unknown ids are ignored (the flood stops); a forwarded quit is passed on once", () => {
  const h = harness();
  h.server(1, 50);
  h.feed(1, reg("client_registration", 200, 50));
  h.server(2, 60);
  h.clearAll();
  h.feed(1, { kind: "client_quit", source: 200, content: "bye" });
  deepStrictEqual(h.out(2), [{ kind: "client_quit", source: 200, content: "bye" }]);
  h.feed(1, { kind: "client_quit", source: 200, content: "bye" });
  h.feed(2, { kind: "server_quit", source: 999, replacement: 0, content: "" });
  deepStrictEqual([h.out(1), h.out(2)], [[], []]);
  deepStrictEqual(h.router.counters.spoofedFrames, 0);
});

Deno.test("CrcRouter: the status log keeps the newest 1000 entries, each cut to 1 KiB", () => {
  const h = harness();
  h.server(1, 50);
  for (let i = 0; i < CRC_STATUS_LOG_ENTRIES + 5; i++) {
    h.feed(1, {
      kind: "status",
      source: 50,
      destination: i % 2 ? 0 : 1,
      code: 0,
      content: `s${i}`,
    });
  }
  const log = h.router.statusLog();
  deepStrictEqual(log.length, CRC_STATUS_LOG_ENTRIES);
  deepStrictEqual([log[0], log.at(-1)], ["s5", `s${CRC_STATUS_LOG_ENTRIES + 4}`]);
  h.feed(1, { kind: "status", source: 50, destination: 0, code: 0, content: "é".repeat(4000) });
  deepStrictEqual(h.router.statusLog().at(-1), "é".repeat(512));
});

Deno.test("CrcRouter: past maxHosts a registration is refused with a status and not recorded", () => {
  const h = harness({ maxHosts: 2 });
  h.server(1, 50);
  h.client(2, 100);
  h.client(3, 101);
  deepStrictEqual(h.out(3).map((m) => m.kind === "status" && m.content), [
    "This network already has 2 hosts",
  ]);
  h.feed(1, reg("client_registration", 200, 50));
  deepStrictEqual(h.router.hosts().map((x) => x.id), [50, 100]);
  deepStrictEqual(h.router.counters.hostsRefused, 2);
});

Deno.test("CrcRouter: absorbing registrations over a server link costs the same few frames each, however many are known", () => {
  const h = harness();
  h.server(1, 50);
  h.server(2, 60);
  h.client(3, 100);
  const framesOut = () => Object.values(h.router.counters.framesOut).reduce((a, b) => a + b, 0);
  const cost = (from: number, count: number) => {
    const before = framesOut();
    for (let i = 0; i < count; i++) h.feed(1, reg("client_registration", from + i, 50));
    return (framesOut() - before) / count;
  };
  // Each forwarded client registration goes to the other server and the adjacent client: two frames.
  deepStrictEqual([cost(1_000, 100), cost(100_000, 5_000)], [2, 2]);
});

Deno.test("CrcRouter: joining: its registration goes out with last_hop 0; a refusal is reported, an introduction accepts", () => {
  const refused = harness({ id: 7 });
  refused.router.open(1, { join: true });
  deepStrictEqual(
    refused.out(1),
    [reg("server_registration", 7, 0, "hub")].map((m) => ({
      ...m,
      info: "i",
    })),
  );
  refused.feed(1, {
    kind: "status",
    source: 1,
    destination: 0,
    code: CRC_STATUS.duplicateId,
    content: "A machine has already registered with ID 7",
  });
  deepStrictEqual(refused.events.at(-1), {
    type: "join_refused",
    text: "A machine has already registered with ID 7",
  });
  const joined = harness({ id: 7 });
  joined.router.open(1, { join: true });
  joined.feed(1, reg("server_registration", 3, 3, "root"));
  joined.feed(1, reg("client_registration", 100, 3));
  deepStrictEqual(joined.router.adjacentServers(), [3]);
  deepStrictEqual(joined.router.hosts().map((x) => [x.id, x.firstLink]), [[3, 3], [100, 3]]);
  deepStrictEqual(joined.events.find((e) => e.type === "joined"), {
    type: "joined",
    id: 3,
    name: "root",
  });
});

Deno.test("CrcRouter: a neighbour's own server quit is its link dropping; id 0 cannot be this node's id", () => {
  const h = harness();
  h.server(1, 50);
  h.feed(1, reg("client_registration", 200, 50));
  h.client(2, 100);
  h.clearAll();
  h.feed(1, { kind: "server_quit", source: 50, replacement: 0, content: "bye" });
  deepStrictEqual(h.closed, [1]);
  deepStrictEqual(h.router.hosts().map((x) => x.id), [100]);
  deepStrictEqual(h.out(2), [{ kind: "client_quit", source: 200, content: "connection lost" }]);
  throws(() => new CrcRouter({ id: 0, name: "x" }, { send() {}, close() {} }), RangeError);
});
