"""``state = fold(events)``: one example per rule of the materializer and per event.

Events are built the way the relay builds them, through the public API
(``parse_pushed`` validates, ``stored`` stamps seq, actor and ts), and folded
one at a time with ``fold``, the way a client or kernel reads the log.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from shared_schema import (
    REGISTRY,
    NotebookState,
    StoredEvent,
    advance,
    fold,
    fold_all,
    parse_pushed,
    stored,
    stored_from_json,
)
from shared_schema.state import Execution

ADA, BOB = "user:ada", "user:bob"
KERNEL = "kernel"
RELAY = "relay"


def make(
    seq: int, name: str, args: dict[str, Any], actor: str = ADA, ts: float | None = None
) -> StoredEvent:
    """One stored event, validated as a push is, stamped as the relay stamps it."""
    pushed = parse_pushed(
        {"id": f"ev-{seq}", "name": name, "v": REGISTRY[name].version, "args": args}
    )
    return stored(seq, pushed.id, pushed.event, actor, 1_000.0 + seq if ts is None else ts)


class Book:
    """A notebook's log, folded event by event as a client does."""

    def __init__(self) -> None:
        self.log: list[StoredEvent] = []
        self.state = NotebookState()

    def __call__(self, name: str, /, actor: str = ADA, **args: Any) -> NotebookState:
        event = make(len(self.log) + 1, name, args, actor)
        self.log.append(event)
        self.state = fold(self.state, event)
        return self.state

    # --- reading -------------------------------------------------------------

    def order(self) -> list[str]:
        return [cell.id for cell in self.state.visible_cells()]

    def source(self, cell_id: str) -> str:
        return self.state.cells[cell_id].source

    def run(self, execution_id: str) -> Execution:
        return self.state.executions[execution_id]

    def outputs(self, cell_id: str) -> list[dict[str, Any]]:
        (cell,) = [cell for cell in self.state.public()["cells"] if cell["id"] == cell_id]
        return cell["outputs"]

    def unchanged_by(self, name: str, /, actor: str = ADA, **args: Any) -> None:
        """Fold one event and check it changed nothing but ``seq`` and ``updated_at``."""
        before = _comparable(self.state)
        self(name, actor, **args)
        after = _comparable(self.state)
        assert after == before, f"{name} {args} should have been a no-op"

    # --- the usual moves -------------------------------------------------------

    def cells(self, *cell_ids: str, source: str = "") -> None:
        """Create cells in this order at the end of the notebook."""
        for cell_id in cell_ids:
            after = self.state.order[-1] if self.state.order else None
            self("cellCreated", cell_id=cell_id, after=after, source=source)

    def kernel(self, session_id: str = "k1") -> None:
        self("kernelSessionStarted", KERNEL, session_id=session_id, host="node", lease_seconds=30.0)

    def request(self, execution_id: str, cell_id: str = "c1") -> None:
        self(
            "executionRequested",
            execution_id=execution_id,
            cell_id=cell_id,
            source=self.source(cell_id),
        )

    def claim(self, execution_id: str, session_id: str = "k1") -> None:
        self("executionAssigned", KERNEL, execution_id=execution_id, session_id=session_id)

    def start(self, execution_id: str, session_id: str = "k1", count: int | None = None) -> None:
        self(
            "executionStarted",
            KERNEL,
            execution_id=execution_id,
            session_id=session_id,
            execution_count=count,
        )

    def complete(self, execution_id: str, status: str = "ok", session_id: str = "k1") -> None:
        self(
            "executionCompleted",
            KERNEL,
            execution_id=execution_id,
            session_id=session_id,
            status=status,
        )

    def running(self, execution_id: str, cell_id: str = "c1", session_id: str = "k1") -> None:
        """Request, claim and start: the execution is ``executing`` on ``session_id``."""
        self.request(execution_id, cell_id)
        self.claim(execution_id, session_id)
        self.start(execution_id, session_id)

    def stream(self, execution_id: str, text: str, stream: str = "stdout") -> None:
        self("streamAppended", KERNEL, execution_id=execution_id, stream=stream, text=text)

    def output(self, execution_id: str, output: dict[str, Any]) -> None:
        self("outputAdded", KERNEL, execution_id=execution_id, output=output)


def _comparable(state: NotebookState) -> dict[str, Any]:
    """The full internal form, deep-copied, minus what every event touches."""
    data = copy.deepcopy(state.dump())
    del data["seq"], data["updated_at"]
    return data


def display(text: str, display_id: str | None = None) -> dict[str, Any]:
    output: dict[str, Any] = {
        "output_type": "display_data",
        "data": {"text/plain": text},
        "metadata": {},
    }
    if display_id is not None:
        output["transient"] = {"display_id": display_id}
    return output


def stdout(text: str) -> dict[str, Any]:
    return {"output_type": "stream", "name": "stdout", "text": text}


@pytest.fixture
def book() -> Book:
    book = Book()
    book("notebookInitialized", RELAY, title="Untitled")
    return book


# --- the notebook ---------------------------------------------------------------


def test_initialized_sets_title_metadata_and_creation_time() -> None:
    book = Book()
    state = book(
        "notebookInitialized", RELAY, title="Sales", metadata={"kernelspec": {"name": "python3"}}
    )
    assert (state.title, state.metadata, state.created_at) == (
        "Sales",
        {"kernelspec": {"name": "python3"}},
        1001.0,
    )
    assert (state.seq, state.updated_at) == (1, 1001.0)


def test_a_second_initialized_is_a_no_op(book: Book) -> None:
    book.unchanged_by("notebookInitialized", RELAY, title="Again", metadata={"x": 1})
    assert book.state.title == "Untitled" and book.state.created_at == 1001.0


def test_title_changes(book: Book) -> None:
    assert book("notebookTitleChanged", title="Q3 report").title == "Q3 report"
    assert book("notebookTitleChanged", title="").title == ""


def test_notebook_metadata_is_set_and_null_removes_it(book: Book) -> None:
    book("notebookMetadataSet", key="authors", value=["ada"])
    book("notebookMetadataSet", key="license", value={"spdx": "MIT"})
    assert book.state.metadata == {"authors": ["ada"], "license": {"spdx": "MIT"}}
    book("notebookMetadataSet", key="authors", value=["ada", "bob"])
    book("notebookMetadataSet", key="license", value=None)
    assert book.state.metadata == {"authors": ["ada", "bob"]}
    book.unchanged_by("notebookMetadataSet", key="never-set", value=None)


def test_every_known_event_stamps_updated_at_even_as_a_no_op(book: Book) -> None:
    state = book("cellDeleted", cell_id="nowhere")
    assert (state.seq, state.updated_at) == (2, 1002.0)


