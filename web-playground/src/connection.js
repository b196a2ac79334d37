// What both pages share: the API key (kept in this browser only) and the API's addresses, which
// are always this page's own origin.

const KEY_STORAGE = "traceledger.apiKey";

export const graphqlUrl = `${location.origin}/graphql`;
export const websocketUrl = `${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}/graphql`;

/** Wires the header's API key field: restores the saved key and calls `onChange` with each new one. */
export function bindApiKeyField(input, onChange) {
  input.value = localStorage.getItem(KEY_STORAGE) ?? "";
  let current = input.value.trim();
  const commit = () => {
    const key = input.value.trim();
    if (key === current) return;
    current = key;
    localStorage.setItem(KEY_STORAGE, key);
    onChange(key);
  };
  input.addEventListener("change", commit);
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter") commit();
  });
  // A pasted key is whole: apply it at once (the field holds it only after the event).
  input.addEventListener("paste", () => setTimeout(commit));
  return current;
}

/** `{"apiKey": key}` is what the server reads from `connection_init`. */
export function connectionParams(key) {
  return { apiKey: key };
}
