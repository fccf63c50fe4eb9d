"""Every bad input a client can send: a 4xx, a JSON error that names the problem,
nothing stored, and a relay that goes on serving.

Each rejection is checked the same way (``assert_rejected``): the status, the
body ``{"error": code, "detail": text, ...}``, the detail naming what was
wrong, the notebook's log and state unchanged, and a good push that still
gets the next seq.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from starlette.testclient import TestClient

from relay.config import RelayConfig
from tests.admin import AdminClient

ENDPOINTS = [
    ("GET", "events"),
    ("POST", "events"),
    ("GET", "stream"),
    ("POST", "presence"),
    ("GET", "snapshot"),
]


# --- helpers --------------------------------------------------------------------


def event(name: str, event_id: str | None = None, **args: Any) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()) if event_id is None else event_id,
        "name": name,
        "v": 1,
        "args": args,
    }


def good_event() -> dict[str, Any]:
    return event("cellCreated", cell_id=f"c{uuid.uuid4().hex[:8]}")


def batch(*events: dict[str, Any]) -> bytes:
    return json.dumps({"events": list(events)}).encode()


def observe(client: TestClient, notebook: str) -> tuple[Any, Any, Any]:
    """Everything a bad request must leave as it was."""
    events = client.get(f"/api/notebooks/{notebook}/events").json()
    state = client.get(f"/api/notebooks/{notebook}/snapshot").json()
    listing = client.get("/api/notebooks").json()
    return events, state, listing


@pytest.fixture
def before(client: TestClient, notebook: str) -> tuple[Any, Any, Any]:
    """The notebook with a cell in it, observed before the bad request."""
    response = client.post(f"/api/notebooks/{notebook}/events", content=batch(good_event()))
    assert response.status_code == 200, response.text
    return observe(client, notebook)


def assert_error_shape(
    response: Any, status: int, code: str | None = None, *mentions: str
) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert isinstance(body, dict), body
    assert isinstance(body.get("error"), str) and body["error"], body
    assert isinstance(body.get("detail"), str) and body["detail"], body
    if code is not None:
        assert body["error"] == code, body
    for word in mentions:
        assert word.lower() in body["detail"].lower(), (word, body)
    return body


def assert_still_serving(client: TestClient, notebook: str, head: int) -> None:
    sent = good_event()
    response = client.post(f"/api/notebooks/{notebook}/events", content=batch(sent))
    assert response.status_code == 200, response.text
    assert response.json() == {"head": head + 1, "seqs": [head + 1]}
    last = client.get(f"/api/notebooks/{notebook}/events", params={"after": head}).json()["events"]
    assert [item["id"] for item in last] == [sent["id"]]


def assert_rejected(
    client: TestClient,
    notebook: str,
    before: tuple[Any, Any, Any],
    response: Any,
    status: int,
    code: str | None,
    *mentions: str,
) -> dict[str, Any]:
    body = assert_error_shape(response, status, code, *mentions)
    assert observe(client, notebook) == before, "a rejected request changed the notebook"
    assert_still_serving(client, notebook, before[0]["head"])
    return body


def post_events(client: TestClient, notebook: str, content: bytes) -> Any:
    return client.post(
        f"/api/notebooks/{notebook}/events",
        content=content,
        headers={"content-type": "application/json"},
    )


# --- events that do not fit the schema ------------------------------------------------

_cell = {"cell_id": "c1"}

SCHEMA_CASES = [
    # (id, events, code, words the detail names)
    ("unknown name", [event("cellExploded", **_cell)], "unknown_event", "cellExploded"),
    ("v=2", [{**event("cellCreated", **_cell), "v": 2}], "unsupported_version", "v2"),
    ("v=0", [{**event("cellCreated", **_cell), "v": 0}], "unsupported_version", "v0"),
    (
        'v="1"',
        [{**event("cellCreated", **_cell), "v": "1"}],
        "invalid_version",
        "v must be an integer",
    ),
    (
        "v=true",
        [{**event("cellCreated", **_cell), "v": True}],
        "invalid_version",
        "v must be an integer",
    ),
    (
        "v=1.0",
        [{**event("cellCreated", **_cell), "v": 1.0}],
        "invalid_version",
        "v must be an integer",
    ),
    (
        "no v",
        [{k: v for k, v in event("cellCreated", **_cell).items() if k != "v"}],
        "missing_field",
        "v",
    ),
    (
        "no name",
        [{k: v for k, v in event("cellCreated", **_cell).items() if k != "name"}],
        "missing_field",
        "name",
    ),
    (
        "args not an object",
        [{**event("cellCreated"), "args": ["c1"]}],
        "invalid_arg",
        "args must be an object",
    ),
    ("missing arg", [event("cellCreated", source="x")], "missing_arg", "cell_id"),
    ("mistyped arg", [event("cellCreated", cell_id=5)], "invalid_arg", "args.cell_id", "a number"),
    (
        "mistyped int",
        [event("cellSourceEdited", cell_id="c1", base_rev="0", ops=["x"])],
        "invalid_arg",
        "base_rev",
    ),
    (
        "bool for int",
        [event("cellSourceEdited", cell_id="c1", base_rev=True, ops=["x"])],
        "invalid_arg",
        "base_rev",
    ),
    (
        "bad choice",
        [event("cellCreated", cell_id="c1", cell_type="sql")],
        "invalid_arg",
        "cell_type",
        "sql",
    ),
    (
        "unexpected arg",
        [event("cellCreated", cell_id="c1", colour="red")],
        "unexpected_arg",
        "colour",
    ),
    (
        "oversized source",
        [event("cellCreated", cell_id="c1", source="x" * 1_000_001)],
        "too_large",
        "args.source",
        "1000000",
    ),
    (
        "oversized run",
        [event("executionRequested", execution_id="e1", cell_id="c1", source="x" * 1_000_001)],
        "too_large",
        "args.source",
    ),
    (
        "ops [true]",
        [event("cellSourceEdited", cell_id="c1", base_rev=0, ops=[True])],
        "invalid_arg",
        "ops",
        "bool",
    ),
    (
        "ops [0]",
        [event("cellSourceEdited", cell_id="c1", base_rev=0, ops=[0])],
        "invalid_arg",
        "ops",
        "zero",
    ),
    (
        "ops nested",
        [event("cellSourceEdited", cell_id="c1", base_rev=0, ops=[[1]])],
        "invalid_arg",
        "ops",
        "list",
    ),
    (
        "ops not a list",
        [event("cellSourceEdited", cell_id="c1", base_rev=0, ops="x")],
        "invalid_arg",
        "ops",
    ),
    (
        "ops empty insert",
        [event("cellSourceEdited", cell_id="c1", base_rev=0, ops=[""])],
        "invalid_arg",
        "ops",
    ),
    (
        "ops float",
        [event("cellSourceEdited", cell_id="c1", base_rev=0, ops=[1.5])],
        "invalid_arg",
        "ops",
        "float",
    ),
    (
        "negative base_rev",
        [event("cellSourceEdited", cell_id="c1", base_rev=-1, ops=["x"])],
        "invalid_arg",
        "base_rev",
    ),
    (
        "metadata too deep",
        [event("cellMetadataSet", cell_id="c1", key="k", value=json.loads("[" * 40 + "]" * 40))],
        "invalid_arg",
        "args.value",
        "deeper",
    ),
    (
        "output of unknown type",
        [event("outputAdded", execution_id="e1", output={"output_type": "video"})],
        "invalid_arg",
        "output_type",
    ),
    ("event not an object: 1", [1], "invalid_event", "events[0]", "object"),
    ("event not an object: str", ["cellCreated"], "invalid_event", "object"),
    ("event not an object: null", [None], "invalid_event", "object"),
    ("event not an object: list", [[]], "invalid_event", "object"),
    ("seq set by the author", [{**event("cellCreated", **_cell), "seq": 7}], "relay_field", "seq"),
    ("ts set by the author", [{**event("cellCreated", **_cell), "ts": 0.0}], "relay_field", "ts"),
    (
        "unknown event field",
        [{**event("cellCreated", **_cell), "parent": 3}],
        "unexpected_field",
        "parent",
    ),
    ("id with a slash", [event("cellCreated", "a/b", **_cell)], "invalid_id", "id"),
    ("id with dots", [event("cellCreated", "../../etc", **_cell)], "invalid_id", "id"),
    ("id too long", [event("cellCreated", "a" * 65, **_cell)], "invalid_id", "id", "64"),
    ("id empty", [event("cellCreated", "", **_cell)], "invalid_id", "id"),
    ("id a number", [event("cellCreated", **_cell) | {"id": 42}], "invalid_id", "id"),
    (
        "no id",
        [{k: v for k, v in event("cellCreated", **_cell).items() if k != "id"}],
        "missing_field",
        "id",
    ),
    (
        "relay-only kernelSessionExpired",
        [event("kernelSessionExpired", session_id="k1")],
        "relay_only_event",
        "relay",
    ),
    (
        "relay-only notebookInitialized",
        [event("notebookInitialized", title="x")],
        "relay_only_event",
        "relay",
    ),
    (
        "bad event after good ones",
        [good_event(), good_event(), event("cellCreated")],
        "missing_arg",
        "events[2]",
    ),
]


@pytest.mark.parametrize(
    ("events", "code", "mentions"),
    [
        pytest.param(events, code, mentions, id=name)
        for name, events, code, *mentions in SCHEMA_CASES
    ],
)
def test_events_that_do_not_fit_the_schema(
    client: TestClient,
    notebook: str,
    before: Any,
    events: list[Any],
    code: str,
    mentions: list[str],
) -> None:
    response = post_events(client, notebook, batch(*events))
    body = assert_rejected(client, notebook, before, response, 400, code, *mentions)
    assert body["path"].startswith("events[")


# --- bodies that are not a batch --------------------------------------------------------

BODY_CASES = [
    # (id, raw body, code, words the detail names)
    ("1001 events", batch(*(good_event() for _ in range(1001))), "batch_too_large", "1000", "1001"),
    ("empty batch", b'{"events": []}', "empty_batch", "at least one"),
    ("empty body", b"", "invalid_json", "not valid JSON"),
    ("not JSON", b"events=1", "invalid_json", "not valid JSON"),
    ("truncated JSON", batch(good_event())[:-2], "invalid_json", "not valid JSON"),
    ("JSON list", b"[]", "invalid_body", "object"),
    ("JSON string", b'"events"', "invalid_body", "object"),
    ("JSON number", b"1", "invalid_body", "object"),
    ("JSON null", b"null", "invalid_body", "object"),
    ("no events", b"{}", "invalid_body", "events"),
    ("events null", b'{"events": null}', "invalid_body", "events"),
    ("events an object", b'{"events": {"0": {}}}', "invalid_body", "events"),
    ("events a string", b'{"events": "cellCreated"}', "invalid_body", "events"),
    ("extra field", b'{"events": [], "parent": 1}', "unexpected_field", "parent"),
    (
        "NaN",
        b'{"events": [{"id": "x", "name": "kernelSessionStarted", "v": NaN}]}',
        "invalid_json",
        "NaN",
    ),
    ("Infinity", b'{"events": [], "n": Infinity}', "invalid_json", "Infinity"),
    ("-Infinity", b'{"events": [], "n": -Infinity}', "invalid_json", "Infinity"),
    (
        "1e999 lease",
        batch(
            event("kernelSessionStarted", session_id="k", host="node", lease_seconds=1.0)
        ).replace(b"1.0", b"1e999"),
        "invalid_json",
        "1e999",
    ),
    (
        "a 5000-digit number",
        b'{"events": [], "n": 1' + b"0" * 5000 + b"}",
        "invalid_json",
        "not valid JSON",
    ),
    ("100,000 [", b"[" * 100_000, "invalid_json", "not valid JSON"),
    ("100,000 [ closed", b"[" * 100_000 + b"]" * 100_000, "invalid_json", "not valid JSON"),
    (
        "100,000 { in args",
        b'{"events": [{"args": ' + b'{"a": ' * 100_000,
        "invalid_json",
        "not valid JSON",
    ),
    (
        "invalid UTF-8",
        batch(event("cellCreated", cell_id="c1", source="\u00e9")).replace(b"\\u00e9", b"\xc3\x28"),
        "invalid_json",
        "UTF-8",
    ),
    ("UTF-16", json.dumps({"events": [good_event()]}).encode("utf-16"), "invalid_json", "UTF-8"),
    ("overlong UTF-8 slash", b'{"events": [], "\xc0\xaf": 1}', "invalid_json", "UTF-8"),
    ("UTF-8 encoded surrogate", b'{"events": [], "\xed\xa0\x80": 1}', "invalid_json", "UTF-8"),
    (
        "lone surrogate in source",
        b'{"events": [{"id": "s1", "name": "cellCreated", "v": 1,'
        b' "args": {"cell_id": "c1", "source": "\\ud800"}}]}',
        "invalid_json",
        "surrogate",
    ),
    (
        "lone low surrogate in ops",
        (
            b'{"events": [{"id": "s1", "name": "cellSourceEdited", "v": 1,'
            b' "args": {"cell_id": "c1", "base_rev": 0, "ops": ["\\udc00"]}}]}'
        ),
        "invalid_json",
        "surrogate",
    ),
    (
        "reversed surrogate pair in output",
        (
            b'{"events": [{"id": "s1", "name": "streamAppended", "v": 1,'
            b' "args": {"execution_id": "e1", "stream": "stdout", "text": "\\ude00\\ud83d"}}]}'
        ),
        "invalid_json",
        "surrogate",
    ),
]


@pytest.mark.parametrize(
    ("content", "code", "mentions"),
    [
        pytest.param(content, code, mentions, id=name)
        for name, content, code, *mentions in BODY_CASES
    ],
)
def test_bodies_that_are_not_a_good_batch(
    client: TestClient, notebook: str, before: Any, content: bytes, code: str, mentions: list[str]
) -> None:
    response = post_events(client, notebook, content)
    assert_rejected(client, notebook, before, response, 400, code, *mentions)


def test_an_escaped_surrogate_pair_is_text_and_round_trips(
    client: TestClient, notebook: str
) -> None:
    """The escape a Python client sends for an emoji by default must keep working."""
    raw = batch(event("cellCreated", "pair", cell_id="c1", source="smile \U0001f642"))
    assert b"\\ud83d\\ude42" in raw
    assert post_events(client, notebook, raw).status_code == 200
    stored = client.get(f"/api/notebooks/{notebook}/events", params={"after": 1}).json()["events"]
    assert stored[0]["args"]["source"] == "smile \U0001f642"
    cells = client.get(f"/api/notebooks/{notebook}/snapshot").json()["state"]["cells"]
    assert cells[0]["source"] == "smile \U0001f642"


@pytest.fixture
def small_client(config: RelayConfig) -> Iterator[TestClient]:
    """A relay that takes bodies of at most 1,000 bytes."""
    small = replace(config, max_body_bytes=1_000)
    with AdminClient(small) as client:
        yield client


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_body_over_the_limit_is_413(small_client: TestClient, chunked: bool) -> None:
    client = small_client
    notebook = client.post("/api/notebooks", json={"title": "small"}).json()["id"]
    before = observe(client, notebook)
    big = batch(event("cellCreated", cell_id="c1", source="x" * 2_000))
    content: Any = iter([big[:500], big[500:1500], big[1500:]]) if chunked else big
    response = client.post(f"/api/notebooks/{notebook}/events", content=content)
    if chunked:
        assert "content-length" not in response.request.headers
    assert_rejected(client, notebook, before, response, 413, "payload_too_large", "1000")


def test_a_presence_body_over_its_limit_is_413(
    client: TestClient, notebook: str, before: Any
) -> None:
    body = {"client_id": "tab", "state": {"note": "x" * 20_000}}
    response = client.post(f"/api/notebooks/{notebook}/presence", json=body)
    assert_rejected(client, notebook, before, response, 413, "payload_too_large", "16000")


# --- bad notebook ids and unknown notebooks ---------------------------------------------

BAD_NOTEBOOK_IDS = [
    # (id as written in the URL, status, code): ".." and "%2F" never reach a
    # handler (the client or the router resolves them), the others do.
    ("..", 404, "not_found"),
    ("%2e%2e", 400, "invalid_notebook_id"),
    ("%2F", 404, "not_found"),
    ("a%2Fb", 404, "not_found"),
    ("a" * 65, 400, "invalid_notebook_id"),
    ("%00", 400, "invalid_notebook_id"),
    ("a%20b", 400, "invalid_notebook_id"),
    ("caf%C3%A9", 400, "invalid_notebook_id"),
]


@pytest.mark.parametrize(("notebook_id", "status", "code"), BAD_NOTEBOOK_IDS)
def test_a_notebook_id_with_path_characters_is_refused_on_every_endpoint(
    client: TestClient, notebook: str, before: Any, notebook_id: str, status: int, code: str
) -> None:
    for method, endpoint in ENDPOINTS:
        url = f"/api/notebooks/{notebook_id}/{endpoint}"
        response = client.request(method, url, content=batch(good_event()))
        assert_rejected(client, notebook, before, response, status, code)
        if code == "invalid_notebook_id":
            assert "1-64 characters" in response.json()["detail"]
        before = observe(client, notebook)


def test_an_unknown_notebook_is_404_on_every_endpoint(
    client: TestClient, notebook: str, before: Any
) -> None:
    for method, endpoint in ENDPOINTS:
        content = batch(good_event()) if endpoint == "events" else b'{"client_id": "tab"}'
        response = client.request(
            method, f"/api/notebooks/no-such-notebook/{endpoint}", content=content
        )
        assert_rejected(
            client, notebook, before, response, 404, "unknown_notebook", "no-such-notebook"
        )
        before = observe(client, notebook)


def test_a_long_poll_on_an_unknown_notebook_is_404_at_once(
    client: TestClient, notebook: str, before: Any
) -> None:
    response = client.get("/api/notebooks/no-such-notebook/events", params={"wait": 60})
    assert_rejected(client, notebook, before, response, 404, "unknown_notebook")


def test_unknown_notebooks_leave_nothing_behind(client: TestClient) -> None:
    for i in range(50):
        assert client.get(f"/api/notebooks/ghost-{i}/snapshot").status_code == 404
    # Reaching into the relay: the only way to see a per-id leak from outside
    # is a relay that runs out of memory after millions of requests.
    notebooks = client.app.state.services.notebooks  # type: ignore[attr-defined]
    assert not notebooks._opening
    assert not [item for item in notebooks.loaded() if item.id.startswith("ghost-")]


@pytest.mark.parametrize(
    ("body", "code", "mentions"),
    [
        ({"id": "../etc"}, "invalid_notebook_id", "id"),
        ({"id": "a" * 65}, "invalid_notebook_id", "64"),
        ({"id": ""}, "invalid_notebook_id", "id"),
        ({"id": 42}, "invalid_notebook_id", "id"),
        ({"title": 42}, "invalid_title", "title"),
        ({"title": "x" * 257}, "invalid_title", "256"),
        ({"title": "t", "owner": "eve"}, "unexpected_field", "owner"),
        ('{"title": "\\ud800"}', "invalid_json", "surrogate"),
        ("[]", "invalid_body", "object"),
    ],
)
def test_a_bad_create_is_400_and_creates_nothing(
    client: TestClient, notebook: str, before: Any, body: Any, code: str, mentions: str
) -> None:
    content = body if isinstance(body, str) else json.dumps(body)
    response = client.post("/api/notebooks", content=content)
    assert_rejected(client, notebook, before, response, 400, code, mentions)


# --- query parameters --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("endpoint", "query", "param"),
    [
        ("events", "wait=31536000", "wait"),  # a year
        ("events", "wait=61", "wait"),
        ("events", "wait=-1", "wait"),
        ("events", "wait=NaN", "wait"),
        ("events", "wait=inf", "wait"),
        ("events", "wait=1e400", "wait"),
        ("events", "wait=abc", "wait"),
        ("events", "after=-1", "after"),
        ("events", "after=abc", "after"),
        ("events", "after=1.5", "after"),
        ("events", "after=1e3", "after"),
        ("events", "after=1_0", "after"),
        ("events", "after=%201", "after"),
        ("events", "after=%EF%BC%91", "after"),  # a fullwidth digit one
        ("events", "after=%C2%B2", "after"),  # superscript two
        ("events", "after=" + "9" * 5000, "after"),
        ("events", "after=99999999999999999999", "after"),
        ("events", "limit=0", "limit"),
        ("events", "limit=-5", "limit"),
        ("events", "limit=10001", "limit"),
        ("events", "limit=1000000000000", "limit"),
        ("events", "limit=ten", "limit"),
        ("snapshot", "at=-1", "at"),
        ("snapshot", "at=abc", "at"),
        ("snapshot", "at=1_0", "at"),
        ("stream", "after=-1", "after"),
        ("stream", "after=abc", "after"),
    ],
)
def test_bad_query_parameters_are_400(
    client: TestClient, notebook: str, before: Any, endpoint: str, query: str, param: str
) -> None:
    response = client.get(f"/api/notebooks/{notebook}/{endpoint}?{query}")
    body = assert_rejected(client, notebook, before, response, 400, "invalid_param", param)
    assert body["param"] == param
    assert len(body["detail"]) < 200


@pytest.mark.parametrize("at", [3, 1000, 2**53])
def test_at_past_the_head_is_400(client: TestClient, notebook: str, before: Any, at: int) -> None:
    assert before[0]["head"] == 2
    response = client.get(f"/api/notebooks/{notebook}/snapshot", params={"at": at})
    assert_rejected(client, notebook, before, response, 400, "at_past_head", str(at), "head")


@pytest.mark.parametrize("last_event_id", ["abc", "-1", "1.5", "9" * 17])
def test_a_bad_last_event_id_is_400(
    client: TestClient, notebook: str, before: Any, last_event_id: str
) -> None:
    response = client.get(
        f"/api/notebooks/{notebook}/stream", headers={"last-event-id": last_event_id}
    )
    assert_rejected(
        client, notebook, before, response, 400, "invalid_last_event_id", "Last-Event-ID"
    )


def test_a_non_ascii_digit_last_event_id_is_400(
    client: TestClient, notebook: str, before: Any
) -> None:
    """``'\u00b2'.isdigit()`` is true and ``int('\u00b2')`` raises: once a 500."""
    response = client.get(f"/api/notebooks/{notebook}/stream", headers={"last-event-id": b"\xb2"})
    assert_rejected(
        client, notebook, before, response, 400, "invalid_last_event_id", "Last-Event-ID"
    )


# --- routes and methods --------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    ["/api/nope", "/api/notebooks/x/y/events", "/api/notebooks/x/stuff", "/api", "/nothing/here"],
)
def test_an_unknown_route_is_404_json(
    client: TestClient, notebook: str, before: Any, path: str
) -> None:
    response = client.get(path)
    assert_rejected(client, notebook, before, response, 404, "not_found", path)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("DELETE", "/api/health"),
        ("POST", "/api/health"),
        ("PUT", "/api/notebooks"),
        ("DELETE", "/api/notebooks/{nb}/events"),
        ("PUT", "/api/notebooks/{nb}/events"),
        ("POST", "/api/notebooks/{nb}/stream"),
        ("GET", "/api/notebooks/{nb}/presence"),
        ("POST", "/api/notebooks/{nb}/snapshot"),
        ("POST", "/"),
        ("DELETE", "/shared_schema/events.py"),
    ],
)
def test_a_wrong_method_is_405_json(
    client: TestClient, notebook: str, before: Any, method: str, path: str
) -> None:
    response = client.request(method, path.format(nb=notebook), content=batch(good_event()))
    assert_rejected(client, notebook, before, response, 405, "method_not_allowed", method)
