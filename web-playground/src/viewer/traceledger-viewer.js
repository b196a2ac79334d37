// <traceledger-viewer token="…">: a tenant's customers' own audit trail, embeddable in the
// tenant's product. One module with no framework: the host page loads it with
// <script type="module" src="https://<traceledger>/viewer/v1/traceledger-viewer.js">. Styles
// live in the shadow root (a constructed stylesheet: no inline style, no inline script), so a
// host page with a strict Content-Security-Policy can embed it; theme it with the --tlv-*
// custom properties.
//
// Attributes: token (a viewer token from createViewerToken), endpoint (the GraphQL URL; by
// default this module's own origin + /graphql), page-size (default 25), token-from="fragment"
// (read the token from the page's #token=…, as the /viewer page does).
//
// It shows the newest events first with their display text; a search box (the query language)
// and filters (actor, action, outcome, date range); pages both ways with the total; an event's
// detail; CSV export of the current filter; and a live toggle that follows the durable feed
// (`eventRecorded(after:)`) from the newest event shown, reconnecting with backoff and resuming
// after the last event it took, so none is missed or shown twice.
import { createClient } from "graphql-ws";

import styles from "./viewer.css?inline";

const VERSION = "1";
const DEFAULT_PAGE_SIZE = 25;
const MAX_PAGE_SIZE = 100;
const MAX_RETRY_WAIT_MS = 15_000;
/** Live events kept on top of the list; older ones are a page away. */
const MAX_LIVE_ROWS = 200;

// No ledger index: a viewer token is shown none (it counts the whole tenant's events); its
// stream cursors are sealed.
const FIELDS = `id occurredAt action outcome severity service displayText crud
  actor { id type name ip href } target { id type name href } group { id name }
  message metadata requestId traceId streamCursor`;

const LIST = `query ViewerList($filter: AuditEventFilter, $first: Int = 25, $after: String, $last: Int, $before: String) {
  auditEvents(filter: $filter, first: $first, after: $after, last: $last, before: $before) {
    totalCount totalCountIsEstimate
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    edges { node { ${FIELDS} } }
  }
}`;

const SEARCH = `query ViewerSearch($query: String!, $filter: AuditEventFilter, $first: Int = 25, $after: String, $last: Int, $before: String) {
  search(query: $query, filter: $filter, first: $first, after: $after, last: $last, before: $before) {
    totalCount totalCountIsEstimate pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    hits { cursor event { ${FIELDS} } }
  }
}`;

const LIVE = `subscription ViewerLive($filter: AuditEventFilter, $after: String) {
  eventRecorded(filter: $filter, after: $after) { ${FIELDS} }
}`;

const sheet = new CSSStyleSheet();
sheet.replaceSync(styles);

/** displayText is HTML-escaped for pages that insert it as markup; this one inserts text. */
function unescapeHtml(text) {
  return text.replace(/&(amp|lt|gt|quot|#39);/g, (_, name) => ({ amp: "&", lt: "<", gt: ">", quot: '"', "#39": "'" })[name]);
}

/** Only links that cannot run script in the host page (the server checks the same). */
function safeHref(href) {
  return typeof href === "string" && (/^https?:\/\//i.test(href) || (href.startsWith("/") && !href.startsWith("//") && !href.startsWith("/\\")));
}

function el(tag, props = {}, children = []) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "text") node.textContent = value;
    else if (key.startsWith("aria-") || key === "role" || key.startsWith("data-") || key === "for") node.setAttribute(key, value);
    else node[key] = value;
  }
  for (const child of [].concat(children)) if (child) node.append(child);
  return node;
}

/** A list's or a search's connection as the page shown: its events (`items[*][key]`), cursors,
 * which ways it goes on, and its total in words. */
function pageOf(connection, items, key, [one, many]) {
  const { pageInfo, totalCount, totalCountIsEstimate } = connection;
  return {
    events: connection[items].map((item) => item[key]),
    startCursor: pageInfo.startCursor,
    endCursor: pageInfo.endCursor,
    hasNext: pageInfo.hasNextPage,
    hasPrevious: pageInfo.hasPreviousPage,
    total: `${totalCountIsEstimate ? "about " : ""}${totalCount} ${totalCount === 1 ? one : many}`,
  };
}

function retryWait(retries) {
  const wait = Math.min(1000 * 2 ** retries, MAX_RETRY_WAIT_MS) + Math.random() * 500;
  return new Promise((resolve) => setTimeout(resolve, wait));
}

