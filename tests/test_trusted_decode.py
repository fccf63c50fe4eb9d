"""The relay's trusted read of its own store decodes exactly what validation does.

``stored_from_json(value, trusted=True)`` skips the per-argument checks; it
is only for JSON the relay validated before storing it. On the committed
sample log (every event kind, as the relay stores them) it must build the
very same events, and on rows that do not fit it must fail as the checked
path does, never build a half-valid event.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from shared_schema import SchemaError, fold_all, stored_from_json

SAMPLE_LOG = Path(__file__).parent / "data" / "sample_log_v1.jsonl"


def sample() -> list[dict[str, Any]]:
    return [json.loads(line) for line in SAMPLE_LOG.read_text(encoding="utf-8").splitlines()]


def test_trusted_decode_equals_validated_decode_on_the_sample_log() -> None:
    log = sample()
    names = set()
    for value in log:
        trusted = stored_from_json(value, trusted=True)
        checked = stored_from_json(value)
        assert trusted == checked, value["seq"]
        assert type(trusted.event) is type(checked.event)
        names.add(value["name"])
    assert len(names) >= 20  # the sample really covers the schema
    trusted_state = fold_all(stored_from_json(value, trusted=True) for value in log)
    assert trusted_state.dump() == fold_all(stored_from_json(value) for value in log).dump()


def _row(**changes: Any) -> dict[str, Any]:
    value = {
        "seq": 1,
        "id": "e1",
        "name": "cellCreated",
        "v": 1,
        "args": {"cell_id": "c1"},
        "actor": "a",
        "ts": 1.0,
    }
    return {**value, **changes}


@pytest.mark.parametrize(
    "changes, code",
    [
        ({"args": {"cell_id": "c1", "colour": "red"}}, "unexpected_arg"),
        ({"args": {}}, "missing_arg"),
        ({"args": ["c1"]}, "invalid_arg"),
        ({"v": "1"}, "invalid_version"),
    ],
)
def test_rows_that_do_not_fit_fail_as_the_checked_path_does(
    changes: dict[str, Any], code: str
) -> None:
    for trusted in (False, True):
        with pytest.raises(SchemaError) as raised:
            stored_from_json(_row(**changes), trusted=trusted)
        assert raised.value.code == code


def test_unknown_events_fold_as_no_ops_either_way() -> None:
    for changes in ({"name": "fromTheFuture"}, {"v": 99}):
        assert stored_from_json(_row(**changes), trusted=True).event is None
        assert stored_from_json(_row(**changes)).event is None
