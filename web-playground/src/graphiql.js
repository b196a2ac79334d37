// GraphiQL for traceledger: queries and mutations over HTTP with `Authorization: Bearer <key>`,
// subscriptions over graphql-ws with the key in `connection_init`.
import { createGraphiQLFetcher } from "@graphiql/toolkit";
import { GraphiQL } from "graphiql";
import { parse } from "graphql";
import { createClient } from "graphql-ws";
import { createElement } from "react";
import { createRoot } from "react-dom/client";

import "graphiql/style.css";
import "./shell.css";
import "./graphiql.css";
import { bindApiKeyField, connectionParams, graphqlUrl, websocketUrl } from "./connection.js";

const EXAMPLE = `# Paste your API key above, then run an operation (Ctrl+Enter).
# The "Durable feed" tab follows events live without missing any.

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

const DURABLE = `# A durable feed: every stored event from the beginning in ledger order, then each
# new one as it is committed. Stop it, then run it again with "after" set to the last
# streamCursor shown: it continues exactly after that event, with nothing missed or repeated.
subscription DurableFeed($after: String = "beginning") {
  eventRecorded(after: $after) {
    ledger { index }
    streamCursor
    id receivedAt action service outcome actor { id } message
  }
}
`;

/** Without a key every request would be refused; say so instead of asking the server. */
const keylessFetcher = async () => ({
  errors: [{ message: "Enter your API key in the field above (traceledger keys create …)." }],
});

/** After a switch of tabs GraphiQL can send the operation name of the tab shown before, which
 * the server rightly refuses ("Unknown operation named …") and which makes the fetcher send a
 * subscription over HTTP: a name the document does not define gives way to the document's one
 * operation. */
function ownOperationName(fetcher) {
  return (params, options) => {
    const document = parsed(params.query);
    if (!document) return fetcher(params, options);
    const operations = document.definitions.filter((d) => d.kind === "OperationDefinition").map((d) => d.name?.value);
    const { operationName } = params;
    if (operationName && !operations.includes(operationName) && operations.length === 1) {
      // The document GraphiQL hands over can be the old tab's too: the fetcher picks the
      // transport (websocket for a subscription) from it.
      return fetcher({ ...params, operationName: operations[0] }, { ...options, documentAST: document });
    }
    return fetcher(params, options);
  };
}

/** The document, or null when it does not parse: then the server says what is wrong with it. */
function parsed(query) {
  try {
    return query ? parse(query) : null;
  } catch {
    return null;
  }
}

const root = createRoot(document.getElementById("graphiql"));
let wsClient = null;

function render(key) {
  wsClient?.dispose();
  wsClient = null;
  let fetcher = keylessFetcher;
  if (key) {
    // Lazy: the websocket opens with the first subscription and closes after the last one.
    wsClient = createClient({ url: websocketUrl, connectionParams: connectionParams(key) });
    fetcher = ownOperationName(
      createGraphiQLFetcher({
        url: graphqlUrl,
        headers: { Authorization: `Bearer ${key}` },
        wsClient,
      }),
    );
  }
  root.render(
    createElement(
      GraphiQL,
      {
        fetcher,
        // Without a key, skip introspection rather than show its refusal.
        schema: key ? undefined : null,
        defaultTabs: [{ query: EXAMPLE }, { query: DURABLE, variables: '{ "after": "beginning" }' }],
        defaultEditorToolsVisibility: "variables",
      },
      createElement(GraphiQL.Logo, null, "traceledger"),
    ),
  );
}

render(bindApiKeyField(document.getElementById("api-key"), render));
