// Keeps the app's own files so that the page opens without a network. Network first (a new
// deploy shows at once), the kept copy when the network fails. API requests (/v1/...) are never
// touched: the SDK keeps what it verified, encrypted, in IndexedDB.
const CACHE = "budget-app-v2";
const SHELL = ["./", "index.html", "app.js", "style.css"];

// The SDK's modules the page loads first are listed by the build (sdk/shell.json).
async function install() {
  const sdk = await (await fetch("sdk/shell.json")).json();
  const cache = await caches.open(CACHE);
  await cache.addAll([...SHELL, ...sdk]);
}

self.addEventListener("install", (event) => {
  event.waitUntil(install().then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil(self.clients.claim());
});

self.addEventListener("fetch", (event) => {
  const url = new URL(event.request.url);
  if (event.request.method !== "GET" || url.origin !== location.origin || url.pathname.startsWith("/v1/")) return;
  event.respondWith(
    fetch(event.request)
      .then((answer) => {
        if (answer.ok) {
          const copy = answer.clone();
          void caches.open(CACHE).then((cache) => cache.put(event.request, copy));
        }
        return answer;
      })
      .catch(() => caches.match(event.request, { ignoreSearch: true }).then((kept) => kept ?? Response.error())),
  );
});
