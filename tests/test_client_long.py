"""A long notebook in a real browser: cells past the first few get their editor only when needed.

The page shows such a cell's source as static text until it comes near the
screen, is clicked or focused: typing there, a remote edit to it while it
has no editor, and a colleague's caret in it all behave as in any cell.
"""

from __future__ import annotations

import uuid

import pytest

from tests.chromium import sync_browser
from tests.client_helpers import (
    SYNC_TIMEOUT_MS,
    ClientPage,
    _event,
    cell_ids,
    cell_source,
    new_notebook,
    push,
)
from tests.conftest import RelayProcess, module_relay

pytestmark = pytest.mark.slow

CELLS = 40


relay = module_relay("client-long", "--kernels", "none")


def _long_notebook(relay: RelayProcess) -> str:
    notebook = new_notebook(relay, "long", source="cell 0")
    after = cell_ids(relay, notebook)[0]
    events = []
    for i in range(1, CELLS):
        cell = uuid.uuid4().hex
        events.append(
            _event("cellCreated", cell_id=cell, cell_type="code", after=after, source=f"cell {i}")
        )
        after = cell
    push(relay, notebook, *events)
    return notebook


def test_far_cells_edit_and_follow_like_any_other(relay: RelayProcess) -> None:
    from playwright.sync_api import expect

    notebook = _long_notebook(relay)
    last = CELLS - 1
    with sync_browser() as browser:
        context = browser.new_context(
            service_workers="block", viewport={"width": 1000, "height": 700}
        )
        tab = ClientPage.open(context, relay, notebook)
        expect(tab.cells).to_have_count(CELLS, timeout=SYNC_TIMEOUT_MS)
        expect(tab.cell(last).locator(".cm-editor")).to_have_count(0)  # static text, for now
        # A colleague edits the last cell while this tab has never shown it.
        ids = cell_ids(relay, notebook)
        push(
            relay,
            notebook,
            _event(
                "cellSourceEdited", cell_id=ids[last], base_rev=0, ops=[len(f"cell {last}"), "!"]
            ),
        )
        expect(tab.editor(last)).to_have_text(f"cell {last}!", timeout=SYNC_TIMEOUT_MS)
        # Typing into it: the click lands in a real editor, and the edit reaches the relay.
        tab.editor(last).scroll_into_view_if_needed()
        tab.type(last, " typed")
        tab.expect_source(last, f"cell {last}! typed")
        expect(tab.cell(last).locator(".cm-editor")).to_have_count(1)
        tab.page.wait_for_function("() => document.body.dataset.saving === '0'")
        expect(tab.page.locator(".sync-status")).to_have_attribute(
            "data-unsynced", "0", timeout=SYNC_TIMEOUT_MS
        )
        assert cell_source(relay, notebook, last) == f"cell {last}! typed"
        # Keyboard navigation reaches a far cell from the top: Esc, then Down to it, Enter edits.
        tab.editor(0).click()
        tab.page.keyboard.press("Escape")
        for _ in range(30):
            tab.page.keyboard.press("ArrowDown")
        tab.page.keyboard.press("Enter")
        tab.page.keyboard.press("Control+End")
        tab.page.keyboard.type("+")
        tab.expect_source(30, "cell 30+")
        assert tab.errors == []
        context.close()