# --- cell order -----------------------------------------------------------------


def test_after_null_puts_a_cell_first(book: Book) -> None:
    book("cellCreated", cell_id="a", after=None)
    book("cellCreated", cell_id="b", after=None)
    assert book.order() == ["b", "a"]


def test_a_cell_goes_right_after_its_anchor(book: Book) -> None:
    book.cells("a", "b", "c")
    book("cellCreated", cell_id="x", after="a")
    assert book.order() == ["a", "x", "b", "c"]


def test_two_creates_after_one_cell_resolve_by_log_order(book: Book) -> None:
    """Both were made against ``a, b``; the later create lands nearer its anchor."""
    book.cells("a", "b")
    book("cellCreated", ADA, cell_id="from-ada", after="a")
    book("cellCreated", BOB, cell_id="from-bob", after="a")
    assert book.order() == ["a", "from-bob", "from-ada", "b"]
    # Every party folding the same log agrees.
    assert fold_all(book.log).order == book.state.order


def test_create_after_an_unknown_cell_appends(book: Book) -> None:
    book.cells("a", "b")
    book("cellCreated", cell_id="x", after="never-existed")
    assert book.order() == ["a", "b", "x"]


def test_create_records_type_source_and_author(book: Book) -> None:
    book("cellCreated", BOB, cell_id="m", cell_type="markdown", source="# Title")
    cell = book.state.cells["m"]
    assert (cell.cell_type, cell.source, cell.rev, cell.created_by) == (
        "markdown",
        "# Title",
        0,
        BOB,
    )
    assert book.state.public()["cells"][0] == {
        "id": "m",
        "cell_type": "markdown",
        "source": "# Title",
        "rev": 0,
        "metadata": {},
        "attachments": {},
        "outputs": [],
        "execution": None,
        "imported": None,
    }


def test_an_imported_cell_shows_its_outputs_until_it_runs_or_is_cleared(book: Book) -> None:
    shown = {"output_type": "display_data", "data": {"text/plain": "2"}, "metadata": {}}
    book(
        "cellImported", BOB, cell_id="i", source="1+1", outputs=[shown], execution_count=7,
        metadata={"tags": ["x"]},
    )  # fmt: skip
    book(
        "cellImported", cell_id="m", cell_type="markdown", after="i",
        source="![a](attachment:a.png)", attachments={"a.png": {"image/png": "iVBOR"}},
    )  # fmt: skip
    book.unchanged_by("cellImported", cell_id="i", source="again")  # ids are never reused
    first, second = book.state.public()["cells"]
    assert (first["outputs"], first["imported"], first["metadata"]) == (
        [shown], {"execution_count": 7}, {"tags": ["x"]},
    )  # fmt: skip
    assert second["attachments"] == {"a.png": {"image/png": "iVBOR"}} and second["imported"] is None
    book("executionRequested", execution_id="x1", cell_id="i", source="1+1")
    ran = book.state.public()["cells"][0]
    assert (ran["outputs"], ran["imported"], ran["execution"]["id"]) == ([], None, "x1")
    book("cellImported", cell_id="j", after="m", outputs=[shown])
    book("cellOutputsCleared", cell_id="j")
    assert book.state.public()["cells"][2]["outputs"] == []
    assert NotebookState.load(book.state.dump()).public() == book.state.public()


def test_a_cell_id_is_never_reused_not_even_after_a_delete(book: Book) -> None:
    book.cells("a", source="first")
    book.unchanged_by("cellCreated", cell_id="a", source="second")
    book("cellDeleted", cell_id="a")
    book.unchanged_by("cellCreated", cell_id="a", source="third")
    assert book.order() == []


def test_a_deleted_cell_stays_an_anchor(book: Book) -> None:
    book.cells("a", "b", "c")
    book("cellDeleted", cell_id="b")
    assert book.order() == ["a", "c"]
    assert book.state.order == ["a", "b", "c"]  # the tombstone keeps its place
    # Made by someone who had not seen the delete yet: lands where they meant.
    book("cellCreated", cell_id="x", after="b")
    book("cellMoved", cell_id="a", after="b")
    assert book.order() == ["a", "x", "c"]
    assert book.state.order == ["b", "a", "x", "c"]


def test_moves(book: Book) -> None:
    book.cells("a", "b", "c")
    book("cellMoved", cell_id="c", after=None)
    assert book.order() == ["c", "a", "b"]
    book("cellMoved", cell_id="c", after="b")
    assert book.order() == ["a", "b", "c"]
    book("cellMoved", cell_id="a", after="b")
    assert book.order() == ["b", "a", "c"]


def test_moves_that_cannot_apply_are_no_ops(book: Book) -> None:
    book.cells("a", "b")
    book("cellCreated", cell_id="gone", after="b")
    book("cellDeleted", cell_id="gone")
    book.unchanged_by("cellMoved", cell_id="a", after="a")  # after itself
    book.unchanged_by("cellMoved", cell_id="a", after="unknown")
    book.unchanged_by("cellMoved", cell_id="gone", after=None)  # deleted
    book.unchanged_by("cellMoved", cell_id="unknown", after=None)
    assert book.state.order == ["a", "b", "gone"]


def test_cell_type_changes_on_live_cells_only(book: Book) -> None:
    book.cells("a", "b")
    book("cellTypeChanged", cell_id="a", cell_type="markdown")
    assert book.state.cells["a"].cell_type == "markdown"
    book("cellDeleted", cell_id="b")
    book.unchanged_by("cellTypeChanged", cell_id="b", cell_type="raw")
    book.unchanged_by("cellTypeChanged", cell_id="unknown", cell_type="raw")


def test_cell_metadata_is_set_and_null_removes_it(book: Book) -> None:
    book.cells("a")
    book("cellMetadataSet", cell_id="a", key="tags", value=["setup"])
    book("cellMetadataSet", cell_id="a", key="collapsed", value=True)
    book("cellMetadataSet", cell_id="a", key="collapsed", value=None)
    assert book.state.cells["a"].metadata == {"tags": ["setup"]}
    book("cellDeleted", cell_id="a")
    book.unchanged_by("cellMetadataSet", cell_id="a", key="tags", value=[])
    book.unchanged_by("cellMetadataSet", cell_id="unknown", key="tags", value=[])


def test_public_shows_live_cells_only(book: Book) -> None:
    book.cells("a", "b")
    book("cellDeleted", cell_id="a")
    assert [cell["id"] for cell in book.state.public()["cells"]] == ["b"]
    book.unchanged_by("cellDeleted", cell_id="a")


# --- text edits -----------------------------------------------------------------


