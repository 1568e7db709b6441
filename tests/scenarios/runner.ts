/**
 * CRC scenario runner: launches real `servers/crc_node.ts` processes and
 * library clients as a scenario file says, runs its steps, and checks the
 * final state of every node (over `GET /state`) and every client.
 *
 * A scenario is JSON:
 *
 * ```json
 * {
 *   "name": "two servers, one chat",
 *   "steps": [
 *     { "server": "S1", "id": 1 },
 *     { "server": "S2", "id": 2, "join": "S1" },
 *     { "client": "alice", "id": 101, "at": "S1" },
 *     { "client": "bob", "id": 102, "at": "S2" },
 *     { "chat": "alice", "to": "bob", "text": "hi" },
 *     { "quit": "bob", "text": "bye" },
 *     { "kill": "S2" }
 *   ],
 *   "expect": {
 *     "nodes": { "S1": { "statusLog": [] } },
 *     "clients": { "alice": { "chatLog": [], "statusLog": ["Welcome to the Clemson Relay Chat network alice"] } }
 *   }
 * }
 * ```
 *
 * Server and client names default to their labels; `to` names a client label
 * or a raw id. What every node and client must know (hosts with kind, name and
 * first link, adjacency, connected users) is derived from the scenario's
 * topology by an independent model (a breadth-first search over the live,
 * accepted links), so files spell out only what the model cannot know: status
 * logs and chat logs. Those default to "nothing" for nodes and "just the
 * welcome" for clients.
 *
 * Instead of sleeping, the runner waits after every step until the network
 * has converged on the model (with a timeout), and at the end until nothing
 * has changed for a quiet period; then it compares everything.
 *
 * @module
 */

import { deepStrictEqual } from "node:assert/strict";
import { CrcClient } from "../../clients/crc.ts";
import { EntryProcess, waitUntil } from "../_helpers.ts";
import type { CrcNodeState } from "../../servers/crc_node.ts";

/** One step of a scenario. */
export type Step =
  | { server: string; id: number; name?: string; info?: string; join?: string }
  | { client: string; id: number; name?: string; at: string }
  | { chat: string; to: string | number; text: string }
  | { quit: string; text?: string }
  | { kill: string };

/** A scenario file. */
export interface Scenario {
  /** What it shows. */
  name: string;
  /** The steps, in order. */
  steps: Step[];
  /** What the model cannot derive. */
  expect?: {
    nodes?: Record<string, { statusLog?: string[] }>;
    clients?: Record<string, { statusLog?: string[]; chatLog?: string[] }>;
  };
  /** Per-step convergence timeout in ms (default 15000). */
  timeoutMs?: number;
}

interface ServerEntry {
  label: string;
  id: number;
  name: string;
  process: EntryProcess;
  port: number;
  admin: number;
  parent?: string;
  alive: boolean;
  /** Refused by the node it tried to join (duplicate id): it exited 1. */
  refused: boolean;
}

interface ClientEntry {
  label: string;
  id: number;
  name: string;
  at: string;
  client: CrcClient;
  alive: boolean;
  refused: boolean;
}

/** What a node must hold. */
interface NodeView {
  hosts: { id: number; kind: string; name: string; firstLink: number }[];
  adjacentServers: number[];
  adjacentClients: number[];
}

const byId = (a: { id: number }, b: { id: number }) => a.id - b.id;
const ascending = (a: number, b: number) => a - b;

