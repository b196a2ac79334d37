function v(e) {
  return e === null ? "null" : Array.isArray(e) ? "array" : typeof e;
}
function T(e) {
  return v(e) === "object";
}
function ne(e) {
  return Array.isArray(e) && // must be at least one error
  e.length > 0 && // error has at least a message
  e.every((t) => "message" in t);
}
function X(e, t) {
  return e.length < 124 ? e : t;
}
const se = "graphql-transport-ws";
var S = /* @__PURE__ */ ((e) => (e[e.InternalServerError = 4500] = "InternalServerError", e[e.InternalClientError = 4005] = "InternalClientError", e[e.BadRequest = 4400] = "BadRequest", e[e.BadResponse = 4004] = "BadResponse", e[e.Unauthorized = 4401] = "Unauthorized", e[e.Forbidden = 4403] = "Forbidden", e[e.SubprotocolNotAcceptable = 4406] = "SubprotocolNotAcceptable", e[e.ConnectionInitialisationTimeout = 4408] = "ConnectionInitialisationTimeout", e[e.ConnectionAcknowledgementTimeout = 4504] = "ConnectionAcknowledgementTimeout", e[e.SubscriberAlreadyExists = 4409] = "SubscriberAlreadyExists", e[e.TooManyInitialisationRequests = 4429] = "TooManyInitialisationRequests", e))(S || {}), E = /* @__PURE__ */ ((e) => (e.ConnectionInit = "connection_init", e.ConnectionAck = "connection_ack", e.Ping = "ping", e.Pong = "pong", e.Subscribe = "subscribe", e.Next = "next", e.Error = "error", e.Complete = "complete", e))(E || {});
function ee(e) {
  if (!T(e))
    throw new Error(
      `Message is expected to be an object, but got ${v(e)}`
    );
  if (!e.type)
    throw new Error("Message is missing the 'type' property");
  if (typeof e.type != "string")
    throw new Error(
      `Message is expects the 'type' property to be a string, but got ${v(
        e.type
      )}`
    );
  switch (e.type) {
    case "connection_init":
    case "connection_ack":
    case "ping":
    case "pong": {
      if (e.payload != null && !T(e.payload))
        throw new Error(
          `"${e.type}" message expects the 'payload' property to be an object or nullish or missing, but got "${e.payload}"`
        );
      break;
    }
    case "subscribe": {
      if (typeof e.id != "string")
        throw new Error(
          `"${e.type}" message expects the 'id' property to be a string, but got ${v(
            e.id
          )}`
        );
      if (!e.id)
        throw new Error(
          `"${e.type}" message requires a non-empty 'id' property`
        );
      if (!T(e.payload))
        throw new Error(
          `"${e.type}" message expects the 'payload' property to be an object, but got ${v(
            e.payload
          )}`
        );
      if (typeof e.payload.query != "string")
        throw new Error(
          `"${e.type}" message payload expects the 'query' property to be a string, but got ${v(
            e.payload.query
          )}`
        );
      if (e.payload.variables != null && !T(e.payload.variables))
        throw new Error(
          `"${e.type}" message payload expects the 'variables' property to be a an object or nullish or missing, but got ${v(
            e.payload.variables
          )}`
        );
      if (e.payload.operationName != null && v(e.payload.operationName) !== "string")
        throw new Error(
          `"${e.type}" message payload expects the 'operationName' property to be a string or nullish or missing, but got ${v(
            e.payload.operationName
          )}`
        );
      if (e.payload.extensions != null && !T(e.payload.extensions))
        throw new Error(
          `"${e.type}" message payload expects the 'extensions' property to be a an object or nullish or missing, but got ${v(
            e.payload.extensions
          )}`
        );
      break;
    }
    case "next": {
      if (typeof e.id != "string")
        throw new Error(
          `"${e.type}" message expects the 'id' property to be a string, but got ${v(
            e.id
          )}`
        );
      if (!e.id)
        throw new Error(
          `"${e.type}" message requires a non-empty 'id' property`
        );
      if (!T(e.payload))
        throw new Error(
          `"${e.type}" message expects the 'payload' property to be an object, but got ${v(
            e.payload
          )}`
        );
      break;
    }
    case "error": {
      if (typeof e.id != "string")
        throw new Error(
          `"${e.type}" message expects the 'id' property to be a string, but got ${v(
            e.id
          )}`
        );
      if (!e.id)
        throw new Error(
          `"${e.type}" message requires a non-empty 'id' property`
        );
      if (!ne(e.payload))
        throw new Error(
          `"${e.type}" message expects the 'payload' property to be an array of GraphQL errors, but got ${JSON.stringify(
            e.payload
          )}`
        );
      break;
    }
    case "complete": {
      if (typeof e.id != "string")
        throw new Error(
          `"${e.type}" message expects the 'id' property to be a string, but got ${v(
            e.id
          )}`
        );
      if (!e.id)
        throw new Error(
          `"${e.type}" message requires a non-empty 'id' property`
        );
      break;
    }
    default:
      throw new Error(`Invalid message 'type' property "${e.type}"`);
  }
  return e;
}
function ae(e, t) {
  return ee(
    typeof e == "string" ? JSON.parse(e, t) : e
  );
}
function W(e, t) {
  return ee(e), JSON.stringify(e, t);
}
function ce(e) {
  const {
    url: t,
    connectionParams: r,
    lazy: s = !0,
    onNonLazyError: n = console.error,
    lazyCloseTimeout: c = 0,
    keepAlive: d = 0,
    disablePong: g,
    connectionAckWaitTimeout: b = 0,
    retryAttempts: $ = 5,
    retryWait: N = async function(p) {
      const o = Math.pow(2, p);
      await new Promise(
        (u) => setTimeout(
          u,
          o * 1e3 + // add random timeout from 300ms to 3s
          Math.floor(Math.random() * 2700 + 300)
        )
      );
    },
    shouldRetry: M = D,
    on: f,
    webSocketImpl: O,
    /**
     * Generates a v4 UUID to be used as the ID using `Math`
     * as the random number generator. Supply your own generator
     * in case you need more uniqueness.
     *
     * Reference: https://gist.github.com/jed/982883
     */
    generateID: re = function() {
      return "xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx".replace(/[xy]/g, (p) => {
        const o = Math.random() * 16 | 0;
        return (p == "x" ? o : o & 3 | 8).toString(16);
      });
    },
    jsonMessageReplacer: j,
    jsonMessageReviver: oe
  } = e;
  let C;
  if (O) {
    if (!de(O))
      throw new Error("Invalid WebSocket implementation provided");
    C = O;
  } else typeof WebSocket < "u" ? C = WebSocket : typeof global < "u" ? C = global.WebSocket || // @ts-expect-error: Support more browsers
  global.MozWebSocket : typeof window < "u" && (C = window.WebSocket || // @ts-expect-error: Support more browsers
  window.MozWebSocket);
  if (!C)
    throw new Error(
      "WebSocket implementation missing; on Node you can `import WebSocket from 'ws';` and pass `webSocketImpl: WebSocket` to `createClient`"
    );
  const A = C, w = (() => {
    const a = /* @__PURE__ */ (() => {
      const o = {};
      return {
        on(u, h) {
          return o[u] = h, () => {
            delete o[u];
          };
        },
        emit(u) {
          "id" in u && o[u.id]?.(u);
        }
      };
    })(), p = {
      connecting: f?.connecting ? [f.connecting] : [],
      opened: f?.opened ? [f.opened] : [],
      connected: f?.connected ? [f.connected] : [],
      ping: f?.ping ? [f.ping] : [],
      pong: f?.pong ? [f.pong] : [],
      message: f?.message ? [a.emit, f.message] : [a.emit],
      closed: f?.closed ? [f.closed] : [],
      error: f?.error ? [f.error] : []
    };
    return {
      onMessage: a.on,
      on(o, u) {
        const h = p[o];
        return h.push(u), () => {
          const m = h.indexOf(u);
          m > -1 && h.splice(m, 1);
        };
      },
      emit(o, ...u) {
        for (const h of [...p[o]])
          h(...u);
      }
    };
  })();
  function _(a) {
    const p = [
      // errors are fatal and more critical than close events, throw them first
      w.on("error", (o) => {
        p.forEach((u) => u()), a(o);
      }),
      // closes can be graceful and not fatal, throw them second (if error didnt throw)
      w.on("closed", (o) => {
        p.forEach((u) => u()), a(o);
      })
    ];
    return () => p.forEach((o) => o());
  }
  let P, I = 0, F, q = !1, z = 0, V = !1;
  async function H() {
    clearTimeout(F);
    const [a, p] = await (P ?? (P = new Promise(
      (h, m) => (async () => {
        if (q) {
          if (await N(z), !I)
            return P = void 0, m({ code: 1e3, reason: "All Subscriptions Gone" });
          z++;
        }
        w.emit("connecting", q);
        const l = new A(
          typeof t == "function" ? await t() : t,
          se
        );
        let k, L;
        function U() {
          isFinite(d) && d > 0 && (clearTimeout(L), L = setTimeout(() => {
            l.readyState === A.OPEN && (l.send(W({ type: E.Ping })), w.emit("ping", !1, void 0));
          }, d));
        }
        _((x) => {
          P = void 0, clearTimeout(k), clearTimeout(L), m(x), x instanceof K && (l.close(4499, "Terminated"), l.onerror = null, l.onclose = null);
        }), l.onerror = (x) => w.emit("error", x), l.onclose = (x) => w.emit("closed", x), l.onopen = async () => {
          try {
            w.emit("opened", l);
            const x = typeof r == "function" ? await r() : r;
            if (l.readyState !== A.OPEN) return;
            l.send(
              W(
                x ? {
                  type: E.ConnectionInit,
                  payload: x
                } : {
                  type: E.ConnectionInit
                  // payload is completely absent if not provided
                },
                j
              )
            ), isFinite(b) && b > 0 && (k = setTimeout(() => {
              l.close(
                S.ConnectionAcknowledgementTimeout,
                "Connection acknowledgement timeout"
              );
            }, b)), U();
          } catch (x) {
            w.emit("error", x), l.close(
              S.InternalClientError,
              X(
                x instanceof Error ? x.message : String(x),
                "Internal client error"
              )
            );
          }
        };
        let R = !1;
        l.onmessage = ({ data: x }) => {
          try {
            const y = ae(x, oe);
            if (w.emit("message", y), y.type === "ping" || y.type === "pong") {
              w.emit(y.type, !0, y.payload), y.type === "pong" ? U() : g || (l.send(
                W(
                  y.payload ? {
                    type: E.Pong,
                    payload: y.payload
                  } : {
                    type: E.Pong
                    // payload is completely absent if not provided
                  },
                  j
                )
              ), w.emit("pong", !1, y.payload));
              return;
            }
            if (R) return;
            if (y.type !== E.ConnectionAck)
              throw new Error(
                `First message cannot be of type ${y.type}`
              );
            clearTimeout(k), R = !0, w.emit("connected", l, y.payload, q), q = !1, z = 0;
            const Q = new Promise(
              (ve, ie) => _(ie)
            );
            Q.catch(() => {
            }), h([l, Q]);
          } catch (y) {
            l.onmessage = null, w.emit("error", y), l.close(
              S.BadResponse,
              X(
                y instanceof Error ? y.message : String(y),
                "Bad response"
              )
            );
          }
        };
      })()
    )));
    a.readyState === A.CLOSING && await p;
    let o = () => {
    };
    const u = new Promise((h) => o = h);
    return [
      a,
      o,
      // resolves on release or rejects on error/close, whichever comes first.
      // not racing with throwOnClose on purpose, it lives as long as the socket
      // and every race would leak memory per operation
      new Promise((h, m) => {
        const l = _(m);
        a.readyState !== A.OPEN && p.catch(m), u.then(() => {
          if (l(), !I) {
            const k = () => a.close(1e3, "Normal Closure");
            isFinite(c) && c > 0 ? (clearTimeout(F), F = setTimeout(() => {
              !I && a.readyState === A.OPEN && k();
            }, c)) : k();
          }
          h();
        });
      })
    ];
  }
  function J(a) {
    if (D(a) && (le(a.code) || [
      S.InternalServerError,
      S.InternalClientError,
      S.BadRequest,
      S.BadResponse,
      S.Unauthorized,
      // CloseCode.Forbidden, might grant access out after retry
      S.SubprotocolNotAcceptable,
      // CloseCode.ConnectionInitialisationTimeout, might not time out after retry
      // CloseCode.ConnectionAcknowledgementTimeout, might not time out after retry
      S.SubscriberAlreadyExists,
      S.TooManyInitialisationRequests
      // 4499, // Terminated, probably because the socket froze, we want to retry
    ].includes(a.code)))
      throw a;
    if (V) return !1;
    if (D(a) && a.code === 1e3)
      return I > 0;
    if (!$ || z >= $ || !M(a)) throw a;
    return q = !0;
  }
  s || (async () => {
    for (I++; ; )
      try {
        const [, , a] = await H();
        await a;
      } catch (a) {
        try {
          if (!J(a)) return;
        } catch (p) {
          return n?.(p);
        }
      }
  })();
  function Z(a, p) {
    const o = re(a);
    let u = !1, h = !1, m = () => {
      I--, u = !0;
    };
    return (async () => {
      for (I++; ; )
        try {
          const [l, k, L] = await H();
          if (u)
            return L.catch(() => {
            }), k();
          const U = w.onMessage(o, (R) => {
            switch (R.type) {
              case E.Next: {
                p.next(R.payload);
                return;
              }
              case E.Error: {
                h = !0, u = !0, p.error(R.payload), m();
                return;
              }
              case E.Complete: {
                u = !0, m();
                return;
              }
            }
          });
          l.send(
            W(
              {
                id: o,
                type: E.Subscribe,
                payload: a
              },
              j
            )
          ), m = () => {
            !u && l.readyState === A.OPEN && l.send(
              W(
                {
                  id: o,
                  type: E.Complete
                },
                j
              )
            ), I--, u = !0, k();
          }, await L.finally(U);
          return;
        } catch (l) {
          if (!J(l)) return;
        }
    })().then(() => {
      h || p.complete();
    }).catch((l) => {
      p.error(l);
    }), () => {
      u || m();
    };
  }
  return {
    on: w.on,
    subscribe: Z,
    iterate(a) {
      const p = [], o = {
        done: !1,
        error: null,
        resolve: () => {
        }
      }, u = Z(a, {
        next(m) {
          p.push(m), o.resolve();
        },
        error(m) {
          o.done = !0, o.error = m, o.resolve();
        },
        complete() {
          o.done = !0, o.resolve();
        }
      }), h = (async function* () {
        for (; ; ) {
          for (p.length || await new Promise((l) => o.resolve = l); p.length; )
            yield p.shift();
          if (o.error)
            throw o.error;
          if (o.done)
            return;
        }
      })();
      return h.throw = async (m) => (o.done || (o.done = !0, o.error = m, o.resolve()), { done: !0, value: void 0 }), h.return = async () => (u(), { done: !0, value: void 0 }), h;
    },
    async dispose() {
      if (V = !0, P) {
        const [a] = await P;
        a.close(1e3, "Normal Closure");
      }
    },
    terminate() {
      P && w.emit("closed", new K());
    }
  };
}
class K extends Error {
  name = "TerminatedCloseEvent";
  message = "4499: Terminated";
  code = 4499;
  reason = "Terminated";
  wasClean = !1;
}
function D(e) {
  return T(e) && "code" in e && "reason" in e;
}
function le(e) {
  return [
    1e3,
    // Normal Closure is not an erroneous close code
    1001,
    // Going Away
    1006,
    // Abnormal Closure
    1005,
    // No Status Received
    1012,
    // Service Restart
    1013,
    // Try Again Later
    1014
    // Bad Gateway
  ].includes(e) ? !1 : e >= 1e3 && e <= 1999;
}
function de(e) {
  return typeof e == "function" && "constructor" in e && "CLOSED" in e && "CLOSING" in e && "CONNECTING" in e && "OPEN" in e;
}
const ue = ':host{--tlv-font: system-ui, -apple-system, "Segoe UI", sans-serif;--tlv-text: #1d2330;--tlv-muted: #5d6678;--tlv-background: #ffffff;--tlv-surface: #f4f6fa;--tlv-border: #d6dbe5;--tlv-accent: #2f5bd3;--tlv-failure: #b42318;--tlv-success: #1a7f37;--tlv-radius: 6px;display:block;font:14px/1.4 var(--tlv-font);color:var(--tlv-text);background:var(--tlv-background);container-type:inline-size}*{box-sizing:border-box}.viewer{display:grid;gap:12px;padding:12px;min-width:0}.filters{display:grid;grid-template-columns:repeat(auto-fill,minmax(140px,1fr));gap:8px;align-items:end}.field{display:grid;gap:2px;min-width:0}.field:first-child{grid-column:1 / -1}label{font-size:12px;color:var(--tlv-muted)}input,select,button{font:inherit;color:inherit;min-width:0}input,select{width:100%;padding:6px 8px;border:1px solid var(--tlv-border);border-radius:var(--tlv-radius);background:var(--tlv-background)}button{padding:6px 12px;border:1px solid var(--tlv-border);border-radius:var(--tlv-radius);background:var(--tlv-surface);cursor:pointer}button.primary,button[aria-pressed=true]{background:var(--tlv-accent);border-color:var(--tlv-accent);color:#fff}button:disabled{opacity:.5;cursor:default}:focus-visible{outline:2px solid var(--tlv-accent);outline-offset:2px}.toolbar{display:flex;flex-wrap:wrap;gap:8px;align-items:center}.total{font-weight:600}.status{flex:1;color:var(--tlv-muted);min-width:8em}.status[data-state=error]{color:var(--tlv-failure)}.events{list-style:none;margin:0;padding:0;border:1px solid var(--tlv-border);border-radius:var(--tlv-radius)}.events li+li{border-top:1px solid var(--tlv-border)}.events .empty{padding:12px;color:var(--tlv-muted)}.row{display:grid;grid-template-columns:11em 1fr auto;gap:8px;width:100%;text-align:left;border:0;border-radius:0;background:transparent;padding:8px 10px}.row:hover{background:var(--tlv-surface)}.row time{color:var(--tlv-muted);font-variant-numeric:tabular-nums}.row .text{overflow-wrap:anywhere}.outcome.failure{color:var(--tlv-failure)}.outcome.success{color:var(--tlv-success)}.pager{display:flex;justify-content:space-between}.detail{border:1px solid var(--tlv-border);border-radius:var(--tlv-radius);padding:12px;background:var(--tlv-surface);display:grid;gap:8px}.detail[hidden]{display:none}.detail h2{font-size:16px;margin:0;overflow-wrap:anywhere}.detail dl{display:grid;grid-template-columns:max-content 1fr;gap:4px 12px;margin:0}.detail dt{color:var(--tlv-muted)}.detail dd{margin:0;overflow-wrap:anywhere}.detail pre{margin:0;padding:8px;background:var(--tlv-background);border-radius:var(--tlv-radius);overflow:auto;max-height:240px}.detail a{color:var(--tlv-accent)}@container (max-width: 520px){.row{grid-template-columns:1fr auto}.row time{grid-column:1 / -1;font-size:12px}.detail dl{grid-template-columns:1fr}}', Se = "1", pe = 25, fe = 100, he = 15e3, B = 200, G = `id occurredAt action outcome severity service displayText crud
  actor { id type name ip href } target { id type name href } group { id name }
  message metadata requestId traceId streamCursor`, me = `query ViewerList($filter: AuditEventFilter, $first: Int = 25, $after: String, $last: Int, $before: String) {
  auditEvents(filter: $filter, first: $first, after: $after, last: $last, before: $before) {
    totalCount totalCountIsEstimate
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    edges { node { ${G} } }
  }
}`, ge = `query ViewerSearch($query: String!, $filter: AuditEventFilter, $first: Int = 25, $after: String, $last: Int, $before: String) {
  search(query: $query, filter: $filter, first: $first, after: $after, last: $last, before: $before) {
    total pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    hits { cursor event { ${G} } }
  }
}`, ye = `subscription ViewerLive($filter: AuditEventFilter, $after: String) {
  eventRecorded(filter: $filter, after: $after) { ${G} }
}`, te = new CSSStyleSheet();
te.replaceSync(ue);
function Y(e) {
  return e.replace(/&(amp|lt|gt|quot|#39);/g, (t, r) => ({ amp: "&", lt: "<", gt: ">", quot: '"', "#39": "'" })[r]);
}
function be(e) {
  return typeof e == "string" && (/^https?:\/\//i.test(e) || e.startsWith("/") && !e.startsWith("//") && !e.startsWith("/\\"));
}
function i(e, t = {}, r = []) {
  const s = document.createElement(e);
  for (const [n, c] of Object.entries(t))
    n === "text" ? s.textContent = c : n.startsWith("aria-") || n === "role" || n.startsWith("data-") || n === "for" ? s.setAttribute(n, c) : s[n] = c;
  for (const n of [].concat(r)) n && s.append(n);
  return s;
}
function we(e) {
  const t = Math.min(1e3 * 2 ** e, he) + Math.random() * 500;
  return new Promise((r) => setTimeout(r, t));
}
class xe extends HTMLElement {
  static observedAttributes = ["token", "endpoint", "page-size"];
  #l = this.attachShadow({ mode: "open" });
  #r = {};
  /** The page shown: how it was reached, to go either way from it. */
  #e = { events: [], startCursor: null, endCursor: null, hasNext: !1, hasPrevious: !1 };
  #d = null;
  #u = null;
  /** Ids of the events shown: the feed may bring one again after a reconnection. */
  #o = /* @__PURE__ */ new Set();
  #p = 0;
  connectedCallback() {
    if (this.#l.adoptedStyleSheets = [te], this.#r.list || this.#g(), !this.getAttribute("token") && this.getAttribute("token-from") === "fragment") {
      const t = new URLSearchParams(location.hash.slice(1)).get("token");
      t && this.setAttribute("token", t);
    }
    this.#s ? this.#n({ first: this.#i }) : this.#t("error", "no viewer token");
  }
  disconnectedCallback() {
    this.#c(!1);
  }
  attributeChangedCallback(t, r, s) {
    r === s || !this.isConnected || !this.#r.list || (this.#c(!1), this.#n({ first: this.#i }));
  }
  get #s() {
    return (this.getAttribute("token") ?? "").trim();
  }
  get #i() {
    const t = Number.parseInt(this.getAttribute("page-size") ?? "", 10);
    return Number.isFinite(t) && t > 0 ? Math.min(t, fe) : pe;
  }
  get #f() {
    return this.getAttribute("endpoint") || new URL(
      /* @vite-ignore */
      "/graphql",
      import.meta.url
    ).href;
  }
  #g() {
    const t = this.#r, r = (c, d, g) => (g.id = `tlv-${c}`, g.name = c, i("div", { className: "field" }, [i("label", { for: g.id, text: d }), g]));
    t.query = i("input", { type: "search", placeholder: 'Search: words, "phrases", -exclude, actor:alice', "aria-label": "Search events" }), t.actor = i("input", { type: "text", placeholder: "actor id" }), t.action = i("input", { type: "text", placeholder: "invoice.*" }), t.outcome = i("select", {}, [
      i("option", { value: "", text: "any" }),
      i("option", { value: "SUCCESS", text: "success" }),
      i("option", { value: "FAILURE", text: "failure" }),
      i("option", { value: "UNKNOWN", text: "unknown" })
    ]), t.from = i("input", { type: "date" }), t.to = i("input", { type: "date" }), t.form = i("form", { className: "filters", role: "search" }, [
      r("q", "Search", t.query),
      r("actor", "Actor", t.actor),
      r("action", "Action", t.action),
      r("outcome", "Outcome", t.outcome),
      r("from", "From", t.from),
      r("to", "To", t.to),
      i("button", { type: "submit", text: "Apply", className: "primary" })
    ]), t.form.addEventListener("submit", (c) => {
      c.preventDefault(), this.#c(!1), this.#n({ first: this.#i });
    }), t.total = i("span", { className: "total", role: "status", "aria-live": "polite" }), t.status = i("span", { className: "status", role: "status", "aria-live": "polite" }), t.live = i("button", { type: "button", text: "Live", className: "live", "aria-pressed": "false" }), t.live.addEventListener("click", () => this.#c(t.live.getAttribute("aria-pressed") !== "true")), t.export = i("button", { type: "button", text: "Export CSV" }), t.export.addEventListener("click", () => this.#v());
    const s = i("div", { className: "toolbar" }, [t.total, t.status, t.live, t.export]);
    t.list = i("ol", { className: "events", "aria-label": "Audit events, newest first" }), t.newer = i("button", { type: "button", text: "← Newer" }), t.older = i("button", { type: "button", text: "Older →" }), t.newer.addEventListener("click", () => this.#b()), t.older.addEventListener("click", () => this.#y());
    const n = i("nav", { className: "pager", "aria-label": "Pages" }, [t.newer, t.older]);
    t.detail = i("section", { className: "detail", hidden: !0, role: "region", "aria-label": "Event detail", tabIndex: -1 }), this.#l.append(i("div", { className: "viewer", part: "viewer" }, [t.form, s, t.list, n, t.detail]));
  }
  /** The filters as an AuditEventFilter. */
  #a() {
    const t = this.#r, r = {}, s = t.actor.value.trim();
    s && (r.actorIds = [s]);
    const n = t.action.value.trim();
    if (n && (r.actions = [n]), t.outcome.value && (r.outcomes = [t.outcome.value]), t.from.value && (r.occurredAfter = (/* @__PURE__ */ new Date(`${t.from.value}T00:00:00Z`)).toISOString()), t.to.value) {
      const c = /* @__PURE__ */ new Date(`${t.to.value}T00:00:00Z`);
      c.setUTCDate(c.getUTCDate() + 1), r.occurredBefore = c.toISOString();
    }
    return Object.keys(r).length ? r : null;
  }
  async #h(t, r) {
    const s = await fetch(this.#f, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        accept: "application/graphql-response+json, application/json;q=0.9",
        authorization: `Bearer ${this.#s}`
      },
      body: JSON.stringify({ query: t, variables: r })
    }), n = await s.json().catch(() => ({ errors: [{ message: `HTTP ${s.status}` }] }));
    if (n.errors?.length) throw new Error(n.errors.map((c) => c.message).join("; "));
    return n.data;
  }
  /** Loads one page of the list or the search: forwards (first/after) or backwards (last/before). */
  async #n(t) {
    const r = ++this.#p;
    this.#t("loading", "loading…");
    const s = this.#r.query.value.trim();
    try {
      let n;
      if (s) {
        const d = (await this.#h(ge, { query: s, filter: this.#a(), ...t })).search;
        n = {
          events: d.hits.map((g) => g.event),
          startCursor: d.pageInfo.startCursor,
          endCursor: d.pageInfo.endCursor,
          hasNext: d.pageInfo.hasNextPage,
          hasPrevious: d.pageInfo.hasPreviousPage,
          total: `${d.total} match${d.total === 1 ? "" : "es"}`
        };
      } else {
        const d = (await this.#h(me, { filter: this.#a(), ...t })).auditEvents;
        n = {
          events: d.edges.map((g) => g.node),
          startCursor: d.pageInfo.startCursor,
          endCursor: d.pageInfo.endCursor,
          hasNext: d.pageInfo.hasNextPage,
          hasPrevious: d.pageInfo.hasPreviousPage,
          total: `${d.totalCountIsEstimate ? "about " : ""}${d.totalCount} event${d.totalCount === 1 ? "" : "s"}`
        };
      }
      if (r !== this.#p) return;
      this.#e = n, this.#w(), this.#t("idle", "");
    } catch (n) {
      r === this.#p && this.#t("error", n.message);
    }
  }
  #y() {
    this.#e.hasNext && this.#n({ first: this.#i, after: this.#e.endCursor });
  }
  #b() {
    this.#e.hasPrevious && this.#n({ last: this.#i, before: this.#e.startCursor });
  }
  #w() {
    const t = this.#r;
    t.total.textContent = this.#e.total ?? "", t.list.replaceChildren(...this.#e.events.map((r) => this.#m(r))), this.#e.events.length || t.list.append(i("li", { className: "empty", text: "No events." })), t.newer.disabled = !this.#e.hasPrevious, t.older.disabled = !this.#e.hasNext;
  }
  #m(t) {
    const r = i("time", { dateTime: t.occurredAt, text: new Date(t.occurredAt).toLocaleString() }), s = i("button", { type: "button", className: "row", "aria-label": `Details of ${t.action} at ${t.occurredAt}` }, [
      r,
      i("span", { className: "text", text: Y(t.displayText) }),
      i("span", { className: `outcome ${t.outcome.toLowerCase()}`, text: t.outcome.toLowerCase() })
    ]);
    return s.addEventListener("click", () => this.#x(t)), i("li", { "data-id": t.id, "data-action": t.action }, [s]);
  }
  #x(t) {
    const r = this.#r, s = [
      ["Event", t.id],
      ["When", t.occurredAt],
      ["Action", t.action],
      ["Outcome", t.outcome],
      ["Severity", t.severity],
      ["Service", t.service],
      ["CRUD", t.crud],
      ["Actor", [t.actor.name, t.actor.id, t.actor.type].filter(Boolean).join(" · ")],
      ["Actor IP", t.actor.ip],
      ["Target", t.target && [t.target.name, t.target.id, t.target.type].filter(Boolean).join(" · ")],
      ["Group", t.group && (t.group.name ?? t.group.id)],
      ["Message", t.message],
      ["Request", t.requestId],
      ["Trace", t.traceId]
    ].filter(([, b]) => b != null && b !== ""), n = i("dl", {}, s.flatMap(([b, $]) => [i("dt", { text: b }), i("dd", { text: String($) })])), c = [
      ["Open actor", t.actor.href],
      ["Open target", t.target?.href]
    ].filter(([, b]) => be(b)).map(([b, $]) => i("a", { href: $, text: b, target: "_blank", rel: "noopener noreferrer" })), d = t.metadata ? i("pre", { text: JSON.stringify(t.metadata, null, 2) }) : null, g = i("button", { type: "button", text: "Close", "aria-label": "Close the detail" });
    g.addEventListener("click", () => {
      r.detail.hidden = !0, r.list.querySelector(`[data-id="${CSS.escape(t.id)}"] button`)?.focus();
    }), r.detail.replaceChildren(i("h2", { text: Y(t.displayText) }), n, ...c, d ?? "", g), r.detail.hidden = !1, r.detail.focus();
  }
  async #v() {
    const t = new URLSearchParams({ format: "csv", spreadsheetSafe: "true" }), r = this.#a() ?? {};
    for (const [s, n] of Object.entries(r))
      for (const c of [].concat(n)) t.append(s, c);
    try {
      const s = await fetch(new URL(`/export?${t}`, this.#f), { headers: { authorization: `Bearer ${this.#s}` } });
      if (!s.ok) {
        const d = await s.json().catch(() => ({}));
        throw new Error(d.errors?.[0]?.message ?? `export refused (HTTP ${s.status})`);
      }
      const n = URL.createObjectURL(await s.blob()), c = i("a", { href: n, download: "audit-events.csv" });
      this.#l.append(c), c.click(), c.remove(), setTimeout(() => URL.revokeObjectURL(n), 1e4), this.#t("idle", "export downloaded");
    } catch (s) {
      this.#t("error", s.message);
    }
  }
  /** Live: the durable feed from the newest event shown (or "now"), new events on top. */
  #c(t) {
    const r = this.#r;
    if (!r.live) return;
    if (r.live.setAttribute("aria-pressed", String(t)), this.#u?.(), this.#u = null, this.#d?.dispose(), this.#d = null, !t) {
      r.live.dataset.state && this.#t("idle", ""), delete r.live.dataset.state;
      return;
    }
    const s = this.#e.hasPrevious ? null : this.#e.events[0];
    this.#o = new Set(this.#e.events.map((N) => N.id));
    const n = new URL(this.#f);
    n.protocol = n.protocol === "https:" ? "wss:" : "ws:";
    let c = !1, d = !1, g = 0;
    const b = ce({
      url: n.href,
      connectionParams: { apiKey: this.#s },
      // Keep trying while live is on: a refused connection is an error event, which graphql-ws
      // would otherwise not retry.
      retryAttempts: 1 / 0,
      shouldRetry: () => !0,
      retryWait: we,
      on: {
        connected: () => {
          c = !0, r.live.dataset.state = "live", this.#t("live", d ? "reconnected · catching up…" : "live");
        },
        closed: () => {
          c && (d = !0, g = 0, this.#t("connecting", "reconnecting…")), c = !1;
        }
      }
    });
    this.#d = b;
    const $ = { query: ye, variables: { filter: this.#a(), after: s?.streamCursor ?? "now" } };
    this.#u = b.subscribe($, {
      next: ({ data: N, errors: M }) => {
        if (M?.length) {
          this.#t("error", M.map((O) => O.message).join("; "));
          return;
        }
        const f = N?.eventRecorded;
        !f || this.#o.has(f.id) || (this.#o.add(f.id), this.#o.size > B * 10 && (this.#o = new Set([...this.#o].slice(-B))), $.variables.after = f.streamCursor, d && (g += 1, this.#t("live", `live · caught up (${g} missed event${g === 1 ? "" : "s"} loaded)`)), this.#S(f));
      },
      error: (N) => this.#t("error", N?.message ?? "live feed failed"),
      complete: () => {
      }
    });
  }
  #S(t) {
    const r = this.#r.list;
    for (r.querySelector(".empty")?.remove(), r.prepend(this.#m(t)); r.children.length > B; ) r.lastElementChild.remove();
  }
  #t(t, r) {
    this.#r.status.dataset.state = t, this.#r.status.textContent = r;
  }
}
customElements.get("traceledger-viewer") || customElements.define("traceledger-viewer", xe);
export {
  xe as TraceledgerViewer,
  Se as VERSION
};
