"""Links that carry a token, made and read (pure Python; tested in CPython).

A share link is the page's address with ``?notebook=ID&token=…`` (and
``&relay=URL`` when the page found its relay that way). A person may paste
such a link, or just the token, into the token prompt.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlencode, urlsplit


def share_link(page_url: str, notebook_id: str, token: str, relay: str | None = None) -> str:
    """The address that opens ``notebook_id`` with ``token``."""
    params = {"notebook": notebook_id, "token": token}
    if relay:
        params["relay"] = relay
    return f"{page_url}?{urlencode(params)}"


def parse_credential(text: str) -> tuple[str, str | None]:
    """``(token, notebook or None)`` from a pasted share link or a bare token."""
    text = text.strip()
    if "token=" not in text:
        return text, None
    query = urlsplit(text).query or text.split("?", 1)[-1]
    params = parse_qs(query)
    token = (params.get("token") or [""])[0].strip()
    notebook = (params.get("notebook") or [None])[0]
    return token, notebook
