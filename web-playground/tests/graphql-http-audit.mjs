// graphql-http's auditServer, the reference audit of the GraphQL-over-HTTP spec, against a running
// traceledger: node graphql-http-audit.mjs <graphql url> <api key>. Prints every audit; fails on
// any that is not ok (warnings included).
import { auditServer } from "graphql-http";

const [url, key] = process.argv.slice(2);
if (!url || !key) {
  console.error("usage: graphql-http-audit.mjs <graphql url> <api key>");
  process.exit(2);
}

// The audit sends no credentials of its own: every request gets the key.
const fetchFn = (input, init = {}) =>
  fetch(input, { ...init, headers: { ...(init.headers ?? {}), authorization: `Bearer ${key}` } });

const results = await auditServer({ url, fetchFn });
const failed = results.filter((r) => r.status !== "ok");
for (const result of results) {
  const reason = result.status === "ok" ? "" : ` -- ${result.reason}`;
  console.log(`${result.status.padEnd(5)} ${result.id} ${result.name}${reason}`);
}
console.log(`${results.length - failed.length} ok, ${failed.length} not ok`);
process.exit(failed.length === 0 ? 0 : 1);
