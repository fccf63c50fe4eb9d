"""Everything the relay can be tuned with, in one frozen object.

The CLI builds it from flags and environment variables; tests build it
directly. Defaults suit one machine serving a team.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

PROJECT_ROOT = Path(__file__).resolve().parent.parent
#: Where the relay serves a local ``--pyodide-packages`` folder.
PYODIDE_PACKAGES_PATH = "/pyodide-packages/"


@dataclass(frozen=True, slots=True)
class RelayConfig:
    data_dir: Path
    #: ``postgresql://…``: the store several relays share; None: SQLite under ``data_dir``.
    store_url: str | None = None
    #: Where ``index.html``, ``client/``, ``shared_schema/`` and ``node_modules/`` live.
    static_root: Path = PROJECT_ROOT
    #: A folder of wheels served as a package index at ``/wheels/simple/``,
    #: so kernels can ``%pip install`` offline.
    wheels_dir: Path | None = None
    #: Where kernels load the packages of the Pyodide distribution from (numpy, pandas…,
    #: by import): a folder laid out like one (``pyodide-lock.json`` + wheels), served at
    #: ``/pyodide-packages/``, or the URL of one. None: Pyodide's own CDN.
    pyodide_packages: str | None = None
    #: ``normal`` survives any crash of the relay process (kill -9 included);
    #: ``full`` also survives power loss, at the cost of an fsync per commit.
    sqlite_sync: Literal["normal", "full"] = "normal"
    max_body_bytes: int = 16 * 1024 * 1024
    max_batch_events: int = 1_000
    default_pull_limit: int = 1_000
    max_pull_limit: int = 10_000
    max_wait_seconds: float = 60.0
    #: Batches a slow SSE subscriber may fall behind before it is told to resync.
    subscriber_queue: int = 1_000
    sse_ping_seconds: float = 15.0
    #: Time travel: of the snapshots older than the newest, keep the first
    #: past each multiple of this many seqs (and always take one there), so
    #: ``?at=N`` folds at most about this many events on top of a snapshot.
    snapshot_every: int = 10_000
    #: Retake the newest snapshot once the events stored past it add up to
    #: this share of its size (and are at least ``snapshot_min_events``):
    #: snapshot work stays a fixed share of push work however big the state
    #: grows, and opening a notebook reads its state plus at most about this
    #: share of it again as log to refold.
    snapshot_tail_ratio: float = 0.5
    snapshot_min_events: int = 1_000
    presence_ttl_seconds: float = 30.0
    max_presence_ttl_seconds: float = 300.0
    max_presence_bytes: int = 16_000
    #: One presence entry's ``state`` as JSON, and how deep it may nest.
    max_presence_state_bytes: int = 2_048
    max_presence_depth: int = 4
    #: Presence entries one credential may hold in one notebook (its tabs, its kernels).
    max_presence_per_actor: int = 16
    #: Presence posts a second per token on average (bursts of twice that); 0: no limit.
    presence_rate: float = 60.0
    #: Seconds a client may take to send a request's head, and its body.
    request_head_seconds: float = 10.0
    request_body_seconds: float = 30.0
    #: How often the lease monitor looks for kernels that stopped heartbeating.
    lease_check_seconds: float = 0.2
    #: Demand a token on every API request (``--no-auth`` turns it off, on loopback only).
    auth: bool = True
    #: Pushes a second per token on average (0: unlimited), with bursts up to
    #: ``push_burst``. Like the stream cap, off under ``--no-auth`` (no tokens to count by).
    push_rate: float = 200.0
    push_burst: int = 400
    #: Open SSE streams per token (0: unlimited).
    max_streams_per_token: int = 32
    #: Output entries one execution may hold; past it, output events are refused.
    max_outputs_per_execution: int = 10_000
    #: Whether ``anode serve`` starts kernels itself (``--kernels auto``); the
    #: client says how to start one when it does not.
    auto_kernels: bool = False
    #: Origins (``https://site.example``) whose pages may call the API (CORS).
    allowed_origins: tuple[str, ...] = ()

    def pyodide_packages_url(self, relay_url: str) -> str | None:
        """The package source as kernels of the relay at ``relay_url`` reach it."""
        source = self.pyodide_packages
        if source is None or "://" in source:
            return source
        return f"{relay_url.rstrip('/')}{PYODIDE_PACKAGES_PATH}"

    @property
    def database_path(self) -> Path:
        return self.data_dir / "anode.db"
