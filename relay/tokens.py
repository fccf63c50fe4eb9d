"""Signed access tokens and the small store that issues, lists and revokes them.

A token is ``at1.<payload>.<mac>``: the payload names a token id, a notebook
(``*`` for the whole server), a role and an expiry, and the mac is
HMAC-SHA256 of the payload under a secret kept in the data directory (mode
0600). Checking a token needs the secret and the revocation list only, so
the relay never stores a token it can be tricked into comparing.

Records live in a ``TokenTable``: a SQLite file beside the event log
(``SQLiteTokens``), or the PostgreSQL store that several relays share
(``relay/storage/postgres.py``), where the secret lives too. Either way a
revocation made anywhere (another relay, ``anode token``) is refused from
the next request on.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
import sqlite3
import threading
import time
from dataclasses import asdict, astuple, dataclass
from pathlib import Path
from typing import Protocol

ROLES = ("admin", "owner", "editor", "viewer", "kernel")
#: Roles a token for one notebook may carry (``admin`` is server-wide).
NOTEBOOK_ROLES = ("owner", "editor", "viewer", "kernel")
ALL_NOTEBOOKS = "*"
PREFIX = "at1"
MAX_LABEL = 200

_SECRET_FILE = "secret.key"
_DATABASE_FILE = "auth.db"
_DURATION = re.compile(r"(\d+)([smhdw])")
_B64 = re.compile(r"[A-Za-z0-9_-]*")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


class InvalidToken(Exception):
    """A credential that does not check out; the message says why, for the 401."""


@dataclass(frozen=True, slots=True)
class Grant:
    """What a token allows: one role on one notebook (or ``*``), until ``expires_at``."""

    token_id: str
    notebook: str
    role: str
    expires_at: int | None  # unix seconds; None never expires

    @property
    def actor(self) -> str:
        """The ``actor`` the relay writes on this credential's events."""
        if self.token_id == "anonymous":  # the relay runs with --no-auth
            return "anonymous"
        kind = "kernel" if self.role == "kernel" else "user"
        return f"{kind}:{self.token_id}"

    def covers(self, notebook_id: str) -> bool:
        return self.notebook in (ALL_NOTEBOOKS, notebook_id)


@dataclass(frozen=True, slots=True)
class TokenRecord:
    """A token as ``anode token list`` and the API show it (never the token itself)."""

    id: str
    notebook: str
    role: str
    expires_at: int | None
    label: str
    created_at: float
    revoked_at: float | None

    def to_json(self) -> dict:
        return asdict(self)


def parse_duration(text: str) -> int:
    """``90s``, ``15m``, ``12h``, ``7d``, ``2w`` -> seconds."""
    match = _DURATION.fullmatch(text.strip())
    if not match or int(match.group(1)) == 0:
        raise ValueError(f"{text!r} is not a duration like 30m, 12h, 7d or 2w")
    return int(match.group(1)) * _UNITS[match.group(2)]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    """Strict: only the one spelling ``_b64`` writes (no padding, no stray characters),
    so a token has exactly one form, and a changed character is a changed token."""
    if not _B64.fullmatch(text):
        raise ValueError("not unpadded URL-safe base64")
    data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if _b64(data) != text:  # non-zero bits after the last byte
        raise ValueError("not the canonical spelling")
    return data


def sign(secret: bytes, grant: Grant) -> str:
    payload = f"{grant.token_id}:{grant.notebook}:{grant.role}:{grant.expires_at or 0}".encode()
    mac = hmac.new(secret, payload, hashlib.sha256).digest()
    return f"{PREFIX}.{_b64(payload)}.{_b64(mac)}"


