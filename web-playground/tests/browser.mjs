// End-to-end test of the two pages in real headless Chromium (Debian's /usr/bin/chromium, driven
// by playwright-core). tests/api/browser.rs starts the app and runs:
//
//   node web-playground/tests/browser.mjs <base-url> <api-key> [artifacts-dir]
//
// Events are recorded from here over plain HTTP, as another client would. Exits non-zero on the
// first failed expectation; screenshots land in the artifacts directory (default test-artifacts).
import { mkdir } from "node:fs/promises";
import { createServer, connect as connectTcp } from "node:net";
import { join } from "node:path";

import { chromium } from "playwright-core";

const [baseUrl, apiKey, artifacts = "test-artifacts"] = process.argv.slice(2);
if (!baseUrl || !apiKey) {
  console.error("usage: node browser.mjs <base-url> <api-key> [artifacts-dir]");
  process.exit(2);
}
const origin = new URL(baseUrl).origin;
const host = new URL(baseUrl).host;

/** The flags that work on this machine (see the machine notes): no sandbox as root, no GPU, and
 * none of Chromium's own background connections, which a closed network refuses. */
const CHROMIUM_FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];
/** How long one expectation may take to come true. */
const WAIT_MS = 20_000;
/** How often an event is re-recorded while waiting for a fresh subscription to be in place. */
const RECORD_EVERY_MS = 400;
const VIEWPORT = { width: 1400, height: 860 };

const problems = [];
/** Console messages a scenario expects for a while (a server that refuses connections). */
let expectedConsole = null;
let step = "start";
/** The page in use, photographed if a step fails. */
let current = null;

function log(message) {
  console.log(`[browser] ${message}`);
}

function expect(condition, message) {
  if (!condition) throw new Error(`${step}: ${message}`);
}