def test_an_edit_moves_the_cell_to_its_next_revision(book: Book) -> None:
    book.cells("a", source="print()")
    book("cellSourceEdited", cell_id="a", base_rev=0, ops=[6, "'hi'", 1])
    cell = book.state.cells["a"]
    assert (cell.source, cell.rev, cell.history) == ("print('hi')", 1, [[6, "'hi'", 1]])
    book("cellSourceEdited", cell_id="a", base_rev=1, ops=[-5, "log", 6])
    cell = book.state.cells["a"]
    assert (cell.source, cell.rev, len(cell.history)) == ("log('hi')", 2, 2)


def test_two_edits_on_one_base_revision_both_land(book: Book) -> None:
    book.cells("a", source="x = 1\n")
    book("cellSourceEdited", ADA, cell_id="a", base_rev=0, ops=[6, "y = 2\n"])
    book("cellSourceEdited", BOB, cell_id="a", base_rev=0, ops=["import os\n", 6])
    assert book.source("a") == "import os\nx = 1\ny = 2\n"
    cell = book.state.cells["a"]
    # The history holds Bob's edit as it was applied: rebased over Ada's.
    assert cell.rev == 2 and cell.history == [[6, "y = 2\n"], ["import os\n", 12]]


def test_concurrent_inserts_at_one_place_lose_no_character(book: Book) -> None:
    """The edit already in the log goes first; everything typed survives."""
    book.cells("a", source="ab")
    book("cellSourceEdited", ADA, cell_id="a", base_rev=0, ops=[1, "XX", 1])
    book("cellSourceEdited", BOB, cell_id="a", base_rev=0, ops=[1, "YY", 1])
    book("cellSourceEdited", ADA, cell_id="a", base_rev=0, ops=[1, "ZZ", 1])  # very late
    assert book.source("a") == "aXXYYZZb"


def test_concurrent_delete_and_insert_inside_it(book: Book) -> None:
    book.cells("a", source="hello world")
    book("cellSourceEdited", ADA, cell_id="a", base_rev=0, ops=[5, -6])  # "hello"
    book("cellSourceEdited", BOB, cell_id="a", base_rev=0, ops=[8, "!", 3])  # "hello wo!rld"
    assert book.source("a") == "hello!"


def test_concurrent_deletes_of_one_range_delete_it_once(book: Book) -> None:
    book.cells("a", source="abcdef")
    book("cellSourceEdited", ADA, cell_id="a", base_rev=0, ops=[1, -3, 2])
    book("cellSourceEdited", BOB, cell_id="a", base_rev=0, ops=[2, -3, 1])
    assert book.source("a") == "af"


def test_an_edit_is_rebased_over_only_the_edits_after_its_base(book: Book) -> None:
    book.cells("a", source="")
    book("cellSourceEdited", ADA, cell_id="a", base_rev=0, ops=["abc"])
    book("cellSourceEdited", ADA, cell_id="a", base_rev=1, ops=[3, "def"])
    book("cellSourceEdited", BOB, cell_id="a", base_rev=1, ops=["<", 3, ">"])  # saw "abc" only
    assert book.source("a") == "<abcdef>"


def test_edits_counted_in_code_points(book: Book) -> None:
    book.cells("a", source="é🙂")
    book("cellSourceEdited", cell_id="a", base_rev=0, ops=[1, "x", 1])
    assert book.source("a") == "éx🙂"


def test_an_edit_from_a_future_revision_is_a_no_op(book: Book) -> None:
    book.cells("a", source="ab")
    book.unchanged_by("cellSourceEdited", cell_id="a", base_rev=1, ops=[2, "c"])


@pytest.mark.parametrize(
    ("base_rev", "ops"),
    [
        (1, [6, "!"]),  # longer than rev 1's "hello"
        (1, [4, "!"]),  # shorter than it
        (1, []),
        (0, [5, "!"]),  # fits rev 1, but it says it was made against rev 0's "hell"
        (0, [3, "!"]),  # fits neither: fails inside the rebase
    ],
)
def test_an_edit_of_the_wrong_length_is_a_no_op(book: Book, base_rev: int, ops: list) -> None:
    book.cells("a", source="hell")
    book("cellSourceEdited", cell_id="a", base_rev=0, ops=[4, "o"])  # rev 1: "hello"
    book.unchanged_by("cellSourceEdited", cell_id="a", base_rev=base_rev, ops=ops)


def test_an_edit_that_would_exceed_the_source_limit_is_a_no_op(book: Book) -> None:
    from shared_schema import limits

    book.cells("a", source="x" * limits.MAX_SOURCE)
    book.unchanged_by("cellSourceEdited", cell_id="a", base_rev=0, ops=[limits.MAX_SOURCE, "y"])


def test_edits_of_deleted_or_unknown_cells_are_no_ops(book: Book) -> None:
    book.cells("a", source="ab")
    book("cellDeleted", cell_id="a")
    book.unchanged_by("cellSourceEdited", cell_id="a", base_rev=0, ops=[2, "c"])
    book.unchanged_by("cellSourceEdited", cell_id="unknown", base_rev=0, ops=["c"])


# --- executions -----------------------------------------------------------------


@pytest.fixture
def nb(book: Book) -> Book:
    """Cells c1, c2 and a live kernel session k1."""
    book.cells("c1", source="print(1)")
    book.cells("c2", source="print(2)")
    book.kernel("k1")
    return book


def test_a_request_queues_a_pending_execution_of_the_source_on_screen(nb: Book) -> None:
    nb("executionRequested", BOB, execution_id="x1", cell_id="c1", source="print('seen')")
    run = nb.run("x1")
    assert (run.status, run.cell_id, run.source, run.requested_by) == (
        "pending",
        "c1",
        "print('seen')",
        BOB,
    )
    assert nb.state.cells["c1"].execution_id == "x1"
    assert nb.state.queue == ["x1"] and [r.id for r in nb.state.pending()] == ["x1"]
    assert nb.state.public()["cells"][0]["execution"]["status"] == "pending"


def test_requests_for_deleted_or_unknown_cells_or_reused_ids_are_no_ops(nb: Book) -> None:
    nb.request("x1", "c1")
    nb.unchanged_by("executionRequested", execution_id="x1", cell_id="c2", source="")
    nb("cellDeleted", cell_id="c2")
    nb.unchanged_by("executionRequested", execution_id="x2", cell_id="c2", source="")
    nb.unchanged_by("executionRequested", execution_id="x3", cell_id="unknown", source="")


