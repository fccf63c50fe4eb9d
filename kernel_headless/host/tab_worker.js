// The tab host's Web Worker: Pyodide and the kernel's Python, in the person's own tab.
//
// It runs inside the tab kernel's sandboxed frame (client/js/tab_frame.js), so
// its origin is opaque: it cannot read the page's token, IndexedDB, Cache
// Storage, cookies or DOM, and it cannot fetch the site either (no CORS on a
// static host). Every file it needs from the site (Pyodide, the kernel's
// Python, packages the site serves) it asks the page for: `fetch` of a site
// address goes to the page as {type: "fetch", id, url}, and the page answers
// {type: "fetched", id, status, contentType, body} for the public static
// files it lets through (never /api/). Other addresses are fetched as usual.
//
// A classic worker: an opaque-origin frame may start one from a blob: URL,
// not a module worker. Pyodide's ES modules are imported from blob: URLs.
//
// Start-up comes from a Pyodide memory snapshot when the page keeps one: the
// worker asks for it with what it depends on ({type: "snapshot_get", id,
// material}: Pyodide's version, its mode and every Python file it loads, which
// the page hashes into the key, so a snapshot always matches what runs); the
// page answers as it answers a fetch, 200 with the bytes, or 404 and whether
// it would keep one. Then the worker starts cold, imports the kernel,
// snapshots that memory before any cell could have run and gives it to the
// page ({type: "snapshot_put", body}; the page takes it only from a worker
// that has not said "loaded"; it answers "snapshot_get" only until then too).
//
// The one message from the frame: {type: "init", config, interrupt, port} (config: the
// kernel's config as JSON text, client/tab_kernel.py; port: a MessagePort to the page).
// The worker loads Python at once and says {type: "loaded"}; it becomes the notebook's
// kernel when the page says {type: "start", config} (its session, actor and state as
// JSON text): at once, or at the first Run when the page spawned it ahead, while
// idle. Through the port then: the page's
// JSON strings for the kernel (kernel_headless/bridge.py) and its answers to fetches;
// to the page: the kernel's JSON strings, and {type: "log" | "loaded" | "ready" |
// "fatal" | "fetch" | "snapshot_get" | "snapshot_put"}.

const PYPI = "https://pypi.org/simple/";
const cdn = (version) => `https://cdn.jsdelivr.net/pyodide/v${version}/full/`;
const post = (message) => port.postMessage(message);
const log = (line) => post({ type: "log", line });

let site = null;
let port = null; // to the page (client/js/tab_frame.js hands each side one end)
let kernel = null;
const early = [];
// The page's "start": this notebook's session and state (sent once the kernel is wanted;
// until then the worker has only loaded Python).
let begin;
const begun = new Promise((resolve) => (begin = resolve));
const asked = new Map();
let asks = 0;
const networkFetch = self.fetch.bind(self);

/** Ask the page ({type: "fetch" | "snapshot_get", ...}); it answers {type: "fetched", id, ...}. */
function askPage(message) {
  return new Promise((resolve) => {
    asks += 1;
    asked.set(asks, resolve);
    post({ ...message, id: asks });
  });
}

self.fetch = async (input, init) => {
  const address = new URL(input instanceof Request ? input.url : String(input), site ?? undefined);
  const method = (init?.method ?? (input instanceof Request ? input.method : "GET")).toUpperCase();
  if (site === null || address.origin !== new URL(site).origin || method !== "GET") {
    return networkFetch(input, init);
  }
  const answer = await askPage({ type: "fetch", url: address.href });
  if (answer.status === 0) throw new TypeError(`could not fetch ${address.href}: ${answer.error}`);
  return new Response(answer.body, {
    status: answer.status,
    headers: { "content-type": answer.contentType || "application/octet-stream" },
  });
};

async function importText(url) {
  const response = await self.fetch(url);
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  const text = await response.text();
  return import(URL.createObjectURL(new Blob([text], { type: "text/javascript" })));
}

/**
 * What the snapshot depends on: Pyodide's version, its mode and every Python file. The page
 * hashes it into the snapshot's key (this worker is no secure context: no crypto.subtle).
 */
function snapshotMaterial(version, files) {
  const mode = typeof WebAssembly.Suspending === "function" ? "jspi" : "no-jspi";
  return [version, mode, ...files.flatMap((file) => [file.path, file.text])].join("\0");
}

/** The page's kept snapshot ({snapshot}), or whether it would keep one made now ({keep}). */
async function cachedSnapshot(material) {
  const answer = await askPage({ type: "snapshot_get", material });
  if (answer.status === 200 && answer.body) return { snapshot: new Uint8Array(answer.body) };
  return { keep: Boolean(answer.keep) };
}

