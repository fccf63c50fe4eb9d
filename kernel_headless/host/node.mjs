// The Node host of a headless kernel.
//
//   node kernel_headless/host/node.mjs '<config JSON>'
//
// Config: {relay, notebook, session_id, lease_seconds, label, snapshot_dir,
//          python_dirs: [dirs of packages to load], micropip_wheel, index_urls,
//          output_cap_bytes}
// Environment (read, then deleted, before any cell can run):
//   ANODE_KERNEL_TOKEN  the relay credential, sent as `Authorization: Bearer`;
//   ANODE_SNAPSHOT_KEY  the key that signs cached snapshots.
// Runs the kernel's Python in a worker_thread on Pyodide, started from a
// memory snapshot cached in snapshot_dir (made on first use, remade when
// Pyodide or the Python files change). Prints one line "anode kernel ready:
// {...}" on stdout when it is ready to claim work. Ctrl+C / SIGTERM end the
// session.
//
// kernel_headless/launcher.py starts this under Node's permission model, and
// cells run in the worker, so the worker gets nothing secret: no token, no
// key, an empty process.env. Only this main thread talks to the relay with
// the token, and only it reads and writes snapshots: one is loaded only when
// its signature holds, so a cell that overwrites the cache (it may write
// there) cannot plant code in the next kernel.

import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { MessageChannel, Worker } from "node:worker_threads";
import { createRequire } from "node:module";

import { KernelHost } from "./host.mjs";

const require = createRequire(import.meta.url);
const PYODIDE_VERSION = require("pyodide/package.json").version;

// The secrets, taken out of the environment before anything else runs.
const TOKEN = process.env.ANODE_KERNEL_TOKEN || null;
const SNAPSHOT_KEY = process.env.ANODE_SNAPSHOT_KEY || null;
delete process.env.ANODE_KERNEL_TOKEN;
delete process.env.ANODE_SNAPSHOT_KEY;

function log(line) {
  process.stderr.write(`anode kernel: ${line}\n`);
}

/** Every .py file under each dir, as {path: "pkg/mod.py", text}; sorted, so the hash is stable. */
function pythonFiles(dirs) {
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

function snapshotPath(snapshotDir, files) {
  const hash = crypto.createHash("sha256").update(PYODIDE_VERSION);
  for (const file of files) hash.update(file.path).update("\0").update(file.text).update("\0");
  return path.join(snapshotDir, `kernel-pyodide-${PYODIDE_VERSION}-${hash.digest("hex").slice(0, 16)}.snapshot`);
}

/** HMAC of a snapshot's bytes under SNAPSHOT_KEY, bound to its file name. */
function signature(file, bytes) {
  return crypto.createHmac("sha256", SNAPSHOT_KEY).update(path.basename(file)).update("\0").update(bytes).digest();
}

/** The cached snapshot's bytes when there is one and its signature holds; else null. */
function loadSnapshot(file) {
  if (SNAPSHOT_KEY === null) return null;
  let bytes;
  let mac;
  try {
    bytes = fs.readFileSync(file);
    mac = Buffer.from(fs.readFileSync(`${file}.sig`, "utf8").trim(), "hex");
  } catch {
    return null; // none yet
  }
  const expected = signature(file, bytes);
  if (mac.length !== expected.length || !crypto.timingSafeEqual(mac, expected)) {
    log(`the cached snapshot ${file} is not signed by this cache's key; ignoring it`);
    return null;
  }
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function main() {
  const config = JSON.parse(process.argv[2] ?? process.env.ANODE_KERNEL_CONFIG ?? "{}");
  for (const key of ["relay", "notebook", "session_id", "snapshot_dir", "python_dirs"]) {
    if (config[key] == null) {
      log(`missing config key ${key}`);
      process.exit(2);
    }
  }
  const files = pythonFiles(config.python_dirs);
  const snapshot = snapshotPath(config.snapshot_dir, files);
  if (SNAPSHOT_KEY === null) log("no snapshot key was given: starting cold, caching nothing");
  const started = performance.now();
  let announced = false;

  const host = new KernelHost({
    relay: config.relay,
    notebook: config.notebook,
    token: TOKEN,
    config,
    log,
    onExit: (code) => process.exit(code),
    spawnWorker: (workerConfig, interrupt) => {
      const makeSnapshot = SNAPSHOT_KEY !== null; // when it did not load one
      const { port1, port2 } = new MessageChannel();
      const worker = new Worker(new URL("./node_worker.mjs", import.meta.url), {
        workerData: { config: workerConfig, interrupt, files, snapshotPort: port2, makeSnapshot },
        transferList: [port2],
        env: {}, // cells see an empty process.env
      });
      // Read and check the snapshot while the worker boots, then hand it over.
      const cached = loadSnapshot(snapshot);
      port1.postMessage({ snapshot: cached }, cached ? [cached.buffer] : []);
      port1.close();
      const handle = {
        post: (message) => worker.postMessage(message),
        terminate: () => worker.terminate(),
        onMessage: (callback) =>
          worker.on("message", (message) => {
            if (typeof message === "string") return callback(message);
            if (message.type === "snapshot") return saveSnapshot(snapshot, message.bytes);
            if (message.type === "ready" && !announced) {
              announced = true;
              const seconds = ((performance.now() - started) / 1000).toFixed(3);
              console.log(`anode kernel ready: ${JSON.stringify({ ...message, seconds })}`);
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
      return handle;
    },
  });
  process.on("SIGINT", () => host.shutdown());
  process.on("SIGTERM", () => host.shutdown());
  // `anode kernel` (or `anode serve`) started us; when it dies without passing a
  // signal on (SIGTERM to its pid only, kill -9), we would run on, orphaned and
  // unseen. End the session instead, as for a signal.
  const parent = process.ppid;
  setInterval(() => {
    if (process.ppid !== parent) {
      log(`the process that started this kernel (pid ${parent}) is gone`);
      host.shutdown();
    }
  }, 500).unref();
  host.start();
}

function saveSnapshot(file, bytes) {
  try {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    const temporary = `${file}.${process.pid}.tmp`;
    fs.writeFileSync(temporary, bytes);
    fs.writeFileSync(`${temporary}.sig`, signature(file, bytes).toString("hex"));
    // Signature first: a kernel that reads the new snapshot with the old
    // signature only starts cold once.
    fs.renameSync(`${temporary}.sig`, `${file}.sig`);
    fs.renameSync(temporary, file); // atomic: another kernel never reads half a snapshot
    log(`cached a Pyodide snapshot in ${file}`);
  } catch (error) {
    log(`could not cache the snapshot: ${error.message}`);
    return;
  }
  pruneSnapshots(file);
}

/**
 * Every change to the kernel's Python makes a new ~30 MB snapshot; keep the
 * newest few (a checkout switched back and forth) and delete the rest. A
 * kernel that still wanted a deleted one just starts cold and makes it again.
 */
function pruneSnapshots(current, keep = 3) {
  const dir = path.dirname(current);
  try {
    const old = fs
      .readdirSync(dir)
      .filter((name) => /^kernel-pyodide-.+\.snapshot$/.test(name))
      .map((name) => path.join(dir, name))
      .filter((file) => file !== current)
      .map((file) => ({ file, mtime: fs.statSync(file).mtimeMs }))
      .sort((a, b) => b.mtime - a.mtime);
    for (const { file } of old.slice(keep - 1)) {
      fs.rmSync(file, { force: true });
      fs.rmSync(`${file}.sig`, { force: true });
    }
  } catch (error) {
    log(`could not prune old snapshots: ${error.message}`);
  }
}

main();
