// TIMPORA village page's service worker: keeps the page's own files on the phone, so the page
// opens without a connection. It keeps nothing else: reports and receipts are the page's, and
// the API is never answered from here.
"use strict";
const CACHE = "timpora-desa-1";
const FILES = ["/desa/", "/desa/app.js", "/desa/app.css", "/desa/manifest.webmanifest", "/desa/icon.svg"];

self.addEventListener("install", (e) => {
  // The API goes straight to the network, not through this worker (where the browser supports
  // routes): nothing about a report passes through here.
  if (e.addRoutes) e.addRoutes({ condition: { urlPattern: "/api/*" }, source: "network" }).catch(() => {});
  e.waitUntil(caches.open(CACHE).then((c) => c.addAll(FILES)).then(() => self.skipWaiting()));
});

self.addEventListener("activate", (e) => {
  e.waitUntil(caches.keys()
    .then((keys) => Promise.all(keys.filter((k) => k !== CACHE).map((k) => caches.delete(k))))
    .then(() => self.clients.claim()));
});

// The copy on the phone at once (one bar of signal makes the network slow), refreshed from the
// network behind it; the network when there is no copy yet.
self.addEventListener("fetch", (e) => {
  const url = new URL(e.request.url);
  if (e.request.method !== "GET" || url.origin !== self.location.origin || !FILES.includes(url.pathname)) return;
  e.respondWith(caches.open(CACHE).then(async (cache) => {
    const kept = await cache.match(url.pathname);
    const fresh = fetch(e.request).then((r) => {
      // A redirect (to log in) or an error is not the page: the kept copy stays.
      if (r.ok && !r.redirected) cache.put(url.pathname, r.clone());
      return r;
    });
    if (kept) {
      e.waitUntil(fresh.catch(() => {}));
      return kept;
    }
    return fresh;
  }));
});
