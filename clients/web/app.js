/**
 * The chat page: renders {@link ChatModel} and talks IM lines over one
 * WebSocket to `/ws`. Everything a peer sent is inserted with `textContent`,
 * never as HTML. When the connection drops after signing in, the page
 * reconnects by itself (0.5 s, then doubling up to 5 s) and signs in again
 * with the same name and status.
 *
 * The JSDoc types are checked against the DOM by `tests/web_model_test.ts` (in a program of its
 * own: the DOM types do not mix with Deno's in `deno check .`).
 *
 * @module
 */

import { ChatModel, encodeLine, formatTime, visible } from "./model.js";

/**
 * @template {HTMLElement} T
 * @param {string} id
 * @returns {T}
 */
function byId(id) {
  const el = document.getElementById(id);
  if (!el) throw new Error(`missing #${id}`);
  return /** @type {T} */ (el);
}

/**
 * Makes an element with text (never HTML) and attributes.
 * @param {string} tag
 * @param {Record<string, string>} [attrs]
 * @param {(Node | string)[]} [children]
 * @returns {HTMLElement}
 */
function el(tag, attrs = {}, children = []) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  for (const child of children) {
    node.append(typeof child === "string" ? document.createTextNode(child) : child);
  }
  return node;
}

const ui = {
  connection: byId("connection"),
  signIn: byId("sign-in"),
  signInForm: /** @type {HTMLFormElement} */ (byId("sign-in-form")),
  nameInput: /** @type {HTMLInputElement} */ (byId("name-input")),
  signInStatus: /** @type {HTMLInputElement} */ (byId("sign-in-status")),
  signInError: byId("sign-in-error"),
  signInButton: /** @type {HTMLButtonElement} */ (byId("sign-in-button")),
  statusForm: /** @type {HTMLFormElement} */ (byId("status-form")),
  statusInput: /** @type {HTMLInputElement} */ (byId("status-input")),
  signOut: /** @type {HTMLButtonElement} */ (byId("sign-out")),
  chat: byId("chat"),
  people: byId("people"),
  peopleCount: byId("people-count"),
  inviteForm: /** @type {HTMLFormElement} */ (byId("invite-form")),
  inviteHint: byId("invite-hint"),
  invitationsSection: byId("invitations-section"),
  invitations: byId("invitations"),
  notice: byId("notice"),
  tabs: byId("tabs"),
  panels: byId("panels"),
  noConversation: byId("no-conversation"),
};

let model = new ChatModel();
/** @type {WebSocket | undefined} */
let socket;
/** Set while the user wants to be signed in: a lost connection is then retried. */
let wanted = false;
let retryMs = 500;
/** @type {ReturnType<typeof setTimeout> | undefined} */
let retryTimer;
let reconnecting = false;
/** @type {Set<string>} */
const picked = new Set();

/** @param {string} text */
function setConnection(text) {
  ui.connection.textContent = text;
}

/** @param {string} text */
function notify(text) {
  ui.notice.textContent = text;
}

/** The bridge's default `--max-message`: a longer line would close the socket. */
const MAX_LINE_BYTES = 64 * 1024;
const utf8 = new TextEncoder();

/**
 * Sends one line; false (and a notice) when it is too long to send.
 * @param {string} line
 * @returns {boolean}
 */
function send(line) {
  const bytes = utf8.encode(line).length;
  if (bytes > MAX_LINE_BYTES) {
    notify(`That is too long to send (${bytes} bytes; at most ${MAX_LINE_BYTES}).`);
    return false;
  }
  if (socket?.readyState === WebSocket.OPEN) socket.send(line);
  return true;
}

function connect() {
  clearTimeout(retryTimer);
  const ws = new WebSocket(new URL("/ws", location.href).href.replace(/^http/, "ws"));
  socket = ws;
  ws.onopen = () => send(model.register(model.me, model.status));
  ws.onmessage = (event) => {
    if (socket !== ws || typeof event.data !== "string") return;
    const visibleId = document.visibilityState === "visible" ? model.active : undefined;
    for (const effect of model.receive(event.data, { visibleId })) apply(effect);
  };
  ws.onclose = (event) => {
    if (socket !== ws) return;
    socket = undefined;
    lost(event.reason);
  };
}

