// What client/boot.js (the page) and client/snapshot.js (a worker) share:
// the client's Python files, and where a Pyodide memory snapshot is kept.
//
// A snapshot holds Pyodide with the client already imported, so it is keyed
// by Pyodide's version and a hash of every Python file: change one file (or
// upgrade Pyodide) and the old snapshot is never used again; the next start
// is a cold one, and makes a new snapshot once the page is ready.

export const SNAPSHOT_CACHE = "anode-snapshot";

const HOME = "/home/pyodide";

/** The client's Python: [{path, text}] for every file client/manifest.json lists (paths from the site's root). */
export async function pythonFiles(site) {
  const manifest = await (await fetch(new URL("client/manifest.json", site))).json();
  return Promise.all(manifest.files.map(async (path) => {
    const response = await fetch(new URL(path, site));
    if (!response.ok) throw new Error(`/${path}: HTTP ${response.status}`);
    return { path, text: await response.text() };
  }));
}

export function writeFiles(pyodide, files) {
  for (const { path, text } of files) {
    const target = `${HOME}/${path}`;
    pyodide.FS.mkdirTree(target.slice(0, target.lastIndexOf("/")));
    pyodide.FS.writeFile(target, text);
  }
}

/** What a snapshot has run: every client module imported (importing one touches no browser object). */
export function preloadScript(files) {
  const modules = files
    .map(({ path }) => path.replace(/\.py$/, "").replace(/\/__init__$/, "").replaceAll("/", "."))
    .filter((name) => name !== "client.main");
  return modules.map((name) => `import ${name}`).join("\n");
}

/** The Cache Storage key of the snapshot for this Pyodide and these files. */
export async function snapshotKey(site, pyodideVersion, files) {
  const text = [pyodideVersion, ...files.flatMap(({ path, text }) => [path, text])].join("\0");
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text)));
  const hex = Array.from(digest, (byte) => byte.toString(16).padStart(2, "0")).join("");
  return new URL(`.anode-snapshot/pyodide-${pyodideVersion}-${hex.slice(0, 32)}`, site).href;
}
