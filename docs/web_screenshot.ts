/**
 * Makes `docs/web.png`, the README's picture of the web client: an IM server,
 * the web bridge, two browser users and two terminal users in the middle of a
 * conversation, seen by alice in headless Chromium; and `docs/web_phone.png`,
 * bob's view of it on a phone-sized screen.
 *
 * ```sh
 * deno run -A docs/web_screenshot.ts          # writes docs/web.png and docs/web_phone.png
 * ```
 *
 * @module
 */

import type { Page } from "puppeteer-core";
import { connectIm } from "../clients/im.ts";
import { launchBrowser, startPair } from "../tests/_web_helpers.ts";
import { waitUntil } from "../tests/_helpers.ts";

const out = new URL("./web.png", import.meta.url).pathname;
const outPhone = new URL("./web_phone.png", import.meta.url).pathname;

async function signIn(page: Page, url: string, name: string, status: string) {
  await page.goto(url);
  await page.type("#name-input", name);
  await page.$eval("#sign-in-status", (e) => (e as unknown as { value: string }).value = "");
  await page.type("#sign-in-status", status);
  await page.keyboard.press("Enter");
  await page.waitForSelector("#chat:not([hidden])");
}

async function say(page: Page, id: number, text: string) {
  await page.type(`#message-${id}`, text);
  await page.keyboard.press("Enter");
}

await using pair = startPair();
await using browser = await launchBrowser();
const alice = await (await browser.createBrowserContext()).newPage();
const bob = await (await browser.createBrowserContext()).newPage();
await alice.setViewport({ width: 1180, height: 720, deviceScaleFactor: 1 });
await signIn(alice, pair.url, "alice", "online");
await signIn(bob, pair.url, "bob", "in the lab");
using carol = await connectIm("127.0.0.1", pair.imPort);
await carol.send({ command: "REGISTER", username: "carol", status: "terminal, tmux" });
using dave = await connectIm("127.0.0.1", pair.imPort);
await dave.send({ command: "REGISTER", username: "dave", status: "away until 3" });
const carolSees = carol.messages();

await alice.waitForSelector("#pick-carol");
await alice.click("#pick-bob");
await alice.click("#pick-carol");
await alice.click("#invite-button");
await (await bob.waitForSelector(".invitations button"))!.click();
while ((await carolSees.next()).value?.command !== "INVITATION") { /* presence first */ }
await carol.send({ command: "JOIN", conversation: 1 });
await waitUntil(() => pair.im.conversations()["1"]?.length === 3, 5000, "three members");

const chat: [string, string][] = [
  ["alice", "Is the new build on the staging box?"],
  ["carol", "Deployed at 14:02, tests green. Try http://staging:8080/"],
  ["bob", "Looks good here. One thing: the <b>bold</b> in names shows as text, as it should."],
  ["alice", "Great, thanks both. I'll write the release note."],
];
for (const [who, text] of chat) {
  if (who === "carol") {
    await carol.send({ command: "SEND_MESSAGE", conversation: 1, message: text });
  } else await say(who === "alice" ? alice : bob, 1, text);
  await alice.waitForFunction(
    (n: number) =>
      (globalThis as unknown as { document: { querySelectorAll(s: string): { length: number } } })
        .document.querySelectorAll("#history-1 .entry.message").length >= n,
    {},
    chat.indexOf(chat.find((c) => c[1] === text)!) + 1,
  );
}
// A second conversation with an unread message, and an invitation waiting.
await bob.click("#pick-alice");
await bob.click("#invite-button");
await (await alice.waitForSelector(".invitations button"))!.click();
await alice.click("#tab-1");
await waitUntil(() => pair.im.conversations()["2"]?.length === 2, 5000, "conversation 2");
await bob.waitForSelector("#message-2");
await say(bob, 2, "Lunch at 12:30?");
await alice.waitForSelector("#tab-2 .badge:not([hidden])");
await dave.send({ command: "INVITE", users: ["alice"] });
await alice.waitForSelector(".invitations li");
await alice.focus("#message-1");
await alice.type("#message-1", "Draft is in the wiki");
await alice.screenshot({ path: out });
await bob.setViewport({ width: 390, height: 844, deviceScaleFactor: 1 });
await bob.click("#tab-1");
await bob.screenshot({ path: outPhone });
console.log(`Wrote ${out} and ${outPhone}`);
