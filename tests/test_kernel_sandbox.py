"""The Node kernel's sandbox: what a cell can and cannot reach, and the kernel's credential.

Cells are other people's code. A real relay and a real Node kernel (under
Node's permission model, as ``kernel_headless.launch`` starts it) run cells
that try to get out through Pyodide's ``js`` module — Node's ``fs``,
``child_process``, ``process.binding``, ``createRequire``, the environment,
the command line — and each attempt must end as an ``error`` output while
the kernel carries on. The credential must never show up in a cell.

Then the credential's other side: a relay (here a small proxy in front of
the real one) that answers 401 makes the kernel exit with a clear message,
and a 403 on one push drops that push and nothing else.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

import kernel_headless.launch.sandbox as sandbox_module
from kernel_headless.launch.node import ensure_snapshot, snapshot_dir
from kernel_headless.launch.spec import EXIT_UNAUTHORIZED, KernelSpec, default_cache_dir
from tests.kernels import (  # noqa: F401 - the *_fixture names are fixtures
    Kernels,
    Notebook,
    errors_in,
    kernels_fixture,
    notebooks_fixture,
    only_error,
    stream_text,
    wait_until,
)

pytestmark = pytest.mark.slow

SECRET_ENV = "ANODE_TEST_SECRET_MARKER"


def _text_of(outputs: list[dict]) -> str:
    """Every bit of text in a cell's outputs, for "this never shows up anywhere" checks."""
    return json.dumps(outputs)


# --- what a cell cannot reach ------------------------------------------------------------


_FS = "import js\nfs = await js.eval(\"import('node:fs')\")\n"

ESCAPES = {
    "import_fs": _FS + "fs.readFileSync('/etc/passwd', 'utf8')",
    "fs_promises": (
        "import js\nfs = await js.eval(\"import('node:fs/promises')\")\n"
        "await fs.readFile('/etc/passwd', 'utf8')"
    ),
    "child_process_import": (
        "import js\ncp = await "
        "js.eval(\"import('node:child_process')\")\ncp.execSync('id').toString()"
    ),
    "child_process_spawn": (
        "import js\ncp = await js.eval(\"import('node:child_process')\")\ncp.spawn('id')"
    ),
    "binding": "import js\njs.process.binding('fs')",
    "create_require": (
        "import js\nmodule = await js.eval(\"import('node:module')\")\n"
        "module.createRequire('/etc/x.js')('fs').readFileSync('/etc/passwd', 'utf8')"
    ),
    "write_outside": _FS + "fs.writeFileSync({outside!r}, 'planted')",
    "write_snapshot_cache": _FS + "fs.writeFileSync({cache!r} + '/planted.snapshot', 'planted')",
    "wasi": (
        "import js\nwasi = await js.eval(\"import('node:wasi')\")\n"
        'wasi.WASI.new(js.JSON.parse(\'{{"version": "preview1", "preopens": {{"/": "/"}}}}\'))'
    ),
    "inspector": "import js\ninspector = await "
    "js.eval(\"import('node:inspector')\")\ninspector.Session.new().connect()",
    # Pyodide sets globalThis.require while it starts cold; a kernel from a snapshot has none.
    "require": (
        "import js\nif not hasattr(js, 'require'): raise PermissionError('Access to this API has "
        "been restricted')\n"
        "js.require('fs').readFileSync('/etc/passwd', 'utf8')"
    ),
}


