"""Two people in Chromium, each on their own relay, both relays on one PostgreSQL.

What a team behind a load balancer sees: Alice's page comes from relay 1,
Bob's from relay 2 (``anode serve --store postgresql://… --kernels auto``
both); they edit and run one notebook together, and losing Bob's relay
loses nothing either of them wrote.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.chromium import browser_fixture  # noqa: F401 - the *_fixture names are fixtures
from tests.client_helpers import RUN_TIMEOUT_MS, SYNC_TIMEOUT_MS, ClientPage, new_notebook
from tests.conftest import RelayProcess

pytestmark = pytest.mark.slow


@pytest.fixture
def people(browser: Any) -> Iterator[tuple[Any, Any]]:
    alice = browser.new_context(service_workers="block")
    bob = browser.new_context(service_workers="block")
    yield alice, bob
    alice.close()
    bob.close()


def test_two_people_on_two_relays_work_as_on_one(
    relay_process: Any, postgres: str, tmp_path: Path, people: tuple[Any, Any]
) -> None:
    from playwright.sync_api import expect

    first, second = (
        relay_process("--store", postgres, "--kernels", "auto", data_dir=tmp_path / f"r{i}")
        for i in (1, 2)
    )
    notebook = new_notebook(first, "two relays")
    alice = ClientPage.open(people[0], first, notebook)
    bob = ClientPage.open(people[1], second, notebook)

    alice.type(0, "x = 6 * 7\nprint(x)")
    bob.expect_source(0, "x = 6 * 7\nprint(x)")
    bob.editor(0).click()
    bob.page.keyboard.press("Control+Enter")  # run through relay 2; a kernel starts somewhere
    expect(alice.outputs(0).locator("pre.stream")).to_have_text("42", timeout=RUN_TIMEOUT_MS)
    bob.expect_status(0, "done")

    # Bob's relay dies. Alice keeps working through hers; when Bob's relay is back,
    # his page catches up and what he types while it was down still arrives.
    second.kill()
    alice.editor(0).click()
    alice.page.keyboard.press("Control+End")
    alice.page.keyboard.type("  # from alice")
    bob.editor(0).click()
    bob.page.keyboard.press("Control+Home")
    bob.page.keyboard.type("# bob\n")
    second.start()
    expected = "# bob\nx = 6 * 7\nprint(x)  # from alice"
    for tab in (alice, bob):
        tab.expect_source(0, expected, timeout=SYNC_TIMEOUT_MS * 3)
    _no_duplicates(first, notebook)


def _no_duplicates(relay: RelayProcess, notebook: str) -> None:
    import httpx

    events = httpx.get(
        f"{relay.url}/api/notebooks/{notebook}/events",
        params={"limit": 10_000},
        headers=relay.headers,
        timeout=10,
    ).json()["events"]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert len({e["id"] for e in events}) == len(events)
    runs = [e for e in events if e["name"] == "executionCompleted"]
    assert len(runs) == 1, runs