def test_the_whole_lifecycle(nb: Book) -> None:
    nb.request("x1")
    nb.claim("x1")
    run = nb.run("x1")
    assert (run.status, run.kernel_session, run.assigned_at) == (
        "assigned",
        "k1",
        nb.state.updated_at,
    )
    nb.start("x1", count=7)
    run = nb.run("x1")
    assert (run.status, run.execution_count, run.started_at) == (
        "executing",
        7,
        nb.state.updated_at,
    )
    nb(
        "executionCompleted",
        KERNEL,
        execution_id="x1",
        session_id="k1",
        status="ok",
        execution_count=8,
    )
    run = nb.run("x1")
    assert (run.status, run.execution_count, run.completed_at) == ("ok", 8, nb.state.updated_at)
    assert nb.state.queue == []


@pytest.mark.parametrize("status", ["ok", "error", "cancelled"])
def test_a_holder_may_complete_a_claimed_execution_it_never_started(nb: Book, status: str) -> None:
    nb.request("x1")
    nb.claim("x1")
    nb.complete("x1", status)
    assert nb.run("x1").status == status and nb.state.queue == []


def test_the_first_claim_in_log_order_wins(nb: Book) -> None:
    nb.kernel("k2")
    nb.request("x1")
    nb.claim("x1", "k2")
    nb.unchanged_by("executionAssigned", KERNEL, execution_id="x1", session_id="k1")
    assert nb.run("x1").kernel_session == "k2"
    # The loser cannot start or complete it either.
    nb.unchanged_by("executionStarted", KERNEL, execution_id="x1", session_id="k1")
    nb.unchanged_by("executionCompleted", KERNEL, execution_id="x1", session_id="k1", status="ok")
    nb.start("x1", "k2")
    nb.complete("x1", "ok", "k2")
    assert nb.run("x1").status == "ok"


def test_claims_by_sessions_that_are_not_live_are_ignored(nb: Book) -> None:
    nb.kernel("k2")
    nb("kernelSessionEnded", KERNEL, session_id="k2")
    nb.kernel("k3")
    nb("kernelSessionExpired", RELAY, session_id="k3")
    nb.request("x1")
    nb.unchanged_by("executionAssigned", KERNEL, execution_id="x1", session_id="k2")
    nb.unchanged_by("executionAssigned", KERNEL, execution_id="x1", session_id="k3")
    nb.unchanged_by("executionAssigned", KERNEL, execution_id="x1", session_id="never-started")
    nb.unchanged_by("executionAssigned", KERNEL, execution_id="unknown", session_id="k1")


def test_only_a_pending_execution_can_be_claimed(nb: Book) -> None:
    nb.running("x1")
    nb.kernel("k2")
    nb.unchanged_by("executionAssigned", KERNEL, execution_id="x1", session_id="k2")
    nb.complete("x1")
    nb.unchanged_by("executionAssigned", KERNEL, execution_id="x1", session_id="k2")


def test_only_an_assigned_execution_can_start(nb: Book) -> None:
    nb.request("x1")
    nb.unchanged_by("executionStarted", KERNEL, execution_id="x1", session_id="k1")  # unclaimed
    nb.claim("x1")
    nb.start("x1")
    nb.unchanged_by(
        "executionStarted", KERNEL, execution_id="x1", session_id="k1", execution_count=2
    )
    nb.unchanged_by("executionStarted", KERNEL, execution_id="unknown", session_id="k1")


def test_only_the_holder_completes_and_a_finished_execution_stays_finished(nb: Book) -> None:
    nb.kernel("k2")
    nb.running("x1")
    nb.unchanged_by(
        "executionCompleted", KERNEL, execution_id="x1", session_id="k2", status="error"
    )
    nb.complete("x1", "ok")
    nb.unchanged_by(
        "executionCompleted", KERNEL, execution_id="x1", session_id="k1", status="error"
    )
    nb.unchanged_by("executionStarted", KERNEL, execution_id="x1", session_id="k1")
    nb.unchanged_by("executionCancelled", execution_id="x1")
    nb.unchanged_by("interruptRequested", execution_id="x1")
    nb.unchanged_by(
        "executionCompleted", KERNEL, execution_id="unknown", session_id="k1", status="ok"
    )
    nb.request("x2")
    nb.unchanged_by(
        "executionCompleted", KERNEL, execution_id="x2", session_id="k1", status="ok"
    )  # pending


@pytest.mark.parametrize("claimed", [False, True], ids=["pending", "assigned"])
def test_a_cancelled_execution_never_runs(nb: Book, claimed: bool) -> None:
    nb.request("x1")
    if claimed:
        nb.claim("x1")
    nb("executionCancelled", execution_id="x1")
    run = nb.run("x1")
    assert run.status == "cancelled" and run.completed_at == nb.state.updated_at
    assert nb.state.queue == [] and nb.state.pending() == []
    # A kernel that had not seen the cancel yet: nothing changes.
    nb.unchanged_by("executionAssigned", KERNEL, execution_id="x1", session_id="k1")
    nb.unchanged_by("executionStarted", KERNEL, execution_id="x1", session_id="k1")
    nb.unchanged_by("executionCompleted", KERNEL, execution_id="x1", session_id="k1", status="ok")
    nb.unchanged_by("executionCancelled", execution_id="x1")
    nb.unchanged_by("executionCancelled", execution_id="unknown")


@pytest.mark.parametrize("name", ["executionCancelled", "interruptRequested"])
def test_cancel_or_interrupt_of_a_running_execution_asks_the_kernel(nb: Book, name: str) -> None:
    nb.running("x1")
    nb(name, execution_id="x1")
    run = nb.run("x1")
    assert (run.status, run.interrupt_requested) == ("executing", True)
    assert nb.state.public()["queue"][0]["interrupt_requested"] is True
    nb.complete("x1", "cancelled")
    assert nb.run("x1").status == "cancelled" and nb.state.queue == []


def test_interrupt_of_an_execution_that_is_not_running_is_a_no_op(nb: Book) -> None:
    nb.request("x1")
    nb.unchanged_by("interruptRequested", execution_id="x1")
    nb.claim("x1")
    nb.unchanged_by("interruptRequested", execution_id="x1")
    nb.unchanged_by("interruptRequested", execution_id="unknown")


