"""Links within the site, and links that carry a token, made and read (pure Python; tested in
CPython).

A page given its relay as ``?relay=URL`` keeps it in every link it makes
(home, a notebook), or the next page would fall back to the site's own
relay. A share link is the page's address with ``?notebook=ID&token=…``
(and ``&relay=URL`` likewise). A person may paste such a link, or just the
token, into the token prompt.

``urllib.parse`` is imported only to read a pasted link: importing it costs
a first visit about 0.1 s in Pyodide (it brings ``ipaddress`` and more), and
every page makes links at once; ``query`` below writes them alone.
"""

from __future__ import annotations

#: What a query value keeps as it is (RFC 3986's unreserved characters).
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


def _escape(value: str) -> str:
    """``urllib.parse.quote_plus`` with no safe characters: UTF-8, percent-encoded, space as
    ``+``."""
    return "".join(
        char
        if char in _UNRESERVED
        else "+"
        if char == " "
        else "".join(f"%{byte:02X}" for byte in char.encode())
        for char in value
    )


def query(params: dict[str, str]) -> str:
    """``a=1&b=2``: what ``urllib.parse.urlencode`` makes of ``params``."""
    return "&".join(f"{_escape(key)}={_escape(value)}" for key, value in params.items())


def page_link(notebook_id: str | None = None, relay: str | None = None) -> str:
    """``?notebook=ID`` (the home view without one), keeping ``relay`` if the page was given it."""
    params = {}
    if notebook_id:
        params["notebook"] = notebook_id
    if relay:
        params["relay"] = relay
    return f"?{query(params)}" if params else "?"


def share_link(page_url: str, notebook_id: str, token: str, relay: str | None = None) -> str:
    """The address that opens ``notebook_id`` with ``token``."""
    params = {"notebook": notebook_id, "token": token}
    if relay:
        params["relay"] = relay
    return f"{page_url}?{query(params)}"


def parse_credential(text: str) -> tuple[str, str | None]:
    """``(token, notebook or None)`` from a pasted share link or a bare token."""
    from urllib.parse import parse_qs, urlsplit

    text = text.strip()
    if "token=" not in text:
        return text, None
    query = urlsplit(text).query or text.split("?", 1)[-1]
    params = parse_qs(query)
    token = (params.get("token") or [""])[0].strip()
    notebook = (params.get("notebook") or [None])[0]
    return token, notebook
