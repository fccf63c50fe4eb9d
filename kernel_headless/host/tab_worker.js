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
// First message (from the frame): {type: "init", config, interrupt} (config: the kernel's
// config as JSON text, client/tab_kernel.py); then the
// page's JSON strings for the kernel (kernel_headless/bridge.py). To the page:
// the kernel's JSON strings, and {type: "log" | "ready" | "fatal" | "fetch"}.

const PYPI = "https://pypi.org/simple/";
const cdn = (version) => `https://cdn.jsdelivr.net/pyodide/v${version}/full/`;
const post = (message) => self.postMessage(message);
const log = (line) => post({ type: "log", line });

let site = null;
let kernel = null;
const early = [];
const asked = new Map();
let asks = 0;
const networkFetch = self.fetch.bind(self);

function fromPage(url) {
  return new Promise((resolve, reject) => {
    asks += 1;
    asked.set(asks, { resolve, reject });
    post({ type: "fetch", id: asks, url });
  });
}

self.fetch = async (input, init) => {
  const address = new URL(input instanceof Request ? input.url : String(input), site ?? undefined);
  const method = (init?.method ?? (input instanceof Request ? input.method : "GET")).toUpperCase();
  if (site === null || address.origin !== new URL(site).origin || method !== "GET") {
    return networkFetch(input, init);
  }
  const answer = await fromPage(address.href);
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

async function load(config) {
  const { loadPyodide, version } = await importText(`${config.pyodide_url}pyodide.mjs`);
  const asm = await importText(`${config.pyodide_url}pyodide.asm.mjs`);
  const options = { indexURL: config.pyodide_url, createPyodideModule: asm.default, stdout: log, stderr: log };
  // Packages by import: the site's or relay's folder when there is one, else Pyodide's CDN.
  options.packageBaseUrl = config.package_base_url || cdn(version);
  const [pyodide, files] = await Promise.all([
    loadPyodide(options),
    Promise.all(
      config.python_files.map(async (path) => {
        const response = await self.fetch(new URL(path, site));
        if (!response.ok) throw new Error(`the site has no /${path} (HTTP ${response.status})`);
        return { path, text: await response.text() };
      }),
    ),
  ]);
  const home = "/home/pyodide";
  for (const file of files) {
    const target = `${home}/${file.path}`;
    pyodide.FS.mkdirTree(target.slice(0, target.lastIndexOf("/")));
    pyodide.FS.writeFile(target, file.text);
  }
  pyodide.runPython(`import sys\nif ${JSON.stringify(home)} not in sys.path: sys.path.insert(0, ${JSON.stringify(home)})`);
  return pyodide;
}

async function start({ config: configJson, interrupt }) {
  const config = JSON.parse(configJson);
  config.index_urls = [...(config.index_urls ?? []), PYPI];
  configJson = JSON.stringify(config);
  site = config.site;
  const started = performance.now();
  try {
    const pyodide = await load(config);
    if (interrupt) pyodide.setInterruptBuffer(new Int32Array(interrupt));
    const main = pyodide.pyimport("kernel_headless.main");
    kernel = main.start(configJson, post);
    for (const message of early.splice(0)) kernel.receive(message);
    post({ type: "ready", load_seconds: (performance.now() - started) / 1000, interrupts: Boolean(interrupt) });
    const code = await kernel.serve();
    post(JSON.stringify({ type: "exit", code }));
  } catch (error) {
    post({ type: "fatal", error: String(error?.stack ?? error) });
  }
}

self.onmessage = ({ data }) => {
  if (typeof data === "string") {
    if (kernel === null) early.push(data);
    else kernel.receive(data);
  } else if (data?.type === "fetched") {
    const waiting = asked.get(data.id);
    asked.delete(data.id);
    waiting?.resolve(data);
  } else if (data?.type === "init" && site === null) {
    start(data);
  }
};