@pytest.mark.parametrize(
    ("name", "status", "evalue"),
    [
        (
            "kernelSessionExpired",
            "expired",
            "the kernel running this cell was lost (it stopped answering)",
        ),
        ("kernelSessionEnded", "ended", "the kernel shut down while this cell ran"),
    ],
)
def test_a_lost_session_requeues_claimed_work_and_fails_running_work(
    nb: Book, name: str, status: str, evalue: str
) -> None:
    nb.request("x0", "c2")  # queued first, stays first
    nb.running("x1", "c1")
    nb.claim("x0")
    nb.stream("x1", "half way\n")
    nb(name, RELAY if status == "expired" else KERNEL, session_id="k1")
    ts = nb.state.updated_at

    session = nb.state.kernels["k1"]
    assert (session.status, session.ended_at) == (status, ts)
    assert nb.state.live_kernels() == []

    requeued = nb.run("x0")
    assert (requeued.status, requeued.kernel_session, requeued.assigned_at) == (
        "pending",
        None,
        None,
    )
    assert nb.state.queue == ["x0"]

    lost = nb.run("x1")
    assert (lost.status, lost.completed_at, lost.reason) == ("error", ts, evalue)
    assert nb.outputs("c1") == [
        stdout("half way\n"),
        {
            "output_type": "error",
            "ename": "KernelLost",
            "evalue": evalue,
            "traceback": [f"KernelLost: {evalue}"],
        },
    ]

    # The lost kernel's late events change nothing; another kernel picks up the work.
    nb.unchanged_by("executionCompleted", KERNEL, execution_id="x1", session_id="k1", status="ok")
    nb.unchanged_by("executionStarted", KERNEL, execution_id="x0", session_id="k1")
    nb.unchanged_by(name, RELAY, session_id="k1")
    nb.kernel("k2")
    nb.claim("x0", "k2")
    nb.start("x0", "k2")
    nb.complete("x0", "ok", "k2")
    assert nb.run("x0").status == "ok" and nb.state.queue == []


def test_a_lost_session_leaves_other_sessions_work_alone(nb: Book) -> None:
    nb.kernel("k2")
    nb.running("x1", "c1", "k2")
    nb("kernelSessionExpired", RELAY, session_id="k1")
    assert nb.run("x1").status == "executing"
    nb.unchanged_by("kernelSessionExpired", RELAY, session_id="unknown")


def test_a_session_that_loses_work_it_no_longer_shows_adds_no_output(nb: Book) -> None:
    nb.running("x1", "c1")
    nb.request("x2", "c1")  # re-run while x1 still runs: x1's outputs are off screen
    nb("kernelSessionExpired", RELAY, session_id="k1")
    assert nb.run("x1").status == "error" and nb.run("x1").outputs == []
    assert nb.outputs("c1") == []


def test_a_session_id_is_used_once(nb: Book) -> None:
    nb("kernelSessionEnded", KERNEL, session_id="k1", reason="SIGTERM")
    nb.unchanged_by(
        "kernelSessionStarted", KERNEL, session_id="k1", host="browser", lease_seconds=5.0
    )


def test_session_start_records_the_session(book: Book) -> None:
    book(
        "kernelSessionStarted",
        "kernel:node-1",
        session_id="k9",
        host="browser",
        lease_seconds=5,
        label="tab",
    )
    assert book.state.kernels["k9"].public() == {
        "id": "k9",
        "host": "browser",
        "lease_seconds": 5.0,
        "label": "tab",
        "actor": "kernel:node-1",
        "status": "live",
        "started_at": 1002.0,
        "ended_at": None,
        "restart_requested": False,
        "restarts": 0,
    }


def test_deleting_a_cell_cancels_its_runs_that_have_not_started(nb: Book) -> None:
    nb.running("x1", "c1")
    nb.request("x2", "c1")
    nb.request("x3", "c1")
    nb.claim("x2")
    nb.request("x4", "c2")
    nb("cellDeleted", cell_id="c1")
    statuses = {eid: run.status for eid, run in nb.state.executions.items()}
    assert statuses == {"x1": "executing", "x2": "cancelled", "x3": "cancelled", "x4": "pending"}
    assert nb.state.queue == ["x1", "x4"]


def test_restart_requests_mark_one_or_every_live_session(nb: Book) -> None:
    nb.kernel("k2")
    nb.kernel("k3")
    nb("kernelSessionEnded", KERNEL, session_id="k3")
    nb("kernelRestartRequested", session_id="k2")
    assert [s.restart_requested for s in nb.state.kernels.values()] == [False, True, False]
    nb("kernelRestartRequested", session_id=None)
    assert [s.restart_requested for s in nb.state.kernels.values()] == [True, True, False]
    nb.unchanged_by("kernelRestartRequested", session_id="unknown")


def test_a_restart_fails_what_the_session_was_running(nb: Book) -> None:
    nb.running("x1", "c1")
    nb.request("x2", "c2")
    nb.claim("x2")
    nb("kernelRestartRequested", session_id="k1")
    nb("kernelRestarted", KERNEL, session_id="k1")
    session = nb.state.kernels["k1"]
    assert (session.status, session.restarts, session.restart_requested) == ("live", 1, False)
    assert nb.run("x1").status == "error"
    why = "the kernel restarted while this cell ran"
    assert nb.outputs("c1") == [
        {
            "output_type": "error",
            "ename": "KernelRestarted",
            "evalue": why,
            "traceback": [f"KernelRestarted: {why}"],
        }
    ]
    assert nb.run("x2").status == "assigned"  # claimed, not started: the fresh kernel runs it
    nb("kernelSessionEnded", KERNEL, session_id="k1")
    nb.unchanged_by("kernelRestarted", KERNEL, session_id="k1")
    nb.unchanged_by("kernelRestarted", KERNEL, session_id="unknown")


# --- outputs --------------------------------------------------------------------


def test_outputs_of_every_type_are_kept_in_order(nb: Book) -> None:
    nb.running("x1")
    outputs = [
        display("a figure"),
        {
            "output_type": "execute_result",
            "data": {"text/plain": "42", "text/html": "<b>42</b>"},
            "metadata": {},
            "execution_count": 1,
        },
        {
            "output_type": "error",
            "ename": "ValueError",
            "evalue": "bad",
            "traceback": ["Traceback", "ValueError: bad"],
        },
        {"output_type": "stream", "name": "stderr", "text": "warn\n"},
    ]
    for output in outputs:
        nb.output("x1", output)
    assert nb.outputs("c1") == outputs


def test_outputs_are_normalized_by_the_schema(nb: Book) -> None:
    nb.running("x1")
    nb.output("x1", {"output_type": "display_data", "data": {"text/plain": "x"}})
    assert nb.outputs("c1") == [display("x")]


def test_stream_chunks_coalesce_by_stream_name(nb: Book) -> None:
    nb.running("x1")
    nb.stream("x1", "a")
    nb.stream("x1", "b")
    nb.stream("x1", "E", "stderr")
    nb.stream("x1", "c")
    nb.stream("x1", "d")
    nb.output("x1", display("plot"))
    nb.stream("x1", "e")
    assert nb.outputs("c1") == [
        stdout("ab"),
        {"output_type": "stream", "name": "stderr", "text": "E"},
        stdout("cd"),
        display("plot"),
        stdout("e"),
    ]


