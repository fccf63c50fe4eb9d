// Anode's service worker: a reload with no network opens the page from cache.
//
// Served at the site's root as /sw.js (relay/static.py, `anode build-site`),
// so it controls the whole page. client/offline.py registers it once the
// page is up and posts {type: "keep", urls} with every URL the page loaded;
// the worker stores those of its own site. Requests are answered from the
// network first (a new version shows at once), from the cache when the
// network fails (relay or static host down, no network at all); what the
// network answered is stored once the page pauses its requests: so a wheel the
// tab kernel installed from the site's or relay's wheelhouse (wheels/) installs
// offline too. The relay's API (/api/) and other origins are never touched:
// the notebook itself lives in IndexedDB (client/store.py), not here.

// v2: keys hold no token (v1 kept the page under its ?token= address).
const CACHE = "anode-shell-v2";
// Kept by client/js/snapshot.js and client/tab_kernel.py (Pyodide memory snapshots), not here.
const OTHERS = ["anode-snapshot", "anode-tab-snapshot"];

self.addEventListener("install", () => self.skipWaiting());

self.addEventListener("activate", (event) => {
  event.waitUntil((async () => {
    for (const name of await caches.keys()) {
      if (name !== CACHE && !OTHERS.includes(name)) await caches.delete(name);
    }
    await self.clients.claim();
  })());
});

function keepable(url) {
  const scope = self.registration.scope;
  if (!url.startsWith(scope)) return false;
  const path = url.slice(scope.length);
  // snapshot/: the site's Pyodide snapshot, kept unpacked in anode-snapshot by the page.
  return !path.startsWith("api/") && !path.startsWith("snapshot/");
}

// What a response is kept under: never an address with a token in it. A
// page address (any ?notebook=…) is the one page, kept under its path.
function cacheKey(url, page) {
  const key = new URL(url);
  if (page) key.search = "";
  else key.searchParams.delete("token");
  return new Request(key.href);
}

function isPage(url) {
  const root = new URL(self.registration.scope).pathname;
  const path = new URL(url).pathname;
  return path === root || path === `${root}index.html`;
}

function sameVersion(a, b) {
  const headers = ["etag", "last-modified", "content-length"];
  return headers.every((name) => a.headers.get(name) === b.headers.get(name));
}

// Store a fresh response (a copy the caller does not read) unless the cache
// already holds this very version.
async function store(cache, key, response) {
  if (!response.ok || response.type !== "basic") return;
  const old = await cache.match(key);
  if (old && sameVersion(old, response)) return;
  await cache.put(key, response);
}

async function keep(urls) {
  const cache = await caches.open(CACHE);
  let kept = 0;
  for (const url of urls) {
    if (!keepable(url)) continue;
    try {
      const key = cacheKey(url, isPage(url));
      if (!(await cache.match(key))) await store(cache, key, await fetch(key));
      kept += 1;
    } catch (error) {
      // Gone since the page loaded it: the next load tries again.
    }
  }
  return kept;
}

self.addEventListener("message", (event) => {
  const data = event.data || {};
  if (data.type !== "keep") return;
  const port = event.ports[0];
  event.waitUntil(keep(JSON.parse(data.urls)).then(
    (kept) => port && port.postMessage(String(kept)),
    (error) => port && port.postMessage("failed: " + error),
  ));
});

self.addEventListener("fetch", (event) => {
  const request = event.request;
  if (request.method !== "GET" || !keepable(request.url)) return;
  const key = cacheKey(request.url, request.mode === "navigate");
  event.respondWith((async () => {
    try {
      const response = await fetch(request);
      event.waitUntil(storeSoon(key, response.clone()));
      return response;
    } catch (error) {
      const cached = await (await caches.open(CACHE)).match(key);
      if (cached) return cached;
      throw error;
    }
  })());
});

// Fresh responses are stored once the page has stopped asking for files for a moment, not
// while it loads: comparing and writing some sixty of them then cost a cached start 0.1 s.
const STORE_AFTER_MS = 1000;
const MAX_WAITING = 100;
const toStore = new Map();
let timer = null;
let stored = null; // settles once what is waiting now is stored
let settle = null;

function storeSoon(key, response) {
  toStore.set(key.url, [key, response]);
  if (!stored) stored = new Promise((resolve) => { settle = resolve; });
  clearTimeout(timer);
  // Past MAX_WAITING responses, they are stored at once rather than held in memory.
  timer = setTimeout(storeAll, toStore.size >= MAX_WAITING ? 0 : STORE_AFTER_MS);
  return stored;
}

async function storeAll() {
  const done = settle;
  stored = settle = timer = null;
  const batch = [...toStore.values()];
  toStore.clear();
  try {
    const cache = await caches.open(CACHE);
    for (const [key, response] of batch) {
      try {
        await store(cache, key, response);
      } catch (error) {
        // Gone or refused: the next load stores it.
      }
    }
  } finally {
    done();
  }
}
