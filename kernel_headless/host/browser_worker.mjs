// The Web Worker of the browser host: Pyodide and the kernel's Python.
//
// The page (browser.mjs) posts {type: "init", config, interrupt, shared}
// first, then the host's JSON strings. This worker fetches the kernel's
// Python files (config.python_files, paths under the relay's root), loads
// Pyodide from the relay's vendored copy, writes the files into Pyodide's
// filesystem, hands the kernel the interrupt buffer (when the page is
// cross-origin isolated, so the buffer is shared) and runs it.
//
// Start-up comes from a Pyodide memory snapshot when the Python side keeps
// one (config.snapshot_url, a loopback URL: GET answers it, or 204 when
// there is none yet; PUT stores one, once, before the kernel starts): Pyodide then loads in about 0.3 s,
// against 4 s or more cold. The snapshot's key is a hash of Pyodide's
// version and the Python files this worker fetched, so it always matches
// what runs.

import { loadPyodide, version as PYODIDE_VERSION } from "../../vendor/pyodide/pyodide.mjs";

const HOME = "/home/pyodide";
const RELAY_ROOT = new URL("../../", import.meta.url);
const PYODIDE_URL = new URL("../../vendor/pyodide/", import.meta.url);

const post = (message) => self.postMessage(message);
const log = (line) => post({ type: "log", line });

// Host messages can arrive before the kernel exists: keep them in order.
let kernel = null;
const early = [];
let initialize;
const init = new Promise((resolve) => (initialize = resolve));
self.onmessage = ({ data }) => {
  if (typeof data !== "string") return initialize(data);
  if (kernel === null) early.push(data);
  else kernel.receive(data);
};

async function fetchFiles(paths) {
  return Promise.all(
    paths.map(async (path) => {
      // "no-cache" revalidates: a kernel never runs yesterday's Python.
      const response = await fetch(new URL(path, RELAY_ROOT), { cache: "no-cache" });
      if (!response.ok) throw new Error(`the relay has no /${path} (HTTP ${response.status})`);
      return { path, text: await response.text() };
    }),
  );
}

function writeFiles(pyodide, files) {
  for (const file of files) {
    const target = `${HOME}/${file.path}`;
    pyodide.FS.mkdirTree(target.slice(0, target.lastIndexOf("/")));
    pyodide.FS.writeFile(target, file.text);
  }
  const home = JSON.stringify(HOME);
  pyodide.runPython(`import sys\nif ${home} not in sys.path: sys.path.insert(0, ${home})`);
}

/** The snapshot's URL for this Pyodide and these files; null without a cache or crypto.subtle. */
async function snapshotUrl(config, files) {
  if (!config.snapshot_url || !globalThis.crypto?.subtle) return null;
  const text = [PYODIDE_VERSION, ...files.flatMap((file) => [file.path, file.text])].join("\0");
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  const bytes = Array.from(new Uint8Array(digest));
  const hex = bytes.map((byte) => byte.toString(16).padStart(2, "0")).join("");
  return `${config.snapshot_url}/${hex.slice(0, 32)}`;
}

async function cachedSnapshot(url) {
  try {
    const response = await fetch(url, { cache: "no-store" });
    if (response.status === 200) return new Uint8Array(await response.arrayBuffer());
  } catch (error) {
    log(`anode kernel: cannot reach the snapshot cache (${error.message}); starting cold`);
  }
  return null;
}

/**
 * Where Pyodide's packages load from by import: a folder laid out like a Pyodide
 * distribution (config.pyodide_packages, ending in "/"), else Pyodide's CDN. A source that
 * cannot be read is said in the log, and the kernel starts with the CDN's.
 */
async function packageOptions(config) {
  const source = config.pyodide_packages;
  if (!source) return {};
  try {
    const response = await fetch(`${source}pyodide-lock.json`, { cache: "no-store" });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    return { lockFileContents: await response.text(), packageBaseUrl: source };
  } catch (error) {
    log(`anode kernel: cannot read ${source}pyodide-lock.json (${error.message}); using Pyodide's CDN`);
    return {};
  }
}

async function load(config) {
  const options = {
    indexURL: PYODIDE_URL.href, stdout: log, stderr: log, ...(await packageOptions(config)),
  };
  const files = await fetchFiles(config.python_files);
  const url = await snapshotUrl(config, files);
  const snapshot = url && (await cachedSnapshot(url));
  if (snapshot) {
    try {
      const pyodide = await loadPyodide({ ...options, _loadSnapshot: snapshot });
      writeFiles(pyodide, files);
      return { pyodide, from: "snapshot" };
    } catch (error) {
      log(`anode kernel: the cached snapshot did not load (${error.message}); starting cold`);
    }
  }
  const pyodide = await loadPyodide({ ...options, _makeSnapshot: url !== null });
  writeFiles(pyodide, files);
  if (url !== null) {
    pyodide.runPython("import kernel_headless.main, kernel_headless.session, shared_schema");
    // As a Blob, the upload is read by the browser process: with the bytes
    // themselves as the body, this worker stalled for seconds while it went.
    // Awaited before the kernel starts: the cache takes an upload only
    // before any cell can have run (kernel_headless/launch/browser.py: SnapshotCache).
    const bytes = pyodide.makeMemorySnapshot();
    const body = new Blob([bytes]);
    try {
      const response = await fetch(url, { method: "PUT", body });
      if (!response.ok) log(`anode kernel: the snapshot cache refused the snapshot (${response.status})`);
    } catch (error) {
      log(`anode kernel: could not cache the snapshot (${error.message})`);
    }
    // The instance that made a snapshot sees globalThis through a recording
    // proxy, on which browser APIs throw "Illegal invocation" (pyodide#5588):
    // run the kernel in a fresh instance restored from that snapshot instead.
    const fresh = await loadPyodide({ ...options, _loadSnapshot: bytes });
    writeFiles(fresh, files);
    return { pyodide: fresh, from: "cold" };
  }
  return { pyodide, from: "cold" };
}

try {
  const { config, interrupt, shared } = await init;
  const started = performance.now();
  const { pyodide, from } = await load(config);
  if (shared) pyodide.setInterruptBuffer(interrupt);
  const main = pyodide.pyimport("kernel_headless.main");
  kernel = main.start(JSON.stringify(config), post);
  for (const message of early.splice(0)) kernel.receive(message);
  post({ type: "ready", from, load_seconds: (performance.now() - started) / 1000 });
  const code = await kernel.serve();
  post(JSON.stringify({ type: "exit", code }));
} catch (error) {
  post({ type: "fatal", error: String(error?.stack ?? error) });
}
