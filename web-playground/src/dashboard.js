// The live dashboard: the newest page of matching events, then `eventRecorded` over graphql-ws
// with the filter from the form, shown as a list, an events-per-second chart and counts by
// outcome and by service.
//
// The feed is durable (`after:` a cursor): it continues after the last event shown, so a
// dashboard that loses its connection (a server restart, the network) keeps retrying with
// backoff and, once back, loads what it missed before going on live. Events are taken by ledger
// index, so none is shown twice.
//
// Pause freezes the whole view while events keep arriving; they are held (up to MAX_HELD) and
// shown on resume, so nothing received is lost. Applying a filter starts a fresh view.
import { createClient } from "graphql-ws";

import "./shell.css";
import "./dashboard.css";
import { bindApiKeyField, connectionParams, graphqlUrl, websocketUrl } from "./connection.js";
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

/** Events shown from history when the view opens. */
const HISTORY = 50;

const EVENT_FIELDS = `
    id tenant occurredAt receivedAt action outcome severity service
    actor { id type name ip }
    target { id type name }
    message metadata idempotencyKey requestId traceId
    ledger { index } streamCursor`;

const HISTORY_QUERY = `query History($filter: AuditEventFilter, $first: Int!) {
  auditEvents(filter: $filter, first: $first) { edges { node { ${EVENT_FIELDS} } } }
}`;

const SUBSCRIPTION = `subscription Live($filter: AuditEventFilter, $after: String) {
  eventRecorded(filter: $filter, after: $after) { ${EVENT_FIELDS} }
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
/** The highest ledger index taken into the view: the feed continues after it. */
let lastIndex = -1;
/** While catching up after a loss: the server's time when the socket came back, and how many
 * events recorded before that moment arrived since — what the dashboard missed while away. */
let reconnectedAt = null;
let missed = 0;
/** The last catch-up's count, shown once live again (null until a loss). */
let caughtUp = null;
/** Goes live when no missed event came for this long. */
let quietTimer = null;
const QUIET_MS = 750;
/** Whether the socket dropped since it was last live. */
let connectionLost = false;
/** The server's clock minus this browser's, from the Date header of the history answer: the
 * missed events are told by the server's receivedAt, so a browser's wrong clock cannot count
 * them wrong. */
let serverOffsetMs = 0;
/** Bumped by every fresh view: the work of an older one (its history, its retries) stops. */
let generation = 0;

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

/** The key in use, for the history query. */
let currentKey = "";

function connect(key) {
  currentKey = key;
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
        if (connectionLost) {
          connectionLost = false;
          reconnectedAt = Date.now() + serverOffsetMs;
          missed = 0;
          setStatus("connecting", "reconnected · catching up…");
          settleSoon();
        } else {
          showLive();
        }
      },
      closed: () => {
        if (client !== current) return;
        if (connected) {
          connectionLost = true;
          setStatus("connecting", "reconnecting…");
        }
        connected = false;
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

function showLive() {
  const note = caughtUp === null ? "" : ` · caught up (${caughtUp} missed event${caughtUp === 1 ? "" : "s"} loaded)`;
  setStatus("live", `live${note}`);
}

/** Live again once the missed events stop coming. */
function settleSoon() {
  clearTimeout(quietTimer);
  quietTimer = setTimeout(settle, QUIET_MS);
}

function settle() {
  clearTimeout(quietTimer);
  if (reconnectedAt === null) return;
  reconnectedAt = null;
  caughtUp = missed;
  if (connected) showLive();
}

/** (Re)subscribes with the form's filter and starts a fresh view: the newest page of history
 * first, then the durable feed from the newest event of it on. */
function subscribe() {
  generation += 1;
  stopSubscription?.();
  stopSubscription = null;
  view = freshView();
  held = [];
  dropped = 0;
  lastIndex = -1;
  reconnectedAt = null;
  caughtUp = null;
  clearTimeout(quietTimer);
  scheduleRender();
  if (!client) return;
  // A new subscription starts clean: an error from the previous filter no longer applies.
  if ($("status").dataset.state === "error") {
    if (connected) showLive();
    else setStatus("connecting", "connecting…");
  }
  start(client, generation, readFilter(), 0);
}

/** Loads the newest history, then follows; a server out of reach is tried again with backoff. */
async function start(current, mine, filter, retries) {
  let history;
  try {
    history = await loadHistory(filter);
  } catch (error) {
    if (mine !== generation) return;
    if (Array.isArray(error)) {
      // The server answered with a refusal (a bad key, a bad filter): trying again won't help.
      setStatus("error", describe(error));
      return;
    }
    setStatus("connecting", "server out of reach · retrying…");
    await retryWait(retries);
    if (mine === generation) start(current, mine, filter, retries + 1);
    return;
  }
  if (mine !== generation) return;
  // Oldest first, so that the newest ends on top.
  history.sort((a, b) => a.ledger.index - b.ledger.index).forEach((event) => take({ event, at: Date.parse(event.receivedAt) }));
  scheduleRender();
  if (connected) showLive();
  const newest = history.at(-1);
  // With nothing stored that matches, from the beginning: anything committed since the history
  // was read still comes, and the server looks through the rest in bounded steps.
  follow(current, mine, filter, newest ? newest.streamCursor : "beginning", 0);
}

/** The durable feed after `after`. The payload object is what graphql-ws sends again after
 * reconnecting: `after` follows the last event taken, so a resubscription continues exactly
 * there. A feed the server ended (too slow to keep up, or unavailable for a moment) starts
 * again from there too, with backoff. */
function follow(current, mine, filter, after, retries) {
  const payload = { query: SUBSCRIPTION, variables: { filter, after } };
  stopSubscription = current.subscribe(payload, {
    next: ({ data, errors }) => {
      if (mine !== generation) return;
      if (errors?.length) {
        const again = errors.every((e) => ["SLOW_CONSUMER", "UNAVAILABLE"].includes(e.extensions?.code));
        if (!again || client !== current) {
          setStatus("error", describe(errors));
          return;
        }
        setStatus("connecting", "catching up…");
        retryWait(retries).then(() => {
          if (mine === generation && client === current) follow(current, mine, filter, payload.variables.after, retries + 1);
        });
      } else if (data?.eventRecorded) {
        const event = data.eventRecorded;
        if (event.ledger.index <= lastIndex) return;
        payload.variables.after = event.streamCursor;
        retries = 0;
        if (reconnectedAt !== null) {
          if (Date.parse(event.receivedAt) <= reconnectedAt) {
            missed += 1;
            settleSoon();
          } else {
            settle();
          }
        } else if ($("status").dataset.state === "connecting" && connected) {
          showLive();
        }
        receive(event);
      }
    },
    error: (error) => client === current && mine === generation && setStatus("error", describe(error)),
    complete: () => {},
  });
}

/** The newest page of events matching `filter`, over HTTP. */
async function loadHistory(filter) {
  const response = await fetch(graphqlUrl, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${currentKey}` },
    body: JSON.stringify({ query: HISTORY_QUERY, variables: { filter, first: HISTORY } }),
  });
  const date = Date.parse(response.headers.get("date") ?? "");
  // The header counts whole seconds: only a clock off by more than that is corrected.
  if (Number.isFinite(date) && Math.abs(date - Date.now()) > 2000) serverOffsetMs = date - Date.now();
  const body = await response.json();
  if (body.errors?.length) throw body.errors;
  return body.data.auditEvents.edges.map((edge) => edge.node);
}

function receive(event) {
  lastIndex = Math.max(lastIndex, event.ledger.index);
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
  lastIndex = Math.max(lastIndex, event.ledger?.index ?? -1);
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
