// The browser host of a headless kernel: the page's main thread.
//
// `kernel_headless/launch/browser.py` opens browser.html in headless Chromium and
// calls `anode.start(config, token)` with the kernel's config (as node.mjs
// gets it, plus `python_files`: the paths of the kernel's Python files on the
// relay) and the relay credential (or null). The token stays in this page's
// KernelHost; the worker, where cells run, never sees it.
// The shared KernelHost (host.mjs) does the feed, outbox, heartbeat and
// interrupts here; the kernel's Python runs in a module Web Worker
// (browser_worker.mjs). Python on the other side of Playwright is told:
//   window.anodeReady(json)  once, when the first interpreter can claim work;
//   window.anodeExit(code)   when the session is over.
// Everything the host and the kernel log goes to the console, which the
// Python side forwards to its stderr. `anode.shutdown()` ends the session.

import { KernelHost } from "./host.mjs";

let host = null;
let announced = false;

function log(line) {
  console.log(`anode kernel: ${line}`);
}

function status(text) {
  const element = document.getElementById("status");
  if (element) element.textContent = `Anode kernel host: ${text}`;
}

/** Call a function the Python side exposed (absent when a person opened the page). */
function tell(name, ...args) {
  const callback = window[name];
  if (typeof callback === "function") callback(...args);
}

/**
 * The KernelHost, even on a page that is not cross-origin isolated. There is
 * no SharedArrayBuffer then, so the host gets a plain buffer: the worker sees
 * a copy it never polls, an interrupt reaches the kernel only as a message
 * (enough to cancel a cell that is awaiting, not one that spins), and output
 * of a busy cell arrives when it ends.
 */
function makeHost(options) {
  if (typeof SharedArrayBuffer === "function") return new KernelHost(options);
  globalThis.SharedArrayBuffer = ArrayBuffer;
  try {
    return new KernelHost(options);
  } finally {
    delete globalThis.SharedArrayBuffer;
  }
}

function spawnWorker(config, interrupt) {
  const worker = new Worker(new URL("./browser_worker.mjs", import.meta.url), {
    type: "module",
    name: `anode kernel ${config.session_id}`,
  });
  // The first message; the host's own messages (JSON strings) follow it.
  worker.postMessage({ type: "init", config, interrupt, shared: crossOriginIsolated });
  const exitCallbacks = [];
  const died = (reason) => {
    worker.terminate();
    // A first interpreter that never came up will not come up on a retry either.
    if (!announced) return tell("anodeExit", 1);
    for (const callback of exitCallbacks.splice(0)) callback(reason);
  };
  return {
    post: (message) => worker.postMessage(message),
    terminate: () => worker.terminate(),
    onMessage: (callback) =>
      worker.addEventListener("message", ({ data }) => {
        if (typeof data === "string") return callback(data);
        if (data.type === "log") return console.log(data.line);
        if (data.type === "fatal") {
          log(`the kernel's worker failed: ${data.error}`);
          return died(data.error.split("\n")[0]);
        }
        if (data.type === "ready") return ready(data);
      }),
    onExit: (callback) => {
      exitCallbacks.push(callback);
      worker.addEventListener("error", (event) => {
        event.preventDefault();
        died(event.message || "the worker's script did not load");
      });
    },
  };
}

function ready(message) {
  status(`kernel ready (${message.from}, ${message.load_seconds.toFixed(2)} s)`);
  if (announced) return;
  announced = true;
  const page_seconds = performance.now() / 1000; // since the page began to load
  const cross_origin_isolated = crossOriginIsolated;
  tell("anodeReady", JSON.stringify({ ...message, page_seconds, cross_origin_isolated }));
}

/** Start the kernel. Returns whether interrupts can stop a busy cell. */
function start(config, token = null) {
  if (host !== null) throw new Error("this page already runs a kernel");
  if (!crossOriginIsolated) {
    log(
      "this page is not cross-origin isolated, so SharedArrayBuffer is unavailable: " +
        "an interrupt can only cancel a cell that is awaiting, not one that computes " +
        "(serve the page with Cross-Origin-Opener-Policy: same-origin and " +
        "Cross-Origin-Embedder-Policy: require-corp, as `anode serve` does)",
    );
  }
  status(`starting a kernel for notebook ${config.notebook}`);
  host = makeHost({
    relay: config.relay,
    notebook: config.notebook,
    token,
    config: { ...config, host: "browser" },
    log,
    spawnWorker,
    onExit: (code) => {
      status(`the session ended (exit code ${code})`);
      tell("anodeExit", code);
    },
  });
  host.start();
  return { crossOriginIsolated };
}

/** Stop the running cell and let the kernel end its session (kernelSessionEnded). */
function shutdown() {
  // Before the first interpreter is up the kernel has announced nothing: no session to end.
  if (host === null || !announced) tell("anodeExit", 0);
  else host.shutdown();
}

window.anode = { start, shutdown };
