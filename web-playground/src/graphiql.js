// GraphiQL for traceledger: queries and mutations over HTTP with `Authorization: Bearer <key>`,
// subscriptions over graphql-ws with the key in `connection_init`.
import { createGraphiQLFetcher } from "@graphiql/toolkit";
import { GraphiQL } from "graphiql";
import { createClient } from "graphql-ws";
import { createElement } from "react";
import { createRoot } from "react-dom/client";

import "graphiql/style.css";
import "./shell.css";
import "./graphiql.css";
import { bindApiKeyField, connectionParams, graphqlUrl, websocketUrl } from "./connection.js";

const EXAMPLE = `# Paste your API key above, then run an operation (Ctrl+Enter).
# Open a second tab and watch events arrive live:
#   subscription { eventRecorded { id action service outcome actor { id } } }

mutation Record {
  recordEvent(input: {
    action: "user.login"
    service: "playground"
    actor: { id: "alice" }
    message: "hello from GraphiQL"
  }) { id status receivedAt }
}

query Recent {
  auditEvents(first: 10) {
    edges { node { id occurredAt action outcome severity service actor { id } message } }
    pageInfo { hasNextPage endCursor }
  }
}
`;

/** Without a key every request would be refused; say so instead of asking the server. */
const keylessFetcher = async () => ({
  errors: [{ message: "Enter your API key in the field above (traceledger keys create …)." }],
});

const root = createRoot(document.getElementById("graphiql"));
let wsClient = null;

function render(key) {
  wsClient?.dispose();
  wsClient = null;
  let fetcher = keylessFetcher;
  if (key) {
    // Lazy: the websocket opens with the first subscription and closes after the last one.
    wsClient = createClient({ url: websocketUrl, connectionParams: connectionParams(key) });
    fetcher = createGraphiQLFetcher({
      url: graphqlUrl,
      headers: { Authorization: `Bearer ${key}` },
      wsClient,
    });
  }
  root.render(
    createElement(
      GraphiQL,
      {
        fetcher,
        // Without a key, skip introspection rather than show its refusal.
        schema: key ? undefined : null,
        defaultQuery: EXAMPLE,
        defaultEditorToolsVisibility: "variables",
      },
      createElement(GraphiQL.Logo, null, "traceledger"),
    ),
  );
}

render(bindApiKeyField(document.getElementById("api-key"), render));
