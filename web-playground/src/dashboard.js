// The live dashboard: `eventRecorded` over graphql-ws with the filter from the form, shown as a
// list, an events-per-second chart and counts by outcome and by service.
//
// Pause freezes the whole view while events keep arriving; they are held (up to MAX_HELD) and
// shown on resume, so nothing received is lost. Applying a filter starts a fresh view.
import { createClient } from "graphql-ws";

import "./shell.css";
import "./dashboard.css";
import { bindApiKeyField, connectionParams, websocketUrl } from "./connection.js";
import { drawRateChart, RateSeries } from "./rate-chart.js";

/** Rows kept in the list; the counts and the chart still take every event. */
const MAX_ROWS = 500;
/** Events held while paused; past this the oldest are dropped (and counted as dropped). */
const MAX_HELD = 10_000;
/** Services listed by name; the rest are summed into one line. */
const MAX_SERVICES = 10;
const OUTCOMES = ["SUCCESS", "FAILURE", "UNKNOWN"];
/** The longest wait between two reconnection attempts; the first waits about a second. */
const MAX_RETRY_WAIT_MS = 15_000;

const SUBSCRIPTION = `subscription Live($filter: AuditEventFilter) {
  eventRecorded(filter: $filter) {
    id tenant occurredAt receivedAt action outcome severity service
    actor { id type name ip }
    target { id type name }
    message metadata idempotencyKey requestId traceId
  }
}`;

const $ = (id) => document.getElementById(id);

let client = null;
/** Whether `client`'s socket is open and acknowledged. */
let connected = false;
let stopSubscription = null;
let view = freshView();
let paused = false;
let held = [];
let dropped = 0;
let selected = null;
let renderQueued = false;

function freshView() {
  return {
    events: [],
    byOutcome: new Map(OUTCOMES.map((outcome) => [outcome, 0])),
    byService: new Map(),
    rate: new RateSeries(),
    total: 0,
    since: new Date(),
  };
}

function setStatus(state, text) {
  const status = $("status");
  status.dataset.state = state;
  status.textContent = text;
}

/** The form as an `AuditEventFilter`; null when every field is empty. */
function readFilter() {
  const form = new FormData($("filter"));
  const list = (name) =>
    String(form.get(name) ?? "")
      .split(",")
      .map((value) => value.trim())
      .filter(Boolean);
  const filter = {};
  const services = list("service");
  if (services.length) filter.services = services;
  const actors = list("actor");
  if (actors.length) filter.actorIds = actors;
  // "invoice" means the action `invoice` itself and every `invoice.…` below it.
  const prefixes = list("action")
    .map((prefix) => prefix.replace(/\.\*?$/, ""))
    .filter(Boolean);
  if (prefixes.length) filter.actions = prefixes.flatMap((prefix) => [prefix, `${prefix}.*`]);
  if (form.get("outcome")) filter.outcomes = [form.get("outcome")];
  if (form.get("minSeverity")) filter.minSeverity = form.get("minSeverity");
  return Object.keys(filter).length ? filter : null;
}

function describe(error) {
  if (Array.isArray(error)) return error.map((e) => e.message).join("; ");
  if (error instanceof Error) return error.message;
  if (error && typeof error.code === "number") {
    return `connection closed (${error.code}${error.reason ? `: ${error.reason}` : ""})`;
  }
  return "connection failed";
}

function connect(key) {
  stopSubscription?.();
  stopSubscription = null;
  client?.dispose();
  client = null;
  connected = false;
  if (!key) {
    setStatus("idle", "enter an API key");
    return;
  }
  setStatus("connecting", "connecting…");
  const current = createClient({
    url: websocketUrl,
    connectionParams: connectionParams(key),
    // A dashboard keeps trying for as long as it is open: a restarting server refuses
    // connections for a while, and graphql-ws by default gives up on a refusal (an error event,
    // not a close). Refusals it deems final (a bad key) still end the retries.
    retryAttempts: Infinity,
    shouldRetry: () => true,
    retryWait,
    on: {
      connected: () => {
        if (client !== current) return;
        connected = true;
        setStatus("live", "live");
      },
      closed: () => {
        if (client !== current) return;
        connected = false;
        if ($("status").dataset.state === "live") setStatus("connecting", "reconnecting…");
      },
    },
  });
  client = current;
  subscribe();
}

/** Exponential backoff from about a second up to MAX_RETRY_WAIT_MS, with jitter so that many
 * dashboards do not all come back at the same instant. */
function retryWait(retries) {
  const wait = Math.min(1000 * 2 ** retries, MAX_RETRY_WAIT_MS) + Math.random() * 1000;
  return new Promise((resolve) => setTimeout(resolve, wait));
}

/** (Re)subscribes with the form's filter and starts a fresh view. */
function subscribe() {
  stopSubscription?.();
  stopSubscription = null;
  view = freshView();
  held = [];
  dropped = 0;
  scheduleRender();
  if (!client) return;
  // A new subscription starts clean: an error from the previous filter no longer applies.
  if ($("status").dataset.state === "error") {
    if (connected) setStatus("live", "live");
    else setStatus("connecting", "connecting…");
  }
  const current = client;
  stopSubscription = current.subscribe(
    { query: SUBSCRIPTION, variables: { filter: readFilter() } },
    {
      next: ({ data, errors }) => {
        if (errors?.length) setStatus("error", describe(errors));
        else if (data?.eventRecorded) receive(data.eventRecorded);
      },
      error: (error) => client === current && setStatus("error", describe(error)),
      complete: () => {},
    },
  );
}

