// The worker_thread of the Node host: Pyodide and the kernel's Python.
//
// Loads Pyodide from the memory snapshot the main thread read (about
// 0.3 s), else cold (about 3 s); it never makes one (host/snapshot_maker.mjs
// does, in a process that runs no cell). The snapshot comes on a port of its
// own (`snapshotPort`), so the main thread reads it while this thread boots.
// From a snapshot, the kernel's modules are already imported: the session is
// announced first, and the .py files (for tracebacks and lazy imports) are
// written after. Hands the kernel the interrupt buffer and a `post` to the
// main thread. Cells run here: this thread holds no secret and touches no
// file itself, and before the first cell `parentPort` and `workerData` are
// taken off the `worker_threads` module, so a cell cannot reach them (it
// can post only what the kernel posts, through the kernel itself).

import module from "node:module";
import * as threads from "node:worker_threads";
import { loadPyodide } from "pyodide/pyodide.mjs";

import { HOME, allowConstantsBinding, indexURL, writeFiles } from "./node_pyodide.mjs";

const parentPort = threads.parentPort;
const { config, interrupt, files, snapshotPort } = threads.workerData;
hideWorkerChannel();
const stderr = (line) => process.stderr.write(line + "\n");

/** Take `parentPort` and `workerData` off `worker_threads` for every later importer (a cell). */
function hideWorkerChannel() {
  const exports = process.getBuiltinModule?.("node:worker_threads") ?? module.createRequire(import.meta.url)("node:worker_threads");
  exports.parentPort = null;
  exports.workerData = null;
  module.syncBuiltinESMExports(); // and `import("node:worker_threads")` sees the same
}

allowConstantsBinding();

/** The snapshot's bytes from the main thread, or null. */
function receiveSnapshot() {
  return new Promise((resolve) =>
    snapshotPort.once("message", (message) => {
      snapshotPort.close();
      resolve(message.snapshot);
    }),
  );
}

/**
 * Where Pyodide's packages load from by import: a folder laid out like a Pyodide
 * distribution (config.pyodide_packages, ending in "/"), else Pyodide's CDN; downloads are
 * kept in this kernel's own scratch folder (config.package_cache_dir), never shared. A
 * source that cannot be read is said on stderr, and the kernel starts with the CDN's.
 */
async function packageOptions() {
  const options = config.package_cache_dir ? { packageCacheDir: config.package_cache_dir } : {};
  const source = config.pyodide_packages;
  if (!source) return options;
  try {
    const response = await fetch(`${source}pyodide-lock.json`);
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    return { ...options, lockFileContents: await response.text(), packageBaseUrl: source };
  } catch (error) {
    stderr(`anode kernel: cannot read ${source}pyodide-lock.json (${error.message}); using Pyodide's CDN`);
    return options;
  }
}

async function load() {
  const options = { indexURL, stdout: stderr, stderr, ...(await packageOptions()) };
  const snapshot = await receiveSnapshot();
  if (snapshot) {
    try {
      const pyodide = await loadPyodide({ ...options, _loadSnapshot: snapshot });
      return { pyodide, from: "snapshot", filesWritten: false };
    } catch (error) {
      stderr(`anode kernel: the cached snapshot did not load (${error.message}); starting cold`);
    }
  }
  const pyodide = await loadPyodide(options);
  writeFiles(pyodide, files, HOME);
  return { pyodide, from: "cold", filesWritten: true };
}

const started = performance.now();
const { pyodide, from, filesWritten } = await load();
pyodide.setStdout({ batched: stderr });
pyodide.setStderr({ batched: stderr });
pyodide.setInterruptBuffer(interrupt);
const main = pyodide.pyimport("kernel_headless.main");
const kernel = main.start(JSON.stringify(config), (message) => parentPort.postMessage(message));
parentPort.on("message", (message) => kernel.receive(message));
if (!filesWritten) writeFiles(pyodide, files, HOME); // the session is announced already
parentPort.postMessage({ type: "ready", from, load_seconds: (performance.now() - started) / 1000 });
const code = await kernel.serve();
parentPort.postMessage(JSON.stringify({ type: "exit", code }));