def verify(secret: bytes, token: str, now: float | None = None) -> Grant:
    """The grant a token carries, if its signature holds and it has not expired."""
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != PREFIX or len(token) > 512:
        raise InvalidToken("malformed token")
    try:
        payload, mac = _unb64(parts[1]), _unb64(parts[2])
    except (ValueError, TypeError):
        raise InvalidToken("malformed token") from None
    if not hmac.compare_digest(mac, hmac.new(secret, payload, hashlib.sha256).digest()):
        raise InvalidToken("token signature does not match")
    try:
        token_id, notebook, role, expires = payload.decode("ascii").split(":")
        expires_at = int(expires) or None
    except ValueError:  # signed, so ours: only an older or future format gets here
        raise InvalidToken("malformed token") from None
    if expires_at is not None and expires_at <= (time.time() if now is None else now):
        raise InvalidToken("token has expired")
    return Grant(token_id, notebook, role, expires_at)


def load_secret(data_dir: Path) -> bytes:
    """The server's signing secret, made (mode 0600) on first use."""
    path = data_dir / _SECRET_FILE
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        secret = path.read_bytes()
        if len(secret) < 32:
            raise RuntimeError(
                f"{path} is shorter than 32 bytes; delete it to make a new one"
            ) from None
        return secret
    with os.fdopen(fd, "wb") as file:
        file.write(new_secret())
        file.flush()
        os.fsync(file.fileno())
    return path.read_bytes()


def new_secret() -> bytes:
    return secrets.token_bytes(32)


class TokenTable(Protocol):
    """Where token records live: a SQLite file beside the log, or the PostgreSQL store."""

    async def secret(self) -> bytes:
        """The signing secret every relay on this store shares, made on first use."""

    async def insert(self, record: TokenRecord) -> None: ...

    async def revoke(self, token_id: str, at: float) -> None:
        """Mark revoked (if it was not), and tell the other relays."""

    async def get(self, token_id: str) -> TokenRecord | None: ...

    async def list(self, notebook: str | None) -> list[TokenRecord]: ...

    async def is_revoked(self, token_id: str) -> bool:
        """As committed now, whichever process revoked it."""

    async def revoked_ids(self) -> frozenset[str]: ...

    def changed(self) -> None:
        """Forget any cached revoked set (another relay said it changed)."""

    async def close(self) -> None: ...


class TokenStore:
    """Issue, list, revoke and check tokens on one ``TokenTable``."""

    def __init__(self, table: TokenTable) -> None:
        self.table = table
        self._secret: bytes | None = None

    async def open(self) -> TokenStore:
        self._secret = await self.table.secret()
        return self

    async def close(self) -> None:
        await self.table.close()

    @property
    def secret(self) -> bytes:
        assert self._secret is not None, "the token store is not open"
        return self._secret

    # --- issuing and revoking ---

    async def issue(
        self, notebook: str, role: str, expires_in: int | None = None, label: str = ""
    ) -> tuple[TokenRecord, str]:
        """A new token and its record. ``admin`` goes with ``*``, every other role with one
        notebook."""
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}")
        if (role == "admin") != (notebook == ALL_NOTEBOOKS):
            raise ValueError("an admin token is for every notebook; other roles name one notebook")
        if len(label) > MAX_LABEL or not label.isprintable():
            raise ValueError(f"label must be at most {MAX_LABEL} printable characters")
        now = time.time()
        record = TokenRecord(
            id="tk-" + secrets.token_hex(8),
            notebook=notebook,
            role=role,
            expires_at=int(now + expires_in) if expires_in else None,
            label=label,
            created_at=now,
            revoked_at=None,
        )
        await self.table.insert(record)
        return record, self.token_for(record)

    def token_for(self, record: TokenRecord) -> str:
        return sign(self.secret, Grant(record.id, record.notebook, record.role, record.expires_at))

    async def revoke(self, token_id: str) -> TokenRecord | None:
        """Revoke for good (across restarts and relays). None when no such token exists."""
        await self.table.revoke(token_id, time.time())
        return await self.table.get(token_id)

    async def get(self, token_id: str) -> TokenRecord | None:
        return await self.table.get(token_id)

    async def list(self, notebook: str | None = None) -> list[TokenRecord]:
        return await self.table.list(notebook)

    async def serve_token(self) -> str:
        """The admin token ``anode serve`` prints: made once, the same on every start."""
        for record in await self.list(ALL_NOTEBOOKS):
            if (
                record.label == "anode serve"
                and record.revoked_at is None
                and record.expires_at is None
            ):
                return self.token_for(record)
        return (await self.issue(ALL_NOTEBOOKS, "admin", label="anode serve"))[1]

    # --- checking ---

    async def check(self, token: str) -> Grant:
        """The grant of a valid, unexpired, unrevoked token, else ``InvalidToken``."""
        grant = verify(self.secret, token)
        if await self.table.is_revoked(grant.token_id):
            raise InvalidToken("token has been revoked")
        return grant

    async def revoked_ids(self) -> frozenset[str]:
        return await self.table.revoked_ids()

    def changed(self) -> None:
        """Another process revoked a token (or may have): forget what the table cached."""
        self.table.changed()


