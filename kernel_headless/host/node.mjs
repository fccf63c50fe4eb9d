// The Node host of a headless kernel.
//
//   node kernel_headless/host/node.mjs '<config JSON>'
//
// Config: {relay, notebook, session_id, lease_seconds, label, snapshot_file,
//          python_files: ["pkg/mod.py", ...], micropip_wheel, index_urls,
//          pyodide_packages, package_cache_dir, output_cap_bytes, shutdown_on_eof}
// Environment (read, then deleted, before any cell can run):
//   ANODE_KERNEL_TOKEN  the relay credential, sent as `Authorization: Bearer`.
// Runs the kernel's Python in a worker_thread on Pyodide, started from the
// memory snapshot in snapshot_file when there is one (a separate process,
// host/snapshot_maker.mjs, makes it; this one only reads it). Prints one
// line "anode kernel ready: {...}" on stdout when it is ready to claim work.
// Ctrl+C / SIGTERM end the session, and so does the end of stdin with
// shutdown_on_eof (the launcher's way in: inside a PID namespace of its own,
// no signal from outside reaches this process).
//
// kernel_headless/launch/node.py starts this under Node's permission model
// (and bubblewrap), and cells run in the worker, so the worker gets nothing
// secret: no token, an empty process.env. Only this main thread talks to
// the relay with the token. What the worker sends is a kernel's own
// messages (JSON strings) and one "ready": nothing it sends is stored.

import { MessageChannel, Worker } from "node:worker_threads";
import fs from "node:fs";
import http from "node:http";
import https from "node:https";

import { KernelHost } from "./host.mjs";
import { readPythonFiles } from "./node_pyodide.mjs";

// The secret, taken out of the environment before anything else runs.
const TOKEN = process.env.ANODE_KERNEL_TOKEN || null;
delete process.env.ANODE_KERNEL_TOKEN;

function log(line) {
  process.stderr.write(`anode kernel: ${line}\n`);
}

/** The cached snapshot's bytes, or null when there is none yet. */
function loadSnapshot(file) {
  try {
    const bytes = fs.readFileSync(file);
    return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  } catch {
    return null;
  }
}

function main() {
  const config = JSON.parse(process.argv[2] ?? process.env.ANODE_KERNEL_CONFIG ?? "{}");
  for (const key of ["relay", "notebook", "session_id", "python_files"]) {
    if (config[key] == null) {
      log(`missing config key ${key}`);
      process.exit(2);
    }
  }
  const files = readPythonFiles(config.python_files);
  const started = performance.now();
  let announced = false;

  const host = new KernelHost({
    relay: config.relay,
    notebook: config.notebook,
    token: TOKEN,
    config,
    log,
    request: nodeRequest,
    onExit: (code) => process.exit(code),
    spawnWorker: (workerConfig, interrupt) => {
      const { port1, port2 } = new MessageChannel();
      const worker = new Worker(new URL("./node_worker.mjs", import.meta.url), {
        workerData: { config: workerConfig, interrupt, files, snapshotPort: port2 },
        transferList: [port2],
        env: {}, // cells see an empty process.env
      });
      // Read the snapshot while the worker boots, then hand it over.
      const cached = config.snapshot_file ? loadSnapshot(config.snapshot_file) : null;
      port1.postMessage({ snapshot: cached }, cached ? [cached.buffer] : []);
      port1.close();
      return {
        post: (message) => worker.postMessage(message),
        terminate: () => worker.terminate(),
        onMessage: (callback) =>
          worker.on("message", (message) => {
            if (typeof message === "string") return callback(message);
            if (message?.type === "ready" && !announced) {
              announced = true;
              const seconds = ((performance.now() - started) / 1000).toFixed(3);
              const { from, load_seconds } = message;
              console.log(`anode kernel ready: ${JSON.stringify({ type: "ready", from, load_seconds, seconds })}`);
            }
          }),
        onExit: (callback) => {
          const died = (reason) => {
            // A first interpreter that never came up will not come up on a retry either.
            if (!announced) {
              log(`the kernel's interpreter did not start (${reason})`);
              process.exit(1);
            }
            callback(reason);
          };
          worker.on("error", (error) => died(error.message ?? String(error)));
          worker.on("exit", (code) => died(`exit code ${code}`));
        },
      };
    },
  });
  process.on("SIGINT", () => host.shutdown());
  process.on("SIGTERM", () => host.shutdown());
  if (config.shutdown_on_eof) {
    // The launcher holds our stdin open; it closes it to stop us, and so does its death.
    process.stdin.on("end", () => host.shutdown());
    process.stdin.on("error", () => host.shutdown());
    process.stdin.resume();
  }
  // Started without a PID namespace, a host whose parent died without passing
  // a signal on would run on, orphaned and unseen: end the session instead.
  const parent = process.ppid;
  setInterval(() => {
    if (process.ppid !== parent) {
      log(`the process that started this kernel (pid ${parent}) is gone`);
      host.shutdown();
    }
  }, 500).unref();
  host.start();
}


// Requests to the relay on node:http with keep-alive: about half the time of
// fetch (undici) per request here (0.30 against 0.44-0.68 ms, measured on
// loopback), and a kernel's round trip makes three of them.
const AGENTS = {
  "http:": new http.Agent({ keepAlive: true }),
  "https:": new https.Agent({ keepAlive: true }),
};

/** fetch()'s shape (status, ok, text()) over node:http. */
function nodeRequest(url, { method = "GET", headers = {}, body } = {}) {
  const target = new URL(url);
  const transport = target.protocol === "https:" ? https : http;
  return new Promise((resolve, reject) => {
    const request = transport.request(
      target,
      { method, headers, agent: AGENTS[target.protocol] },
      (response) => {
        const chunks = [];
        response.on("data", (chunk) => chunks.push(chunk));
        response.on("error", reject);
        response.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          const status = response.statusCode;
          resolve({ status, ok: status >= 200 && status < 300, text: async () => text });
        });
      },
    );
    request.on("error", reject);
    request.end(body);
  });
}

// Last: main() uses everything above (AGENTS among them) at once.
main();