def test_cells_cannot_reach_the_host(
    relay_process, notebooks, kernels: Kernels, tmp_path: Path, monkeypatch
) -> None:
    secret = f"s3cr3t-{uuid.uuid4().hex}"
    monkeypatch.setenv(SECRET_ENV, secret)  # in our environment, so in the kernel's if it leaked
    relay = relay_process()
    notebook: Notebook = notebooks(relay.url, relay.token)
    token = notebook.kernel_token()
    kernel = kernels.start(relay.url, notebook.id, token=token)

    outside = tmp_path / "planted.txt"
    cache = snapshot_dir(default_cache_dir())
    sources = {
        name: source.format(outside=str(outside), cache=str(cache))
        for name, source in ESCAPES.items()
    }
    sources["env"] = "import js\nprint(dict(js.Object.entries(js.process.env).to_py()))"
    sources["argv"] = "import js\nprint(list(js.process.argv), list(js.process.execArgv))"
    sources["python_open"] = "print(open('/etc/passwd').read())"
    sources["python_listdir"] = "import os\nprint(os.listdir('/'), os.listdir('/home'))"
    sources["after"] = "print('still here', 6 * 7)"
    names = list(sources)
    ids = dict(zip(names, notebook.run_many([sources[name] for name in names]), strict=False))
    runs = dict(zip(names, notebook.wait_done(*ids.values(), timeout=90), strict=False))

    for name in ESCAPES:
        error = only_error(runs[name].outputs)
        assert runs[name].status == "error", (name, runs[name].outputs)
        # Node's own words: ERR_ACCESS_DENIED ("Access to this API has been restricted").
        assert "restricted" in error["evalue"] or "ERR_ACCESS_DENIED" in error["evalue"], (
            name,
            error,
        )
    assert not outside.exists() and not (cache / "planted.snapshot").exists()

    # process.env is empty in the worker; nothing of ours, nothing of the kernel's.
    assert runs["env"].status == "ok"
    assert stream_text(runs["env"].outputs).strip() == "{}"
    assert runs["argv"].status == "ok"
    # Pyodide's open() reads its own in-memory file system, never the host's.
    host_passwd = Path("/etc/passwd").read_text()
    assert host_passwd.splitlines()[0] not in _text_of(runs["python_open"].outputs)
    assert host_passwd.splitlines()[0] not in _text_of(runs["python_listdir"].outputs)
    # The kernel is fine: the next cell runs.
    assert runs["after"].status == "ok"
    assert stream_text(runs["after"].outputs) == "still here 42\n"
    assert kernel.alive()

    everything = _text_of([output for run in runs.values() for output in run.outputs])
    assert secret not in everything
    if token is not None:
        assert token not in everything
        assert token.split(".")[2] not in everything  # not even its signature


# A cell that tries every way we know to plant code in later kernels: the
# worker's channel to the host (``parentPort``, ``workerData``), the kernel's
# own ``post`` (found through the garbage collector) carrying a "snapshot"
# and a "ready", and the snapshot cache itself. It also patches its own
# kernel, so that a kernel made from its memory would say so.
_PLANT = """
import gc, js, kernel_headless.execution as execution
wt = js.process.getBuiltinModule("node:worker_threads")
imported = await js.eval("import('node:worker_threads')")
print("channel", wt.parentPort, wt.workerData, imported.parentPort, imported.workerData)
original = execution.compile_cell
def backdoored(*args, **kwargs):
    print("BACKDOOR")
    return original(*args, **kwargs)
execution.compile_cell = backdoored
bridge = next(o for o in gc.get_objects() if type(o).__name__ == "HostBridge")
snapshot = js.Uint8Array.new(64)
pairs = js.Array.of
bridge._post(js.Object.fromEntries(pairs(pairs("type", "snapshot"), pairs("bytes", snapshot))))
bridge._post(js.Object.fromEntries(pairs(pairs("type", "ready"), pairs("from", "planted"))))
fs = await js.eval("import('node:fs')")
for target in ({snapshot!r}, {cache!r} + "/other.snapshot"):
    try:
        fs.writeFileSync(target, "planted")
        print("WROTE", target)
    except Exception as error:
        print("refused", type(error).__name__)
"""


def test_cells_cannot_plant_code_in_later_kernels(
    relay_process, notebooks, kernels: Kernels, tmp_path: Path
) -> None:
    relay = relay_process("--kernels", "none")
    attacker: Notebook = notebooks(relay.url, relay.token)
    victim: Notebook = notebooks(relay.url, relay.token)
    cache = tmp_path / "cache"  # our own: the shared cache stays intact
    spec = KernelSpec(relay=relay.url, notebook=attacker.id, cache_dir=cache)
    snapshot = ensure_snapshot(spec, wait=True)
    made = hashlib.sha256(snapshot.read_bytes()).hexdigest()

    first = kernels.start(relay.url, attacker.id, token=attacker.kernel_token(), cache_dir=cache)
    assert first.ready["from"] == "snapshot"
    plant = _PLANT.format(snapshot=str(snapshot), cache=str(snapshot.parent))
    run = attacker.wait_done(attacker.run(plant))[0]
    assert run.status == "ok", run.outputs
    printed = stream_text(run.outputs)
    assert "channel jsnull jsnull jsnull jsnull" in printed  # the worker's channel is out of reach
    assert "WROTE" not in printed and printed.count("refused") == 2
    patched = attacker.wait_done(attacker.run("print('next')"))[0]
    assert stream_text(patched.outputs) == "BACKDOOR\nnext\n"  # it did patch its own kernel
    first.stop()

    assert hashlib.sha256(snapshot.read_bytes()).hexdigest() == made
    assert sorted(path.name for path in snapshot.parent.iterdir()) == [snapshot.name]
    second = kernels.start(relay.url, victim.id, token=victim.kernel_token(), cache_dir=cache)
    assert second.ready["from"] == "snapshot"
    clean = victim.wait_done(victim.run("print('victim')"))[0]
    assert stream_text(clean.outputs) == "victim\n"


