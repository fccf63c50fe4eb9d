// The worker_thread of the Node host: Pyodide and the kernel's Python.
//
// Loads Pyodide from the cached memory snapshot when there is one (about
// 0.3 s), else cold (about 3 s) — then makes the snapshot for next time.
// Hands the kernel the interrupt buffer and a `post` to the main thread.

import fs from "node:fs";
import { parentPort, workerData } from "node:worker_threads";
import { fileURLToPath } from "node:url";
import { loadPyodide } from "pyodide/pyodide.mjs";

const HOME = "/home/pyodide";
const indexURL = fileURLToPath(new URL("./", import.meta.resolve("pyodide/pyodide.mjs")));
const { config, interrupt, files, snapshot } = workerData;
const stderr = (line) => process.stderr.write(line + "\n");

function writeFiles(pyodide) {
  for (const file of files) {
    const target = `${HOME}/${file.path}`;
    pyodide.FS.mkdirTree(target.slice(0, target.lastIndexOf("/")));
    pyodide.FS.writeFile(target, file.text);
  }
  pyodide.runPython(`import sys\nif ${JSON.stringify(HOME)} not in sys.path: sys.path.insert(0, ${JSON.stringify(HOME)})`);
}

async function load() {
  const options = { indexURL, stdout: stderr, stderr };
  if (fs.existsSync(snapshot)) {
    try {
      const pyodide = await loadPyodide({ ...options, _loadSnapshot: fs.readFileSync(snapshot) });
      writeFiles(pyodide);
      return { pyodide, from: "snapshot" };
    } catch (error) {
      stderr(`anode kernel: the cached snapshot did not load (${error.message}); starting cold`);
    }
  }
  const pyodide = await loadPyodide({ ...options, _makeSnapshot: true });
  writeFiles(pyodide);
  pyodide.runPython("import kernel_headless.main, kernel_headless.session, shared_schema");
  const bytes = pyodide.makeMemorySnapshot();
  // The instance that made a snapshot sees globalThis through a recording
  // proxy, on which host APIs can throw "Illegal invocation" (pyodide#5588):
  // run the kernel in a fresh instance restored from that snapshot instead.
  const fresh = await loadPyodide({ ...options, _loadSnapshot: bytes });
  writeFiles(fresh);
  parentPort.postMessage({ type: "snapshot", bytes }, [bytes.buffer]);
  return { pyodide: fresh, from: "cold" };
}

const started = performance.now();
const { pyodide, from } = await load();
pyodide.setStdout({ batched: stderr });
pyodide.setStderr({ batched: stderr });
pyodide.setInterruptBuffer(interrupt);
const main = pyodide.pyimport("kernel_headless.main");
const kernel = main.start(JSON.stringify(config), (message) => parentPort.postMessage(message));
parentPort.on("message", (message) => kernel.receive(message));
parentPort.postMessage({ type: "ready", from, load_seconds: (performance.now() - started) / 1000 });
const code = await kernel.serve();
parentPort.postMessage(JSON.stringify({ type: "exit", code }));
