// Run one Python program in Pyodide under Node, for the tests.
//
//   node tests/pyodide_host.mjs [PACKAGE_DIR ...] < program.py
//
// Loads Pyodide from the local node_modules/pyodide (never a CDN, never a
// package download), copies the .py files of each PACKAGE_DIR into
// /home/pyodide/<name>/ inside Pyodide, puts /home/pyodide first on sys.path,
// then runs the program read from stdin with runPythonAsync (top-level await
// works). Stdout carries only what the program prints; a Python exception
// prints its traceback on stderr and exits 1. Exit 2 means the host itself
// failed (bad arguments, Pyodide did not load).

import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { loadPyodide } from "pyodide/pyodide.mjs";

const HOME = "/home/pyodide";
const PYODIDE_DIR = fileURLToPath(new URL("../node_modules/pyodide/", import.meta.url));

/** Every .py file under `root`, as paths relative to it (no __pycache__, no dot dirs). */
function pythonFiles(root, rel = "") {
  const files = [];
  for (const entry of fs.readdirSync(path.join(root, rel), { withFileTypes: true })) {
    const child = path.join(rel, entry.name);
    if (entry.isDirectory()) {
      if (entry.name !== "__pycache__" && !entry.name.startsWith(".")) {
        files.push(...pythonFiles(root, child));
      }
    } else if (entry.isFile() && entry.name.endsWith(".py")) {
      files.push(child);
    }
  }
  return files;
}

/** Copy the .py files of a local package directory to HOME/<basename> in Pyodide's FS. */
function copyPackage(pyodide, dir) {
  if (!fs.statSync(dir, { throwIfNoEntry: false })?.isDirectory()) {
    throw new Error(`not a directory: ${dir}`);
  }
  const target = path.posix.join(HOME, path.basename(path.resolve(dir)));
  for (const rel of pythonFiles(dir)) {
    const dest = path.posix.join(target, ...rel.split(path.sep));
    pyodide.FS.mkdirTree(path.posix.dirname(dest));
    pyodide.FS.writeFile(dest, fs.readFileSync(path.join(dir, rel)));
  }
}

/** A Pyodide stream writer that sends bytes straight to a file descriptor. */
function writerTo(fd) {
  return { isatty: false, write: (buffer) => fs.writeSync(fd, buffer) };
}

async function main(packageDirs) {
  const source = fs.readFileSync(0, "utf8");
  let pyodide;
  try {
    pyodide = await loadPyodide({
      indexURL: PYODIDE_DIR,
      // Start-up chatter ("Loading ...") goes to stderr, never to stdout.
      stdout: (line) => fs.writeSync(2, line + "\n"),
      stderr: (line) => fs.writeSync(2, line + "\n"),
    });
    for (const dir of packageDirs) copyPackage(pyodide, dir);
  } catch (err) {
    fs.writeSync(2, `pyodide_host: ${err?.stack ?? err}\n`);
    return 2;
  }

  pyodide.setStdout(writerTo(1));
  pyodide.setStderr(writerTo(2));
  pyodide.runPython(`import sys; sys.path.insert(0, ${JSON.stringify(HOME)})`);
  const globals = pyodide.runPython("dict(__name__='__main__')");
  try {
    await pyodide.runPythonAsync(source, { globals, filename: "__main__.py" });
    return 0;
  } catch (err) {
    // A PythonError's message is the formatted traceback.
    fs.writeSync(2, String(err?.message ?? err).replace(/\n?$/, "\n"));
    return 1;
  } finally {
    pyodide.runPython("import sys; sys.stdout.flush(); sys.stderr.flush()");
  }
}

// Exit explicitly: Pyodide may leave timers or handles that keep Node alive.
process.exit(await main(process.argv.slice(2)));
