// The main-thread half of a kernel, shared by the Node and browser hosts.
//
// The kernel's Python (in a worker) decides everything; this file only moves
// bytes, because the main thread stays free while a cell spins:
//   - feed:      long-poll the relay's log and hand each answer to the worker;
//   - outbox:    push what the worker sends, in order, retrying until answered;
//   - heartbeat: post the session's presence every third of its lease;
//   - interrupt: when the log asks to interrupt (or cancel, or restart) the
//                running execution, write SIGINT into the SharedArrayBuffer
//                the worker's Pyodide polls, and tell the worker;
//   - restart:   replace the worker when asked to, or when it dies.
// Messages with the worker are JSON strings (see kernel_headless/bridge.py).
//
// The relay credential lives here only (never in the worker, where cells
// run). When the relay refuses it (401: revoked or expired; 403 on the log
// itself: not a credential for this notebook), retrying cannot help: the
// host says so and exits with EXIT_UNAUTHORIZED. A 403 on one push (say,
// outputs for an execution the log no longer gives this session) drops that
// push alone, with a log line, and the kernel carries on.

const SIGINT = 2;
// While a cell runs, SIGUSR1 every TICK_MS makes the kernel flush buffered
// stdout/stderr, so a cell that prints and then computes shows its text now.
const SIGUSR1 = 10;
const TICK_MS = 50;
const RESEND_MS = 20;
const BEAT_COALESCE_MS = 100;
const MAX_BATCH = 500;
const RECENT = 2000;
/** The exit code when the relay refuses the credential (sysexits' EX_NOPERM). */
export const EXIT_UNAUTHORIZED = 77;

export class KernelHost {
  #headers;

  /**
   * @param {object} options
   * @param {string} options.relay       base URL of the relay, e.g. http://127.0.0.1:8000
   * @param {string} options.notebook    notebook id
   * @param {string|null} options.token  the relay credential (`Authorization: Bearer`), or null
   * @param {object} options.config      the kernel's config (session_id, lease_seconds, ...)
   * @param {(config: object, interrupt: Int32Array) => WorkerHandle} options.spawnWorker
   * @param {(line: string) => void} options.log
   * @param {(code: number) => void} options.onExit
   * @param {(url: string, options: object) => Promise<{status: number, ok: boolean, text: () => Promise<string>}>} [options.request]
   *        how HTTP requests are made (default: fetch; the Node host passes node:http with
   *        keep-alive, which answers in about half the time)
   */
  constructor({ relay, notebook, token = null, config, spawnWorker, log, onExit, request = browserFetch }) {
    this.api = `${relay.replace(/\/$/, "")}/api/notebooks/${encodeURIComponent(notebook)}`;
    // A private field: nothing that gets at this object can read it back.
    this.#headers = token ? { authorization: `Bearer ${token}` } : {};
    this.config = config;
    this.spawnWorker = spawnWorker;
    this.log = log;
    this.onExit = onExit;
    this.request = request;
    this.interrupt = new Int32Array(new SharedArrayBuffer(4));
    this.sessionId = config.session_id;
    this.leaseSeconds = config.lease_seconds;
    this.running = null; // { executionId, after }
    this.recent = [];
    this.outbox = [];
    this.pumping = false;
    this.stopped = false;
    this.generation = 0;
  }

  start() {
    this._spawn(false);
    this._heartbeatLoop();
  }

  /** Ctrl+C / SIGTERM: stop the running cell, let the kernel end its session. */
  shutdown() {
    if (this.stopped) return;
    this.log("shutting down");
    if (this.running) this.interrupt[0] = SIGINT;
    this.worker?.post(JSON.stringify({ type: "shutdown" }));
    setTimeout(() => this._exit(1), 5000).unref?.();
  }

  // --- the worker ---------------------------------------------------------------

  _spawn(restarted) {
    this._stopTicks();
    this.generation += 1;
    this.interrupt[0] = 0;
    this.running = null;
    this.recent = [];
    const generation = this.generation;
    const config = { ...this.config, session_id: this.sessionId, restarted };
    this.worker = this.spawnWorker(config, this.interrupt);
    this.worker.onMessage((raw) => {
      if (generation === this.generation) this._fromWorker(raw);
    });
    this.worker.onExit((error) => {
      if (generation !== this.generation || this.stopped) return;
      this.log(`the kernel's interpreter died (${error}); starting a fresh one`);
      this._restart();
    });
    this._feedLoop(generation);
  }