def test_a_stream_also_coalesces_with_a_stream_output_added_whole(nb: Book) -> None:
    nb.running("x1")
    nb.output("x1", stdout("a"))
    nb.stream("x1", "b")
    assert nb.outputs("c1") == [stdout("ab")]


def test_an_empty_stream_chunk_is_a_no_op(nb: Book) -> None:
    nb.running("x1")
    nb("outputsCleared", KERNEL, execution_id="x1", wait=True)
    nb.output("x1", stdout("kept"))
    nb("outputsCleared", KERNEL, execution_id="x1", wait=True)
    nb.unchanged_by("streamAppended", KERNEL, execution_id="x1", stream="stdout", text="")
    assert nb.outputs("c1") == [stdout("kept")]


def test_a_display_update_changes_every_shown_output_with_that_id(nb: Book) -> None:
    nb.running("x1", "c1")
    nb.output("x1", display("0%", "progress"))
    nb.output("x1", display("other", "other"))
    nb.complete("x1")
    nb.running("x2", "c2")
    nb.output("x2", display("0%", "progress"))  # the same display shown in a second cell
    nb(
        "displayUpdated",
        KERNEL,
        execution_id="x2",
        display_id="progress",
        data={"text/plain": "100%", "text/html": "<progress value=1>"},
        metadata={"isolated": True},
    )
    updated = {
        "output_type": "display_data",
        "data": {"text/plain": "100%", "text/html": "<progress value=1>"},
        "metadata": {"isolated": True},
        "transient": {"display_id": "progress"},
    }
    assert nb.outputs("c1") == [updated, display("other", "other")]
    assert nb.outputs("c2") == [updated]
    nb.unchanged_by(
        "displayUpdated", KERNEL, execution_id="x2", display_id="nowhere", data={"text/plain": "?"}
    )


def test_a_display_update_keeps_an_execute_results_count(nb: Book) -> None:
    nb.running("x1")
    nb.output(
        "x1",
        {
            "output_type": "execute_result",
            "data": {"text/plain": "1"},
            "metadata": {},
            "execution_count": 3,
            "transient": {"display_id": "d"},
        },
    )
    nb("displayUpdated", KERNEL, execution_id="x1", display_id="d", data={"text/plain": "2"})
    assert nb.outputs("c1") == [
        {
            "output_type": "execute_result",
            "data": {"text/plain": "2"},
            "metadata": {},
            "execution_count": 3,
            "transient": {"display_id": "d"},
        }
    ]


def test_a_display_update_skips_outputs_no_longer_shown(nb: Book) -> None:
    nb.running("x1", "c1")
    nb.output("x1", display("old", "d"))
    nb.complete("x1")
    nb.request("x2", "c1")  # the re-run drops x1's outputs
    nb("cellDeleted", cell_id="c2")
    nb.unchanged_by(
        "displayUpdated", KERNEL, execution_id="x1", display_id="d", data={"text/plain": "new"}
    )


def test_clear_output_now(nb: Book) -> None:
    nb.running("x1")
    nb.output("x1", display("a"))
    nb("outputsCleared", KERNEL, execution_id="x1", wait=False)
    assert nb.outputs("c1") == []
    nb.stream("x1", "b")
    assert nb.outputs("c1") == [stdout("b")]


@pytest.mark.parametrize("next_output", ["stream", "outputAdded"])
def test_clear_output_wait_clears_when_the_next_output_lands(nb: Book, next_output: str) -> None:
    """``clear_output(wait=True)`` then a new frame: no flicker to an empty cell."""
    nb.running("x1")
    nb.output("x1", display("frame 1"))
    nb("outputsCleared", KERNEL, execution_id="x1", wait=True)
    assert nb.outputs("c1") == [display("frame 1")]
    assert nb.run("x1").clear_pending
    if next_output == "stream":
        nb.stream("x1", "frame 2")
        assert nb.outputs("c1") == [stdout("frame 2")]
    else:
        nb.output("x1", display("frame 2"))
        assert nb.outputs("c1") == [display("frame 2")]
    assert not nb.run("x1").clear_pending
    nb.output("x1", display("caption"))  # cleared once only
    assert len(nb.outputs("c1")) == 2


def test_clear_output_wait_then_nothing_keeps_the_outputs(nb: Book) -> None:
    nb.running("x1")
    nb.output("x1", display("last frame"))
    nb("outputsCleared", KERNEL, execution_id="x1", wait=True)
    nb.complete("x1")
    assert nb.outputs("c1") == [display("last frame")]
    assert not nb.run("x1").clear_pending


def test_a_display_update_does_not_consume_a_pending_clear(nb: Book) -> None:
    nb.running("x1")
    nb.output("x1", display("0", "d"))
    nb("outputsCleared", KERNEL, execution_id="x1", wait=True)
    nb("displayUpdated", KERNEL, execution_id="x1", display_id="d", data={"text/plain": "1"})
    assert nb.run("x1").clear_pending
    assert nb.outputs("c1") == [display("1", "d")]


def test_outputs_of_a_superseded_execution_are_dropped(nb: Book) -> None:
    nb.running("x1", "c1")
    nb.stream("x1", "from x1\n")
    nb.request("x2", "c1")  # re-run while x1 still runs
    assert nb.outputs("c1") == []
    nb.unchanged_by("streamAppended", KERNEL, execution_id="x1", stream="stdout", text="late\n")
    nb.unchanged_by("outputAdded", KERNEL, execution_id="x1", output=display("late"))
    nb.unchanged_by("outputsCleared", KERNEL, execution_id="x1", wait=False)
    nb.complete("x1")
    nb.claim("x2")
    nb.start("x2")
    nb.stream("x2", "from x2\n")
    assert nb.outputs("c1") == [stdout("from x2\n")]


def test_a_rerun_drops_the_finished_runs_outputs(nb: Book) -> None:
    nb.running("x1")
    nb.stream("x1", "old\n")
    nb.complete("x1")
    assert nb.run("x1").outputs == [stdout("old\n")]
    nb.request("x2")
    assert nb.run("x1").outputs == [] and nb.run("x1").status == "ok"
    assert nb.outputs("c1") == [] and nb.state.cells["c1"].execution_id == "x2"


def _kernel_output_events(execution_id: str) -> list[tuple[str, dict[str, Any]]]:
    return [
        ("streamAppended", {"execution_id": execution_id, "stream": "stdout", "text": "late"}),
        ("outputAdded", {"execution_id": execution_id, "output": display("late")}),
        ("outputsCleared", {"execution_id": execution_id, "wait": True}),
        ("outputsCleared", {"execution_id": execution_id, "wait": False}),
    ]


