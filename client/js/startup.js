// What client/js/interpreter.mjs (the page) and client/js/snapshot.js (a worker)
// share: the client's Python files, and where a Pyodide memory snapshot is kept.
//
// A snapshot holds Pyodide with the client already imported, so it is keyed
// by Pyodide's version and a hash of every Python file: change one file (or
// upgrade Pyodide) and the old snapshot is never used again; the next start
// is a cold one, and makes a new snapshot once the page is ready.

export const SNAPSHOT_CACHE = "anode-snapshot";

/**
 * Start Pyodide without JSPI (WebAssembly.Suspending), in the page and in the
 * worker that makes its snapshot alike. Where a browser has JSPI, Pyodide
 * runs every asyncio step on a stack of its own, so that Python may block on
 * a promise (pyodide.ffi.run_sync); the client never does, and Chromium has
 * crashed whole pages in that stack switching (pyodide#5702, pyodide#6106).
 * Call it before loadPyodide: Pyodide looks once, as it starts.
 */
export function withoutJspi() {
  delete WebAssembly.Suspending;
  delete WebAssembly.promising;
}

/** What a snapshot depends on besides the Python files: it is made and restored in one mode. */
const RUNTIME = "no-jspi";

/**
 * The client's Python: [{target, text}] for every file client/pyscript.json lists in
 * `anode_files`, `target` being where it is written ("./client/app.py", from Pyodide's
 * working directory). All in one request, client/python.json, which the relay and
 * `anode build-site` make from that list.
 */
export async function pythonFiles() {
  const response = await fetch(new URL("../python.json", import.meta.url));
  if (!response.ok) throw new Error(`client/python.json: HTTP ${response.status}`);
  return (await response.json()).files;
}

/** Write the client's Python into Pyodide's file system, at each file's `target`. */
export function writePythonFiles(pyodide, files) {
  for (const { target, text } of files) {
    const path = `${pyodide.FS.cwd()}/${target.replace(/^\.\//, "")}`;
    pyodide.FS.mkdirTree(path.slice(0, path.lastIndexOf("/")));
    pyodide.FS.writeFile(path, text);
  }
}

/** Keep a snapshot under its key, and only it: older ones (about 30 MB each) go. */
export async function keepSnapshot(key, bytes) {
  const cache = await caches.open(SNAPSHOT_CACHE);
  for (const old of await cache.keys()) {
    if (old.url !== key) await cache.delete(old);
  }
  await cache.put(key, new Response(new Blob([bytes]), { headers: { "content-type": "application/octet-stream" } }));
}

/** The Cache Storage key of the snapshot for this Pyodide and these files. */
export async function snapshotKey(pyodideVersion, files) {
  const text = [pyodideVersion, RUNTIME, ...files.flatMap(({ target, text }) => [target, text])].join("\0");
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text)));
  const hex = Array.from(digest, (byte) => byte.toString(16).padStart(2, "0")).join("");
  return new URL(`../../.anode-snapshot/pyodide-${pyodideVersion}-${hex.slice(0, 32)}`, import.meta.url).href;
}
