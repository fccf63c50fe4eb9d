// A worker that makes the Pyodide memory snapshot client/boot.js starts from.
//
// The page starts it once it is ready, when it started without a snapshot:
// it loads Pyodide, writes the client's Python and imports it, snapshots
// the memory and keeps it in Cache Storage (client/startup.js has the key).
// The next start restores that memory instead of running CPython's
// start-up and the imports again. Only this site's own scripts can write
// that cache, as they can already write the service worker's copies of the
// page's files.
//
// The snapshot is made in a Pyodide of its own, never the page's: an
// instance made with _makeSnapshot sees browser objects through a recording
// proxy (pyodide#5588), and a worker keeps the page responsive meanwhile.

import { loadPyodide, version as PYODIDE_VERSION } from "../vendor/pyodide/pyodide.mjs";
import { SNAPSHOT_CACHE, preloadScript, pythonFiles, snapshotKey, writeFiles } from "./startup.js";

const SITE = new URL("../", import.meta.url);

try {
  const files = await pythonFiles(SITE);
  const pyodide = await loadPyodide({ indexURL: new URL("vendor/pyodide/", SITE).href, _makeSnapshot: true });
  writeFiles(pyodide, files);
  pyodide.runPython(preloadScript(files));
  const bytes = pyodide.makeMemorySnapshot();
  const key = await snapshotKey(SITE, PYODIDE_VERSION, files);
  const cache = await caches.open(SNAPSHOT_CACHE);
  for (const old of await cache.keys()) {
    if (old.url !== key) await cache.delete(old);
  }
  await cache.put(key, new Response(new Blob([bytes]), { headers: { "content-type": "application/octet-stream" } }));
  postMessage("stored");
} catch (error) {
  postMessage(String(error?.message ?? error));
}