  _restart() {
    const old = this.worker;
    this.generation += 1; // silences the old worker before it goes
    old?.terminate();
    this._spawn(true);
  }

  _fromWorker(raw) {
    const message = JSON.parse(raw);
    switch (message.type) {
      case "push":
        this.outbox.push(message);
        this._pump();
        break;
      case "pushes": // several at once: they go out in one request
        for (const push of message.pushes) this.outbox.push(push);
        this._pump();
        break;
      case "session":
        this.sessionId = message.session_id;
        this.leaseSeconds = message.lease_seconds;
        this._beat();
        break;
      case "busy":
        this.running = { executionId: message.execution_id, after: message.after };
        for (const event of this.recent) this._watch(event);
        this._startTicks();
        this._beatSoon();
        break;
      case "interrupt_taken":
        this.interruptTaken = message.execution_id;
        break;
      case "idle":
        this.running = null;
        clearInterval(this.resend);
        this._stopTicks();
        this.interrupt[0] = 0;
        this._beatSoon();
        break;
      case "restart":
        this.log("restarting the interpreter");
        this._restart();
        break;
      case "exit":
        this._exit(message.code ?? 0);
        break;
      default:
        this.log(`unknown message from the kernel: ${raw.slice(0, 200)}`);
    }
  }

  _startTicks() {
    this._stopTicks();
    // Only into an empty buffer: never overwrite a pending SIGINT.
    this.ticks = setInterval(() => Atomics.compareExchange(this.interrupt, 0, 0, SIGUSR1), TICK_MS);
  }

  _stopTicks() {
    if (this.ticks) clearInterval(this.ticks);
    this.ticks = null;
  }

  _toWorker(message) {
    this.worker?.post(JSON.stringify(message));
  }

  _exit(code) {
    if (this.stopped) return;
    this.stopped = true;
    this._stopTicks();
    this.generation += 1;
    this.worker?.terminate();
    this.onExit(code);
  }

  // --- feed: the log, long-polled -------------------------------------------------

  async _feedLoop(generation) {
    let after = 0;
    let backoff = 100;
    while (!this.stopped && generation === this.generation) {
      let body;
      try {
        const response = await this._fetch(`${this.api}/events?after=${after}&limit=2000&wait=25`);
        body = await response.text();
        if (response.status === 401 || response.status === 403) return this._refused(response.status, body);
        if (!response.ok) throw new Error(`relay answered ${response.status}: ${body.slice(0, 200)}`);
      } catch (error) {
        if (generation !== this.generation) return;
        this.log(`cannot reach the relay (${error.message ?? error}); retrying`);
        await sleep(backoff);
        backoff = Math.min(backoff * 2, 2000);
        continue;
      }
      backoff = 100;
      if (generation !== this.generation) return;
      const { events } = JSON.parse(body);
      if (events.length === 0) continue;
      after = events[events.length - 1].seq;
      for (const event of events) {
        this.recent.push(event);
        this._watch(event);
      }
      if (this.recent.length > RECENT) this.recent.splice(0, this.recent.length - RECENT);
      this._toWorker({ type: "events", body, last: after });
    }
  }

  /** Interrupt the running cell if ``event`` asks for it. */
  _watch(event) {
    const running = this.running;
    if (!running || event.seq <= running.after) return;
    const { name, args } = event;
    const stop =
      ((name === "interruptRequested" || name === "executionCancelled") &&
        args.execution_id === running.executionId) ||
      (name === "kernelRestartRequested" && (args.session_id == null || args.session_id === this.sessionId)) ||
      (name === "kernelSessionExpired" && args.session_id === this.sessionId);
    if (stop) this._interruptRunning();
  }

  /**
   * SIGINT into the buffer, repeated every RESEND_MS until the kernel says it
   * took it (or the cell ends): Pyodide reads the buffer and then zeroes it in
   * two steps, so a write landing between them is lost.
   */
  _interruptRunning() {
    const executionId = this.running.executionId;
    this._toWorker({ type: "interrupt", execution_id: executionId });
    clearInterval(this.resend);
    const send = () => {
      if (this.running?.executionId !== executionId || this.interruptTaken === executionId) {
        clearInterval(this.resend);
        return;
      }
      Atomics.compareExchange(this.interrupt, 0, 0, SIGINT);
      Atomics.compareExchange(this.interrupt, 0, SIGUSR1, SIGINT);
    };
    send();
    this.resend = setInterval(send, RESEND_MS);
  }

  // --- the relay ----------------------------------------------------------------------