class SQLiteTokens:
    """Tokens in their own SQLite file beside the event log, the secret in a file beside it.

    ``anode token`` can issue and revoke while a relay runs, and the relay
    notices on the next request: SQLite's ``data_version`` says when another
    connection committed, so a check costs one pragma, not a query per token.
    """

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        data_dir.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(
            data_dir / _DATABASE_FILE, check_same_thread=False, isolation_level=None
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS tokens ("
            " id TEXT PRIMARY KEY, notebook TEXT NOT NULL, role TEXT NOT NULL,"
            " expires_at INTEGER, label TEXT NOT NULL DEFAULT '',"
            " created_at REAL NOT NULL, revoked_at REAL)"
        )
        self._lock = threading.Lock()
        self._seen_version = -1
        self._revoked: frozenset[str] = frozenset()

    async def secret(self) -> bytes:
        return load_secret(self.data_dir)

    async def close(self) -> None:
        self._db.close()

    async def insert(self, record: TokenRecord) -> None:
        with self._lock:
            self._db.execute(
                f"INSERT INTO tokens ({COLUMNS}) VALUES (?,?,?,?,?,?,?)", astuple(record)
            )

    async def revoke(self, token_id: str, at: float) -> None:
        with self._lock:
            self._db.execute(
                "UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                (at, token_id),
            )
            self._seen_version = -1  # data_version only moves for other connections' commits

    async def get(self, token_id: str) -> TokenRecord | None:
        with self._lock:
            row = self._db.execute(
                f"SELECT {COLUMNS} FROM tokens WHERE id = ?", (token_id,)
            ).fetchone()
        return TokenRecord(*row) if row else None

    async def list(self, notebook: str | None) -> list[TokenRecord]:
        query = f"SELECT {COLUMNS} FROM tokens"
        params: tuple = ()
        if notebook is not None:
            query, params = query + " WHERE notebook = ?", (notebook,)
        with self._lock:
            rows = self._db.execute(query + " ORDER BY created_at", params).fetchall()
        return [TokenRecord(*row) for row in rows]

    async def is_revoked(self, token_id: str) -> bool:
        return token_id in await self.revoked_ids()

    def changed(self) -> None:
        self._seen_version = -1

    async def revoked_ids(self) -> frozenset[str]:
        """Every revoked token id; one pragma when no process revoked anything since the last
        call."""
        with self._lock:
            version = self._db.execute("PRAGMA data_version").fetchone()[0]
            if version != self._seen_version:
                rows = self._db.execute(
                    "SELECT id FROM tokens WHERE revoked_at IS NOT NULL"
                ).fetchall()
                self._revoked = frozenset(row[0] for row in rows)
                self._seen_version = version
            return self._revoked


#: A record's columns, in ``TokenRecord``'s order.
COLUMNS = "id, notebook, role, expires_at, label, created_at, revoked_at"