/**
 * The socket closed: retry if the user is (or was) signed in.
 * @param {string} reason
 */
function lost(reason) {
  const wasSignedIn = model.signedIn || reconnecting;
  for (const [from, to] of model.disconnected()) {
    document.getElementById(`panel-${from}`)?.remove();
    const panel = panelOf(to);
    for (const entry of model.conversations.get(to)?.history ?? []) appendEntry(to, entry);
    for (const control of panel.querySelectorAll(".composer textarea, .composer button")) {
      /** @type {HTMLInputElement} */ (control).disabled = true;
    }
  }
  renderAll();
  if (!wanted) return;
  if (!wasSignedIn) {
    // Never got in (the name was refused and the server then hung up): back to the form.
    wanted = false;
    showSignIn(reason || "The connection closed before signing in. Try again.");
    return;
  }
  reconnecting = true;
  const seconds = (retryMs / 1000).toFixed(retryMs < 1000 ? 1 : 0);
  setConnection(
    `Connection lost${reason ? ` (${visible(reason)})` : ""}. Reconnecting in ${seconds} s…`,
  );
  setComposersEnabled(false);
  retryTimer = setTimeout(connect, retryMs);
  retryMs = Math.min(retryMs * 2, 5000);
}

/**
 * True for an error that says nothing about the name: the IM server or the connection failed.
 * @param {string} text
 */
function isPassing(text) {
  return /reach|closed|timed out|shutting down|too many|full|connection/i.test(text);
}

/** @param {import("./model.js").Effect} effect */
function apply(effect) {
  switch (effect.type) {
    case "signed-in":
      signedIn();
      break;
    case "sign-in-refused":
      // While reconnecting, a passing failure (the IM server not back yet) is followed by the
      // socket closing, and the retries go on. Otherwise the name is taken or not valid (while
      // reconnecting: someone took ours while we were away): the user picks one; the socket
      // stays open for the next REGISTER, and if the server hangs up meanwhile the next
      // "Sign in" opens a new one.
      if (reconnecting && isPassing(effect.text)) break;
      reconnecting = false;
      wanted = false;
      showSignIn(effect.text);
      break;
    case "online":
      renderPeople();
      renderInvitations();
      break;
    case "invitation":
      renderInvitations();
      notify(`${visible(effect.inviter)} invites you to a conversation.`);
      break;
    case "opened":
      renderAll();
      focusComposer(effect.id);
      break;
    case "entry":
      appendEntry(effect.id, effect.entry);
      renderTabs();
      break;
    case "members":
      renderPanelHeader(effect.id);
      renderTabs();
      break;
    case "error":
      notify(visible(effect.text));
      break;
    case "send":
      send(effect.line);
      break;
  }
}

function signedIn() {
  retryMs = 500;
  ui.signIn.hidden = true;
  ui.chat.hidden = false;
  ui.statusForm.hidden = false;
  ui.signOut.hidden = false;
  ui.statusInput.value = model.status;
  setConnection(
    reconnecting ? `Reconnected as ${visible(model.me)}.` : `Signed in as ${visible(model.me)}.`,
  );
  if (reconnecting) notify("Reconnected to the IM server. Earlier conversations have ended.");
  reconnecting = false;
  setComposersEnabled(true);
  renderAll();
  if (!ui.chat.contains(document.activeElement)) {
    // The first person to pick, or (nobody else online yet) the status field.
    /** @type {HTMLElement} */ (ui.people.querySelector("input") ?? ui.statusInput).focus();
  }
}

/** @param {string} [error] */
function showSignIn(error = "") {
  ui.chat.hidden = true;
  ui.statusForm.hidden = true;
  ui.signOut.hidden = true;
  ui.signIn.hidden = false;
  ui.signInButton.disabled = false;
  // A refused name: pick another. The server or the connection: try again.
  const retry = isPassing(error);
  const text = visible(error).replace(/\.$/, "");
  ui.signInError.textContent = error
    ? `${text}. ${retry ? "Try again in a moment." : "Pick another name."}`
    : "";
  setConnection("Not signed in");
  ui.nameInput.focus();
  ui.nameInput.select();
}