/** Runs a scenario to the end and checks it; everything it started is stopped. */
export async function runScenario(scenario: Scenario): Promise<void> {
  const servers = new Map<string, ServerEntry>();
  const clients = new Map<string, ClientEntry>();
  const timeout = scenario.timeoutMs ?? 15000;

  const acceptedIds = () =>
    new Set([
      ...[...servers.values()].filter((s) => s.alive && !s.refused).map((s) => s.id),
      ...[...clients.values()].filter((c) => c.alive && !c.refused).map((c) => c.id),
    ]);

  /** The model: each live node's view is a breadth-first search over the live, accepted links. */
  const model = (): Map<string, NodeView> => {
    type Vertex = { id: number; kind: "server" | "client"; name: string };
    const vertices = new Map<string, Vertex>();
    const edges = new Map<string, Set<string>>();
    const add = (key: string, vertex: Vertex) => {
      vertices.set(key, vertex);
      edges.set(key, new Set());
    };
    const link = (a: string, b: string) => {
      edges.get(a)!.add(b);
      edges.get(b)!.add(a);
    };
    for (const s of servers.values()) {
      if (s.alive) add(`s:${s.label}`, { id: s.id, kind: "server", name: s.name });
    }
    for (const c of clients.values()) {
      if (c.alive && !c.refused) add(`c:${c.label}`, { id: c.id, kind: "client", name: c.name });
    }
    for (const s of servers.values()) {
      if (s.alive && !s.refused && s.parent && servers.get(s.parent)!.alive) {
        link(`s:${s.label}`, `s:${s.parent}`);
      }
    }
    for (const c of clients.values()) {
      if (vertices.has(`c:${c.label}`)) link(`c:${c.label}`, `s:${c.at}`);
    }
    const views = new Map<string, NodeView>();
    for (const s of servers.values()) {
      if (!s.alive) continue;
      const start = `s:${s.label}`;
      const via = new Map<string, string>();
      const queue: string[] = [];
      for (const n of edges.get(start)!) {
        via.set(n, n);
        queue.push(n);
      }
      while (queue.length) {
        const v = queue.shift()!;
        for (const n of edges.get(v)!) {
          if (n === start || via.has(n)) continue;
          via.set(n, via.get(v)!);
          queue.push(n);
        }
      }
      const neighbours = [...edges.get(start)!].map((k) => vertices.get(k)!);
      views.set(s.label, {
        hosts: [...via].map(([key, first]) => {
          const v = vertices.get(key)!;
          return { id: v.id, kind: v.kind, name: v.name, firstLink: vertices.get(first)!.id };
        }).sort(byId),
        adjacentServers: neighbours.filter((v) => v.kind === "server").map((v) => v.id).sort(
          ascending,
        ),
        adjacentClients: neighbours.filter((v) => v.kind === "client").map((v) => v.id).sort(
          ascending,
        ),
      });
    }
    return views;
  };

  /** The model's view for every node, and the users every live client must know. */
  const expected = () => {
    const views = model();
    const users = new Map<string, number[]>();
    for (const c of clients.values()) {
      if (!c.alive) continue;
      users.set(
        c.label,
        c.refused
          ? []
          : views.get(c.at)!.hosts.filter((h) => h.kind === "client" && h.id !== c.id).map((h) =>
            h.id
          ),
      );
    }
    return { views, users };
  };

  const observed = async () => {
    const nodes = new Map<string, NodeView & { statusLog: string[] }>();
    for (const s of servers.values()) {
      if (!s.alive) continue;
      const state: CrcNodeState = await (await fetch(`http://127.0.0.1:${s.admin}/state`)).json();
      nodes.set(s.label, {
        hosts: state.hosts.map((h) => ({
          id: h.id,
          kind: h.kind,
          name: h.name,
          firstLink: h.firstLink,
        })).sort(byId),
        adjacentServers: [...state.adjacentServers].sort(ascending),
        adjacentClients: [...state.adjacentClients].sort(ascending),
        statusLog: state.statusLog,
      });
    }
    const users = new Map<string, number[]>();
    for (const c of clients.values()) {
      if (c.alive) users.set(c.label, [...c.client.users.keys()].sort(ascending));
    }
    return { nodes, users };
  };

  const topologyOf = (views: Map<string, NodeView & { statusLog?: string[] }>) =>
    JSON.stringify(
      [...views].map(([label, v]) => [label, v.hosts, v.adjacentServers, v.adjacentClients]),
    );

  const converged = async () => {
    const want = expected();
    const now = await observed();
    return topologyOf(now.nodes) === topologyOf(want.views) &&
      JSON.stringify([...now.users]) === JSON.stringify([...want.users]);
  };

  const settle = async (what: string) => {
    try {
      await waitUntil(converged, timeout, `the network to converge after ${what}`);
    } catch (error) {
      const want = expected();
      const now = await observed();
      throw new Error(
        `${(error as Error).message}\nexpected: ${topologyOf(want.views)} ${
          JSON.stringify([...want.users])
        }\n` +
          `observed: ${topologyOf(now.nodes)} ${JSON.stringify([...now.users])}`,
      );
    }
  };

  try {
    for (const [index, step] of scenario.steps.entries()) {
      const what = `step ${index + 1} ${JSON.stringify(step)}`;
      if ("server" in step) {
        const parent = step.join === undefined ? undefined : servers.get(step.join);
        if (step.join !== undefined && !parent) {
          throw new Error(`${what}: unknown server ${step.join}`);
        }
        // The seed's flag spellings, as the original course launcher used them.
        const args = [
          "--id",
          String(step.id),
          "--servername",
          step.name ?? step.server,
          "--port",
          "0",
          "--admin",
          "127.0.0.1:0",
        ];
        if (step.info !== undefined) args.push("--info", step.info);
        if (parent) {
          args.push("--connect_to_host", "127.0.0.1", "--connect_to_port", String(parent.port));
        }
        const refused = parent !== undefined && acceptedIds().has(step.id);
        const process = EntryProcess.start("servers/crc_node.ts", args, ["--allow-net"]);
        const port = await process.listeningPort();
        if (refused) {
          // SPEC 7.2: a node whose id is refused by the node it joins exits 1 with the refusal text.
          const { code } = await process.exited();
          deepStrictEqual(code, 1, `${what}: the refused node's exit code`);
          const text = `A machine has already registered with ID ${step.id}`;
          if (!process.output.includes(text)) {
            throw new Error(`${what}: the refused node did not say '${text}':\n${process.output}`);
          }
        }
        const admin = refused
          ? 0
          : Number((await process.waitFor(/Admin endpoint on [\d.]+:(\d+)/))[1]);
        servers.set(step.server, {
          label: step.server,
          id: step.id,
          name: step.name ?? step.server,
          process,
          port,
          admin,
          parent: step.join,
          alive: !refused,
          refused,
        });
      } else if ("client" in step) {
        const server = servers.get(step.at);
        if (!server) throw new Error(`${what}: unknown server ${step.at}`);
        const refused = acceptedIds().has(step.id);
        const client = await CrcClient.connect({
          id: step.id,
          username: step.name ?? step.client,
          port: server.port,
        });
        clients.set(step.client, {
          label: step.client,
          id: step.id,
          name: step.name ?? step.client,
          at: step.at,
          client,
          alive: true,
          refused,
        });
        if (refused) {
          await waitUntil(
            () => client.statusLog.length > 0,
            timeout,
            `${what}: the refusal status`,
          );
        }
      } else if ("chat" in step) {
        const from = clients.get(step.chat)!;
        const to = typeof step.to === "number" ? step.to : clients.get(step.to)!.id;
        const before = from.client.statusLog.length;
        await from.client.chat(to, step.text);
        // Delivered only if the destination is reachable from the sender's server (the model says).
        const reachable = model().get(from.at)!.hosts.some((h) =>
          h.id === to && h.kind === "client"
        );
        const target = [...clients.values()].find((c) => c.id === to && c.alive && !c.refused);
        if (target && reachable) {
          await waitUntil(
            () => target.client.chatLog.some((m) => m.text === step.text),
            timeout,
            `${what}: delivery`,
          );
        } else {
          await waitUntil(
            () => from.client.statusLog.length > before,
            timeout,
            `${what}: the unknown-id status`,
          );
        }
      } else if ("quit" in step) {
        const c = clients.get(step.quit)!;
        await c.client.quit(step.text ?? "");
        c.alive = false;
      } else if ("kill" in step) {
        const s = servers.get(step.kill)!;
        s.process.child.kill("SIGKILL");
        await s.process.exited();
        s.alive = false;
        for (const c of clients.values()) {
          if (c.at === s.label && c.alive) {
            await c.client.closed; // its clients lose their server
            c.alive = false;
          }
        }
      }
      await settle(what);
    }

    // Quiet period: nothing changes any more.
    let last = "";
    let quiet = 0;
    await waitUntil(
      async () => {
        const now = await observed();
        const logs = [...clients.values()].map((c) => [c.client.statusLog, c.client.chatLog]);
        const text = JSON.stringify([[...now.nodes], [...now.users], logs]);
        quiet = text === last ? quiet + 1 : 0;
        last = text;
        return quiet >= 4;
      },
      timeout,
      "the network to stay quiet",
    );

    const now = await observed();
    const want = expected();
    for (const [label, view] of want.views) {
      deepStrictEqual(
        now.nodes.get(label),
        { ...view, statusLog: scenario.expect?.nodes?.[label]?.statusLog ?? [] },
        `state of node ${label}`,
      );
    }
    for (const c of clients.values()) {
      if (!c.alive) continue;
      deepStrictEqual(
        now.users.get(c.label),
        want.users.get(c.label),
        `users known to client ${c.label}`,
      );
      const spelled = scenario.expect?.clients?.[c.label];
      deepStrictEqual(
        c.client.statusLog.map((s) => s.text),
        spelled?.statusLog ??
          (c.refused ? [] : [`Welcome to the Clemson Relay Chat network ${c.name}`]),
        `status log of client ${c.label}`,
      );
      deepStrictEqual(
        c.client.chatLog.map((m) => `${m.sender}: ${m.text}`),
        spelled?.chatLog ?? [],
        `chat log of client ${c.label}`,
      );
    }
  } finally {
    for (const c of clients.values()) await c.client[Symbol.asyncDispose]();
    for (const s of servers.values()) await s.process.stop();
  }
}
