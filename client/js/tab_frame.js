// The tab kernel's frame (client/tab_kernel.py puts this script in an iframe's srcdoc, with
// sandbox="allow-scripts": an opaque origin). It holds the kernel's worker and
// its interrupt buffer, and passes messages between the page and the worker:
//   page -> frame: {type: "spawn", source, config} (a fresh worker; the old one goes),
//                  {type: "post", message}, {type: "interrupt"},
//                  {type: "fetched", ...} (answers the worker's fetches);
//   frame -> page: {type: "frame_ready"}, {type: "worker", data, worker}.
// index.html's Content-Security-Policy lets this script in by its hash
// (tests/test_tab_kernel.py checks it): change one, change the other.
let worker = null;
let interrupt = null;
let spawned = 0;
addEventListener("message", ({ source, data }) => {
  if (source !== parent || !data) return;
  if (data.type === "spawn") {
    if (worker) worker.terminate();
    spawned += 1;
    const id = spawned;
    const url = URL.createObjectURL(new Blob([data.source], { type: "text/javascript" }));
    worker = new Worker(url, { name: "anode tab kernel" });
    const shared = self.crossOriginIsolated && typeof SharedArrayBuffer === "function";
    interrupt = shared ? new Int32Array(new SharedArrayBuffer(4)) : null;
    worker.onmessage = (event) => parent.postMessage({ type: "worker", worker: id, data: event.data }, "*");
    worker.onerror = (event) => {
      event.preventDefault();
      const error = event.message || "the kernel's worker did not start";
      parent.postMessage({ type: "worker", worker: id, data: { type: "fatal", error } }, "*");
    };
    worker.postMessage({ type: "init", config: data.config, interrupt: interrupt && interrupt.buffer });
  } else if (data.type === "post" && worker) {
    worker.postMessage(data.message);
  } else if (data.type === "fetched" && worker) {
    worker.postMessage(data, data.body ? [data.body] : []);
  } else if (data.type === "interrupt" && interrupt) {
    Atomics.store(interrupt, 0, 2); // SIGINT: Pyodide raises KeyboardInterrupt at its next check
  }
});
parent.postMessage({ type: "frame_ready", isolated: self.crossOriginIsolated }, "*");