@pytest.mark.parametrize("claimed", [False, True], ids=["pending", "assigned"])
def test_outputs_count_only_once_the_run_has_started(nb: Book, claimed: bool) -> None:
    nb.request("x1")
    if claimed:
        nb.claim("x1")
    for name, args in _kernel_output_events("x1"):
        nb.unchanged_by(name, KERNEL, **args)


@pytest.mark.parametrize("status", ["ok", "error", "cancelled"])
def test_a_finished_runs_outputs_stay_as_they_were(nb: Book, status: str) -> None:
    nb.running("x1")
    nb.stream("x1", "done\n")
    nb.complete("x1", status)
    for name, args in _kernel_output_events("x1"):
        nb.unchanged_by(name, KERNEL, **args)
    assert nb.outputs("c1") == [stdout("done\n")]


def test_a_lost_kernel_that_comes_back_adds_nothing_after_the_error(nb: Book) -> None:
    """A kernel whose lease ran out (a throttled tab, a partition) may still push."""
    nb.running("x1")
    nb.stream("x1", "partial\n")
    nb("kernelSessionExpired", RELAY, session_id="k1")
    for name, args in _kernel_output_events("x1"):
        nb.unchanged_by(name, KERNEL, **args)
    assert [output["output_type"] for output in nb.outputs("c1")] == ["stream", "error"]


def test_a_run_cancelled_before_it_started_shows_nothing_from_a_kernel_that_ran_it(
    nb: Book,
) -> None:
    """The kernel had not seen the cancel yet: its start is ignored, and so is what it printed."""
    nb.request("x1")
    nb.claim("x1")
    nb("executionCancelled", BOB, execution_id="x1")
    nb.unchanged_by("executionStarted", KERNEL, execution_id="x1", session_id="k1")
    nb.unchanged_by(
        "streamAppended", KERNEL, execution_id="x1", stream="stdout", text="ran anyway\n"
    )
    nb.unchanged_by("executionCompleted", KERNEL, execution_id="x1", session_id="k1", status="ok")
    assert nb.run("x1").status == "cancelled" and nb.outputs("c1") == []


def test_a_display_update_reaches_finished_runs_outputs(nb: Book) -> None:
    """As in Jupyter: a later cell may update a display an earlier one showed."""
    nb.running("x1", "c1")
    nb.output("x1", display("old", "d"))
    nb.complete("x1")
    nb.running("x2", "c2")
    nb("displayUpdated", KERNEL, execution_id="x2", display_id="d", data={"text/plain": "new"})
    assert nb.outputs("c1") == [display("new", "d")]


def test_outputs_for_deleted_cells_or_unknown_executions_are_no_ops(nb: Book) -> None:
    nb.running("x1", "c1")
    nb("cellDeleted", cell_id="c1")
    nb.unchanged_by("streamAppended", KERNEL, execution_id="x1", stream="stdout", text="x")
    nb.unchanged_by("outputAdded", KERNEL, execution_id="x1", output=display("x"))
    nb.unchanged_by("outputsCleared", KERNEL, execution_id="x1", wait=True)
    nb.unchanged_by("streamAppended", KERNEL, execution_id="unknown", stream="stdout", text="x")
    nb.unchanged_by("outputAdded", KERNEL, execution_id="unknown", output=display("x"))
    nb.unchanged_by("outputsCleared", KERNEL, execution_id="unknown")


def test_cell_outputs_cleared_for_one_cell(nb: Book) -> None:
    for execution_id, cell_id in (("x1", "c1"), ("x2", "c2")):
        nb.running(execution_id, cell_id)
        nb.stream(execution_id, cell_id)
    nb("outputsCleared", KERNEL, execution_id="x1", wait=True)
    nb("cellOutputsCleared", BOB, cell_id="c1")
    assert nb.outputs("c1") == [] and nb.outputs("c2") == [stdout("c2")]
    assert not nb.run("x1").clear_pending
    nb.stream("x1", "more")  # the run goes on after a person cleared its cell
    assert nb.outputs("c1") == [stdout("more")]


def test_cell_outputs_cleared_for_every_cell(nb: Book) -> None:
    for execution_id, cell_id in (("x1", "c1"), ("x2", "c2")):
        nb.running(execution_id, cell_id)
        nb.stream(execution_id, cell_id)
    nb("cellOutputsCleared", cell_id=None)
    assert nb.outputs("c1") == [] and nb.outputs("c2") == []


def test_cell_outputs_cleared_where_nothing_applies_is_a_no_op(nb: Book) -> None:
    nb.unchanged_by("cellOutputsCleared", cell_id="c1")  # never run
    nb.unchanged_by("cellOutputsCleared", cell_id="unknown")
    nb.running("x1", "c2")
    nb.stream("x1", "x")
    nb("cellDeleted", cell_id="c2")
    nb.unchanged_by("cellOutputsCleared", cell_id="c2")


# --- fold, advance, fold_all ---------------------------------------------------


def _busy_log() -> list[StoredEvent]:
    """A log that touches every kind of state (cells, runs, outputs, sessions)."""
    book = Book()
    book("notebookInitialized", RELAY, title="t", metadata={"a": 1})
    book.cells("c1", "c2", source="ab")
    book("cellSourceEdited", cell_id="c1", base_rev=0, ops=[2, "c"])
    book("cellMetadataSet", cell_id="c1", key="tags", value=["x"])
    book("notebookMetadataSet", key="b", value=[1, 2])
    book.kernel("k1")
    book.running("x1", "c1")
    book.stream("x1", "out")
    book.output("x1", display("d", "d1"))
    book("displayUpdated", KERNEL, execution_id="x1", display_id="d1", data={"text/plain": "e"})
    book("outputsCleared", KERNEL, execution_id="x1", wait=True)
    book.request("x2", "c2")
    book.claim("x2")
    book("kernelRestartRequested", session_id=None)
    book("cellMoved", cell_id="c2", after=None)
    book("cellDeleted", cell_id="c1")
    return book.log


def test_fold_leaves_its_input_untouched() -> None:
    state = NotebookState()
    for event in _busy_log():
        before = copy.deepcopy(state.dump())
        new_state = fold(state, event)
        assert state.dump() == before
        assert new_state is not state
        state = new_state


def test_fold_all_leaves_its_starting_state_untouched() -> None:
    log = _busy_log()
    start = fold_all(log[:8])
    before = copy.deepcopy(start.dump())
    fold_all(log[8:], start)
    assert start.dump() == before


