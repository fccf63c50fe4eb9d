// The tab kernel's frame (client/tab_kernel.py puts this script in an iframe's srcdoc, with
// sandbox="allow-scripts": an opaque origin). It starts the kernel's worker,
// holds its interrupt buffer, and hands the page a MessagePort to the worker,
// so their messages go straight between them (a hop through this frame would
// wait its turn on the page's busy thread):
//   page -> frame: {type: "spawn", source, config} (a fresh worker; the old one goes),
//                  {type: "interrupt"};
//   frame -> page: {type: "frame_ready"}, {type: "worker_port", worker} (the port transferred),
//                  {type: "worker", worker, data} (the worker failed to start or crashed).
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
    worker.onerror = (event) => {
      event.preventDefault();
      const error = event.message || "the kernel's worker did not start";
      parent.postMessage({ type: "worker", worker: id, data: { type: "fatal", error } }, "*");
    };
    const channel = new MessageChannel();
    const init = { type: "init", config: data.config, interrupt: interrupt && interrupt.buffer, port: channel.port1 };
    worker.postMessage(init, [channel.port1]);
    parent.postMessage({ type: "worker_port", worker: id }, "*", [channel.port2]);
  } else if (data.type === "interrupt" && interrupt) {
    Atomics.store(interrupt, 0, 2); // SIGINT: Pyodide raises KeyboardInterrupt at its next check
  }
});
parent.postMessage({ type: "frame_ready", isolated: self.crossOriginIsolated }, "*");
