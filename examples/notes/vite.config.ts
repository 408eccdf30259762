import { resolve } from "node:path";
import { defineConfig } from "vite";

// Two pages: the app, and the read-only viewer of shared links. `manifest` lists which files
// each page loads (the package test checks the viewer never loads OPAQUE).
export default defineConfig({
  build: {
    target: "es2022",
    manifest: true,
    rollupOptions: { input: { main: resolve(import.meta.dirname, "index.html"), viewer: resolve(import.meta.dirname, "viewer.html") } },
  },
  // `npm run dev` proxies the API to a node on 8080 (`blindstore serve`).
  server: { proxy: { "/v1": "http://127.0.0.1:8080" } },
});