ui.signInForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const name = ui.nameInput.value.trim();
  const status = ui.signInStatus.value.trim() || "online";
  if (!/^\S+$/.test(name)) {
    ui.signInError.textContent = "A name is one word without spaces.";
    ui.nameInput.focus();
    return;
  }
  ui.signInError.textContent = "";
  const fresh = model.me !== name;
  if (fresh) {
    model = new ChatModel();
    ui.panels.replaceChildren();
  }
  model.me = name;
  model.status = status;
  wanted = true;
  setConnection("Signing in…");
  if (socket?.readyState === WebSocket.OPEN) send(model.register(name, status));
  else if (!socket) connect();
});

ui.statusForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const status = ui.statusInput.value.trim();
  if (!status) return;
  model.status = status;
  send(encodeLine("STATUS", [status]));
});

ui.signOut.addEventListener("click", () => {
  wanted = false;
  reconnecting = false;
  clearTimeout(retryTimer);
  send("GOODBYE");
  const ws = socket;
  socket = undefined;
  ws?.close(1000, "signed out");
  model = new ChatModel();
  ui.panels.replaceChildren();
  renderAll();
  showSignIn();
});

ui.inviteForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const names = [...picked].filter((n) => n in model.online);
  if (names.length === 0) {
    ui.inviteHint.textContent = "Tick at least one person first.";
    return;
  }
  ui.inviteHint.textContent = "Tick the people to invite.";
  picked.clear();
  send(model.invite(names));
});

/**
 * Puts `items` into `parent` in this order, moving only what is out of place
 * and removing the rest: nodes that stay are kept, so a click or the focus on
 * one is never lost to a re-render.
 * @param {HTMLElement} parent
 * @param {HTMLElement[]} items
 */
function reconcile(parent, items) {
  for (const child of [...parent.children]) {
    if (!items.includes(/** @type {HTMLElement} */ (child))) child.remove();
  }
  items.forEach((item, i) => {
    if (parent.children[i] !== item) parent.insertBefore(item, parent.children[i] ?? null);
  });
}

/**
 * Sets an element's text if it changed.
 * @param {Element | null} node
 * @param {string} text
 */
function setText(node, text) {
  if (node && node.textContent !== text) node.textContent = text;
}

function renderPeople() {
  const names = Object.keys(model.online).sort((a, b) =>
    a === model.me ? -1 : b === model.me ? 1 : a.localeCompare(b)
  );
  ui.peopleCount.textContent = `(${names.length})`;
  for (const name of [...picked]) if (!(name in model.online)) picked.delete(name);
  reconcile(ui.people, names.map((name) => personItem(name)));
  if (!ui.inviteHint.textContent?.startsWith("Tick at least")) {
    ui.inviteHint.textContent = names.length > 1
      ? "Tick the people to invite."
      : "Nobody else is online yet.";
  }
}

/**
 * The online list's entry for `name`, made on first use, its status brought up to date.
 * @param {string} name
 * @returns {HTMLElement}
 */
function personItem(name) {
  const me = name === model.me;
  const id = `person-${me ? "me" : encodeURIComponent(name)}`;
  let item = document.getElementById(id);
  if (item && me && item.dataset.name !== name) item = null;
  if (!item) {
    const status = el("span", { class: "status" });
    if (me) {
      item = el("li", { class: "me", id }, [
        el("span", { class: "name" }, [visible(name)]),
        el("span", { class: "you" }, [" (you)"]),
        status,
      ]);
    } else {
      const boxId = `pick-${encodeURIComponent(name)}`;
      const box = /** @type {HTMLInputElement} */ (el("input", { type: "checkbox", id: boxId }));
      box.checked = picked.has(name);
      box.addEventListener("change", () => box.checked ? picked.add(name) : picked.delete(name));
      item = el("li", { id }, [
        box,
        el("label", { for: boxId }, [el("span", { class: "name" }, [visible(name)]), status]),
      ]);
    }
    item.dataset.name = name;
  }
  setText(item.querySelector(".status"), visible(model.online[name] ?? ""));
  const box = /** @type {HTMLInputElement | null} */ (item.querySelector("input"));
  if (box) box.checked = picked.has(name);
  return item;
}

