// The embeddable viewer: one ES module with no chunks, served by the API at
// /viewer/v1/traceledger-viewer.js (src/http/viewer.rs) for host pages to load. Built after the
// pages (npm run build), into dist/viewer/.
import { resolve } from "node:path";
import { defineConfig } from "vite";

export default defineConfig({
  build: {
    outDir: "dist/viewer",
    emptyOutDir: true,
    lib: {
      entry: resolve(import.meta.dirname, "src/viewer/traceledger-viewer.js"),
      formats: ["es"],
      fileName: () => "traceledger-viewer.js",
    },
  },
});
