// @ts-check
/**
 * The page's state and the IM wire format, with no DOM: what the IM server
 * said, who is online, the conversations with their history and unread counts,
 * the pending invitations. `app.js` renders it; tests run it under Deno.
 *
 * A WebSocket message is one IM line without its LF: `COMMAND [SP JSON]`.
 *
 * @module
 */

/**
 * One IM message as it travels: a command and its JSON argument.
 * @typedef {{ command: string, args: unknown }} Line
 */

/**
 * One entry of a conversation's history.
 * @typedef {{ at: Date, kind: "message" | "notice", sender?: string, text: string, own: boolean }} Entry
 */

/**
 * One conversation this page is in. `id` is the page's key for it: the server's id while it
 * lasts; once it has ended (the connection was lost) it gets a key of its own, since a restarted
 * server counts its ids from 1 again. `label` stays the server's id, for people to read.
 * @typedef {{ id: string, label: string, members: string[] | undefined, invited: string[], history: Entry[], unread: number, ended: boolean, inviter: string }} Conversation
 */

/**
 * What the page must do after a server message.
 * @typedef {{ type: "signed-in" }
 *   | { type: "sign-in-refused", text: string }
 *   | { type: "online" }
 *   | { type: "invitation", id: string, inviter: string }
 *   | { type: "opened", id: string }
 *   | { type: "entry", id: string, entry: Entry }
 *   | { type: "members", id: string }
 *   | { type: "error", text: string }
 *   | { type: "send", line: string }} Effect
 */

/**
 * Splits a line into its command and JSON argument.
 * @param {string} text
 * @returns {Line}
 */
export function parseLine(text) {
  const space = text.indexOf(" ");
  const command = space === -1 ? text : text.slice(0, space);
  return { command, args: space === -1 ? undefined : JSON.parse(text.slice(space + 1)) };
}

/**
 * Encodes a command and its argument as one line.
 * @param {string} command
 * @param {unknown} [args]
 * @returns {string}
 */
export function encodeLine(command, args) {
  return args === undefined ? command : `${command} ${JSON.stringify(args)}`;
}

/**
 * `HH:MM` of a time, as the terminal clients show it.
 * @param {Date} at
 * @returns {string}
 */
export function formatTime(at) {
  return `${String(at.getHours()).padStart(2, "0")}:${String(at.getMinutes()).padStart(2, "0")}`;
}

/**
 * Makes control characters visible (SPEC 7.2): C0 as `^X` (newline and tab
 * kept in messages), DEL as `^?`, C1 and bidi controls as `<U+XXXX>`, so no
 * peer can reorder or hide text.
 * @param {string} text
 * @param {boolean} [multiline] keep newlines and tabs (message text)
 * @returns {string}
 */