  /** A request with the credential. */
  _fetch(url, options = {}) {
    return this.request(url, { ...options, headers: { ...options.headers, ...this.#headers } });
  }

  /** The relay refused the credential: retrying will not help, so end (non-zero). */
  _refused(status, body) {
    if (this.stopped) return;
    const why =
      status === 401
        ? "the relay no longer accepts this kernel's credential (revoked, expired, or none was given)"
        : "this kernel's credential does not allow it to read this notebook";
    this.log(`${why}: ${status} ${String(body).slice(0, 200)}; exiting`);
    this._exit(EXIT_UNAUTHORIZED);
  }

  // --- outbox: ordered pushes -------------------------------------------------------

  async _pump() {
    if (this.pumping) return;
    this.pumping = true;
    try {
      while (this.outbox.length > 0 && !this.stopped) {
        const batch = [];
        let count = 0;
        while (this.outbox.length > 0 && count + this.outbox[0].events.length <= MAX_BATCH) {
          const message = this.outbox.shift();
          batch.push(message);
          count += message.events.length;
        }
        if (batch.length === 0) batch.push(this.outbox.shift()); // one oversized message
        await this._pushBatch(batch);
      }
    } finally {
      this.pumping = false;
    }
  }

  async _pushBatch(batch) {
    const events = batch.flatMap((message) => message.events);
    let backoff = 100;
    for (;;) {
      let response;
      let body;
      try {
        response = await this._fetch(`${this.api}/events`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ events }),
        });
        body = parseJson(await response.text());
      } catch (error) {
        this.log(`push failed (${error.message ?? error}); retrying`);
        await sleep(backoff);
        backoff = Math.min(backoff * 2, 2000);
        continue;
      }
      if (response.ok) {
        let offset = 0;
        const results = batch.map((message) => {
          const seqs = body.seqs.slice(offset, offset + message.events.length);
          offset += message.events.length;
          return { id: message.id, seqs };
        });
        this._toWorker({ type: "pushed", results, head: body.head });
        return;
      }
      if (response.status === 401) return this._refused(401, JSON.stringify(body));
      if (response.status >= 500 || response.status === 429) {
        await sleep(backoff);
        backoff = Math.min(backoff * 2, 2000);
        continue;
      }
      if (batch.length > 1) {
        // One message spoiled the batch: push them one by one to find it.
        for (const message of batch) if (!this.stopped) await this._pushBatch([message]);
        return;
      }
      const what = response.status === 403 ? "dropped a push the relay forbids" : "the relay refused a push";
      const names = [...new Set(events.map((event) => event.name))].join(", ");
      this.log(`${what} (${names}): ${response.status} ${JSON.stringify(body).slice(0, 300)}`);
      this._toWorker({ type: "push_failed", id: batch[0].id, status: response.status, error: body });
      return;
    }
  }

  // --- heartbeat ----------------------------------------------------------------------

  /**
   * Heartbeat soon with the new status (busy, idle): at most one beat per
   * BEAT_COALESCE_MS, so a run of short cells costs one heartbeat, not two
   * per cell. Only the presence status waits; nothing on the path of a cell does.
   */
  _beatSoon() {
    if (this.beatTimer) return;
    this.beatTimer = setTimeout(() => {
      this.beatTimer = null;
      if (!this.stopped) this._beat();
    }, BEAT_COALESCE_MS);
    this.beatTimer.unref?.();
  }

  async _heartbeatLoop() {
    while (!this.stopped) {
      await this._beat();
      await sleep(Math.max(100, (this.leaseSeconds * 1000) / 3));
    }
  }

  async _beat() {
    const state = {
      session_id: this.sessionId,
      status: this.running ? "busy" : "idle",
      execution_id: this.running?.executionId ?? null,
      host: this.config.host,
      label: this.config.label ?? "",
    };
    try {
      const response = await this._fetch(`${this.api}/presence`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ client_id: this.sessionId, kind: "kernel", state, ttl: Math.min(this.leaseSeconds * 2, 300) }),
      });
      if (response.status === 401) this._refused(401, await response.text());
    } catch {
      // The relay is away; the feed loop says so. The lease decides.
    }
  }
}

/** fetch() called as the browser wants it: on globalThis, never as another object's method. */
function browserFetch(url, options) {
  return fetch(url, options);
}

/** A relay answer's JSON; a body that is not JSON (a proxy's error page) as {error: text}. */
function parseJson(text) {
  try {
    return JSON.parse(text);
  } catch {
    return { error: "not_json", detail: text.slice(0, 300) };
  }
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