function renderInvitations() {
  const items = [...model.invitations].map(([id, inviter]) => {
    const who = visible(inviter);
    const accept = el("button", {
      type: "button",
      "aria-label": `Accept ${who}'s invitation to conversation ${id}`,
    }, ["Accept"]);
    accept.addEventListener("click", () => {
      notify("");
      for (const effect of model.join(id)) apply(effect);
    });
    const ignore = el("button", {
      type: "button",
      class: "secondary",
      "aria-label": `Ignore ${who}'s invitation to conversation ${id}`,
    }, ["Ignore"]);
    ignore.addEventListener("click", () => {
      notify("");
      model.invitations.delete(id);
      renderInvitations();
      /** @type {HTMLElement | null} */ (ui.invitations.querySelector("button"))?.focus();
    });
    return el("li", {}, [
      el("span", {}, [el("strong", {}, [who]), ` invites you to conversation ${id}`]),
      el("span", { class: "actions" }, [accept, ignore]),
    ]);
  });
  ui.invitations.replaceChildren(...items);
  ui.invitationsSection.hidden = items.length === 0;
}

function renderTabs() {
  const ids = [...model.conversations.keys()];
  ui.noConversation.hidden = ids.length > 0;
  reconcile(ui.tabs, ids.map((id) => tabFor(id)));
  for (const panel of ui.panels.children) {
    /** @type {HTMLElement} */ (panel).hidden = panel.id !== `panel-${model.active}`;
  }
  const unread = model.unread();
  document.title = unread ? `(${unread}) Parley` : "Parley";
}

/**
 * The tab of a conversation, made on first use, brought up to date: title, unread badge, state.
 * @param {string} id
 * @returns {HTMLElement}
 */
function tabFor(id) {
  const c = /** @type {import("./model.js").Conversation} */ (model.conversations.get(id));
  let tab = document.getElementById(`tab-${id}`);
  if (!tab) {
    tab = el("button", {
      type: "button",
      role: "tab",
      id: `tab-${id}`,
      "aria-controls": `panel-${id}`,
    }, [
      el("span", { class: "tab-title" }),
      el("span", { class: "badge", "aria-hidden": "true" }),
    ]);
    tab.addEventListener("click", () => activate(id));
    tab.addEventListener("keydown", (event) => onTabKey(event, id));
  }
  const selected = id === model.active;
  const title = visible(model.title(c));
  tab.setAttribute("aria-selected", String(selected));
  tab.setAttribute("tabindex", selected ? "0" : "-1");
  tab.setAttribute(
    "aria-label",
    `Conversation ${c.label} with ${title}${c.ended ? " (ended)" : ""}${
      c.unread ? `, ${c.unread} unread` : ""
    }`,
  );
  tab.className = c.ended ? "tab ended" : "tab";
  setText(tab.querySelector(".tab-title"), `#${c.label} ${title}`);
  const badge = /** @type {HTMLElement} */ (tab.querySelector(".badge"));
  setText(badge, String(c.unread));
  badge.hidden = c.unread === 0;
  return tab;
}

/**
 * Arrow keys, Home and End move between tabs (the ARIA tabs pattern).
 * @param {KeyboardEvent} event
 * @param {string} id
 */
function onTabKey(event, id) {
  const ids = [...model.conversations.keys()];
  const i = ids.indexOf(id);
  const next = {
    ArrowRight: ids[(i + 1) % ids.length],
    ArrowLeft: ids[(i - 1 + ids.length) % ids.length],
    Home: ids[0],
    End: ids[ids.length - 1],
  }[event.key];
  if (next === undefined) return;
  event.preventDefault();
  activate(next);
  document.getElementById(`tab-${next}`)?.focus();
}

/** @param {string} id */
function activate(id) {
  model.active = id;
  const c = model.conversations.get(id);
  if (c) c.unread = 0;
  renderTabs();
  scrollToEnd(id);
}

/** @param {string} id */
function focusComposer(id) {
  document.getElementById(`message-${id}`)?.focus();
}

/** @param {string} id */
function scrollToEnd(id) {
  const log = document.getElementById(`history-${id}`);
  if (log) log.scrollTop = log.scrollHeight;
}

/**
 * The panel of a conversation, made on first use.
 * @param {string} id
 * @returns {HTMLElement}
 */
