// <traceledger-viewer> in real headless Chromium, embedded in a plain host page of another
// origin served with a strict Content-Security-Policy (no inline script or style, scripts from
// the API's origin only). The viewer talks to the API through a proxy this script can cut, to
// show that the live feed misses nothing across a lost connection.
//
// node viewer.mjs <api url> <host port> <viewer token> <write key> <artifacts dir>
// tests/api/viewer_component.rs seeds 30 events of group org-a (and others) before.
import fs from "node:fs";
import http from "node:http";
import net from "node:net";
import path from "node:path";
import zlib from "node:zlib";
import { chromium } from "playwright-core";

const [apiUrl, hostPort, token, writeKey, artifacts] = process.argv.slice(2);
const api = new URL(apiUrl);
fs.mkdirSync(artifacts, { recursive: true });

function check(condition, message) {
  if (!condition) throw new Error(message);
}

// A TCP proxy to the API that can drop every connection and refuse new ones for a while.
const open = new Set();
let refusing = false;
const proxy = net.createServer((client) => {
  if (refusing) return client.destroy();
  const upstream = net.connect(Number(api.port), api.hostname);
  const pair = [client, upstream];
  pair.forEach((socket) => open.add(socket));
  const drop = () => pair.forEach((socket) => (socket.destroy(), open.delete(socket)));
  client.on("error", drop).on("close", drop);
  upstream.on("error", drop).on("close", drop);
  client.pipe(upstream).pipe(client);
});
await new Promise((resolve) => proxy.listen(0, "127.0.0.1", resolve));
const proxyOrigin = `http://127.0.0.1:${proxy.address().port}`;

const moduleUrl = `${api.origin}/viewer/v1/traceledger-viewer.js`;
const policy = [
  "default-src 'none'",
  `script-src ${api.origin}`,
  `connect-src ${proxyOrigin} ws://127.0.0.1:${proxy.address().port}`,
  "style-src 'none'",
  "img-src 'none'",
  "base-uri 'none'",
].join("; ");
const hostPage = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Host</title><script type="module" src="${moduleUrl}"></script></head>
<body><h1>Acme admin</h1>
<traceledger-viewer token="${token}" endpoint="${proxyOrigin}/graphql" page-size="10"></traceledger-viewer>
</body></html>`;
const host = http.createServer((request, response) => {
  response.writeHead(200, { "content-type": "text/html; charset=utf-8", "content-security-policy": policy });
  response.end(hostPage);
});
await new Promise((resolve) => host.listen(Number(hostPort), "127.0.0.1", resolve));

async function record(action) {
  const response = await fetch(`${apiUrl}/graphql`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${writeKey}` },
    body: JSON.stringify({
      query: "mutation($i: RecordEventInput!) { recordEvent(input: $i) { id } }",
      variables: { i: { action, service: "billing", actor: { id: "zoe" }, group: { id: "org-a" } } },
    }),
  });
  const body = await response.json();
  check(!body.errors, `recording failed: ${JSON.stringify(body)}`);
}