function writeFiles(pyodide, files) {
  const home = "/home/pyodide";
  for (const file of files) {
    const target = `${home}/${file.path}`;
    pyodide.FS.mkdirTree(target.slice(0, target.lastIndexOf("/")));
    pyodide.FS.writeFile(target, file.text);
  }
  pyodide.runPython(`import sys\nif ${JSON.stringify(home)} not in sys.path: sys.path.insert(0, ${JSON.stringify(home)})`);
}

async function fetchFiles(paths) {
  return Promise.all(
    paths.map(async (path) => {
      const response = await self.fetch(new URL(path, site));
      if (!response.ok) throw new Error(`the site has no /${path} (HTTP ${response.status})`);
      return { path, text: await response.text() };
    }),
  );
}

async function load(config) {
  // The snapshot is asked for as soon as the files are in, while Pyodide's modules load
  // (the page's Pyodide is this one: it names the version).
  const files = fetchFiles(config.python_files);
  const kept = files.then((texts) => cachedSnapshot(snapshotMaterial(config.pyodide_version, texts)));
  const [{ loadPyodide, version }, asm] = await Promise.all([
    importText(`${config.pyodide_url}pyodide.mjs`),
    importText(`${config.pyodide_url}pyodide.asm.mjs`),
  ]);
  const options = { indexURL: config.pyodide_url, createPyodideModule: asm.default, stdout: log, stderr: log };
  // Packages by import: the site's or relay's folder when there is one, else Pyodide's CDN.
  options.packageBaseUrl = config.package_base_url || cdn(version);
  const { snapshot, keep } = await kept;
  if (snapshot) {
    try {
      const pyodide = await loadPyodide({ ...options, _loadSnapshot: snapshot });
      writeFiles(pyodide, await files);
      return { pyodide, from: "snapshot" };
    } catch (error) {
      log(`the cached snapshot did not load (${error.message}); starting cold`);
    }
  }
  const pyodide = await loadPyodide({ ...options, _makeSnapshot: keep });
  writeFiles(pyodide, await files);
  if (!keep) return { pyodide, from: "cold" };
  pyodide.runPython("import kernel_headless.main, kernel_headless.session, shared_schema");
  const bytes = pyodide.makeMemorySnapshot();
  const body = bytes.slice().buffer;
  port.postMessage({ type: "snapshot_put", body }, [body]);
  // The instance that made a snapshot sees globalThis through a recording
  // proxy, on which browser APIs throw "Illegal invocation" (pyodide#5588):
  // run the kernel in a fresh instance restored from that snapshot instead.
  const fresh = await loadPyodide({ ...options, _loadSnapshot: bytes });
  writeFiles(fresh, await files);
  return { pyodide: fresh, from: "cold" };
}

async function start({ config: configJson, interrupt }) {
  const config = JSON.parse(configJson);
  config.index_urls = [...(config.index_urls ?? []), PYPI];
  site = config.site;
  const started = performance.now();
  try {
    const { pyodide, from } = await load(config);
    if (interrupt) pyodide.setInterruptBuffer(new Int32Array(interrupt));
    post({ type: "loaded", source: from, load_seconds: (performance.now() - started) / 1000 });
    Object.assign(config, await begun);
    const main = pyodide.pyimport("kernel_headless.main");
    kernel = main.start(JSON.stringify(config), post);
    for (const message of early.splice(0)) kernel.receive(message);
    post({ type: "ready", source: from, load_seconds: (performance.now() - started) / 1000, interrupts: Boolean(interrupt) });
    const code = await kernel.serve();
    post(JSON.stringify({ type: "exit", code }));
  } catch (error) {
    post({ type: "fatal", error: String(error?.stack ?? error) });
  }
}

function fromPage({ data }) {
  if (typeof data === "string") {
    if (kernel === null) early.push(data);
    else kernel.receive(data);
  } else if (data?.type === "start") {
    begin(JSON.parse(data.config));
  } else if (data?.type === "fetched") {
    const waiting = asked.get(data.id);
    asked.delete(data.id);
    waiting?.(data);
  }
}

// A fetch that fails while Pyodide loads (offline, a file not kept) can reject a promise
// nobody awaits: it is said in the page's log, and "fatal" says that the start failed.
self.addEventListener("unhandledrejection", (event) => {
  event.preventDefault();
  log(`unhandled: ${event.reason?.message ?? event.reason}`);
});

self.onmessage = ({ data }) => {
  if (data?.type === "init" && port === null) {
    port = data.port;
    port.onmessage = fromPage;
    start(data);
  }
};