class TraceledgerViewer extends HTMLElement {
  static observedAttributes = ["token", "endpoint", "page-size"];

  #root = this.attachShadow({ mode: "open" });
  #ui = {};
  /** The page shown: how it was reached, to go either way from it. */
  #page = { events: [], startCursor: null, endCursor: null, hasNext: false, hasPrevious: false };
  #client = null;
  #stopLive = null;
  /** Ids of the events shown: the feed may bring one again after a reconnection. */
  #seen = new Set();
  #generation = 0;

  connectedCallback() {
    this.#root.adoptedStyleSheets = [sheet];
    if (!this.#ui.list) this.#build();
    if (!this.getAttribute("token") && this.getAttribute("token-from") === "fragment") {
      const token = new URLSearchParams(location.hash.slice(1)).get("token");
      if (token) this.setAttribute("token", token);
    }
    if (this.#token) this.#load({ first: this.#pageSize });
    else this.#status("error", "no viewer token");
  }

  disconnectedCallback() {
    this.#setLive(false);
  }

  attributeChangedCallback(name, before, after) {
    if (before === after || !this.isConnected || !this.#ui.list) return;
    this.#setLive(false);
    this.#load({ first: this.#pageSize });
  }

  get #token() {
    return (this.getAttribute("token") ?? "").trim();
  }

  get #pageSize() {
    const size = Number.parseInt(this.getAttribute("page-size") ?? "", 10);
    return Number.isFinite(size) && size > 0 ? Math.min(size, MAX_PAGE_SIZE) : DEFAULT_PAGE_SIZE;
  }

  get #endpoint() {
    return this.getAttribute("endpoint") || new URL(/* @vite-ignore */ "/graphql", import.meta.url).href;
  }

