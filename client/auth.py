"""Our credential for a relay: where it comes from, where it is kept, what it allows.

- **From the address.** A link ``?token=…`` (``anode serve`` prints one, a
  share dialog makes them) hands the page a token. ``take_token_from_url``
  keeps it and removes it from the address bar (``history.replaceState``),
  so it is not left in history, bookmarks or a screenshot of the URL.
- **Kept** in this origin's localStorage, per relay, under the notebook it
  was given for (``*``: the whole server). Outputs render in sandboxed,
  opaque-origin frames (``client.render``) and cannot read it.
- **What it allows** comes from ``GET /api/whoami`` (cached beside the
  token, so a reload knows the role before the network answers): a
  ``viewer`` sees the notebook read-only, an ``owner`` or ``admin`` may share.
- **None, or refused** (a 401): ``TokenPrompt`` asks for a link or a token.

Reading a pasted link is ``client.links`` (pure Python); this module talks
to the browser.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

import js

from .browser import Listeners, local_get, local_set, query_param, without_query_param
from .dom import h
from .links import parse_credential
from .relay import NetworkError, Relay

ALL_NOTEBOOKS = "*"
_KEY = "anode-tokens:"
#: Roles that may change a notebook, and roles that may share it.
EDITING_ROLES = frozenset({"admin", "owner", "editor"})
SHARING_ROLES = frozenset({"admin", "owner"})


@dataclass(frozen=True)
class Identity:
    """What ``/api/whoami`` said about our credential."""

    role: str
    notebook: str = ALL_NOTEBOOKS
    actor: str = ""
    auth: bool = False
    expires_at: float | None = None

    @classmethod
    def from_json(cls, data: Any) -> Identity | None:
        if not isinstance(data, dict) or not isinstance(data.get("role"), str):
            return None
        expires = data.get("expires_at")
        return cls(
            role=data["role"],
            notebook=str(data.get("notebook") or ALL_NOTEBOOKS),
            actor=str(data.get("actor") or ""),
            auth=bool(data.get("auth")),
            expires_at=float(expires) if isinstance(expires, (int, float)) else None,
        )

    def can_edit(self, notebook_id: str) -> bool:
        return self.covers(notebook_id) and self.role in EDITING_ROLES

    def can_share(self, notebook_id: str) -> bool:
        return self.auth and self.covers(notebook_id) and self.role in SHARING_ROLES

    def covers(self, notebook_id: str) -> bool:
        return self.notebook in (ALL_NOTEBOOKS, notebook_id)


#: What we assume before anyone said otherwise: a relay without auth lets everyone edit.
UNKNOWN = Identity(role="editor")


class Credentials:
    """The tokens this browser holds for one relay, with what each allows."""

    def __init__(self, relay: Relay) -> None:
        self.relay = relay
        self._key = _KEY + relay.origin

    def _load(self) -> dict[str, dict[str, Any]]:
        try:
            saved = json.loads(local_get(self._key) or "{}")
        except ValueError:
            return {}
        return saved if isinstance(saved, dict) else {}

    def _save(self, saved: dict[str, dict[str, Any]]) -> None:
        local_set(self._key, json.dumps(saved) if saved else None)

    def remember(self, scope: str, token: str, identity: Identity | None = None) -> None:
        saved = self._load()
        saved[scope] = {"token": token, "identity": asdict(identity) if identity else None}
        self._save(saved)

    def forget(self, token: str) -> None:
        self._save(
            {scope: entry for scope, entry in self._load().items() if entry.get("token") != token}
        )

    def lookup(self, notebook_id: str | None) -> tuple[str | None, Identity | None]:
        """The token for ``notebook_id`` (or the home view), and what it allowed last time."""
        saved = self._load()
        entry = saved.get(notebook_id or "") or saved.get(ALL_NOTEBOOKS)
        if entry is None and notebook_id is None and saved:
            entry = list(saved.values())[-1]  # the home view lists what any of our tokens covers
        if not isinstance(entry, dict) or not isinstance(entry.get("token"), str):
            return None, None
        return entry["token"], Identity.from_json(entry.get("identity"))

    def take_token_from_url(self, notebook_id: str | None) -> None:
        """Keep ``?token=`` (for this notebook, or the server) and clear it from the address bar."""
        token = query_param("token")
        if token is None:
            return
        without_query_param("token")
        if token.strip():
            self.remember(notebook_id or ALL_NOTEBOOKS, token.strip())

    async def who_am_i(self) -> Identity | None:
        """Ask the relay what our token allows, and keep the answer (None: offline or refused)."""
        try:
            status, body = await self.relay.request("GET", "/api/whoami")
        except NetworkError:
            return None
        if status == 404:  # a relay from before tokens: everyone may do everything
            return Identity(role="admin", auth=False)
        identity = Identity.from_json(body) if status == 200 else None
        if identity is not None and self.relay.token:
            self.forget(self.relay.token)  # filed again under the scope it really has
            self.remember(identity.notebook, self.relay.token, identity)
        return identity


class TokenPrompt:
    """A dialog asking for a share link or a token, shown when the relay says 401."""

    def __init__(self, credentials: Credentials, notebook_id: str | None) -> None:
        self._credentials = credentials
        self._notebook_id = notebook_id
        self._listeners = Listeners()
        self.reason = h("p", {"class": "token-reason"})
        self.input = h(
            "input",
            {
                "class": "token-input",
                "name": "token",
                "autocomplete": "off",
                "spellcheck": "false",
                "placeholder": "a link (…/?notebook=…&token=…) or a token (at1.…)",
                "aria-label": "Link or token",
            },
        )
        submit = h("button", {"class": "token-submit", "type": "submit"}, "Open")
        later = h("button", {"class": "token-later", "type": "button"}, "Not now")
        form = h(
            "form",
            {"class": "token-form", "method": "dialog"},
            h("h2", None, "This notebook needs an access token"),
            self.reason,
            h(
                "p",
                None,
                "Paste the link you were given (or just its token) for "
                f"{credentials.relay.origin}.",
            ),
            self.input,
            h("div", {"class": "dialog-buttons"}, later, submit),
        )
        self.dialog = h("dialog", {"class": "token-prompt"}, form)
        js.document.body.append(self.dialog)
        self._listeners.on(form, "submit", self._submit)
        self._listeners.on(later, "click", lambda _e: self.dialog.close())

    def show(self, reason: str) -> None:
        self.reason.textContent = f"The relay said: {reason}"
        if not self.dialog.open:
            self.dialog.showModal()
            self.input.focus()

    def _submit(self, event: Any) -> None:
        event.preventDefault()
        token, notebook = parse_credential(str(self.input.value))
        if not token:
            self.input.focus()
            return
        scope = notebook or self._notebook_id or ALL_NOTEBOOKS
        self._credentials.remember(scope, token)
        js.document.body.dataset.anode = "loading"
        if notebook and notebook != self._notebook_id:
            url = js.URL.new(js.location.href)
            url.searchParams.set("notebook", notebook)
            js.location.assign(url.href)
        else:
            js.location.reload()