async function record(input) {
  const response = await fetch(`${origin}/graphql`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${apiKey}` },
    body: JSON.stringify({
      query: "mutation($input: RecordEventInput!) { recordEvent(input: $input) { id status } }",
      variables: { input },
    }),
  });
  const body = await response.json();
  expect(response.ok && !body.errors, `recordEvent failed: ${response.status} ${JSON.stringify(body)}`);
  return body.data.recordEvent.id;
}

function event(action, overrides = {}) {
  return { action, service: "browser-test", actor: { id: "carol" }, ...overrides };
}

/** Records `input` again and again until `seen(ids)` holds: a fresh subscription may not be in
 * place yet when the page says it is connected. Returns every id recorded. */
async function recordUntil(input, seen) {
  const ids = [];
  const deadline = Date.now() + WAIT_MS;
  while (Date.now() < deadline) {
    ids.push(await record(input));
    const until = Date.now() + RECORD_EVERY_MS;
    while (Date.now() < until) {
      if (await seen(ids)) return ids;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
  throw new Error(`${step}: none of ${ids.length} recorded events showed up`);
}

/** Fails on console errors, uncaught exceptions and any request that leaves the app's origin
 * (`pageHost`: the page's own host, when it is served through the test's proxy). */
function watch(page, name, pageHost = host) {
  page.on("console", (message) => {
    if (message.type() !== "error") return;
    if (expectedConsole?.test(message.text())) return;
    problems.push(`${name}: console error: ${message.text()}`);
  });
  page.on("pageerror", (error) => problems.push(`${name}: uncaught: ${error.message}`));
  page.on("request", (request) => {
    const url = new URL(request.url());
    if (url.protocol !== "data:" && url.host !== pageHost) {
      problems.push(`${name}: request to another host: ${request.url()}`);
    }
  });
  page.on("websocket", (socket) => {
    if (new URL(socket.url()).host !== pageHost) problems.push(`${name}: websocket to another host: ${socket.url()}`);
  });
  page.on("requestfailed", (request) => problems.push(`${name}: request failed: ${request.url()}`));
}

/** Opens `path` in a new watched page, which becomes the one photographed on failure. `via` is
 * another origin serving the app (the proxy of the reconnect scenario). */
async function open(context, name, path, via = origin) {
  step = `${name} opens`;
  const page = await context.newPage();
  current = page;
  watch(page, name, new URL(via).host);
  await page.goto(`${via}${path}`);
  return page;
}

async function enterKey(page) {
  await page.fill("#api-key", apiKey);
  await page.press("#api-key", "Enter");
}

// --- GraphiQL --------------------------------------------------------------------------------

/** Puts the operation `name` (its `text`) in GraphiQL's editor (CodeMirror) and runs it with the
 * Run button, once GraphiQL has parsed it: its tab then carries the operation's name. */
async function runInGraphiql(page, name, text) {
  await page.evaluate((operation) => {
    document.querySelector(".graphiql-query-editor .CodeMirror").CodeMirror.setValue(operation);
  }, text);
  await page.waitForFunction((title) => document.querySelector(".graphiql-tabs")?.textContent.includes(title), name);
  await page.click(".graphiql-execute-button");
}

async function responseText(page) {
  return page.locator(".graphiql-response").innerText();
}

async function graphiqlScenario(context) {
  const page = await open(context, "GraphiQL", "/graphql");
  await page.waitForSelector(".graphiql-query-editor .CodeMirror");
  expect((await page.title()).includes("GraphiQL"), `title is ${await page.title()}`);
  await enterKey(page);
  // The schema loads with the key: the docs explorer then lists the API's types.
  await page.click('[aria-label="Show Documentation Explorer"]');
  await page.waitForSelector(".graphiql-doc-explorer >> text=AuditEventFilter", { timeout: WAIT_MS });
  await page.click('[aria-label="Hide Documentation Explorer"]');

  step = "GraphiQL runs a query";
  const id = await record(event("browser.query", { message: "seen through GraphiQL" }));
  // The worker stores the event a moment later; until then the query answers null.
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    await runInGraphiql(page, "ShowEvent", `query ShowEvent { auditEvent(id: "${id}") { id action message } }`);
    await page.waitForFunction(() => !document.querySelector(".graphiql-execute-button")?.ariaLabel?.includes("Stop"));
    const text = await responseText(page).catch(() => "");
    if (text.includes("seen through GraphiQL")) {
      expect(text.includes(id), `the result does not show the id: ${text}`);
      break;
    }
    expect(Date.now() < deadline, `the query never showed the event: ${text}`);
    await page.waitForTimeout(200);
  }
  log("GraphiQL ran a query and showed its result");
  await page.screenshot({ path: join(artifacts, "graphiql-query.png") });

  step = "GraphiQL subscription";
  await runInGraphiql(
    page,
    "LiveEvents",
    `subscription LiveEvents {\n  eventRecorded(filter: { services: ["browser-live"] }) {\n    id action service actor { id } message\n  }\n}`,
  );
  const ids = await recordUntil(
    event("browser.subscription", { service: "browser-live", message: "recorded by another client" }),
    async (recorded) => {
      const text = await responseText(page).catch(() => "");
      return recorded.some((id) => text.includes(id));
    },
  );
  const text = await responseText(page);
  expect(text.includes("recorded by another client"), `the subscription result is ${text}`);
  log(`GraphiQL's subscription showed an event recorded elsewhere (after ${ids.length} tries)`);
  await page.screenshot({ path: join(artifacts, "graphiql-subscription.png") });
  await page.click(".graphiql-execute-button"); // stop the subscription

  step = "GraphiQL's durable feed tab";
  // The example's second tab: a durable subscription from the beginning, which replays what
  // is stored with each event's ledger index and stream cursor.
  await page.click('.graphiql-tab >> text=DurableFeed');
  await page.waitForFunction(() =>
    document.querySelector(".graphiql-query-editor .CodeMirror")?.CodeMirror.getValue().includes('eventRecorded(after: $after)'),
  );
  await page.click(".graphiql-execute-button");
  await page.waitForFunction(() => /"streamCursor": "[A-Za-z0-9_-]+"/.test(document.querySelector(".graphiql-response")?.innerText ?? ""));
  const replayed = await responseText(page);
  expect(/"index": \d+/.test(replayed), `the durable tab shows no ledger index: ${replayed}`);
  log("GraphiQL's durable feed tab replayed stored events with their cursors");
  await page.screenshot({ path: join(artifacts, "graphiql-durable.png") });
  await page.click(".graphiql-execute-button"); // stop it
  await page.close();
}

// --- Dashboard -------------------------------------------------------------------------------

async function countOf(page, table, key) {
  const cell = page.locator(`#${table} tr[data-key="${key}"] td.count`);
  return (await cell.count()) ? Number(await cell.innerText()) : 0;
}

async function rowShown(page, id) {
  return (await page.locator(`#events tbody tr[data-id="${id}"]`).count()) > 0;
}

async function waitForRow(page, id) {
  await page.waitForSelector(`#events tbody tr[data-id="${id}"]`, { timeout: WAIT_MS });
}

async function waitLive(page) {
  await page.waitForSelector('#status[data-state="live"]', { timeout: WAIT_MS });
}

async function dashboardScenario(context) {
  const page = await open(context, "dashboard", "/dashboard");
  await enterKey(page);
  await waitLive(page);
  await recordUntil(event("browser.warmup", { service: "warmup" }), async (ids) => rowShown(page, ids.at(-1)));

  step = "dashboard shows events and counts";
  const before = {
    success: await countOf(page, "by-outcome", "SUCCESS"),
    failure: await countOf(page, "by-outcome", "FAILURE"),
    billing: await countOf(page, "by-service", "billing"),
    auth: await countOf(page, "by-service", "auth"),
  };
  const login = await record(event("user.login", { service: "auth", actor: { id: "alice" } }));
  const update = await record(event("invoice.update", { service: "billing", actor: { id: "bob" } }));
  const denied = await record({
    ...event("invoice.delete", { service: "billing", actor: { id: "mallory", ip: "203.0.113.9" } }),
    outcome: "FAILURE",
    severity: "ERROR",
    target: { id: "INV-7", type: "invoice" },
    message: "not allowed",
    metadata: { reason: "role", attempts: 3 },
  });
  for (const id of [login, update, denied]) await waitForRow(page, id);
  await page.waitForFunction(
    (expected) => document.querySelector('#by-service tr[data-key="billing"] td.count')?.textContent === expected,
    String(before.billing + 2),
  );
  expect((await countOf(page, "by-outcome", "SUCCESS")) === before.success + 2, "SUCCESS did not grow by 2");
  expect((await countOf(page, "by-outcome", "FAILURE")) === before.failure + 1, "FAILURE did not grow by 1");
  expect((await countOf(page, "by-service", "auth")) === before.auth + 1, "auth did not grow by 1");
  const summary = await page.locator("#rate-summary").innerText();
  const lastMinute = Number(summary.match(/^(\d+) in the last minute/)?.[1]);
  expect(lastMinute >= 4, `the chart's last minute counts ${summary}`);
  log(`dashboard showed the events; counts changed; chart: ${summary}`);
  await page.screenshot({ path: join(artifacts, "dashboard.png") });

  step = "dashboard shows an event whole";
  await page.click(`#events tbody tr[data-id="${denied}"]`);
  await page.waitForSelector("#detail:not([hidden])");
  const shown = JSON.parse(await page.locator("#detail-json").innerText());
  expect(shown.id === denied, `detail shows ${shown.id}`);
  expect(shown.metadata?.reason === "role" && shown.metadata?.attempts === 3, `metadata: ${JSON.stringify(shown.metadata)}`);
  expect(shown.target?.id === "INV-7" && shown.actor?.ip === "203.0.113.9", "target or actor incomplete");
  expect(shown.severity === "ERROR" && shown.outcome === "FAILURE" && shown.message === "not allowed", "fields missing");
  expect(typeof shown.receivedAt === "string" && shown.tenant, "receivedAt or tenant missing");
  log("dashboard showed the clicked event whole");
  await page.screenshot({ path: join(artifacts, "dashboard-event.png") });
  await page.click("#detail-close");

  step = "dashboard pause and resume";
  await page.click("#pause");
  const whilePaused = await record(event("browser.paused"));
  await page.waitForFunction(() => document.querySelector("#pause").textContent.includes("1 held"), null, { timeout: WAIT_MS });
  expect(!(await rowShown(page, whilePaused)), "an event showed while paused");
  await page.click("#pause");
  await waitForRow(page, whilePaused);
  expect((await page.locator("#pause").innerText()) === "Pause", "the button did not go back to Pause");
  log("pause held an event and resume showed it");

  step = "dashboard filter";
  await page.fill('#filter [name="service"]', "billing");
  await page.fill('#filter [name="action"]', "invoice");
  await page.fill('#filter [name="actor"]', "mallory");
  await page.selectOption('#filter [name="outcome"]', "FAILURE");
  await page.selectOption('#filter [name="minSeverity"]', "WARNING");
  await page.click("#apply");
  // Applying starts a fresh view from the newest matching history: the one denied delete.
  await waitForRow(page, denied);
  await page.waitForFunction(() => document.querySelectorAll("#events tbody tr").length === 1);
  for (const id of [login, update, whilePaused]) expect(!(await rowShown(page, id)), `history outside the filter showed: ${id}`);
  const matching = {
    ...event("invoice.refund", { service: "billing", actor: { id: "mallory" } }),
    outcome: "FAILURE",
    severity: "WARNING",
  };
  await recordUntil(matching, async (ids) => rowShown(page, ids.at(-1)));
  // Each of these misses the filter on exactly one field; the marker after them matches.
  const misses = [
    { ...matching, service: "auth" },
    { ...matching, action: "invoices.refund" },
    { ...matching, actor: { id: "alice" } },
    { ...matching, outcome: "SUCCESS" },
    { ...matching, severity: "NOTICE" },
  ];
  const missed = [];
  for (const input of misses) missed.push(await record(input));
  const marker = await record({ ...matching, action: "invoice", message: "marker" });
  await waitForRow(page, marker);
  for (const id of missed) expect(!(await rowShown(page, id)), `an event outside the filter showed: ${id}`);
  log("the filter form's five fields each keep out what they should");
  await page.screenshot({ path: join(artifacts, "dashboard-filtered.png") });
  await page.close();
}

// --- Dashboard across a server restart -------------------------------------------------------

/** A TCP proxy in front of the app that can go away and come back on the same port, as a
 * restarting server does: while it is down, connections are refused. */
class RestartingProxy {
  async start(port = 0) {
    this.sockets = new Set();
    this.server = createServer((client) => {
      const upstream = connectTcp(new URL(origin).port, new URL(origin).hostname);
      for (const socket of [client, upstream]) {
        this.sockets.add(socket);
        socket.on("close", () => this.sockets.delete(socket));
        socket.on("error", () => {});
      }
      client.pipe(upstream).pipe(client);
    });
    await new Promise((resolve, reject) => {
      this.server.once("error", reject);
      this.server.listen(port, "127.0.0.1", resolve);
    });
    this.port = this.server.address().port;
    return `http://127.0.0.1:${this.port}`;
  }

  /** Stops listening and cuts every connection. */
  async stop() {
    const closed = new Promise((resolve) => this.server.close(resolve));
    for (const socket of this.sockets) socket.destroy();
    await closed;
  }
}

async function dashboardReconnectScenario(context) {
  // Stored before the page opens: it shows as history.
  const earlier = await record(event("browser.history", { service: "restart" }));
  const proxy = new RestartingProxy();
  const via = await proxy.start();
  const page = await open(context, "dashboard-restart", "/dashboard", via);

  step = "dashboard: a wrong key shows an error, a pasted right key clears it";
  // The history request with it is refused, and the browser says so on its console.
  expectedConsole = /status of 401 \(Unauthorized\)/;
  await page.fill("#api-key", "tlk_not-a-key");
  await page.press("#api-key", "Enter");
  await page.waitForSelector('#status[data-state="error"]', { timeout: WAIT_MS });
  const refused = await page.locator("#status").innerText();
  // Pasted, not confirmed with Enter or Tab: it takes effect all the same.
  await page.evaluate((key) => {
    const input = document.getElementById("api-key");
    input.focus();
    input.value = key;
    input.dispatchEvent(new Event("paste", { bubbles: true }));
  }, apiKey);
  await waitLive(page);
  expectedConsole = null;
  const status = await page.locator("#status").innerText();
  expect(status === "live", `the error "${refused}" is still shown: "${status}"`);
  log(`a wrong key said "${refused}"; the pasted key went live`);
  await waitForRow(page, earlier);
  log("the dashboard opened with the newest stored events");

  step = "dashboard: the server goes away and comes back";
  await recordUntil(event("browser.before_restart", { service: "restart" }), async (ids) => rowShown(page, ids.at(-1)));
  expectedConsole = /WebSocket connection to .* failed/;
  await proxy.stop();
  await page.waitForSelector('#status:not([data-state="live"])', { timeout: WAIT_MS });
  const away = await page.locator("#status").innerText();
  // Recorded by others while the dashboard cannot reach the server.
  const whileAway = [];
  for (let i = 0; i < 3; i += 1) whileAway.push(await record(event("browser.while_away", { service: "restart" })));
  // Long enough for graphql-ws to be refused at least once (its first retry comes after ~1 s).
  await new Promise((resolve) => setTimeout(resolve, 4000));
  await proxy.start(proxy.port);
  await waitLive(page);
  expectedConsole = null;
  for (const id of whileAway) await waitForRow(page, id);
  await page.waitForFunction(() => document.querySelector("#status").textContent.includes("caught up (3 missed events loaded)"));
  const back = await page.locator("#status").innerText();
  const ids = await recordUntil(event("browser.after_restart", { service: "restart" }), async (ids) => rowShown(page, ids.at(-1)));
  // Each event once: no row twice.
  const rows = await page.locator("#events tbody tr").evaluateAll((trs) => trs.map((tr) => tr.dataset.id));
  expect(new Set(rows).size === rows.length, `a row shows twice: ${rows}`);
  log(`while the server was away the dashboard said "${away}"; back, it said "${back}" and showed the 3 events recorded meanwhile, then went on live (${ids.length} recorded)`);
  await page.screenshot({ path: join(artifacts, "dashboard-reconnected.png") });
  await page.close();
  await proxy.stop();
}

async function main() {
  await mkdir(artifacts, { recursive: true });
  const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: CHROMIUM_FLAGS });
  try {
    for (const scenario of [graphiqlScenario, dashboardScenario, dashboardReconnectScenario]) {
      // A fresh context each: no key or editor state carried over from the other page.
      const context = await browser.newContext({ viewport: VIEWPORT });
      context.setDefaultTimeout(WAIT_MS);
      try {
        await scenario(context);
      } catch (error) {
        await current?.screenshot({ path: join(artifacts, "failure.png") }).catch(() => {});
        throw error;
      }
      await context.close();
    }
  } finally {
    await browser.close();
  }
  step = "console";
  expect(problems.length === 0, `\n  ${problems.join("\n  ")}`);
  log("no console errors, no request left the app's origin");
}

main().then(
  () => process.exit(0),
  (error) => {
    console.error(`[browser] FAILED ${error.stack ?? error}`);
    if (problems.length) console.error(`[browser] also seen:\n  ${problems.join("\n  ")}`);
    process.exit(1);
  },
);