export function visible(text, multiline = false) {
  // deno-lint-ignore no-control-regex
  return text.replace(/[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g, (c) => {
    const code = c.charCodeAt(0);
    if (multiline && (c === "\n" || c === "\t")) return c;
    if (code < 0x20) return `^${String.fromCharCode(code + 64)}`;
    if (code === 0x7f) return "^?";
    return `<U+${code.toString(16).toUpperCase().padStart(4, "0")}>`;
  });
}

/** @param {unknown} v @returns {v is Record<string, unknown>} */
const isRecord = (v) => typeof v === "object" && v !== null && !Array.isArray(v);

/** The session of one signed-in (or signing-in) user. */
export class ChatModel {
  /** @type {string} */ me = "";
  /** @type {string} */ status = "online";
  /** True once the server accepted the name. */
  signedIn = false;
  /** @type {Record<string, string>} */ online = {};
  /** @type {Map<string, Conversation>} */ conversations = new Map();
  /** @type {Map<string, string>} id to inviter */ invitations = new Map();
  /** @type {string | undefined} */ active = undefined;
  #epoch = 0;
  /** @type {Set<string>} the conversations we left (their late messages are dropped) */
  #left = new Set();
  #names = "";
  #askedAt = 0;
  /** @type {string[][]} the names of our INVITEs, oldest first, until their INVITATION comes */
  #inviting = [];

  /**
   * Starts a conversation with these people: the line to send.
   * @param {string[]} names
   * @returns {string}
   */
  invite(names) {
    this.#inviting.push(names);
    return encodeLine("INVITE", names);
  }

  /**
   * Starts signing in as `name`: the line to send.
   * @param {string} name
   * @param {string} status
   * @returns {string}
   */
  register(name, status) {
    this.me = name;
    this.status = status;
    this.signedIn = false;
    return encodeLine("REGISTER", [name, status]);
  }

  /**
   * Applies one line from the server.
   * @param {string} text
   * @param {{ now?: Date, visibleId?: string | undefined }} [context] `visibleId`:
   *   the conversation the user is looking at (its messages are read at once)
   * @returns {Effect[]}
   */
  receive(text, context = {}) {
    const now = context.now ?? new Date();
    /** @type {Line} */
    let line;
    try {
      line = parseLine(text);
    } catch {
      return [];
    }
    const { command, args } = line;
    if (command === "ONLINE_USERS" && isRecord(args)) {
      this.online = /** @type {Record<string, string>} */ (args);
      /** @type {Effect[]} */
      const effects = [{ type: "online" }];
      if (!this.signedIn) {
        this.signedIn = true;
        effects.unshift({ type: "signed-in" });
      }
      // Members are not pushed by the server: ask when someone came or went (leaving the server
      // leaves its conversations), and at most every 30 s otherwise (presence repeats every 10 s).
      const names = Object.keys(this.online).sort().join("\n");
      const stale = now.getTime() - this.#askedAt >= 30_000;
      if (
        (names !== this.#names || stale) && [...this.conversations.values()].some((c) => !c.ended)
      ) {
        this.#askedAt = now.getTime();
        effects.push({ type: "send", line: "LIST_CONVERSATIONS" });
      }
      this.#names = names;
      return effects;
    }
    if (command === "ERROR" && typeof args === "string") {
      if (!this.signedIn) return [{ type: "sign-in-refused", text: args }];
      return [{ type: "error", text: args }];
    }
    if (!Array.isArray(args) && !isRecord(args)) return [];
    if (command === "INVITATION" && Array.isArray(args)) {
      const [id, inviter] = [String(args[0]), String(args[1])];
      if (inviter === this.me) {
        const effects = this.join(id, inviter);
        const conversation = this.conversations.get(id);
        if (conversation) conversation.invited = this.#inviting.shift() ?? [];
        return effects;
      }
      if (this.conversations.has(id) && !this.conversations.get(id)?.ended) return [];
      this.invitations.set(id, inviter);
      return [{ type: "invitation", id, inviter }];
    }
    if (command === "MESSAGE" && Array.isArray(args)) {
      const [id, sender, message] = [String(args[0]), String(args[1]), String(args[2])];
      // One still on its way when we left: the conversation stays closed.
      if (this.#left.has(id) && !this.conversations.has(id)) return [];
      const conversation = this.conversations.get(id) ?? this.#open(id, sender);
      /** @type {Effect[]} */
      const effects = [];
      if (conversation.members && !conversation.members.includes(sender)) {
        // Someone joined since we last asked: say so now, the member list follows.
        conversation.members.push(sender);
        effects.push(this.#notice(conversation, `${sender} joined`, now), {
          type: "members",
          id,
        }, { type: "send", line: "LIST_CONVERSATIONS" });
      }
      const entry = {
        at: now,
        kind: /** @type {const} */ ("message"),
        sender,
        text: message,
        own: sender === this.me,
      };
      conversation.history.push(entry);
      if (id !== context.visibleId) conversation.unread++;
      effects.push({ type: "entry", id, entry });
      return effects;
    }
    if (command === "CONVERSATIONS" && isRecord(args)) {
      return this.#members(/** @type {Record<string, string[]>} */ (args), now);
    }
    return [];
  }

  /**
   * Accepts an invitation (or opens one's own conversation): the JOIN to send.
   * @param {string} id
   * @param {string} [inviter]
   * @returns {Effect[]}
   */
  join(id, inviter = this.invitations.get(id) ?? "") {
    this.invitations.delete(id);
    this.#left.delete(id);
    this.#open(id, inviter);
    this.active = id;
    return [
      { type: "send", line: encodeLine("JOIN", [Number(id)]) },
      { type: "send", line: "LIST_CONVERSATIONS" },
      { type: "opened", id },
    ];
  }

  /**
   * Leaves (or, once ended, just closes) a conversation: the lines to send.
   * @param {string} id
   * @returns {string[]}
   */
  leave(id) {
    const conversation = this.conversations.get(id);
    this.conversations.delete(id);
    if (conversation && !conversation.ended) this.#left.add(id);
    if (this.active === id) this.active = [...this.conversations.keys()].at(-1);
    return conversation && !conversation.ended ? [encodeLine("LEAVE", [Number(id)])] : [];
  }

  /**
   * The connection was lost: every conversation has ended on the server. Each
   * ended conversation is moved to a key of its own (its history stays).
   * @param {Date} [now]
   * @returns {[string, string][]} the old and new key of each conversation that ended
   */
  disconnected(now = new Date()) {
    this.signedIn = false;
    this.online = {};
    this.invitations.clear();
    this.#inviting = [];
    this.#left.clear();
    this.#epoch++;
    /** @type {[string, string][]} */
    const moved = [];
    for (const conversation of [...this.conversations.values()]) {
      if (conversation.ended) continue;
      conversation.ended = true;
      conversation.history.push({
        at: now,
        kind: "notice",
        text: "The connection was lost; this conversation has ended.",
        own: false,
      });
      const key = `${conversation.label}-ended${this.#epoch}`;
      this.conversations.delete(conversation.id);
      if (this.active === conversation.id) this.active = key;
      moved.push([conversation.id, key]);
      conversation.id = key;
      this.conversations.set(key, conversation);
    }
    return moved;
  }

  /** Total unread messages. */
  unread() {
    let n = 0;
    for (const c of this.conversations.values()) n += c.unread;
    return n;
  }

  /**
   * A short name for a conversation: its other members, or its inviter.
   * @param {Conversation} c
   * @returns {string}
   */
  title(c) {
    const others = (c.members ?? []).filter((m) => m !== this.me);
    if (others.length > 0) return others.join(", ");
    const invited = c.invited.filter((m) => m !== this.me);
    if (invited.length > 0) return invited.join(", ");
    if (c.inviter && c.inviter !== this.me) return c.inviter;
    return c.members === undefined ? "…" : "just you";
  }

  /**
   * @param {string} id
   * @param {string} inviter
   * @returns {Conversation}
   */
  #open(id, inviter) {
    let conversation = this.conversations.get(id);
    if (!conversation) {
      conversation = {
        id,
        label: id,
        members: undefined,
        invited: [],
        history: [],
        unread: 0,
        ended: false,
        inviter,
      };
      this.conversations.set(id, conversation);
    }
    return conversation;
  }

  /**
   * Adds a notice to a conversation's history.
   * @param {Conversation} conversation
   * @param {string} text
   * @param {Date} now
   * @returns {Effect}
   */
  #notice(conversation, text, now) {
    /** @type {Entry} */
    const entry = { at: now, kind: "notice", text, own: false };
    conversation.history.push(entry);
    return { type: "entry", id: conversation.id, entry };
  }

  /**
   * Applies a CONVERSATIONS reply: members of ours, joins and leaves as notices.
   * @param {Record<string, string[]>} all
   * @param {Date} now
   * @returns {Effect[]}
   */
  #members(all, now) {
    /** @type {Effect[]} */
    const effects = [];
    for (const id of this.invitations.keys()) {
      if (!(id in all)) this.invitations.delete(id); // that conversation is over
    }
    for (const conversation of this.conversations.values()) {
      const members = all[conversation.id];
      if (conversation.ended || !Array.isArray(members)) continue;
      const before = conversation.members;
      conversation.members = members.map(String);
      if (before !== undefined) {
        const joined = conversation.members.filter((m) => !before.includes(m));
        const left = before.filter((m) => !conversation.members?.includes(m));
        for (const [names, verb] of /** @type {const} */ ([[joined, "joined"], [left, "left"]])) {
          for (const name of names) {
            if (name !== this.me) effects.push(this.#notice(conversation, `${name} ${verb}`, now));
          }
        }
      }
      effects.push({ type: "members", id: conversation.id });
    }
    effects.push({ type: "online" });
    return effects;
  }
}
