// PyScript's interpreter (client/pyscript.json `interpreter`): the vendored
// Pyodide, started from a memory snapshot when this browser or the site has one.
//
// PyScript imports this module and calls its loadPyodide as it would call
// Pyodide's own. We write the client's Python (pyscript.json's `anode_files`,
// fetched once, for the snapshot's key too) before handing Pyodide back; then
// PyScript does what it always does: adds its `pyscript` package, runs
// client/main.py.
// Most of a start is CPython initialising itself; a snapshot (Pyodide's
// memory with the client already imported, made by client/js/snapshot.js once
// a page is ready, or shipped by a site `anode build-site` made) skips that.
// One that fails to load is skipped: a cold start. docs/client.md, "Booting
// the page".

import { loadPyodide as loadVendored, version } from "../../vendor/pyodide/pyodide.mjs";
import {
  SNAPSHOT_CACHE, keepSnapshot, pythonFiles, snapshotKey, withoutJspi, writePythonFiles,
} from "./startup.js";

export { version };

withoutJspi();

const INDEX_URL = new URL("../../vendor/pyodide/", import.meta.url).href;
const STORED = window.isSecureContext && "caches" in window;

/** The client's Python, fetched once: for the snapshot's key and to write it. */
const files = pythonFiles();
files.catch(() => {}); // reported when loadPyodide needs them

// The two bundles pyscript.json's `js_modules` names, evaluated now, while Pyodide's files
// download, rather than after Python is up: PyScript's import later gets these same modules.
for (const bundle of ["editor.js", "markdown.js"]) {
  import(new URL(`../../vendor/bundles/${bundle}`, import.meta.url).href).catch(() => {});
}

/**
 * The snapshot for this Pyodide and these files, looked up at once, while PyScript starts:
 * {bytes, shipped} or null. The one this browser made (Cache Storage) or, on a first
 * visit, the one the site ships (`anode build-site`: snapshot/<key>.gz).
 */
const snapshot = (async () => {
  if (!STORED) return null;
  try {
    const cache = await caches.open(SNAPSHOT_CACHE);
    const key = await snapshotKey(version, await files);
    const kept = await cache.match(key);
    if (kept) return { bytes: new Uint8Array(await kept.arrayBuffer()), key, shipped: false };
    // What the site ships: asked first, so that no 404 of a missing one litters the console.
    const shipped = await fetch(new URL("../../snapshot/index.json", import.meta.url));
    const name = `${new URL(key).pathname.split("/").pop()}.gz`;
    if (!shipped.ok || !(await shipped.json()).snapshots.includes(name)) return null;
    const response = await fetch(new URL(`../../snapshot/${name}`, import.meta.url));
    if (!response.ok) return null;
    const unpacked = response.body.pipeThrough(new DecompressionStream("gzip"));
    return { bytes: new Uint8Array(await new Response(unpacked).arrayBuffer()), key, shipped: true };
  } catch (error) {
    return null; // Cache Storage blocked (a browser setting), a file missing, offline: PyScript will say
  }
})();

/** PyScript's call: its options (stdout, stderr), but always the vendored Pyodide's files. */
export async function loadPyodide(options) {
  const settings = { ...options, indexURL: INDEX_URL };
  const found = await snapshot;
  let pyodide = null;
  if (found) {
    try {
      pyodide = await loadVendored({ ...settings, _loadSnapshot: found.bytes });
      if (found.shipped) keep(found);
    } catch (error) {
      console.warn("anode: the Pyodide snapshot did not load; starting without it", error);
    }
  }
  document.body.dataset.snapshot = pyodide ? (found.shipped ? "shipped" : "used") : "none";
  if (!pyodide) {
    try {
      pyodide = await loadVendored(settings);
    } catch (error) {
      failed(error);
      throw error;
    }
    whenReady(makeSnapshotInAPause);
  }
  try {
    writePythonFiles(pyodide, await files);
  } catch (error) {
    failed(error);
    throw error;
  }
  performance.mark("anode:pyodide");
  return pyodide;
}

/** Keep the site's snapshot, once it loaded, where the next start looks first. */
async function keep({ bytes, key }) {
  try {
    await keepSnapshot(key, bytes);
  } catch (error) {
    console.warn("anode: could not keep the Pyodide snapshot", error);
  }
}

function failed(error) {
  document.body.dataset.anode = "failed";
  const message = document.createElement("pre");
  message.className = "boot-error";
  message.textContent = `Anode could not start: ${error?.message ?? error}`;
  document.getElementById("app").replaceChildren(message);
}

function whenReady(callback) {
  const observer = new MutationObserver(() => {
    if (document.body.dataset.anode !== "ready") return;
    observer.disconnect();
    callback();
  });
  observer.observe(document.body, { attributes: true, attributeFilter: ["data-anode"] });
}

/** Input that means someone is using the page (captured on the window, so none escapes us). */
const ACTIVITY = ["keydown", "pointerdown", "wheel", "touchstart"];

/** How long the page must go without input before the snapshot worker starts (ms). */
const PAUSE_MS = 2000;

/**
 * Make a snapshot for the next start, in a worker, while the person pauses.
 * The worker starts a Pyodide of its own: a few seconds of a whole core,
 * which typing on a two-core machine feels (long frames). Input meanwhile
 * stops it, and it starts over at the next pause.
 */
function makeSnapshotInAPause() {
  if (!STORED) return;
  let worker = null;
  let timer = setTimeout(start, PAUSE_MS);
  const active = () => {
    if (worker) {
      worker.terminate();
      worker = null;
      document.body.dataset.snapshot = "waiting";
    }
    clearTimeout(timer);
    timer = setTimeout(start, PAUSE_MS);
  };
  const options = { capture: true, passive: true };
  for (const type of ACTIVITY) window.addEventListener(type, active, options);
  document.body.dataset.snapshot = "waiting";

  function start() {
    document.body.dataset.snapshot = "making";
    const current = (worker = new Worker(new URL("snapshot.js", import.meta.url), { type: "module" }));
    const done = (outcome) => {
      if (worker !== current) return; // stopped by input meanwhile
      worker.terminate();
      worker = null;
      for (const type of ACTIVITY) window.removeEventListener(type, active, options);
      document.body.dataset.snapshot = outcome === "stored" ? "ready" : "failed";
      if (outcome !== "stored") console.warn("anode: no Pyodide snapshot:", outcome);
    };
    current.onmessage = ({ data }) => done(data);
    current.onerror = (event) => done(event.message);
  }
}