function receive(event) {
  const item = { event, at: Date.now() };
  if (paused) {
    held.push(item);
    if (held.length > MAX_HELD) {
      held.shift();
      dropped += 1;
    }
    renderPauseButton();
    return;
  }
  take(item);
  scheduleRender();
}

function take({ event, at }) {
  view.total += 1;
  view.byOutcome.set(event.outcome, (view.byOutcome.get(event.outcome) ?? 0) + 1);
  view.byService.set(event.service, (view.byService.get(event.service) ?? 0) + 1);
  view.rate.add(at);
  view.events.unshift({ event, at });
  if (view.events.length > MAX_ROWS) view.events.length = MAX_ROWS;
}

function togglePause() {
  paused = !paused;
  if (!paused) {
    held.forEach(take);
    held = [];
    dropped = 0;
    scheduleRender();
  }
  renderPauseButton();
}

function scheduleRender() {
  if (renderQueued) return;
  renderQueued = true;
  requestAnimationFrame(() => {
    renderQueued = false;
    render();
  });
}

function render() {
  renderEvents();
  renderCounts($("by-outcome"), [...view.byOutcome]);
  const services = [...view.byService].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
  const shown = services.slice(0, MAX_SERVICES);
  const others = services.slice(MAX_SERVICES).reduce((sum, [, count]) => sum + count, 0);
  if (others) shown.push([`${services.length - MAX_SERVICES} others`, others]);
  renderCounts($("by-service"), shown);
  $("total").textContent = `${view.total} event${view.total === 1 ? "" : "s"} since ${view.since.toLocaleTimeString()}`;
  renderChart();
  renderPauseButton();
}

function renderChart() {
  const counts = view.rate.window(Date.now());
  const minute = counts.reduce((sum, count) => sum + count, 0);
  const current = counts[counts.length - 1];
  $("rate-summary").textContent = `${minute} in the last minute · now ${current}/s · peak ${Math.max(...counts)}/s`;
  drawRateChart($("rate-chart"), counts);
}

function renderCounts(table, rows) {
  const largest = Math.max(1, ...rows.map(([, count]) => count));
  const body = document.createElement("tbody");
  for (const [name, count] of rows) {
    const row = body.insertRow();
    row.dataset.key = name;
    const label = document.createElement("th");
    label.textContent = name;
    row.append(label);
    const bar = row.insertCell();
    bar.className = "bar";
    const fill = document.createElement("span");
    fill.style.width = `${(count / largest) * 100}%`;
    fill.dataset.outcome = name;
    bar.append(fill);
    const number = row.insertCell();
    number.className = "count";
    number.textContent = String(count);
  }
  table.tBodies[0].replaceWith(body);
}

function renderEvents() {
  const body = document.createElement("tbody");
  for (const { event, at } of view.events) {
    const row = body.insertRow();
    row.dataset.id = event.id;
    if (selected?.id === event.id) row.classList.add("selected");
    const cells = [
      new Date(at).toLocaleTimeString(),
      event.severity,
      event.outcome,
      event.service,
      event.action,
      event.actor.id,
      event.target ? `${event.target.type}:${event.target.id}` : "",
      event.message ?? "",
    ];
    for (const text of cells) row.insertCell().textContent = text;
    row.cells[1].className = `severity ${event.severity.toLowerCase()}`;
    row.cells[2].className = `outcome ${event.outcome.toLowerCase()}`;
  }
  $("events").tBodies[0].replaceWith(body);
}

function renderPauseButton() {
  const button = $("pause");
  button.setAttribute("aria-pressed", String(paused));
  if (!paused) {
    button.textContent = "Pause";
    return;
  }
  const lost = dropped ? `, ${dropped} dropped` : "";
  button.textContent = `Resume (${held.length} held${lost})`;
}

function showDetail(event) {
  selected = event;
  $("detail-json").textContent = JSON.stringify(event, null, 2);
  $("detail").hidden = false;
  for (const row of $("events").tBodies[0].rows) {
    row.classList.toggle("selected", row.dataset.id === event.id);
  }
}

function hideDetail() {
  selected = null;
  $("detail").hidden = true;
  for (const row of $("events").querySelectorAll("tr.selected")) row.classList.remove("selected");
}

$("filter").addEventListener("submit", (e) => {
  e.preventDefault();
  subscribe();
});
$("pause").addEventListener("click", togglePause);
$("events").addEventListener("click", (e) => {
  const row = e.target.closest("tbody tr");
  const found = row && view.events.find(({ event }) => event.id === row.dataset.id);
  if (found) showDetail(found.event);
});
$("detail-close").addEventListener("click", hideDetail);
document.addEventListener("keydown", (e) => e.key === "Escape" && hideDetail());
// The chart scrolls with time even when nothing arrives (but stands still while paused).
setInterval(() => paused || renderChart(), 1000);

connect(bindApiKeyField($("api-key"), connect));