const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--no-sandbox"] });
const errors = [];
let outage = false;
try {
  const context = await browser.newContext({ viewport: { width: 1100, height: 900 }, acceptDownloads: true });
  const page = await context.newPage();
  page.on("pageerror", (error) => errors.push(`page error: ${error.message}`));
  page.on("console", (message) => {
    if (message.type() !== "error") return;
    // The deliberate outage makes Chromium log the refused reconnections.
    if (outage && /WebSocket|net::ERR|Failed to load resource/.test(message.text())) return;
    errors.push(`console: ${message.text()}`);
  });

  const rows = page.locator("traceledger-viewer ol.events > li[data-id]");
  const status = page.locator("traceledger-viewer .status");
  await page.goto(`http://127.0.0.1:${hostPort}/`);
  await rows.nth(9).waitFor({ timeout: 15_000 });
  check((await rows.count()) === 10, `a page of 10, got ${await rows.count()}`);
  const total = await page.locator("traceledger-viewer .total").textContent();
  check(total === "30 events", `the group's total, got ${total}`);
  const firstText = await rows.first().locator(".text").textContent();
  check(firstText === "zoe filed invoice #29 <for> \"org-a\"", `the display template, escaped as text: ${firstText}`);
  // The shadow root's styles apply under a policy that allows no style at all on the page.
  const border = await rows.first().evaluate((row) => getComputedStyle(row.closest("ol")).borderTopStyle);
  check(border === "solid", `the viewer's stylesheet applies (border ${border})`);
  await page.screenshot({ path: path.join(artifacts, "viewer-list.png"), fullPage: true });

  // Pages both ways.
  const ids = async () => rows.evaluateAll((items) => items.map((item) => item.dataset.id));
  const firstPage = await ids();
  await page.locator("traceledger-viewer button", { hasText: "Older" }).click();
  await page.waitForFunction((first) => {
    const li = document.querySelector("traceledger-viewer").shadowRoot.querySelector("li[data-id]");
    return li && li.dataset.id !== first;
  }, firstPage[0]);
  const secondPage = await ids();
  check(secondPage.length === 10 && !secondPage.some((id) => firstPage.includes(id)), "the older page is the next ten");
  await page.locator("traceledger-viewer button", { hasText: "Newer" }).click();
  await page.waitForFunction((first) => {
    const li = document.querySelector("traceledger-viewer").shadowRoot.querySelector("li[data-id]");
    return li && li.dataset.id === first;
  }, firstPage[0]);
  check(JSON.stringify(await ids()) === JSON.stringify(firstPage), "back to the first page exactly");

  // Search with the keyboard: type and press Enter.
  const search = page.locator("traceledger-viewer input[type=search]");
  await search.focus();
  await page.keyboard.type("refund");
  await page.keyboard.press("Enter");
  await page.waitForFunction(() => {
    const root = document.querySelector("traceledger-viewer").shadowRoot;
    return root.querySelectorAll("li[data-id]").length === 3;
  });
  const found = await page.locator("traceledger-viewer .total").textContent();
  check(found === "3 matches", `search total: ${found}`);
  await search.fill("");
  await page.keyboard.press("Enter");
  await rows.nth(9).waitFor();

  // Detail, opened from the keyboard, and closed back to its row.
  await rows.first().locator("button").focus();
  await page.keyboard.press("Enter");
  const detail = page.locator("traceledger-viewer section.detail");
  await detail.waitFor({ state: "visible" });
  const detailText = await detail.textContent();
  check(detailText.includes(firstPage[0]) && detailText.includes("Actor"), `the detail: ${detailText}`);
  check((await detail.locator("a[href='/customers/zoe']").count()) === 1, "the actor's link");
  await page.screenshot({ path: path.join(artifacts, "viewer-detail.png"), fullPage: true });
  await detail.locator("button", { hasText: "Close" }).click();

  // CSV export of the current filter: the group's events only.
  const [download] = await Promise.all([
    page.waitForEvent("download"),
    page.locator("traceledger-viewer button", { hasText: "Export CSV" }).click(),
  ]);
  const csv = fs.readFileSync(await download.path(), "utf8").trim().split("\n");
  check(csv.length === 31, `header and 30 rows, got ${csv.length}`);

  // Live, across a lost connection: every event recorded meanwhile shows exactly once.
  await page.locator("traceledger-viewer button.live").click();
  await page.waitForFunction(() => document.querySelector("traceledger-viewer").shadowRoot.querySelector(".status").textContent === "live");
  await record("live.first");
  await page.locator("traceledger-viewer li[data-action='live.first']").waitFor({ timeout: 15_000 });
  outage = true;
  refusing = true;
  open.forEach((socket) => socket.destroy());
  await page.waitForFunction(() => document.querySelector("traceledger-viewer").shadowRoot.querySelector(".status").textContent.startsWith("reconnecting"));
  for (const action of ["missed.one", "missed.two", "missed.three"]) await record(action);
  await new Promise((resolve) => setTimeout(resolve, 1500));
  refusing = false;
  await page.locator("traceledger-viewer li[data-action='missed.three']").waitFor({ timeout: 30_000 });
  outage = false;
  for (const action of ["live.first", "missed.one", "missed.two", "missed.three"]) {
    const shown = await page.locator(`traceledger-viewer li[data-action='${action}']`).count();
    check(shown === 1, `${action} shown ${shown} times`);
  }
  const caughtUp = await status.textContent();
  check(caughtUp.includes("caught up (3 missed events loaded)"), `status after the outage: ${caughtUp}`);
  await page.screenshot({ path: path.join(artifacts, "viewer-live.png"), fullPage: true });

  // Readable at 360 px: nothing wider than the screen.
  await page.setViewportSize({ width: 360, height: 800 });
  const width = await page.evaluate(() => document.documentElement.scrollWidth);
  check(width <= 360, `no horizontal scrolling at 360 px (scroll width ${width})`);
  await page.screenshot({ path: path.join(artifacts, "viewer-360.png"), fullPage: true });

  check(errors.length === 0, `console errors:\n${errors.join("\n")}`);

  const module = Buffer.from(await (await fetch(moduleUrl)).arrayBuffer());
  const gzipped = zlib.gzipSync(module, { level: 9 }).length;
  console.log(`viewer module: ${module.length} bytes, ${gzipped} gzipped`);
  check(gzipped < 60 * 1024, `the module is ${gzipped} bytes gzipped, over 60 KB`);
  console.log("viewer: list, pages both ways, search, detail, export, live across an outage, 360 px: ok");
} finally {
  await browser.close();
  host.close();
  proxy.close();
  open.forEach((socket) => socket.destroy());
}
