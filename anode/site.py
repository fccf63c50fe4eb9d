"""``anode build-site OUT``: the browser client as a folder any static file server can host.

The folder has the same layout the relay serves (``relay/static.py``), minus
the relay's API and the kernels' files:

    index.html, sw.js, config.json
    client/            the client's Python (and all of it in python.json), style, sandbox
                       page, service worker
    shared_schema/     the schema the client folds the log with (and the tab kernel too)
    kernel_headless/   the kernel's Python and the tab host's worker (a tab runs cells itself)
    vendor/pyodide/    npm ``pyodide``                  (source maps and type files left out)
    vendor/pyscript/   npm ``@pyscript/core``'s dist    (likewise)
    vendor/katex/      npm ``katex``'s dist: CSS and fonts (its code is in the markdown bundle)
    vendor/bundles/    CodeMirror, marked, DOMPurify and KaTeX, bundled by ``make setup``
    vendor/micropip/   micropip, for ``%pip install`` in the tab kernel
    wheels/            with ``--wheels DIR``: DIR's wheels as a package index (PEP 503),
                       ``wheels/simple/`` and ``wheels/files/``, the layout ``anode serve
                       --wheels`` serves; ``%pip install`` in the tab looks there first
    snapshot/          the page's Pyodide memory snapshot, gzipped (``anode/page_snapshot.py``,
                       made in headless Chromium unless ``--no-snapshot``): a first visit
                       starts from it, about twice as fast

``config.json`` names the relay (``{"relay": "https://relay.example"}``);
``?relay=URL`` in the page's address overrides it. Built without ``--relay``
it says ``null``: the page is then a local notebook kept in IndexedDB, whose
cells run in the tab's own kernel (``client/tab_kernel.py``). The relay must let the site's
origin in: ``anode serve --allow-origin https://site.example``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from urllib.parse import urlsplit

import click

from relay.static import VENDORED, python_bundle
from relay.wheels import Wheelhouse

from .options import fail
from .page_snapshot import FOLDER as SNAPSHOT_FOLDER
from .page_snapshot import SnapshotUnavailable, make_page_snapshot
from .page_snapshot import write_index as write_snapshot_index

#: The repository root: where index.html, client/ and the vendored folders are.
ROOT = Path(__file__).resolve().parent.parent
#: Vendored folders the page and its tab kernel load.
SITE_VENDORED = ("pyodide", "pyscript", "katex", "bundles", "micropip")
#: What a browser never asks for.
_SKIPPED = (
    "*.map",
    "*.d.ts",
    "*.md",
    "console*.html",
    "__pycache__",
    "*.pyc",
    "editor.mjs",  # client/js/'s bundle sources: the page loads vendor/bundles/ instead
    "markdown.mjs",
    "contrib",
    "katex*.js",
    "katex.mjs",
    "launch",  # kernel_headless's CPython side, and the other hosts' files
    "host.mjs",  # the Node and headless-browser hosts
    "node*.mjs",
    "browser*.mjs",
    "snapshot_maker.mjs",
    "browser.html",
)
#: Written by us: a folder holding both is a site we may write over.
_MARKERS = ("index.html", "config.json")


def build(
    out: Path, relay: str | None, root: Path = ROOT, wheels: Path | None = None
) -> list[Path]:
    """Write the site into ``out`` (made, or replaced if it holds an earlier site); return its top
    entries. ``wheels``: a folder of wheels to serve as the site's package index."""
    missing = [name for name in SITE_VENDORED if not (root / VENDORED[name]).is_dir()]
    if missing:
        raise click.ClickException(
            f"vendored assets missing ({', '.join(missing)}): run `make setup` first"
        )
    if out.exists() and any(out.iterdir()) and not all((out / name).is_file() for name in _MARKERS):
        raise click.ClickException(
            f"{out} is not empty and holds no Anode site: pick an empty folder"
        )
    out.mkdir(parents=True, exist_ok=True)
    ignore = shutil.ignore_patterns(*_SKIPPED)
    folders = {
        "client": root / "client",
        "shared_schema": root / "shared_schema",
        "kernel_headless": root / "kernel_headless",
    }
    folders |= {f"vendor/{name}": root / VENDORED[name] for name in SITE_VENDORED}
    for target, source in folders.items():
        shutil.rmtree(out / target, ignore_errors=True)
        shutil.copytree(source, out / target, ignore=ignore)
    shutil.rmtree(out / "wheels", ignore_errors=True)
    shutil.rmtree(out / SNAPSHOT_FOLDER, ignore_errors=True)  # made for files this build replaced
    write_snapshot_index(out / SNAPSHOT_FOLDER)  # none yet
    if wheels is not None:
        Wheelhouse(wheels).write_static_index(out / "wheels")
    shutil.copyfile(root / "index.html", out / "index.html")
    # At the root, so that it serves the whole site.
    shutil.copyfile(root / "client" / "js" / "sw.js", out / "sw.js")
    (out / "config.json").write_text(json.dumps({"relay": relay}, indent=2) + "\n")
    (out / "client" / "python.json").write_bytes(python_bundle(root))
    return sorted(out.iterdir())


def _relay_url(value: str | None) -> str | None:
    if value is None:
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        fail(f"--relay must be an http(s) address such as https://relay.example, not {value!r}")
    return value.rstrip("/")


@click.command("build-site")
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--relay",
    metavar="URL",
    envvar="ANODE_RELAY",
    show_envvar=True,
    help="The relay the site talks to (written to config.json; ?relay= overrides it). "
    "Without one the site keeps notebooks in the browser only.",
)
@click.option(
    "--wheels",
    metavar="DIR",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="A folder of wheels (*.whl) to copy in as the site's package index: %pip install "
    "in the tab kernel looks there first, and works offline once they are cached.",
)
@click.option(
    "--no-snapshot",
    is_flag=True,
    help="Ship no Pyodide memory snapshot (made in headless Chromium otherwise): a first "
    "visit then starts Python from nothing, about 1.5 s slower, but downloads 6 MB less.",
)
def build_site(out: Path, relay: str | None, wheels: Path | None, no_snapshot: bool) -> None:
    """Write the browser client into OUT, for any static file server."""
    relay_url = _relay_url(relay)
    if wheels is not None and not any(wheels.glob("*.whl")):
        fail(f"--wheels {wheels} holds no *.whl file")
    try:
        build(out, relay_url, wheels=wheels)
        if not no_snapshot:
            click.echo("Making the page's Pyodide snapshot in headless Chromium…")
            made = make_page_snapshot(out)
            click.echo(f"Shipped it: {made.relative_to(out)} ({made.stat().st_size / 1e6:.1f} MB).")
    except click.ClickException as error:
        fail(error.message)
    except SnapshotUnavailable as error:
        click.echo(f"No snapshot shipped ({error}): first visits start Python from nothing.")
    except OSError as error:
        fail(f"cannot write the site into {out}: {error.strerror or error}")
    click.echo(
        f"Wrote the Anode site to {out}/ (relay: "
        f"{relay_url or 'none: notebooks stay in the browser'})."
    )
    if relay_url:
        click.echo(
            "Let it in on the relay: anode serve --allow-origin <the site's origin, e.g. https://notebooks.example>"
        )
    click.echo(f"Try it: python -m http.server --directory {out} 8080")