def test_fold_advance_and_fold_all_agree() -> None:
    log = _busy_log()
    folded = NotebookState()
    advanced = NotebookState()
    for event in log:
        folded = fold(folded, event)
        advance(advanced, event)
    assert folded.dump() == advanced.dump() == fold_all(log).dump()
    assert fold_all(log[7:], fold_all(log[:7])).dump() == folded.dump()


def test_seq_only_moves_forward() -> None:
    state = fold_all([make(5, "notebookTitleChanged", {"title": "a"})])
    state = fold(state, make(3, "notebookTitleChanged", {"title": "b"}))
    assert state.seq == 5 and state.title == "b"


# --- snapshots ------------------------------------------------------------------


def test_dump_and_load_round_trip_through_json() -> None:
    log = _busy_log()
    state = fold_all(log)
    loaded = NotebookState.load(json.loads(json.dumps(state.dump())))
    assert loaded.public() == state.public()
    assert loaded.dump() == state.dump()
    assert NotebookState.load(state.dump()).public() == state.public()


def test_folding_resumes_from_a_loaded_snapshot() -> None:
    log = _busy_log()
    head = 10
    snapshot = json.loads(json.dumps(fold_all(log[:head]).dump()))
    resumed = fold_all(log[head:], NotebookState.load(snapshot))
    assert resumed.dump() == fold_all(log).dump()


def test_a_loaded_snapshot_keeps_edit_histories() -> None:
    """An edit made against a revision from before the snapshot still rebases."""
    book = Book()
    book.cells("a", source="ab")
    book("cellSourceEdited", cell_id="a", base_rev=0, ops=[2, "c"])
    loaded = NotebookState.load(json.loads(json.dumps(book.state.dump())))
    late = make(3, "cellSourceEdited", {"cell_id": "a", "base_rev": 0, "ops": ["<", 2]})
    assert fold(loaded, late).cells["a"].source == "<abc"


def test_load_refuses_another_state_format() -> None:
    data = NotebookState().dump()
    data["format"] = 999
    with pytest.raises(ValueError, match="format"):
        NotebookState.load(data)


def test_public_is_json() -> None:
    public = fold_all(_busy_log()).public()
    assert json.loads(json.dumps(public)) == public


# --- events this schema does not know ------------------------------------------


@pytest.mark.parametrize(
    ("name", "v"),
    [("cellCommentAdded", 1), ("cellSourceEdited", 99)],
    ids=["unknown-name", "newer-version"],
)
def test_events_from_a_newer_schema_only_advance_seq(name: str, v: int) -> None:
    log = _busy_log()
    state = fold_all(log)
    event = stored_from_json(
        {
            "seq": len(log) + 1,
            "id": "from-the-future",
            "name": name,
            "v": v,
            "args": {"cell_id": "c2", "whatever": [1, 2]},
            "actor": ADA,
            "ts": 9_999.0,
        }
    )
    assert event.event is None
    after = fold(state, event)
    assert after.seq == len(log) + 1
    assert after.updated_at == state.updated_at
    expected = state.dump() | {"seq": len(log) + 1}
    assert after.dump() == expected


def test_a_stored_event_reads_back_as_it_was_stored() -> None:
    for event in _busy_log():
        again = stored_from_json(json.loads(json.dumps(event.to_json())))
        assert again == event


def test_requirements_come_from_running_pip_installs_and_editors_remove_them(book: Book) -> None:
    from shared_schema.requirements import requirements_of

    book.cells("c")
    book("kernelSessionStarted", session_id="k", host="node", lease_seconds=30)
    book("executionRequested", execution_id="x", cell_id="c", source="%pip install humanize")
    book.unchanged_by("requirementsAdded", execution_id="x", requirements=["humanize==4.9.0"])
    book("executionAssigned", execution_id="x", session_id="k")
    book("executionStarted", execution_id="x", session_id="k")
    book("requirementsAdded", execution_id="x", requirements=["humanize==4.9.0", "Six==1.16"])
    book("requirementsAdded", execution_id="x", requirements=["six==1.17.0"])  # re-pinned
    assert requirements_of(book.state.metadata) == ["humanize==4.9.0", "six==1.17.0"]
    assert book.state.public()["metadata"] == {
        "anode": {"requirements": ["humanize==4.9.0", "six==1.17.0"]}
    }
    book("requirementRemoved", package="HUMANIZE")
    book("requirementRemoved", package="six")
    assert book.state.metadata == {}
    book("executionCompleted", execution_id="x", session_id="k", status="ok")
    book.unchanged_by("requirementsAdded", execution_id="x", requirements=["late==1"])


def test_the_live_cell_count_is_kept_by_the_fold(book: Book) -> None:
    """The notebook list's cell count comes from ``live_cells``, kept as cells come and go."""
    book.cells("a", "b")
    book("cellImported", cell_id="i", after="a")
    book("cellCreated", cell_id="z", after="unknown-cell")  # goes last
    book("cellCreated", cell_id="m", after="i")  # in the middle
    book("cellDeleted", cell_id="b")
    book.unchanged_by("cellDeleted", cell_id="b")
    book.unchanged_by("cellCreated", cell_id="a")
    assert book.order() == ["a", "i", "m", "z"]
    assert book.state.live_cells == len(book.state.visible_cells()) == 4
    assert NotebookState.load(book.state.dump()).live_cells == 4


def test_a_tab_kernel_runs_only_its_own_persons_requests_asked_of_a_tab(book: Book) -> None:
    """``Execution.claimable_by``: a colleague's code never runs in my tab, and what I asked of
    my tab runs on no server kernel."""
    nb = book
    nb.cells("c1")
    nb("kernelSessionStarted", ADA, session_id="tab-ada", host="tab", lease_seconds=10.0)
    nb("kernelSessionStarted", "user:bob", session_id="tab-bob", host="tab", lease_seconds=10.0)
    nb.kernel("srv")
    nb("executionRequested", ADA, execution_id="x1", cell_id="c1", source="1", runner="tab")
    nb.unchanged_by("executionAssigned", "user:bob", execution_id="x1", session_id="tab-bob")
    nb.unchanged_by("executionAssigned", KERNEL, execution_id="x1", session_id="srv")
    nb("executionAssigned", ADA, execution_id="x1", session_id="tab-ada")
    assert nb.run("x1").kernel_session == "tab-ada"
    # A request for any kernel: not a tab's to take, even its own person's.
    nb("executionRequested", ADA, execution_id="x2", cell_id="c1", source="2")
    nb.unchanged_by("executionAssigned", ADA, execution_id="x2", session_id="tab-ada")
    nb.claim("x2", "srv")
    assert nb.run("x2").kernel_session == "srv"
