// The worker_thread of the Node host: Pyodide and the kernel's Python.
//
// Loads Pyodide from the memory snapshot the main thread read and checked
// (about 0.3 s), else cold (about 3 s) — then makes the snapshot for next
// time and hands it to the main thread, which signs and caches it. The
// snapshot comes on a port of its own (`snapshotPort`), so the main thread
// reads and checks it while this thread boots. From a snapshot, the kernel's
// modules are already imported: the session is announced first, and the
// .py files (for tracebacks and lazy imports) are written after.
// Hands the kernel the interrupt buffer and a `post` to the main thread.
// Cells run here: this thread holds no secret and touches no file itself.

import { constants as fsConstants } from "node:fs";
import { constants as osConstants } from "node:os";
import { parentPort, workerData } from "node:worker_threads";
import { fileURLToPath } from "node:url";
import { loadPyodide } from "pyodide/pyodide.mjs";

const HOME = "/home/pyodide";
const indexURL = fileURLToPath(new URL("./", import.meta.resolve("pyodide/pyodide.mjs")));
const { config, interrupt, files, snapshotPort, makeSnapshot } = workerData;
const stderr = (line) => process.stderr.write(line + "\n");

// Emscripten's NODEFS reads open() flags with process.binding("constants"),
// which Node's permission model forbids (as it forbids every binding). Those
// constants are public (fs.constants): answer that one name, refuse the rest.
const binding = process.binding;
process.binding = (name) =>
  name === "constants" ? { fs: fsConstants, os: osConstants } : binding.call(process, name);

function writeFiles(pyodide) {
  for (const file of files) {
    const target = `${HOME}/${file.path}`;
    pyodide.FS.mkdirTree(target.slice(0, target.lastIndexOf("/")));
    pyodide.FS.writeFile(target, file.text);
  }
  pyodide.runPython(`import sys\nif ${JSON.stringify(HOME)} not in sys.path: sys.path.insert(0, ${JSON.stringify(HOME)})`);
}

/** The checked snapshot's bytes from the main thread, or null. */
function receiveSnapshot() {
  return new Promise((resolve) =>
    snapshotPort.once("message", (message) => {
      snapshotPort.close();
      resolve(message.snapshot);
    }),
  );
}

async function load() {
  const options = { indexURL, stdout: stderr, stderr };
  const snapshot = await receiveSnapshot();
  if (snapshot) {
    try {
      const pyodide = await loadPyodide({ ...options, _loadSnapshot: snapshot });
      return { pyodide, from: "snapshot", filesWritten: false };
    } catch (error) {
      stderr(`anode kernel: the cached snapshot did not load (${error.message}); starting cold`);
    }
  }
  const pyodide = await loadPyodide({ ...options, _makeSnapshot: makeSnapshot });
  writeFiles(pyodide);
  if (!makeSnapshot) return { pyodide, from: "cold", filesWritten: true };
  pyodide.runPython("import kernel_headless.main, kernel_headless.session, shared_schema");
  const bytes = pyodide.makeMemorySnapshot();
  // The instance that made a snapshot sees globalThis through a recording
  // proxy, on which host APIs can throw "Illegal invocation" (pyodide#5588):
  // run the kernel in a fresh instance restored from that snapshot instead.
  const fresh = await loadPyodide({ ...options, _loadSnapshot: bytes });
  writeFiles(fresh);
  parentPort.postMessage({ type: "snapshot", bytes }, [bytes.buffer]);
  return { pyodide: fresh, from: "cold", filesWritten: true };
}

const started = performance.now();
const { pyodide, from, filesWritten } = await load();
pyodide.setStdout({ batched: stderr });
pyodide.setStderr({ batched: stderr });
pyodide.setInterruptBuffer(interrupt);
const main = pyodide.pyimport("kernel_headless.main");
const kernel = main.start(JSON.stringify(config), (message) => parentPort.postMessage(message));
parentPort.on("message", (message) => kernel.receive(message));
if (!filesWritten) writeFiles(pyodide); // the session is announced already
parentPort.postMessage({ type: "ready", from, load_seconds: (performance.now() - started) / 1000 });
const code = await kernel.serve();
parentPort.postMessage(JSON.stringify({ type: "exit", code }));
