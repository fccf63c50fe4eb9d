"""Property-based fuzzing of what a credential holder can send: thousands of cases, no 5xx.

Hypothesis builds push bodies (well-formed events of every name with random
arguments, near-misses, and junk) and query strings for every read route,
sent by editor, viewer and kernel tokens. Every answer is below 500, every
refusal is the JSON error shape, and a refused push stores nothing.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared_schema.events import REGISTRY
from shared_schema.ids import is_valid_id
from tests.admin import AdminClient, SyncTokens

pytestmark = pytest.mark.slow

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**64), 2**64)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)
#: Control characters, line and paragraph separators, and a valid id with one of them at either end.
controls = st.sampled_from(["\n", "\r", "\r\n", "\x00", "\t", "\x1b", "\u2028", "\u0085", "\x7f"])
ids = (
    st.sampled_from(["c1", "c2", "x1", "ks-1", "", "../x", "a" * 65])
    | st.text(max_size=8)
    | st.builds(
        lambda valid, control, end: valid + control if end else control + valid,
        st.sampled_from(["c1", "x1", "ks-1", "evil"]),
        controls,
        st.booleans(),
    )
)
arg_values = ids | json_values | st.lists(st.integers(-5, 5) | st.text(max_size=5), max_size=4)


@st.composite
def events(draw: st.DrawFn) -> Any:
    name = draw(st.sampled_from(sorted(REGISTRY)) | st.text(max_size=20))
    cls = REGISTRY.get(name)
    keys = list(getattr(cls, "__dataclass_fields__", {})) if cls else []
    args = draw(
        st.fixed_dictionaries({}, optional={key: arg_values for key in keys})
        | st.dictionaries(st.text(max_size=10), arg_values, max_size=4)
    )
    event = {
        "id": draw(ids),
        "name": name,
        "v": draw(st.sampled_from([1, 1, 1, 2, 0, "1"])),
        "args": args,
    }
    extra = draw(
        st.sampled_from([{}, {}, {"seq": 3}, {"actor": "user:eve"}, {"ts": 1.0}, {"parent": 1}])
    )
    junk = draw(st.integers(0, 9)) == 0
    return draw(json_values) if junk else event | extra  # mostly events, sometimes junk


bodies = st.fixed_dictionaries({"events": st.lists(events(), max_size=5)}) | json_values


@pytest.fixture(scope="module")
def relay(tmp_path_factory: pytest.TempPathFactory):
    from relay.config import RelayConfig

    config = RelayConfig(data_dir=tmp_path_factory.mktemp("fuzz"), push_rate=0, presence_rate=0)
    with AdminClient(config) as client:
        notebook = client.post("/api/notebooks", json={"title": "fuzz"}).json()["id"]
        tokens = client.app.state.services.tokens
        client.fuzz_tokens = {
            role: SyncTokens(tokens).issue(notebook, role)[1]
            for role in ("editor", "viewer", "kernel")
        }
        client.fuzz_notebook = notebook
        yield client


def _head(client: AdminClient) -> int:
    return client.get(f"/api/notebooks/{client.fuzz_notebook}/events?limit=1").json()["head"]


def _assert_error_shape(response: Any) -> None:
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        body = response.json()
        assert isinstance(body["error"], str) and isinstance(body["detail"], str), body


@settings(
    max_examples=1500,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(body=bodies, role=st.sampled_from(["editor", "viewer", "kernel"]), raw=st.booleans())
def test_pushes_never_5xx_and_refusals_store_nothing(
    relay: AdminClient, body: Any, role: str, raw: bool
) -> None:
    before = _head(relay)
    headers = {"Authorization": f"Bearer {relay.fuzz_tokens[role]}"}
    url = f"/api/notebooks/{relay.fuzz_notebook}/events"
    if raw:  # not even JSON sometimes
        response = relay.post(url, content=repr(body).encode()[:2000], headers=headers)
    else:
        response = relay.post(url, json=body, headers=headers)
    _assert_error_shape(response)
    if response.status_code != 200:
        assert _head(relay) == before, response.text
    else:
        assert _head(relay) == before + len(body["events"]) or response.json()["seqs"]
        pulled = relay.get(f"/api/notebooks/{relay.fuzz_notebook}/events", params={"after": before})
        for stored in json.loads(pulled.text)["events"]:  # strict JSON, ids as the schema allows
            assert is_valid_id(stored["id"]), stored


@settings(
    max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    body=st.fixed_dictionaries(
        {"client_id": ids},
        optional={
            "kind": st.sampled_from(["user", "kernel", "x"]) | st.text(max_size=4),
            "state": json_values | st.fixed_dictionaries({"session_id": ids}),
            "gone": st.booleans(),
            "ttl": json_scalars,
        },
    )
    | json_values,
    role=st.sampled_from(["editor", "viewer", "kernel"]),
)
def test_presence_never_5xx_and_takes_only_ids(relay: AdminClient, body: Any, role: str) -> None:
    headers = {"Authorization": f"Bearer {relay.fuzz_tokens[role]}"}
    response = relay.post(
        f"/api/notebooks/{relay.fuzz_notebook}/presence", json=body, headers=headers
    )
    _assert_error_shape(response)
    if response.status_code == 200:
        assert is_valid_id(body["client_id"]), body


query_values = (
    st.text(max_size=12)
    | st.integers(-(2**70), 2**70).map(str)
    | st.floats().map(str)
    | st.builds(lambda n, control: f"{n}{control}", st.integers(0, 99), controls)
)


@settings(
    max_examples=600, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    route=st.sampled_from(["events", "snapshot", "tokens"]),
    params=st.dictionaries(
        st.sampled_from(["after", "limit", "wait", "at", "x"]), query_values, max_size=3
    ),
    role=st.sampled_from(["editor", "viewer", "kernel"]),
)
def test_query_parameters_never_5xx(
    relay: AdminClient, route: str, params: dict[str, str], role: str
) -> None:
    if "wait" in params:
        params["wait"] = (
            params["wait"][:4] if not params["wait"].replace(".", "").isdigit() else "0"
        )
    headers = {"Authorization": f"Bearer {relay.fuzz_tokens[role]}"}
    response = relay.get(
        f"/api/notebooks/{relay.fuzz_notebook}/{route}", params=params, headers=headers
    )
    _assert_error_shape(response)