def test_cells_cannot_signal_other_processes(relay_process) -> None:
    """``anode serve`` with auto-started kernels: a cell can kill neither the relay nor a
    bystander."""
    box = sandbox_module.sandbox("auto")
    if box.bwrap is None:  # `make setup` installs bubblewrap; some machines forbid namespaces
        pytest.skip(f"kernels cannot be confined here: {box.reason}")
    relay = relay_process()  # --kernels auto, as a team runs it
    bystander = subprocess.Popen(["sleep", "300"])
    notebook = Notebook.create(relay.url, token=relay.token)
    sources = [
        "import js\nprint(js.process.pid, js.process.ppid)\njs.process.kill(js.process.ppid, "
        "'SIGKILL')",
        f"import js\njs.process.kill({bystander.pid}, 'SIGKILL')",
        f"import js\njs.process.kill({relay.proc.pid}, 'SIGKILL')",
        "import js\njs.process.kill(-1, 'SIGKILL')",
        "print('still here')",
    ]
    try:
        runs = notebook.wait_done(*notebook.run_many(sources), timeout=90)
        assert runs[-1].status == "ok" and stream_text(runs[-1].outputs) == "still here\n"
        for run in runs[1:3]:  # no such process where the kernel lives
            assert run.status == "error" and "ESRCH" in only_error(run.outputs)["evalue"], (
                run.outputs
            )
        assert httpx.get(f"{relay.url}/api/health", timeout=5).status_code == 200
        assert relay.proc.poll() is None and bystander.poll() is None
    finally:
        notebook.close()
        bystander.kill()
        bystander.wait(10)


def test_a_kernel_has_a_memory_cap(relay_process, notebooks, kernels: Kernels) -> None:
    relay = relay_process("--kernels", "none")
    notebook: Notebook = notebooks(relay.url, relay.token)
    kernel = kernels.start(relay.url, notebook.id, token=notebook.kernel_token(), memory_mb=768)
    grab, after = notebook.wait_done(
        *notebook.run_many(
            [
                "blocks = [bytearray(100_000_000) for _ in range(12)]",
                "print('after', len(blocks) if 'blocks' in globals() else 0)",
            ]
        ),
        timeout=90,
    )
    assert grab.status == "error" and only_error(grab.outputs)["ename"] == "MemoryError", (
        grab.outputs
    )
    assert stream_text(after.outputs) == "after 0\n" and kernel.alive()


def test_a_machine_without_bubblewrap_is_named(monkeypatch) -> None:
    """``auto`` warns and runs under Node's permission model; ``bwrap`` refuses, saying why."""
    sandbox_module._probe.cache_clear()
    monkeypatch.setattr(sandbox_module.shutil, "which", lambda name: None)
    try:
        box = sandbox_module.sandbox("auto")
        assert box.bwrap is None and "bubblewrap is not installed" in box.reason
        with pytest.raises(sandbox_module.SandboxError, match="bubblewrap is not installed"):
            sandbox_module.sandbox("bwrap")
        assert sandbox_module.sandbox("off").bwrap is None
    finally:
        sandbox_module._probe.cache_clear()


# --- the credential ------------------------------------------------------------------------


