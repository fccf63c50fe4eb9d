// Makes the Pyodide memory snapshot that Node kernels start from.
//
//   node kernel_headless/host/snapshot_maker.mjs '{"python_files": [...], "snapshot_file": "..."}'
//
// kernel_headless/launch/node.py runs this as a process of its own, confined
// like a kernel but allowed to write the snapshot directory (kernels may
// only read it). It loads Pyodide cold, imports the kernel's modules, and
// writes the snapshot atomically: nothing in it has seen a cell, a relay or
// a credential, so every kernel, for every notebook, may start from it.

import fs from "node:fs";
import path from "node:path";
import { loadPyodide } from "pyodide/pyodide.mjs";

import { HOME, allowConstantsBinding, indexURL, readPythonFiles, writeFiles } from "./node_pyodide.mjs";

allowConstantsBinding();
const log = (line) => process.stderr.write(`anode kernel: ${line}\n`);

const config = JSON.parse(process.argv[2] ?? "{}");
if (!Array.isArray(config.python_files) || typeof config.snapshot_file !== "string") {
  log("the snapshot maker needs python_files and snapshot_file");
  process.exit(2);
}
const quiet = () => {};
const pyodide = await loadPyodide({ indexURL, stdout: quiet, stderr: log, _makeSnapshot: true });
writeFiles(pyodide, readPythonFiles(config.python_files), HOME);
pyodide.runPython("import kernel_headless.main, kernel_headless.session, shared_schema");
const bytes = pyodide.makeMemorySnapshot();
const temporary = `${config.snapshot_file}.${process.pid}.tmp`;
try {
  fs.writeFileSync(temporary, bytes);
  fs.renameSync(temporary, config.snapshot_file); // atomic: a kernel never reads half a snapshot
} catch (error) {
  fs.rmSync(temporary, { force: true });
  log(`could not cache the snapshot: ${error.message}`);
  process.exit(1);
}
log(`cached a Pyodide snapshot in ${path.basename(config.snapshot_file)}`);
process.exit(0);
