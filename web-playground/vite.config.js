// Two pages, built into dist/ and embedded in the traceledger binary (src/http/playground.rs).
// The API serves the pages at /graphql and /dashboard and the assets under /playground/assets/.
import { resolve } from "node:path";
import { defineConfig } from "vite";

export default defineConfig({
  base: "/playground/",
  build: {
    outDir: "dist",
    emptyOutDir: true,
    // GraphiQL with React and CodeMirror is one large chunk by nature; it is served locally.
    chunkSizeWarningLimit: 2048,
    rollupOptions: {
      // React libraries mark modules "use client" for server frameworks; a browser bundle ignores it.
      onwarn(warning, warn) {
        if (warning.code !== "MODULE_LEVEL_DIRECTIVE") warn(warning);
      },
      input: {
        graphiql: resolve(import.meta.dirname, "graphiql.html"),
        dashboard: resolve(import.meta.dirname, "dashboard.html"),
      },
    },
  },
});
