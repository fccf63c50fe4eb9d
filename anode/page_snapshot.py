"""The page's Pyodide memory snapshot, made once when a site is built and shipped with it.

A first visit to the page otherwise starts CPython from nothing and imports
the client: about two seconds of a core before the notebook shows. The
page starts from a snapshot of that memory instead when it has one: the
one its browser made after an earlier visit (``client/js/snapshot.js``) or,
on a first visit, the one the site ships at ``snapshot/<key>.gz``
(``client/js/interpreter.mjs`` asks for it when ``snapshot/index.json`` lists it).

It is made the way the browser makes its own: ``client/js/snapshot.js`` runs
in headless Chromium, in a worker of a page served from the built site, and
keeps the snapshot in that page's Cache Storage under the key it computes
from Pyodide's version and every Python file of the site. The key is taken
from there; so a site whose files later change asks for another key and
never starts from a snapshot of other code. Gzipped, it is about a fifth of
its size.
"""

from __future__ import annotations

import base64
import functools
import json
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

from relay.static import page_snapshots

#: Where the site keeps it (``client/js/interpreter.mjs`` asks there).
FOLDER = "snapshot"
#: The page that runs the site's own snapshot worker; served by the build's server only.
_HARNESS_PATH = "/.anode-build/snapshot.html"
_HARNESS = b"""<!doctype html>
<script type="module">
const worker = new Worker("/client/js/snapshot.js", {type: "module"});
worker.onmessage = ({data}) => { window.outcome = data; };
worker.onerror = (event) => { window.outcome = event.message || "the worker failed"; };
</script>
"""
#: In the harness page: [key, gzipped snapshot as base64] from Cache Storage.
_TAKE = """async () => {
  const cache = await caches.open("anode-snapshot");
  const [key] = await cache.keys();
  const stream = (await cache.match(key)).body.pipeThrough(new CompressionStream("gzip"));
  const bytes = new Uint8Array(await new Response(stream).arrayBuffer());
  let text = "";
  for (let at = 0; at < bytes.length; at += 0x8000) {
    text += String.fromCharCode(...bytes.subarray(at, at + 0x8000));
  }
  return [key.url, btoa(text)];
}"""


class SnapshotUnavailable(Exception):
    """Why no snapshot could be made (the site works without one: only its first start is
    slower)."""


def make_page_snapshot(site: Path, timeout: float = 300.0) -> Path:
    """Make the snapshot for the site in ``site``; write it to ``site/snapshot/<key>.gz``."""
    try:
        from playwright.sync_api import Error, sync_playwright
    except ImportError:
        raise SnapshotUnavailable("Playwright is not installed (pip install playwright)") from None
    from kernel_headless.launch.browser import launch_options

    with _served(site) as origin, sync_playwright() as playwright:
        try:
            browser = playwright.chromium.launch(**launch_options())
        except Error as error:
            raise SnapshotUnavailable(f"Chromium did not start: {error.message}") from None
        try:
            page = browser.new_page()
            page.goto(origin + _HARNESS_PATH)
            page.wait_for_function("() => window.outcome !== undefined", timeout=timeout * 1000)
            outcome = page.evaluate("window.outcome")
            if outcome != "stored":
                raise SnapshotUnavailable(f"the snapshot worker said: {outcome}")
            key, packed = page.evaluate(_TAKE)
        except Error as error:  # a timeout, or the page gone
            raise SnapshotUnavailable(f"headless Chromium failed: {error.message}") from None
        finally:
            browser.close()
    name = f"{Path(urlsplit(key).path).name}.gz"
    return _ship(site / FOLDER, name, base64.b64decode(packed))


def _ship(folder: Path, name: str, data: bytes) -> Path:
    """``folder/name`` as the only snapshot there, listed in its index."""
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.gz"):
        old.unlink()
    path = folder / name
    path.write_bytes(data)
    write_index(folder)
    return path


def write_index(folder: Path) -> None:
    """``index.json``: the snapshots the folder holds, which the page reads before it asks
    for one (a site built with none says so, rather than answer 404)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "index.json").write_text(json.dumps(page_snapshots(folder)) + "\n")


@contextmanager
def _served(site: Path) -> Iterator[str]:
    """``site`` over HTTP on loopback (a secure context, as Cache Storage needs), plus the
    harness page; the origin."""

    class Handler(SimpleHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == _HARNESS_PATH:
                self.send_response(200)
                self.send_header("content-type", "text/html")
                self.send_header("content-length", str(len(_HARNESS)))
                self.end_headers()
                self.wfile.write(_HARNESS)
                return
            super().do_GET()

        def log_message(self, format: str, *args: object) -> None:
            pass

    Handler.extensions_map = {
        **Handler.extensions_map,
        ".mjs": "text/javascript",
        ".wasm": "application/wasm",
    }
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=site))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def make_for_relay(out: Path) -> Path:
    """The snapshot for the page the relay serves from this checkout, written into ``out``
    (the relay serves it at ``/snapshot/``): made from a site built in a scratch folder."""
    from .site import build

    with tempfile.TemporaryDirectory(prefix="anode-snapshot-") as scratch:
        site = Path(scratch) / "site"
        build(site, None)
        made = make_page_snapshot(site)
        return _ship(out, made.name, made.read_bytes())


def main(argv: list[str] | None = None) -> int:
    """``python -m anode.page_snapshot OUT`` (``make setup``): a missing browser is not an
    error, only a slower first visit."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m anode.page_snapshot OUT", file=sys.stderr)
        return 2
    try:
        made = make_for_relay(Path(args[0]))
    except SnapshotUnavailable as error:
        print(f"No Pyodide snapshot for the page: {error}. First visits start Python cold.")
        return 0
    print(f"Made the page's Pyodide snapshot: {made} ({made.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
