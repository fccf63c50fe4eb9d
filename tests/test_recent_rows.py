"""Pulls answered from memory (``RecentRows``) give exactly what the store would."""

from __future__ import annotations

from relay.notebooks import RecentRows
from relay.storage import StoredRow
from tests.admin import AdminClient
from tests.kernels import event, new_id


def rows(first: int, last: int) -> list[StoredRow]:
    return [StoredRow(seq, f"e{seq}", f'{{"seq":{seq}}}') for seq in range(first, last + 1)]


def test_only_a_contiguous_run_ending_at_the_head_answers() -> None:
    recent = RecentRows(size=5)
    assert recent.after(0, 10, head=0) is None  # nothing kept: the store answers
    recent.add(rows(1, 3))
    assert [r.seq for r in recent.after(1, 10, head=3)] == [2, 3]
    assert recent.after(3, 10, head=3) == []
    assert recent.after(2, 10, head=4) is None  # the head moved past what is kept
    recent.add(rows(4, 8))  # only the last five are kept
    assert recent.after(2, 10, head=8) is None  # seq 3 fell out: the store answers
    assert [r.seq for r in recent.after(3, 2, head=8)] == [4, 5]  # limit
    recent.add(rows(10, 11))  # a gap: what came before is dropped
    assert recent.after(8, 10, head=11) is None
    assert [r.seq for r in recent.after(9, 10, head=11)] == [10, 11]


def test_a_pull_from_memory_is_the_store_s_answer(client: AdminClient, notebook: str) -> None:
    url = f"/api/notebooks/{notebook}/events"
    cell = new_id("c")
    client.post(url, json={"events": [event("cellCreated", cell_id=cell)]})
    for index in range(30):
        ops = [index, "x"] if index else ["x"]
        client.post(url, json={"events": [event("cellSourceEdited", cell_id=cell,
                                                base_rev=index, ops=ops)]})  # fmt: skip
    services = client.app.state.services
    opened = services.notebooks._open[notebook]
    head = opened.state.seq
    afters = (0, 1, head - 5, head - 1, head)
    pulls = [client.get(url, params={"after": a, "limit": 7}).json() for a in afters]
    assert opened.recent.after(head - 5, 7, head) is not None  # those came from memory
    opened.recent = RecentRows()  # forget: the same pulls now come from the store
    assert pulls == [client.get(url, params={"after": a, "limit": 7}).json() for a in afters]
    for after, pulled in zip(afters, pulls, strict=True):
        assert pulled["head"] == head
        expected = list(range(after + 1, min(after + 7, head) + 1))
        assert [e["seq"] for e in pulled["events"]] == expected
