// A worker that makes the Pyodide memory snapshot client/js/interpreter.mjs
// starts from.
//
// The page starts it once it is ready, when it started without a snapshot:
// it loads Pyodide, writes the client's Python where the page writes it and
// imports it, snapshots the memory and keeps it in Cache Storage
// (client/js/startup.js has the key). The next start restores that memory
// instead of running CPython's start-up and the imports again; the page then
// writes the files again and PyScript does on top what it always does (adds
// its own `pyscript` package, runs client/main.py). Only this site's own scripts can
// write that cache, as they can already write the service worker's copies
// of the page's files.
//
// The snapshot is made in a Pyodide of its own, never the page's: an
// instance made with _makeSnapshot sees browser objects through a recording
// proxy (pyodide#5588), and a worker keeps the page responsive meanwhile.
// So it holds only what imports without a browser: the client's modules,
// not PyScript's (which looks at `document` when imported).

import { loadPyodide, version as PYODIDE_VERSION } from "../../vendor/pyodide/pyodide.mjs";
import { keepSnapshot, pythonFiles, snapshotKey, withoutJspi, writePythonFiles } from "./startup.js";

/** "./client/app.py" -> "client.app"; "./client/__init__.py" -> "client". */
const moduleName = (target) =>
  target.replace(/^\.\//, "").replace(/\.py$/, "").replace(/\/__init__$/, "").replaceAll("/", ".");

withoutJspi();

try {
  const files = await pythonFiles();
  const pyodide = await loadPyodide({ indexURL: new URL("../../vendor/pyodide/", import.meta.url).href, _makeSnapshot: true });
  writePythonFiles(pyodide, files);
  // Importing a client module touches no browser object.
  pyodide.runPython(files.map(({ target }) => `import ${moduleName(target)}`).join("\n"));
  const bytes = pyodide.makeMemorySnapshot();
  await keepSnapshot(await snapshotKey(PYODIDE_VERSION, files), bytes);
  postMessage("stored");
} catch (error) {
  postMessage(String(error?.message ?? error));
}