  #build() {
    const ui = this.#ui;
    const field = (name, label, input) => {
      input.id = `tlv-${name}`;
      input.name = name;
      return el("div", { className: "field" }, [el("label", { for: input.id, text: label }), input]);
    };
    ui.query = el("input", { type: "search", placeholder: "Search: words, \"phrases\", -exclude, actor:alice", "aria-label": "Search events" });
    ui.actor = el("input", { type: "text", placeholder: "actor id" });
    ui.action = el("input", { type: "text", placeholder: "invoice.*" });
    ui.outcome = el("select", {}, [
      el("option", { value: "", text: "any" }),
      el("option", { value: "SUCCESS", text: "success" }),
      el("option", { value: "FAILURE", text: "failure" }),
      el("option", { value: "UNKNOWN", text: "unknown" }),
    ]);
    ui.from = el("input", { type: "date" });
    ui.to = el("input", { type: "date" });
    ui.form = el("form", { className: "filters", role: "search" }, [
      field("q", "Search", ui.query),
      field("actor", "Actor", ui.actor),
      field("action", "Action", ui.action),
      field("outcome", "Outcome", ui.outcome),
      field("from", "From", ui.from),
      field("to", "To", ui.to),
      el("button", { type: "submit", text: "Apply", className: "primary" }),
    ]);
    ui.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.#setLive(false);
      this.#load({ first: this.#pageSize });
    });

    ui.total = el("span", { className: "total", role: "status", "aria-live": "polite" });
    ui.status = el("span", { className: "status", role: "status", "aria-live": "polite" });
    ui.live = el("button", { type: "button", text: "Live", className: "live", "aria-pressed": "false" });
    ui.live.addEventListener("click", () => this.#setLive(ui.live.getAttribute("aria-pressed") !== "true"));
    ui.export = el("button", { type: "button", text: "Export CSV" });
    ui.export.addEventListener("click", () => this.#exportCsv());
    const toolbar = el("div", { className: "toolbar" }, [ui.total, ui.status, ui.live, ui.export]);

    ui.list = el("ol", { className: "events", "aria-label": "Audit events, newest first" });
    ui.newer = el("button", { type: "button", text: "← Newer" });
    ui.older = el("button", { type: "button", text: "Older →" });
    ui.newer.addEventListener("click", () => this.#newer());
    ui.older.addEventListener("click", () => this.#older());
    const pager = el("nav", { className: "pager", "aria-label": "Pages" }, [ui.newer, ui.older]);

    ui.detail = el("section", { className: "detail", hidden: true, role: "region", "aria-label": "Event detail", tabIndex: -1 });
    this.#root.append(el("div", { className: "viewer", part: "viewer" }, [ui.form, toolbar, ui.list, pager, ui.detail]));
  }

  /** The filters as an AuditEventFilter. */
  #filter() {
    const ui = this.#ui;
    const filter = {};
    const actor = ui.actor.value.trim();
    if (actor) filter.actorIds = [actor];
    const action = ui.action.value.trim();
    if (action) filter.actions = [action];
    if (ui.outcome.value) filter.outcomes = [ui.outcome.value];
    if (ui.from.value) filter.occurredAfter = new Date(`${ui.from.value}T00:00:00Z`).toISOString();
    if (ui.to.value) {
      const end = new Date(`${ui.to.value}T00:00:00Z`);
      end.setUTCDate(end.getUTCDate() + 1);
      filter.occurredBefore = end.toISOString();
    }
    return Object.keys(filter).length ? filter : null;
  }

  async #graphql(query, variables) {
    const response = await fetch(this.#endpoint, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        accept: "application/graphql-response+json, application/json;q=0.9",
        authorization: `Bearer ${this.#token}`,
      },
      body: JSON.stringify({ query, variables }),
    });
    const body = await response.json().catch(() => ({ errors: [{ message: `HTTP ${response.status}` }] }));
    if (body.errors?.length) throw new Error(body.errors.map((e) => e.message).join("; "));
    return body.data;
  }

  /** Loads one page of the list or the search: forwards (first/after) or backwards (last/before). */
  async #load(request) {
    const mine = ++this.#generation;
    this.#status("loading", "loading…");
    const query = this.#ui.query.value.trim();
    try {
      const page = query
        ? pageOf((await this.#graphql(SEARCH, { query, filter: this.#filter(), ...request })).search, "hits", "event", ["match", "matches"])
        : pageOf((await this.#graphql(LIST, { filter: this.#filter(), ...request })).auditEvents, "edges", "node", ["event", "events"]);
      if (mine !== this.#generation) return;
      this.#page = page;
      this.#render();
      this.#status("idle", "");
    } catch (error) {
      if (mine === this.#generation) this.#status("error", error.message);
    }
  }

  #older() {
    if (this.#page.hasNext) this.#load({ first: this.#pageSize, after: this.#page.endCursor });
  }

  #newer() {
    if (this.#page.hasPrevious) this.#load({ last: this.#pageSize, before: this.#page.startCursor });
  }

  #render() {
    const ui = this.#ui;
    ui.total.textContent = this.#page.total ?? "";
    ui.list.replaceChildren(...this.#page.events.map((event) => this.#row(event)));
    if (!this.#page.events.length) ui.list.append(el("li", { className: "empty", text: "No events." }));
    ui.newer.disabled = !this.#page.hasPrevious;
    ui.older.disabled = !this.#page.hasNext;
  }

  #row(event) {
    const time = el("time", { dateTime: event.occurredAt, text: new Date(event.occurredAt).toLocaleString() });
    const open = el("button", { type: "button", className: "row", "aria-label": `Details of ${event.action} at ${event.occurredAt}` }, [
      time,
      el("span", { className: "text", text: unescapeHtml(event.displayText) }),
      el("span", { className: `outcome ${event.outcome.toLowerCase()}`, text: event.outcome.toLowerCase() }),
    ]);
    open.addEventListener("click", () => this.#showDetail(event));
    return el("li", { "data-id": event.id, "data-action": event.action }, [open]);
  }

  #showDetail(event) {
    const ui = this.#ui;
    const rows = [
      ["Event", event.id],
      ["When", event.occurredAt],
      ["Action", event.action],
      ["Outcome", event.outcome],
      ["Severity", event.severity],
      ["Service", event.service],
      ["CRUD", event.crud],
      ["Actor", [event.actor.name, event.actor.id, event.actor.type].filter(Boolean).join(" · ")],
      ["Actor IP", event.actor.ip],
      ["Target", event.target && [event.target.name, event.target.id, event.target.type].filter(Boolean).join(" · ")],
      ["Group", event.group && (event.group.name ?? event.group.id)],
      ["Message", event.message],
      ["Request", event.requestId],
      ["Trace", event.traceId],
    ].filter(([, value]) => value !== null && value !== undefined && value !== "");
    const list = el("dl", {}, rows.flatMap(([name, value]) => [el("dt", { text: name }), el("dd", { text: String(value) })]));
    const links = [
      ["Open actor", event.actor.href],
      ["Open target", event.target?.href],
    ]
      .filter(([, href]) => safeHref(href))
      .map(([text, href]) => el("a", { href, text, target: "_blank", rel: "noopener noreferrer" }));
    const metadata = event.metadata ? el("pre", { text: JSON.stringify(event.metadata, null, 2) }) : null;
    const close = el("button", { type: "button", text: "Close", "aria-label": "Close the detail" });
    close.addEventListener("click", () => {
      ui.detail.hidden = true;
      ui.list.querySelector(`[data-id="${CSS.escape(event.id)}"] button`)?.focus();
    });
    ui.detail.replaceChildren(el("h2", { text: unescapeHtml(event.displayText) }), list, ...links, metadata ?? "", close);
    ui.detail.hidden = false;
    ui.detail.focus();
  }

  async #exportCsv() {
    // For a spreadsheet: no recorded value runs as a formula on the customer's machine.
    const params = new URLSearchParams({ format: "csv", spreadsheetSafe: "true" });
    const filter = this.#filter() ?? {};
    for (const [name, values] of Object.entries(filter)) {
      for (const value of [].concat(values)) params.append(name, value);
    }
    try {
      const response = await fetch(new URL(`/export?${params}`, this.#endpoint), { headers: { authorization: `Bearer ${this.#token}` } });
      if (!response.ok) {
        const body = await response.json().catch(() => ({}));
        throw new Error(body.errors?.[0]?.message ?? `export refused (HTTP ${response.status})`);
      }
      const url = URL.createObjectURL(await response.blob());
      const link = el("a", { href: url, download: "audit-events.csv" });
      this.#root.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10_000);
      this.#status("idle", "export downloaded");
    } catch (error) {
      this.#status("error", error.message);
    }
  }

  /** Live: the durable feed from the newest event shown (or "now"), new events on top. */
  #setLive(on) {
    const ui = this.#ui;
    if (!ui.live) return;
    ui.live.setAttribute("aria-pressed", String(on));
    this.#stopLive?.();
    this.#stopLive = null;
    this.#client?.dispose();
    this.#client = null;
    if (!on) {
      if (ui.live.dataset.state) this.#status("idle", "");
      delete ui.live.dataset.state;
      return;
    }
    const newest = this.#page.hasPrevious ? null : this.#page.events[0];
    this.#seen = new Set(this.#page.events.map((event) => event.id));
    const url = new URL(this.#endpoint);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    let connected = false;
    let lost = false;
    let missed = 0;
    const client = createClient({
      url: url.href,
      connectionParams: { apiKey: this.#token },
      // Keep trying while live is on: a refused connection is an error event, which graphql-ws
      // would otherwise not retry.
      retryAttempts: Infinity,
      shouldRetry: () => true,
      retryWait,
      on: {
        connected: () => {
          connected = true;
          ui.live.dataset.state = "live";
          this.#status("live", lost ? "reconnected · catching up…" : "live");
        },
        closed: () => {
          if (connected) {
            lost = true;
            missed = 0;
            this.#status("connecting", "reconnecting…");
          }
          connected = false;
        },
      },
    });
    this.#client = client;
    // graphql-ws sends this payload again after reconnecting: `after` follows the last event
    // taken, so the feed resumes exactly there.
    const payload = { query: LIVE, variables: { filter: this.#filter(), after: newest?.streamCursor ?? "now" } };
    this.#stopLive = client.subscribe(payload, {
      next: ({ data, errors }) => {
        if (errors?.length) {
          this.#status("error", errors.map((e) => e.message).join("; "));
          return;
        }
        const event = data?.eventRecorded;
        if (!event || this.#seen.has(event.id)) return;
        this.#seen.add(event.id);
        if (this.#seen.size > MAX_LIVE_ROWS * 10) this.#seen = new Set([...this.#seen].slice(-MAX_LIVE_ROWS));
        payload.variables.after = event.streamCursor;
        if (lost) {
          missed += 1;
          this.#status("live", `live · caught up (${missed} missed event${missed === 1 ? "" : "s"} loaded)`);
        }
        this.#prepend(event);
      },
      error: (error) => this.#status("error", error?.message ?? "live feed failed"),
      complete: () => {},
    });
  }

  #prepend(event) {
    const list = this.#ui.list;
    list.querySelector(".empty")?.remove();
    list.prepend(this.#row(event));
    while (list.children.length > MAX_LIVE_ROWS) list.lastElementChild.remove();
  }

  #status(state, text) {
    this.#ui.status.dataset.state = state;
    this.#ui.status.textContent = text;
  }
}

if (!customElements.get("traceledger-viewer")) customElements.define("traceledger-viewer", TraceledgerViewer);

export { TraceledgerViewer, VERSION };
