// deno-lint-ignore-file no-control-regex
/**
 * Makes `docs/im_tmux.png`, the README's picture of a terminal client: ann's
 * IM client in an 80x16 tmux pane, in colour, in the middle of a conversation
 * with ben (another terminal client) while mallory's hostile bytes arrive
 * neutralised and ann's half-typed line waits intact. The pane is captured
 * with its colours (`capture-pane -e`) and drawn by headless Chromium.
 *
 * ```sh
 * deno run -A docs/tmux_screenshot.ts          # writes docs/im_tmux.png
 * ```
 *
 * @module
 */

import { encodeIm, ImLineDecoder } from "../protocols/im.ts";
import { EntryProcess, Peer, Tmux } from "../tests/_helpers.ts";
import { launchBrowser } from "../tests/_web_helpers.ts";

const out = new URL("./im_tmux.png", import.meta.url).pathname;

const COLOURS: Record<number, string> = {
  30: "#2e3436",
  31: "#ef2929",
  32: "#8ae234",
  33: "#fce94f",
  34: "#729fcf",
  35: "#ad7fa8",
  36: "#34e2e2",
  37: "#eeeeec",
};

/** Turns `capture-pane -e` text (SGR codes only) into HTML spans. */
function toHtml(screen: string): string {
  const escape = (t: string) => t.replace(/&/g, "&amp;").replace(/</g, "&lt;");
  let bold = false, dim = false, fg: string | undefined;
  let html = "";
  for (const part of screen.split(/(\x1b\[[0-9;]*m)/)) {
    const sgr = /^\x1b\[([0-9;]*)m$/.exec(part);
    if (!sgr) {
      const style = [
        fg ? `color:${fg}` : "",
        bold ? "font-weight:bold" : "",
        dim ? "opacity:0.6" : "",
      ].filter(Boolean).join(";");
      html += style ? `<span style="${style}">${escape(part)}</span>` : escape(part);
      continue;
    }
    for (const code of (sgr[1] || "0").split(";").map(Number)) {
      if (code === 0) [bold, dim, fg] = [false, false, undefined];
      else if (code === 1) bold = true;
      else if (code === 2) dim = true;
      else if (code === 22) [bold, dim] = [false, false];
      else if (code === 39) fg = undefined;
      else if (COLOURS[code]) fg = COLOURS[code];
    }
  }
  return html;
}

await using server = EntryProcess.start("servers/im.ts", ["--port", "0"], ["--allow-net"]);
const port = String(await server.listeningPort());
await using tmux = new Tmux();
const im = (user: string, ...extra: string[]) =>
  tmux.start(
    user,
    "clients/im.ts",
    ["--user", user, "--port", port, "--color", "always", ...extra],
    [
      "--allow-net",
    ],
  );
await im("ann");
await tmux.waitForLine("ann", /Online: ann/);
await im("ben", "--status", "in the lab");
await tmux.waitForLine("ann", /ben is online/);
await using mallory = await Peer.connect(
  { transport: "tcp", hostname: "127.0.0.1", port: Number(port) },
  new ImLineDecoder(),
);
await mallory.write(encodeIm({ command: "REGISTER", username: "mallory", status: "online" }));
await tmux.waitForLine("ann", /mallory is online/);
await tmux.type("ann", "/invite ben mallory");
await tmux.waitForLine("ben", /invites you/);
await tmux.type("ben", "/accept 1");
await mallory.write(encodeIm({ command: "JOIN", conversation: 1 }));
await tmux.type("ben", "/list");
await tmux.waitForLine("ben", /\[1\] (?=.*ben)(?=.*mallory)/);
await tmux.type("ben", "the build is green, shipping at 3");
await tmux.waitForLine("ann", /shipping at 3$/);
await tmux.type("ann", "great, thanks ben");
await tmux.waitForLine("ben", /thanks ben$/);
await mallory.write(encodeIm({
  command: "SEND_MESSAGE",
  conversation: 1,
  message: "\x1b]0;pwned\x07\x1b[8mhidden \x1b[1A\x1b[2Kgone?\n[1] ben: fake line",
}));
await tmux.waitForLine("ann", /fake line$/);
await tmux.typeText("ann", "and the release notes are in the wi");
await tmux.type("ben", "/status shipping");
await tmux.waitForLine("ann", /ben is now shipping/);
await tmux.keys("ann", "Left", "Left");

const screen = await tmux.styledScreen("ann");
const { x, y } = await tmux.cursor("ann");
const rows = screen.split("\n");
while (rows.length > 16 && rows.at(-1) === "") rows.pop();
const shown = rows.slice(-16);
await using browser = await launchBrowser();
const page = await browser.newPage();
await page.setViewport({
  width: 80 * 9 + 32,
  height: shown.length * 18 + 32,
  deviceScaleFactor: 1,
});
const top = y - (rows.length - shown.length);
await page.setContent(`<!doctype html><meta charset="utf-8">
<body style="margin:0;background:#1e1e1e">
<pre style="margin:0;padding:16px;font:15px/18px 'DejaVu Sans Mono',monospace;color:#d3d7cf;position:relative">${
  toHtml(shown.join("\n"))
}<span style="position:absolute;left:${16 + x * 9}px;top:${
  16 + top * 18
}px;width:9px;height:18px;background:#d3d7cf;opacity:.7"></span></pre>`);
await page.screenshot({ path: out });
console.log(`wrote ${out}`);
