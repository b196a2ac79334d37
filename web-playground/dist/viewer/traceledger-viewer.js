function v(e) {
  return e === null ? "null" : Array.isArray(e) ? "array" : typeof e;
}
function P(e) {
  return v(e) === "object";
}
function se(e) {
  return Array.isArray(e) && // must be at least one error
  e.length > 0 && // error has at least a message
  e.every((t) => "message" in t);
}
function X(e, t) {
  return e.length < 124 ? e : t;
}
const ae = "graphql-transport-ws";
var S = /* @__PURE__ */ ((e) => (e[e.InternalServerError = 4500] = "InternalServerError", e[e.InternalClientError = 4005] = "InternalClientError", e[e.BadRequest = 4400] = "BadRequest", e[e.BadResponse = 4004] = "BadResponse", e[e.Unauthorized = 4401] = "Unauthorized", e[e.Forbidden = 4403] = "Forbidden", e[e.SubprotocolNotAcceptable = 4406] = "SubprotocolNotAcceptable", e[e.ConnectionInitialisationTimeout = 4408] = "ConnectionInitialisationTimeout", e[e.ConnectionAcknowledgementTimeout = 4504] = "ConnectionAcknowledgementTimeout", e[e.SubscriberAlreadyExists = 4409] = "SubscriberAlreadyExists", e[e.TooManyInitialisationRequests = 4429] = "TooManyInitialisationRequests", e))(S || {}), E = /* @__PURE__ */ ((e) => (e.ConnectionInit = "connection_init", e.ConnectionAck = "connection_ack", e.Ping = "ping", e.Pong = "pong", e.Subscribe = "subscribe", e.Next = "next", e.Error = "error", e.Complete = "complete", e))(E || {});
function te(e) {
  if (!P(e))
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
      if (e.payload != null && !P(e.payload))
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
      if (!P(e.payload))
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
      if (e.payload.variables != null && !P(e.payload.variables))
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
      if (e.payload.extensions != null && !P(e.payload.extensions))
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
      if (!P(e.payload))
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
      if (!se(e.payload))
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
function ce(e, t) {
  return te(
    typeof e == "string" ? JSON.parse(e, t) : e
  );
}
function W(e, t) {
  return te(e), JSON.stringify(e, t);
}
function le(e) {
  const {
    url: t,
    connectionParams: r,
    lazy: n = !0,
    onNonLazyError: s = console.error,
    lazyCloseTimeout: a = 0,
    keepAlive: y = 0,
    disablePong: b,
    connectionAckWaitTimeout: m = 0,
    retryAttempts: $ = 5,
    retryWait: A = async function(u) {
      const o = Math.pow(2, u);
      await new Promise(
        (d) => setTimeout(
          d,
          o * 1e3 + // add random timeout from 300ms to 3s
          Math.floor(Math.random() * 2700 + 300)
        )
      );
    },
    shouldRetry: M = D,
    on: p,
    webSocketImpl: O,
    /**
     * Generates a v4 UUID to be used as the ID using `Math`
     * as the random number generator. Supply your own generator
     * in case you need more uniqueness.
     *
     * Reference: https://gist.github.com/jed/982883
     */
    generateID: oe = function() {
      return "xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx".replace(/[xy]/g, (u) => {
        const o = Math.random() * 16 | 0;
        return (u == "x" ? o : o & 3 | 8).toString(16);
      });
    },
    jsonMessageReplacer: j,
    jsonMessageReviver: ie
  } = e;
  let C;
  if (O) {
    if (!ue(O))
      throw new Error("Invalid WebSocket implementation provided");
    C = O;
  } else typeof WebSocket < "u" ? C = WebSocket : typeof global < "u" ? C = global.WebSocket || // @ts-expect-error: Support more browsers
  global.MozWebSocket : typeof window < "u" && (C = window.WebSocket || // @ts-expect-error: Support more browsers
  window.MozWebSocket);
  if (!C)
    throw new Error(
      "WebSocket implementation missing; on Node you can `import WebSocket from 'ws';` and pass `webSocketImpl: WebSocket` to `createClient`"
    );
  const I = C, w = (() => {
    const c = /* @__PURE__ */ (() => {
      const o = {};
      return {
        on(d, f) {
          return o[d] = f, () => {
            delete o[d];
          };
        },
        emit(d) {
          "id" in d && o[d.id]?.(d);
        }
      };
    })(), u = {
      connecting: p?.connecting ? [p.connecting] : [],
      opened: p?.opened ? [p.opened] : [],
      connected: p?.connected ? [p.connected] : [],
      ping: p?.ping ? [p.ping] : [],
      pong: p?.pong ? [p.pong] : [],
      message: p?.message ? [c.emit, p.message] : [c.emit],
      closed: p?.closed ? [p.closed] : [],
      error: p?.error ? [p.error] : []
    };
    return {
      onMessage: c.on,
      on(o, d) {
        const f = u[o];
        return f.push(d), () => {
          const h = f.indexOf(d);
          h > -1 && f.splice(h, 1);
        };
      },
      emit(o, ...d) {
        for (const f of [...u[o]])
          f(...d);
      }
    };
  })();
  function _(c) {
    const u = [
      // errors are fatal and more critical than close events, throw them first
      w.on("error", (o) => {
        u.forEach((d) => d()), c(o);
      }),
      // closes can be graceful and not fatal, throw them second (if error didnt throw)
      w.on("closed", (o) => {
        u.forEach((d) => d()), c(o);
      })
    ];
    return () => u.forEach((o) => o());
  }
  let T, N = 0, F, q = !1, z = 0, V = !1;
  async function H() {
    clearTimeout(F);
    const [c, u] = await (T ?? (T = new Promise(
      (f, h) => (async () => {
        if (q) {
          if (await A(z), !N)
            return T = void 0, h({ code: 1e3, reason: "All Subscriptions Gone" });
          z++;
        }
        w.emit("connecting", q);
        const l = new I(
          typeof t == "function" ? await t() : t,
          ae
        );
        let k, L;
        function U() {
          isFinite(y) && y > 0 && (clearTimeout(L), L = setTimeout(() => {
            l.readyState === I.OPEN && (l.send(W({ type: E.Ping })), w.emit("ping", !1, void 0));
          }, y));
        }
        _((x) => {
          T = void 0, clearTimeout(k), clearTimeout(L), h(x), x instanceof K && (l.close(4499, "Terminated"), l.onerror = null, l.onclose = null);
        }), l.onerror = (x) => w.emit("error", x), l.onclose = (x) => w.emit("closed", x), l.onopen = async () => {
          try {
            w.emit("opened", l);
            const x = typeof r == "function" ? await r() : r;
            if (l.readyState !== I.OPEN) return;
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
            ), isFinite(m) && m > 0 && (k = setTimeout(() => {
              l.close(
                S.ConnectionAcknowledgementTimeout,
                "Connection acknowledgement timeout"
              );
            }, m)), U();
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
            const g = ce(x, ie);
            if (w.emit("message", g), g.type === "ping" || g.type === "pong") {
              w.emit(g.type, !0, g.payload), g.type === "pong" ? U() : b || (l.send(
                W(
                  g.payload ? {
                    type: E.Pong,
                    payload: g.payload
                  } : {
                    type: E.Pong
                    // payload is completely absent if not provided
                  },
                  j
                )
              ), w.emit("pong", !1, g.payload));
              return;
            }
            if (R) return;
            if (g.type !== E.ConnectionAck)
              throw new Error(
                `First message cannot be of type ${g.type}`
              );
            clearTimeout(k), R = !0, w.emit("connected", l, g.payload, q), q = !1, z = 0;
            const Q = new Promise(
              (Se, ne) => _(ne)
            );
            Q.catch(() => {
            }), f([l, Q]);
          } catch (g) {
            l.onmessage = null, w.emit("error", g), l.close(
              S.BadResponse,
              X(
                g instanceof Error ? g.message : String(g),
                "Bad response"
              )
            );
          }
        };
      })()
    )));
    c.readyState === I.CLOSING && await u;
    let o = () => {
    };
    const d = new Promise((f) => o = f);
    return [
      c,
      o,
      // resolves on release or rejects on error/close, whichever comes first.
      // not racing with throwOnClose on purpose, it lives as long as the socket
      // and every race would leak memory per operation
      new Promise((f, h) => {
        const l = _(h);
        c.readyState !== I.OPEN && u.catch(h), d.then(() => {
          if (l(), !N) {
            const k = () => c.close(1e3, "Normal Closure");
            isFinite(a) && a > 0 ? (clearTimeout(F), F = setTimeout(() => {
              !N && c.readyState === I.OPEN && k();
            }, a)) : k();
          }
          f();
        });
      })
    ];
  }
  function J(c) {
    if (D(c) && (de(c.code) || [
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
    ].includes(c.code)))
      throw c;
    if (V) return !1;
    if (D(c) && c.code === 1e3)
      return N > 0;
    if (!$ || z >= $ || !M(c)) throw c;
    return q = !0;
  }
  n || (async () => {
    for (N++; ; )
      try {
        const [, , c] = await H();
        await c;
      } catch (c) {
        try {
          if (!J(c)) return;
        } catch (u) {
          return s?.(u);
        }
      }
  })();
  function Z(c, u) {
    const o = oe(c);
    let d = !1, f = !1, h = () => {
      N--, d = !0;
    };
    return (async () => {
      for (N++; ; )
        try {
          const [l, k, L] = await H();
          if (d)
            return L.catch(() => {
            }), k();
          const U = w.onMessage(o, (R) => {
            switch (R.type) {
              case E.Next: {
                u.next(R.payload);
                return;
              }
              case E.Error: {
                f = !0, d = !0, u.error(R.payload), h();
                return;
              }
              case E.Complete: {
                d = !0, h();
                return;
              }
            }
          });
          l.send(
            W(
              {
                id: o,
                type: E.Subscribe,
                payload: c
              },
              j
            )
          ), h = () => {
            !d && l.readyState === I.OPEN && l.send(
              W(
                {
                  id: o,
                  type: E.Complete
                },
                j
              )
            ), N--, d = !0, k();
          }, await L.finally(U);
          return;
        } catch (l) {
          if (!J(l)) return;
        }
    })().then(() => {
      f || u.complete();
    }).catch((l) => {
      u.error(l);
    }), () => {
      d || h();
    };
  }
  return {
    on: w.on,
    subscribe: Z,
    iterate(c) {
      const u = [], o = {
        done: !1,
        error: null,
        resolve: () => {
        }
      }, d = Z(c, {
        next(h) {
          u.push(h), o.resolve();
        },
        error(h) {
          o.done = !0, o.error = h, o.resolve();
        },
        complete() {
          o.done = !0, o.resolve();
        }
      }), f = (async function* () {
        for (; ; ) {
          for (u.length || await new Promise((l) => o.resolve = l); u.length; )
            yield u.shift();
          if (o.error)
            throw o.error;
          if (o.done)
            return;
        }
      })();
      return f.throw = async (h) => (o.done || (o.done = !0, o.error = h, o.resolve()), { done: !0, value: void 0 }), f.return = async () => (d(), { done: !0, value: void 0 }), f;
    },
    async dispose() {
      if (V = !0, T) {
        const [c] = await T;
        c.close(1e3, "Normal Closure");
      }
    },
    terminate() {
      T && w.emit("closed", new K());
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
  return P(e) && "code" in e && "reason" in e;
}
function de(e) {
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
function ue(e) {
  return typeof e == "function" && "constructor" in e && "CLOSED" in e && "CLOSING" in e && "CONNECTING" in e && "OPEN" in e;
}
const pe = ':host{--tlv-font: system-ui, -apple-system, "Segoe UI", sans-serif;--tlv-text: #1d2330;--tlv-muted: #5d6678;--tlv-background: #ffffff;--tlv-surface: #f4f6fa;--tlv-border: #d6dbe5;--tlv-accent: #2f5bd3;--tlv-failure: #b42318;--tlv-success: #1a7f37;--tlv-radius: 6px;display:block;font:14px/1.4 var(--tlv-font);color:var(--tlv-text);background:var(--tlv-background);container-type:inline-size}*{box-sizing:border-box}.viewer{display:grid;gap:12px;padding:12px;min-width:0}.filters{display:grid;grid-template-columns:repeat(auto-fill,minmax(140px,1fr));gap:8px;align-items:end}.field{display:grid;gap:2px;min-width:0}.field:first-child{grid-column:1 / -1}label{font-size:12px;color:var(--tlv-muted)}input,select,button{font:inherit;color:inherit;min-width:0}input,select{width:100%;padding:6px 8px;border:1px solid var(--tlv-border);border-radius:var(--tlv-radius);background:var(--tlv-background)}button{padding:6px 12px;border:1px solid var(--tlv-border);border-radius:var(--tlv-radius);background:var(--tlv-surface);cursor:pointer}button.primary,button[aria-pressed=true]{background:var(--tlv-accent);border-color:var(--tlv-accent);color:#fff}button:disabled{opacity:.5;cursor:default}:focus-visible{outline:2px solid var(--tlv-accent);outline-offset:2px}.toolbar{display:flex;flex-wrap:wrap;gap:8px;align-items:center}.total{font-weight:600}.status{flex:1;color:var(--tlv-muted);min-width:8em}.status[data-state=error]{color:var(--tlv-failure)}.events{list-style:none;margin:0;padding:0;border:1px solid var(--tlv-border);border-radius:var(--tlv-radius)}.events li+li{border-top:1px solid var(--tlv-border)}.events .empty{padding:12px;color:var(--tlv-muted)}.row{display:grid;grid-template-columns:11em 1fr auto;gap:8px;width:100%;text-align:left;border:0;border-radius:0;background:transparent;padding:8px 10px}.row:hover{background:var(--tlv-surface)}.row time{color:var(--tlv-muted);font-variant-numeric:tabular-nums}.row .text{overflow-wrap:anywhere}.outcome.failure{color:var(--tlv-failure)}.outcome.success{color:var(--tlv-success)}.pager{display:flex;justify-content:space-between}.detail{border:1px solid var(--tlv-border);border-radius:var(--tlv-radius);padding:12px;background:var(--tlv-surface);display:grid;gap:8px}.detail[hidden]{display:none}.detail h2{font-size:16px;margin:0;overflow-wrap:anywhere}.detail dl{display:grid;grid-template-columns:max-content 1fr;gap:4px 12px;margin:0}.detail dt{color:var(--tlv-muted)}.detail dd{margin:0;overflow-wrap:anywhere}.detail pre{margin:0;padding:8px;background:var(--tlv-background);border-radius:var(--tlv-radius);overflow:auto;max-height:240px}.detail a{color:var(--tlv-accent)}@container (max-width: 520px){.row{grid-template-columns:1fr auto}.row time{grid-column:1 / -1;font-size:12px}.detail dl{grid-template-columns:1fr}}', Ee = "1", fe = 25, he = 100, me = 15e3, B = 200, G = `id occurredAt action outcome severity service displayText crud
  actor { id type name ip href } target { id type name href } group { id name }
  message metadata requestId traceId streamCursor`, ge = `query ViewerList($filter: AuditEventFilter, $first: Int = 25, $after: String, $last: Int, $before: String) {
  auditEvents(filter: $filter, first: $first, after: $after, last: $last, before: $before) {
    totalCount totalCountIsEstimate
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    edges { node { ${G} } }
  }
}`, ye = `query ViewerSearch($query: String!, $filter: AuditEventFilter, $first: Int = 25, $after: String, $last: Int, $before: String) {
  search(query: $query, filter: $filter, first: $first, after: $after, last: $last, before: $before) {
    totalCount totalCountIsEstimate pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    hits { cursor event { ${G} } }
  }
}`, be = `subscription ViewerLive($filter: AuditEventFilter, $after: String) {
  eventRecorded(filter: $filter, after: $after) { ${G} }
}`, re = new CSSStyleSheet();
re.replaceSync(pe);
function Y(e) {
  return e.replace(/&(amp|lt|gt|quot|#39);/g, (t, r) => ({ amp: "&", lt: "<", gt: ">", quot: '"', "#39": "'" })[r]);
}
function we(e) {
  return typeof e == "string" && (/^https?:\/\//i.test(e) || e.startsWith("/") && !e.startsWith("//") && !e.startsWith("/\\"));
}
function i(e, t = {}, r = []) {
  const n = document.createElement(e);
  for (const [s, a] of Object.entries(t))
    s === "text" ? n.textContent = a : s.startsWith("aria-") || s === "role" || s.startsWith("data-") || s === "for" ? n.setAttribute(s, a) : n[s] = a;
  for (const s of [].concat(r)) s && n.append(s);
  return n;
}
function ee(e, t, r, [n, s]) {
  const { pageInfo: a, totalCount: y, totalCountIsEstimate: b } = e;
  return {
    events: e[t].map((m) => m[r]),
    startCursor: a.startCursor,
    endCursor: a.endCursor,
    hasNext: a.hasNextPage,
    hasPrevious: a.hasPreviousPage,
    total: `${b ? "about " : ""}${y} ${y === 1 ? n : s}`
  };
}
function xe(e) {
  const t = Math.min(1e3 * 2 ** e, me) + Math.random() * 500;
  return new Promise((r) => setTimeout(r, t));
}
class ve extends HTMLElement {
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
    if (this.#l.adoptedStyleSheets = [re], this.#r.list || this.#g(), !this.getAttribute("token") && this.getAttribute("token-from") === "fragment") {
      const t = new URLSearchParams(location.hash.slice(1)).get("token");
      t && this.setAttribute("token", t);
    }
    this.#s ? this.#n({ first: this.#i }) : this.#t("error", "no viewer token");
  }
  disconnectedCallback() {
    this.#c(!1);
  }
  attributeChangedCallback(t, r, n) {
    r === n || !this.isConnected || !this.#r.list || (this.#c(!1), this.#n({ first: this.#i }));
  }
  get #s() {
    return (this.getAttribute("token") ?? "").trim();
  }
  get #i() {
    const t = Number.parseInt(this.getAttribute("page-size") ?? "", 10);
    return Number.isFinite(t) && t > 0 ? Math.min(t, he) : fe;
  }
  get #f() {
    return this.getAttribute("endpoint") || new URL(
      /* @vite-ignore */
      "/graphql",
      import.meta.url
    ).href;
  }
  #g() {
    const t = this.#r, r = (a, y, b) => (b.id = `tlv-${a}`, b.name = a, i("div", { className: "field" }, [i("label", { for: b.id, text: y }), b]));
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
    ]), t.form.addEventListener("submit", (a) => {
      a.preventDefault(), this.#c(!1), this.#n({ first: this.#i });
    }), t.total = i("span", { className: "total", role: "status", "aria-live": "polite" }), t.status = i("span", { className: "status", role: "status", "aria-live": "polite" }), t.live = i("button", { type: "button", text: "Live", className: "live", "aria-pressed": "false" }), t.live.addEventListener("click", () => this.#c(t.live.getAttribute("aria-pressed") !== "true")), t.export = i("button", { type: "button", text: "Export CSV" }), t.export.addEventListener("click", () => this.#v());
    const n = i("div", { className: "toolbar" }, [t.total, t.status, t.live, t.export]);
    t.list = i("ol", { className: "events", "aria-label": "Audit events, newest first" }), t.newer = i("button", { type: "button", text: "← Newer" }), t.older = i("button", { type: "button", text: "Older →" }), t.newer.addEventListener("click", () => this.#b()), t.older.addEventListener("click", () => this.#y());
    const s = i("nav", { className: "pager", "aria-label": "Pages" }, [t.newer, t.older]);
    t.detail = i("section", { className: "detail", hidden: !0, role: "region", "aria-label": "Event detail", tabIndex: -1 }), this.#l.append(i("div", { className: "viewer", part: "viewer" }, [t.form, n, t.list, s, t.detail]));
  }
  /** The filters as an AuditEventFilter. */
  #a() {
    const t = this.#r, r = {}, n = t.actor.value.trim();
    n && (r.actorIds = [n]);
    const s = t.action.value.trim();
    if (s && (r.actions = [s]), t.outcome.value && (r.outcomes = [t.outcome.value]), t.from.value && (r.occurredAfter = (/* @__PURE__ */ new Date(`${t.from.value}T00:00:00Z`)).toISOString()), t.to.value) {
      const a = /* @__PURE__ */ new Date(`${t.to.value}T00:00:00Z`);
      a.setUTCDate(a.getUTCDate() + 1), r.occurredBefore = a.toISOString();
    }
    return Object.keys(r).length ? r : null;
  }
  async #h(t, r) {
    const n = await fetch(this.#f, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        accept: "application/graphql-response+json, application/json;q=0.9",
        authorization: `Bearer ${this.#s}`
      },
      body: JSON.stringify({ query: t, variables: r })
    }), s = await n.json().catch(() => ({ errors: [{ message: `HTTP ${n.status}` }] }));
    if (s.errors?.length) throw new Error(s.errors.map((a) => a.message).join("; "));
    return s.data;
  }
  /** Loads one page of the list or the search: forwards (first/after) or backwards (last/before). */
  async #n(t) {
    const r = ++this.#p;
    this.#t("loading", "loading…");
    const n = this.#r.query.value.trim();
    try {
      const s = n ? ee((await this.#h(ye, { query: n, filter: this.#a(), ...t })).search, "hits", "event", ["match", "matches"]) : ee((await this.#h(ge, { filter: this.#a(), ...t })).auditEvents, "edges", "node", ["event", "events"]);
      if (r !== this.#p) return;
      this.#e = s, this.#w(), this.#t("idle", "");
    } catch (s) {
      r === this.#p && this.#t("error", s.message);
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
    const r = i("time", { dateTime: t.occurredAt, text: new Date(t.occurredAt).toLocaleString() }), n = i("button", { type: "button", className: "row", "aria-label": `Details of ${t.action} at ${t.occurredAt}` }, [
      r,
      i("span", { className: "text", text: Y(t.displayText) }),
      i("span", { className: `outcome ${t.outcome.toLowerCase()}`, text: t.outcome.toLowerCase() })
    ]);
    return n.addEventListener("click", () => this.#x(t)), i("li", { "data-id": t.id, "data-action": t.action }, [n]);
  }
  #x(t) {
    const r = this.#r, n = [
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
    ].filter(([, m]) => m != null && m !== ""), s = i("dl", {}, n.flatMap(([m, $]) => [i("dt", { text: m }), i("dd", { text: String($) })])), a = [
      ["Open actor", t.actor.href],
      ["Open target", t.target?.href]
    ].filter(([, m]) => we(m)).map(([m, $]) => i("a", { href: $, text: m, target: "_blank", rel: "noopener noreferrer" })), y = t.metadata ? i("pre", { text: JSON.stringify(t.metadata, null, 2) }) : null, b = i("button", { type: "button", text: "Close", "aria-label": "Close the detail" });
    b.addEventListener("click", () => {
      r.detail.hidden = !0, r.list.querySelector(`[data-id="${CSS.escape(t.id)}"] button`)?.focus();
    }), r.detail.replaceChildren(i("h2", { text: Y(t.displayText) }), s, ...a, y ?? "", b), r.detail.hidden = !1, r.detail.focus();
  }
  async #v() {
    const t = new URLSearchParams({ format: "csv", spreadsheetSafe: "true" }), r = this.#a() ?? {};
    for (const [n, s] of Object.entries(r))
      for (const a of [].concat(s)) t.append(n, a);
    try {
      const n = await fetch(new URL(`/export?${t}`, this.#f), { headers: { authorization: `Bearer ${this.#s}` } });
      if (!n.ok) {
        const y = await n.json().catch(() => ({}));
        throw new Error(y.errors?.[0]?.message ?? `export refused (HTTP ${n.status})`);
      }
      const s = URL.createObjectURL(await n.blob()), a = i("a", { href: s, download: "audit-events.csv" });
      this.#l.append(a), a.click(), a.remove(), setTimeout(() => URL.revokeObjectURL(s), 1e4), this.#t("idle", "export downloaded");
    } catch (n) {
      this.#t("error", n.message);
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
    const n = this.#e.hasPrevious ? null : this.#e.events[0];
    this.#o = new Set(this.#e.events.map((A) => A.id));
    const s = new URL(this.#f);
    s.protocol = s.protocol === "https:" ? "wss:" : "ws:";
    let a = !1, y = !1, b = 0;
    const m = le({
      url: s.href,
      connectionParams: { apiKey: this.#s },
      // Keep trying while live is on: a refused connection is an error event, which graphql-ws
      // would otherwise not retry.
      retryAttempts: 1 / 0,
      shouldRetry: () => !0,
      retryWait: xe,
      on: {
        connected: () => {
          a = !0, r.live.dataset.state = "live", this.#t("live", y ? "reconnected · catching up…" : "live");
        },
        closed: () => {
          a && (y = !0, b = 0, this.#t("connecting", "reconnecting…")), a = !1;
        }
      }
    });
    this.#d = m;
    const $ = { query: be, variables: { filter: this.#a(), after: n?.streamCursor ?? "now" } };
    this.#u = m.subscribe($, {
      next: ({ data: A, errors: M }) => {
        if (M?.length) {
          this.#t("error", M.map((O) => O.message).join("; "));
          return;
        }
        const p = A?.eventRecorded;
        !p || this.#o.has(p.id) || (this.#o.add(p.id), this.#o.size > B * 10 && (this.#o = new Set([...this.#o].slice(-B))), $.variables.after = p.streamCursor, y && (b += 1, this.#t("live", `live · caught up (${b} missed event${b === 1 ? "" : "s"} loaded)`)), this.#S(p));
      },
      error: (A) => this.#t("error", A?.message ?? "live feed failed"),
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
customElements.get("traceledger-viewer") || customElements.define("traceledger-viewer", ve);
export {
  ve as TraceledgerViewer,
  Ee as VERSION
};