function panelOf(id) {
  const existing = document.getElementById(`panel-${id}`);
  if (existing) return existing;
  const label = model.conversations.get(id)?.label ?? id;
  const history = el("ol", {
    class: "history",
    id: `history-${id}`,
    role: "log",
    "aria-live": "polite",
    "aria-label": `Messages in conversation ${label}`,
    tabindex: "0",
  });
  const input = el("textarea", {
    id: `message-${id}`,
    rows: "1",
    placeholder: "Write a message",
    "aria-label": `Message to conversation ${label}`,
    autocomplete: "off",
  });
  const form = /** @type {HTMLFormElement} */ (el("form", { class: "composer" }, [
    input,
    el("button", { type: "submit", "aria-label": `Send to conversation ${label}` }, ["Send"]),
  ]));
  const textarea = /** @type {HTMLTextAreaElement} */ (input);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = textarea.value;
    if (text.trim() === "" || model.conversations.get(id)?.ended) return;
    if (send(encodeLine("SEND_MESSAGE", [Number(id), text]))) textarea.value = "";
  });
  textarea.addEventListener("keydown", (event) => {
    // Enter sends, Shift+Enter makes a new line.
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
  const leave = el("button", { type: "button", class: "secondary leave" }, ["Leave"]);
  leave.addEventListener("click", () => {
    for (const line of model.leave(id)) send(line);
    panelOf(id).remove();
    renderTabs();
    if (model.active) focusComposer(model.active);
    /** @type {HTMLElement | null} */ else (ui.people.querySelector("input"))?.focus();
  });
  const panel = el("section", {
    role: "tabpanel",
    id: `panel-${id}`,
    "aria-labelledby": `tab-${id}`,
    class: "panel",
  }, [
    el("header", { class: "panel-header" }, [
      el("div", {}, [
        el("h2", { id: `title-${id}` }, [`Conversation ${label}`]),
        el("p", { class: "members", id: `members-${id}` }),
      ]),
      leave,
    ]),
    history,
    form,
  ]);
  ui.panels.append(panel);
  renderPanelHeader(id);
  return panel;
}

/** @param {string} id */
function renderPanelHeader(id) {
  const c = model.conversations.get(id);
  const members = document.getElementById(`members-${id}`);
  if (!c || !members) return;
  members.textContent = c.members === undefined
    ? ""
    : `Members: ${c.members.map((m) => visible(m)).join(", ") || "nobody"}`;
  const leave = /** @type {HTMLButtonElement | null} */ (panelOf(id).querySelector(".leave"));
  if (leave) {
    leave.textContent = c.ended ? "Close" : "Leave";
    leave.setAttribute(
      "aria-label",
      c.ended ? `Close conversation ${c.label} (ended)` : `Leave conversation ${c.label}`,
    );
  }
}

/**
 * @param {string} id
 * @param {import("./model.js").Entry} entry
 */
function appendEntry(id, entry) {
  const panel = panelOf(id);
  const log = /** @type {HTMLElement} */ (panel.querySelector(".history"));
  const nearEnd = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
  const time = el("time", { datetime: entry.at.toISOString() }, [formatTime(entry.at)]);
  const item = entry.kind === "notice"
    ? el("li", { class: "entry notice" }, [time, el("span", { class: "text" }, [entry.text])])
    : el("li", { class: entry.own ? "entry message own" : "entry message" }, [
      time,
      el("span", { class: "sender" }, [visible(entry.sender ?? "")]),
      ...(entry.own ? [el("span", { class: "you" }, ["(you)"])] : []),
      el("span", { class: "text" }, [visible(entry.text, true)]),
    ]);
  log.append(item);
  if (nearEnd || entry.own) log.scrollTop = log.scrollHeight;
}

/** @param {boolean} enabled */
function setComposersEnabled(enabled) {
  for (const c of model.conversations.values()) {
    const panel = document.getElementById(`panel-${c.id}`);
    for (const control of panel?.querySelectorAll(".composer textarea, .composer button") ?? []) {
      /** @type {HTMLInputElement} */ (control).disabled = !enabled || c.ended;
    }
  }
}

function renderAll() {
  renderPeople();
  renderInvitations();
  for (const id of model.conversations.keys()) panelOf(id);
  for (const panel of [...ui.panels.children]) {
    if (!model.conversations.has(panel.id.replace(/^panel-/, ""))) panel.remove();
  }
  renderTabs();
}

document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "visible" && model.active) activate(model.active);
});

ui.nameInput.focus();
