"""One cell's source as a client edits it: the ot.js client, in event-log terms.

The client keeps at most one edit in flight (pushed as ``cellSourceEdited``,
not yet seen back in the log) and composes every later keystroke into one
buffered edit. The ot.js states map onto the two slots:

* Synchronized: ``in_flight is None`` and ``buffered is None``
* AwaitingConfirm: ``in_flight`` set, ``buffered is None``
* AwaitingWithBuffer: both set

The materializer rebases an incoming edit over each edit ``h`` that landed
after its ``base_rev`` as ``transform(h, edit)``: the edit already in the log
wins an insert tie. This class transforms the same way round, so the text it
expects for its own edit is the text the log will hold.
"""

from __future__ import annotations

from . import ot
from .ot import TextOps


class CellEditBuffer:
    """Confirmed text, the edit in flight, and the edit buffered behind it."""

    def __init__(self, text: str, rev: int) -> None:
        self.reset(text, rev)

    def reset(self, text: str, rev: int) -> None:
        """Forget every local edit and stand at ``text`` as of ``rev`` (after a resync)."""
        self.confirmed_text = text
        self.confirmed_rev = rev
        #: ``(base_rev, ops)`` exactly as pushed, so a retry sends the same body.
        self.in_flight: tuple[int, TextOps] | None = None
        self.buffered: TextOps | None = None
        # The in-flight ops rebased over the remote edits seen since the push:
        # what the log will apply when it confirms them.
        self._in_flight_now: TextOps | None = None
        self._text = text

    @property
    def text(self) -> str:
        """What the editor shows: confirmed text, then the in-flight edit, then the buffer."""
        return self._text

    def edit(self, ops: TextOps) -> None:
        """Record a local change made against ``self.text``."""
        ops = ot.normalize(ops)
        text = ot.apply(self._text, ops)  # raises before anything changes
        if ot.is_noop(ops):
            return
        buffered = ops if self.buffered is None else ot.compose(self.buffered, ops)
        # Typing a character and deleting it again leaves nothing worth sending.
        self.buffered = None if ot.is_noop(buffered) else buffered
        self._text = text

    def take_outgoing(self) -> tuple[int, TextOps] | None:
        """The edit to push now, if one may go: the buffer, against the confirmed rev."""
        if self.in_flight is not None or self.buffered is None:
            return None
        self.in_flight = (self.confirmed_rev, self.buffered)
        self._in_flight_now = self.buffered
        self.buffered = None
        return self.in_flight

    def confirm_own(self) -> None:
        """Our in-flight edit landed as the next rev of the log."""
        if self._in_flight_now is None:
            raise RuntimeError("no edit in flight to confirm")
        self.confirmed_text = ot.apply(self.confirmed_text, self._in_flight_now)
        self.confirmed_rev += 1
        self.in_flight = None
        self._in_flight_now = None

    def apply_remote(self, ops: TextOps) -> TextOps:
        """Take in someone else's edit as the log applied it (rev -> rev + 1).

        Returns the same change rebased over our unconfirmed edits: the op an
        editor applies to what it shows.
        """
        ops = ot.normalize(ops)
        confirmed_text = ot.apply(self.confirmed_text, ops)  # raises before anything changes
        in_flight_now, buffered = self._in_flight_now, self.buffered
        if in_flight_now is not None:
            ops, in_flight_now = ot.transform(ops, in_flight_now)
        if buffered is not None:
            ops, buffered = ot.transform(ops, buffered)
            if ot.is_noop(buffered):  # the remote edit already did what we meant to
                buffered = None
        self._text = ot.apply(self._text, ops)
        self.confirmed_text = confirmed_text
        self.confirmed_rev += 1
        self._in_flight_now, self.buffered = in_flight_now, buffered
        return ops
