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

/** Every .py file under each dir, as {path: "pkg/mod.py", text}; sorted by path. */
export function pythonFiles(dirs) {
  const files = [];
  const walk = (root, rel) => {
    for (const entry of fs.readdirSync(path.join(root, rel), { withFileTypes: true })) {
      const child = path.posix.join(rel, entry.name);
      if (entry.isDirectory() && entry.name !== "__pycache__" && !entry.name.startsWith(".")) walk(root, child);
      else if (entry.isFile() && entry.name.endsWith(".py")) {
        files.push({ path: child, text: fs.readFileSync(path.join(root, child), "utf8") });
      }
    }
  };
  for (const dir of dirs) walk(path.dirname(path.resolve(dir)), path.basename(path.resolve(dir)));
  return files.sort((a, b) => (a.path < b.path ? -1 : 1));
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
