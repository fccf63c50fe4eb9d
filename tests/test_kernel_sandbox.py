"""The Node kernel's sandbox: what a cell can and cannot reach, and the kernel's credential.

Cells are other people's code. A real relay and a real Node kernel (under
Node's permission model, as ``kernel_headless.launcher`` starts it) run cells
that try to get out through Pyodide's ``js`` module — Node's ``fs``,
``child_process``, ``process.binding``, ``createRequire``, the environment,
the command line — and each attempt must end as an ``error`` output while
the kernel carries on. The credential must never show up in a cell.

Then the credential's other side: a relay (here a small proxy in front of
the real one) that answers 401 makes the kernel exit with a clear message,
and a 403 on one push drops that push and nothing else.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from kernel_headless.launcher import EXIT_UNAUTHORIZED, default_cache_dir
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
        "import js\ncp = await js.eval(\"import('node:child_process')\")\ncp.execSync('id').toString()"
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
    "read_snapshot_key": _FS + "fs.readFileSync({key!r}, 'utf8')",
    "wasi": (
        "import js\nwasi = await js.eval(\"import('node:wasi')\")\n"
        "wasi.WASI.new(js.JSON.parse('{{\"version\": \"preview1\", \"preopens\": {{\"/\": \"/\"}}}}'))"
    ),
    "inspector": "import js\ninspector = await js.eval(\"import('node:inspector')\")\ninspector.Session.new().connect()",
    # Pyodide sets globalThis.require while it starts cold; a kernel from a snapshot has none.
    "require": (
        "import js\nif not hasattr(js, 'require'): raise PermissionError('Access to this API has been restricted')\n"
        "js.require('fs').readFileSync('/etc/passwd', 'utf8')"
    ),
}


def test_cells_cannot_reach_the_host(relay_process, notebooks, kernels: Kernels, tmp_path: Path, monkeypatch) -> None:
    secret = f"s3cr3t-{uuid.uuid4().hex}"
    monkeypatch.setenv(SECRET_ENV, secret)  # in our environment, so in the kernel's if it leaked
    relay = relay_process()
    notebook: Notebook = notebooks(relay.url, relay.token)
    token = notebook.kernel_token()
    kernel = kernels.start(relay.url, notebook.id, token=token)

    outside = tmp_path / "planted.txt"
    key = default_cache_dir() / "node-snapshot.key"
    sources = {name: source.format(outside=str(outside), key=str(key)) for name, source in ESCAPES.items()}
    sources["env"] = "import js\nprint(dict(js.Object.entries(js.process.env).to_py()))"
    sources["argv"] = "import js\nprint(list(js.process.argv), list(js.process.execArgv))"
    sources["python_open"] = "print(open('/etc/passwd').read())"
    sources["python_listdir"] = "import os\nprint(os.listdir('/'), os.listdir('/home'))"
    sources["after"] = "print('still here', 6 * 7)"
    names = list(sources)
    ids = dict(zip(names, notebook.run_many([sources[name] for name in names])))
    runs = dict(zip(names, notebook.wait_done(*ids.values(), timeout=90)))

    for name in ESCAPES:
        error = only_error(runs[name].outputs)
        assert runs[name].status == "error", (name, runs[name].outputs)
        # Node's own words: ERR_ACCESS_DENIED ("Access to this API has been restricted").
        assert "restricted" in error["evalue"] or "ERR_ACCESS_DENIED" in error["evalue"], (name, error)
    assert not outside.exists()

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


def test_a_tampered_snapshot_is_not_loaded(relay_process, notebooks, kernels: Kernels, tmp_path: Path) -> None:
    """A cell may write to the snapshot cache, but what it writes never runs in a later kernel."""
    relay = relay_process()
    notebook: Notebook = notebooks(relay.url, relay.token)
    cache = tmp_path / "cache"  # our own: the shared cache stays intact
    first = kernels.start(relay.url, notebook.id, token=notebook.kernel_token(), cache_dir=cache)
    assert first.ready["from"] == "cold"

    plant = (
        _FS + f"d = {str(cache / 'node-snapshots')!r}\n"
        "names = [n for n in fs.readdirSync(d) if n.endswith('.snapshot')]\n"
        "for n in names: fs.writeFileSync(d + '/' + n, 'not a snapshot')\n"
        "print(len(names))"
    )
    run = notebook.wait_done(notebook.run(plant))[0]
    assert run.status == "ok" and stream_text(run.outputs) == "1\n", run.outputs
    first.stop()

    second = kernels.start(relay.url, notebook.id, token=notebook.kernel_token(), cache_dir=cache)
    assert second.ready["from"] == "cold"  # refused the planted file, built a fresh one
    assert "is not signed by this cache's key" in second.stderr()
    again = notebook.wait_done(notebook.run("print(1 + 1)"))[0]
    assert stream_text(again.outputs) == "2\n"
    second.stop()
    third = kernels.start(relay.url, notebook.id, token=notebook.kernel_token(), cache_dir=cache)
    assert third.ready["from"] == "snapshot"


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
                    return self._answer(gate.refuse_all, {"error": "unauthorized", "detail": "token has been revoked"})
                if method == "POST" and gate.forbid_marker and gate.forbid_marker.encode() in body:
                    detail = "events[0]: execution 'x' was not claimed by this kernel"
                    return self._answer(403, {"error": "not_your_session", "detail": detail})
                headers = {k: v for k, v in self.headers.items() if k.lower() in ("authorization", "content-type")}
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


def test_a_refused_credential_ends_the_kernel(relay_process, notebooks, kernels: Kernels, gate) -> None:
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
    assert first.status == "ok" and first.outputs == []  # its output was dropped, its completion was not
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
        return [t for t in response.json()["tokens"] if t["role"] == "kernel" and t["label"] == "auto kernel"]

    [issued] = kernel_tokens()
    assert issued["revoked_at"] is None
    assert done.kernel_session and notebook.folded.kernels[done.kernel_session].actor == f"kernel:{issued['id']}"
    # Idle for a second: stopped, and its token revoked.
    wait_until(lambda: kernel_tokens()[0]["revoked_at"] is not None, timeout=30, what="the token to be revoked")