class _Gate:
    """An HTTP proxy in front of the relay that can refuse what we tell it to."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.refuse_all: int | None = None  # answer every request with this status
        self.forbid_marker: str | None = None  # 403 for pushes whose body holds this
        self.seen_authorization: set[str] = set()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        gate = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                self._forward("GET")

            def do_POST(self) -> None:
                self._forward("POST")

            def _forward(self, method: str) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                gate.seen_authorization.add(self.headers.get("authorization") or "")
                if gate.refuse_all is not None:
                    return self._answer(
                        gate.refuse_all,
                        {"error": "unauthorized", "detail": "token has been revoked"},
                    )
                if method == "POST" and gate.forbid_marker and gate.forbid_marker.encode() in body:
                    detail = "events[0]: execution 'x' was not claimed by this kernel"
                    return self._answer(403, {"error": "not_your_session", "detail": detail})
                headers = {
                    k: v
                    for k, v in self.headers.items()
                    if k.lower() in ("authorization", "content-type")
                }
                response = httpx.request(
                    method, gate.target + self.path, content=body, headers=headers, timeout=60
                )
                self._answer(response.status_code, response.content)

            def _answer(self, status: int, body: dict | bytes) -> None:
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:
                pass

        return Handler


@pytest.fixture(name="gate")
def gate_fixture() -> Iterator[list[_Gate]]:
    made: list[_Gate] = []
    yield made
    for gate in made:
        gate.close()


def test_a_refused_credential_ends_the_kernel(
    relay_process, notebooks, kernels: Kernels, gate
) -> None:
    relay = relay_process()
    notebook: Notebook = notebooks(relay.url, relay.token)
    proxy = _Gate(relay.url)
    gate.append(proxy)
    token = notebook.kernel_token() or "at1.test.token"
    kernel = kernels.start(proxy.url, notebook.id, token=token)
    done = notebook.wait_done(notebook.run("print('before')"))[0]
    assert stream_text(done.outputs) == "before\n"
    assert f"Bearer {token}" in proxy.seen_authorization  # feed, pushes and heartbeats carry it
    assert proxy.seen_authorization == {f"Bearer {token}"}

    proxy.refuse_all = 401  # the token was revoked
    assert kernel.proc.wait(30) == EXIT_UNAUTHORIZED
    assert "no longer accepts this kernel's credential" in kernel.stderr()


def test_a_forbidden_push_is_dropped_and_the_kernel_carries_on(
    relay_process, notebooks, kernels: Kernels, gate
) -> None:
    relay = relay_process()
    notebook: Notebook = notebooks(relay.url, relay.token)
    proxy = _Gate(relay.url)
    gate.append(proxy)
    proxy.forbid_marker = "FORBIDDEN-OUTPUT"
    kernel = kernels.start(proxy.url, notebook.id, token=notebook.kernel_token())

    refused, fine = notebook.run_many(["print('FORBIDDEN-OUTPUT')", "print('allowed')"])
    first, second = notebook.wait_done(refused, fine)
    assert (
        first.status == "ok" and first.outputs == []
    )  # its output was dropped, its completion was not
    assert second.status == "ok" and stream_text(second.outputs) == "allowed\n"
    assert kernel.alive()
    assert "dropped a push the relay forbids (streamAppended" in kernel.stderr()


def test_auto_kernels_get_their_own_token_and_it_dies_with_them(relay_process, notebooks) -> None:
    relay = relay_process("--kernel-idle", "1")
    if relay.token is None:
        pytest.skip("this relay runs without auth")
    notebook: Notebook = notebooks(relay.url, relay.token)
    done = notebook.wait_done(notebook.run("print('auto')"), timeout=60)[0]
    assert stream_text(done.outputs) == "auto\n"

    def kernel_tokens() -> list[dict]:
        response = notebook.http.get(f"/api/notebooks/{notebook.id}/tokens")
        assert response.status_code == 200, response.text
        return [
            t
            for t in response.json()["tokens"]
            if t["role"] == "kernel" and t["label"] == "auto kernel"
        ]

    [issued] = kernel_tokens()
    assert issued["revoked_at"] is None
    assert (
        done.kernel_session
        and notebook.folded.kernels[done.kernel_session].actor == f"kernel:{issued['id']}"
    )
    # Idle for a second: stopped, and its token revoked.
    wait_until(
        lambda: kernel_tokens()[0]["revoked_at"] is not None,
        timeout=30,
        what="the token to be revoked",
    )


def test_old_node_caches_go_and_the_browser_hosts_stay(tmp_path: Path) -> None:
    """The caches kernels could once write to are deleted; the browser host's snapshots are not."""
    from kernel_headless.launch.node import _forget_unsafe_caches

    (tmp_path / "node-snapshots").mkdir()
    (tmp_path / "node-snapshots" / "kernel-pyodide-314.0.7-0123456789abcdef.snapshot").write_text(
        "x"
    )
    (tmp_path / "node-snapshot.key").write_text("k" * 64)
    old = tmp_path / "kernel-pyodide-314.0.7-0123456789abcdef.snapshot"
    browser = tmp_path / f"kernel-pyodide-browser-{'a' * 32}.snapshot"
    old.write_text("x")
    browser.write_text("x")
    _forget_unsafe_caches(tmp_path)
    assert sorted(path.name for path in tmp_path.iterdir()) == [browser.name]


def test_a_maker_that_died_leaves_no_lock_in_the_way(tmp_path: Path) -> None:
    """A relay stopped while its snapshot maker ran (and took it along) left the lock: the
    next launcher sees its maker is gone and makes the snapshot itself, at once."""
    from kernel_headless.launch.node import snapshot_file

    spec = KernelSpec(relay="http://127.0.0.1:9", notebook="nb", cache_dir=tmp_path)
    target = snapshot_file(tmp_path)
    target.parent.mkdir(parents=True)
    gone = subprocess.Popen(["true"])
    gone.wait()
    target.with_suffix(".making").write_text(str(gone.pid))
    assert ensure_snapshot(spec, wait=True).exists()  # made here, not waited for in vain
    assert not target.with_suffix(".making").exists()
