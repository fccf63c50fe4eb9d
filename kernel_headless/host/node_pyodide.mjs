// What every Node process of a kernel needs to run Pyodide under the permission
// model: where Pyodide is, the kernel's Python files, and one binding.

import fs, { constants as fsConstants } from "node:fs";
import { constants as osConstants } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

/** Where the kernel's Python lives in Pyodide's file system. */
export const HOME = "/home/pyodide";
export const indexURL = fileURLToPath(new URL("./", import.meta.resolve("pyodide/pyodide.mjs")));

/**
 * Emscripten's NODEFS reads open() flags with process.binding("constants"),
 * which Node's permission model forbids (as it forbids every binding). Those
 * constants are public (fs.constants): answer that one name, refuse the rest.
 */
export function allowConstantsBinding() {
  const binding = process.binding;
  process.binding = (name) =>
    name === "constants" ? { fs: fsConstants, os: osConstants } : binding.call(process, name);
}

/** The project's root: the paths in `config.python_files` are relative to it. */
const ROOT = fileURLToPath(new URL("../../", import.meta.url));

/** The kernel's Python files (paths like "pkg/mod.py", listed by the launcher) as {path, text}. */
export function readPythonFiles(paths) {
  return paths.map((file) => ({ path: file, text: fs.readFileSync(path.join(ROOT, file), "utf8") }));
}

/** Write the files into Pyodide's file system under `home`, and put `home` on sys.path. */
export function writeFiles(pyodide, files, home) {
  for (const file of files) {
    const target = `${home}/${file.path}`;
    pyodide.FS.mkdirTree(target.slice(0, target.lastIndexOf("/")));
    pyodide.FS.writeFile(target, file.text);
  }
  pyodide.runPython(`import sys\nif ${JSON.stringify(home)} not in sys.path: sys.path.insert(0, ${JSON.stringify(home)})`);
}
