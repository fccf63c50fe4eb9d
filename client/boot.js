// The page's only script: starts Pyodide and hands over to client/main.py.
//
// index.html loads this module. It fetches, all at once: Pyodide
// (vendor/pyodide), the client's Python (the files client/manifest.json
// lists, written into Pyodide's filesystem), the two npm bundles (CodeMirror;
// marked, DOMPurify and KaTeX) and, when this browser has made one before, a
// Pyodide memory snapshot. With a snapshot Pyodide is up in well under a
// second instead of several: most of a start is CPython initialising itself.
// Once the page is ready, a worker (client/snapshot.js) makes the snapshot
// for next time if there was none. docs/client.md, "Booting the page".

import { loadPyodide, version as PYODIDE_VERSION } from "../vendor/pyodide/pyodide.mjs";
import * as editor from "../vendor/bundles/editor.js";
import * as markdown from "../vendor/bundles/markdown.js";
import { SNAPSHOT_CACHE, pythonFiles, snapshotKey, writeFiles } from "./startup.js";

const SITE = new URL("../", import.meta.url);
const PYODIDE = new URL("vendor/pyodide/", SITE).href;

function failed(error) {
  document.body.dataset.anode = "failed";
  const message = document.createElement("pre");
  message.className = "boot-error";
  message.textContent = `Anode could not start: ${error?.message ?? error}`;
  document.getElementById("app").replaceChildren(message);
}

/** The snapshot this browser made for this Pyodide and these files, or null. */
async function cachedSnapshot(files) {
  if (!window.isSecureContext || !window.caches) return null;
  try {
    const cache = await caches.open(SNAPSHOT_CACHE);
    const response = await cache.match(await snapshotKey(SITE, PYODIDE_VERSION, files));
    return response ? new Uint8Array(await response.arrayBuffer()) : null;
  } catch (error) {
    return null; // Cache Storage blocked (a browser setting)
  }
}

async function startPython(snapshot) {
  const options = { indexURL: PYODIDE, stdout: console.log, stderr: console.log };
  if (snapshot) {
    try {
      return await loadPyodide({ ...options, _loadSnapshot: snapshot });
    } catch (error) {
      console.warn("anode: the cached Pyodide snapshot did not load; starting without it", error);
    }
  }
  return loadPyodide(options);
}

/** Once the page is ready, make a snapshot for the next start (in a worker: the page stays responsive). */
function makeSnapshotLater() {
  if (!window.isSecureContext || !window.caches) return;
  const worker = new Worker(new URL("snapshot.js", import.meta.url), { type: "module" });
  worker.onmessage = ({ data }) => {
    document.body.dataset.snapshot = data === "stored" ? "ready" : "failed";
    if (data !== "stored") console.warn("anode: no Pyodide snapshot:", data);
    worker.terminate();
  };
  worker.onerror = (event) => {
    document.body.dataset.snapshot = "failed";
    console.warn("anode: no Pyodide snapshot:", event.message);
    worker.terminate();
  };
}

async function boot() {
  const files = await pythonFiles(SITE);
  const snapshot = await cachedSnapshot(files);
  performance.mark("anode:fetched");
  const pyodide = await startPython(snapshot);
  performance.mark("anode:pyodide");
  writeFiles(pyodide, files);
  document.body.dataset.snapshot = snapshot ? "used" : "none";
  const main = pyodide.pyimport("client.main");
  performance.mark("anode:imported");
  const ready = main.boot(editor, markdown);
  if (!snapshot) {
    const whenReady = new MutationObserver(() => {
      if (document.body.dataset.anode !== "ready") return;
      whenReady.disconnect();
      makeSnapshotLater();
    });
    whenReady.observe(document.body, { attributes: true, attributeFilter: ["data-anode"] });
  }
  await ready;
}

boot().catch((error) => {
  if (document.body.dataset.anode !== "failed") failed(error);
  console.error(error);
});
