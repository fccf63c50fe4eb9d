"""The kernel's life: announce, wait for work, claim, run, report — and recover.

The kernel folds the notebook's log with ``shared_schema`` exactly as every
other party does, so it decides from the same state they see:

1. it waits for events (the host long-polls the relay and feeds them in);
2. it takes the oldest ``pending`` execution and pushes
   ``[executionAssigned, executionStarted]`` as one atomic batch;
3. it folds the log up to that push: only if its claim came first (the
   materializer's rule) does the state show the execution ``executing``
   under its session — then, and only then, it runs the code;
4. outputs go out while the cell runs; ``executionCompleted`` follows them,
   in the same request as the cell's last outputs and, when another
   execution is already waiting, as the claim of that one.

Folding up to its own push does not need the long poll to bring the push
back: the relay answers with the seqs it stored the events at, and when the
first of them is ``state.seq + 1`` nothing landed in between, so the kernel
folds its own events itself (``_fold_own``). Otherwise it waits for the
feed as usual. Either way it has folded the same log as everyone else.

A kernel whose session expired (it lost the relay for longer than its
lease) notices it in the log, starts a new session, and carries on; work it
had claimed went back to ``pending`` for whoever comes first, and nothing
it ran is run again.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
from dataclasses import dataclass
from types import FrameType

from shared_schema import NotebookState, advance, stored_from_json
from shared_schema import events as ev
from shared_schema.events import Event
from shared_schema.ids import SessionId, new_session_id
from shared_schema.requirements import requirements_of
from shared_schema.state import Execution

from . import bridge as _bridge
from . import outbox as _outbox
from . import sink as _sink
from . import streams as _streams
from .bridge import HostBridge, PushFailed
from .execution import Runner
from .outbox import EventIds, EventSink, pushed
from .packages import PackageInstaller, load_imported_packages
from .sink import DEFAULT_CAP_BYTES, CappedSink

#: The modules a cell's output passes through (see ``Kernel._on_tick``).
_OUTPUT_PATH = frozenset(module.__file__ for module in (_streams, _sink, _outbox, _bridge))


@dataclass(frozen=True, slots=True)
class KernelConfig:
    session_id: SessionId
    lease_seconds: float = 5.0
    host: str = "node"
    label: str = ""
    #: This worker replaces one that restarted (or crashed) in the same session.
    restarted: bool = False
    output_cap_bytes: int = DEFAULT_CAP_BYTES
    #: Who this kernel's events are by, when its host knows (a tab: the page's person);
    #: the actor its own events fold with before the log names it.
    actor: str = ""

    @classmethod
    def from_json(cls, text: str) -> KernelConfig:
        data = json.loads(text)
        known = {name: data[name] for name in cls.__slots__ if name in data}  # type: ignore[attr-defined]
        return cls(**known)


class Kernel:
    def __init__(
        self, bridge: HostBridge, config: KernelConfig, installer: PackageInstaller | None = None
    ) -> None:
        self.bridge = bridge
        self.config = config
        self.session_id = config.session_id
        self.state = NotebookState()
        self.installer = installer
        self.runner = Runner(pip=self._pip if installer else None, prepare=self._prepare)
        #: This interpreter has installed the notebook's requirements (once, before a cell).
        self._requirements_installed = False
        self.ids = EventIds()
        #: The task running the current cell's code (None between cells).
        self._cell_task: asyncio.Future[str] | None = None
        #: The running cell's events, held until they are sent (None between cells).
        self._events: EventSink | None = None
        #: Pushes of the cell that just ended (its last outputs, its completion), not sent
        #: yet: they go out with the next claim when there is one, else at once.
        self._finished: list[list[dict]] = []
        #: The push id of an announcement sent by ``announce()``, before ``serve()``.
        self._announcement: int | None = None
        #: The execution whose interrupt was delivered (the host repeats SIGINT until told).
        self._interrupt_taken: str | None = None
        signal.signal(signal.SIGUSR1, self._on_tick)
        signal.signal(signal.SIGINT, self._on_sigint)

    def _on_tick(self, signum: int, frame: FrameType | None) -> None:
        """SIGUSR1, every 50 ms while a cell runs: hand its buffered text to the sink now.

        A signal handler runs between any two bytecodes of whatever was running.
        If that was the output path itself (a ``StreamWriter`` that has joined
        its buffer but not yet emptied it, a sink mid-update), flushing here
        would send the same text twice; skip this tick, the next comes soon.
        """
        while frame is not None:
            if frame.f_code.co_filename in _OUTPUT_PATH:
                return
            frame = frame.f_back
        self.runner.flush()
        events = self._events
        if events is not None and not events.closed:
            events.send()

    def _on_sigint(self, signum: int, frame: object) -> None:
        """The host's SIGINT for the running cell: a ``KeyboardInterrupt`` in the cell only.

        Python takes the signal wherever it happens to be running. A cell that
        spins (``while True: pass``) is the only code running, so it gets the
        ``KeyboardInterrupt``. A cell that awaits is not running at all: the
        signal then lands in the kernel's own code (the message handler that
        brings the interrupt, a timer), where an exception would escape into
        JavaScript and kill the interpreter, or stop a fold half-way. There
        the interrupt takes the other road: the cell's task is cancelled.
        """
        try:
            current = asyncio.current_task()
        except RuntimeError:  # no loop running: called from the host's message handler
            current = None
        if self.bridge.running is None or self._interrupt_taken == self.bridge.running:
            return  # stale, or a repeat of one the cell already got
        self._interrupt_taken = self.bridge.running
        self.bridge.send({"type": "interrupt_taken", "execution_id": self.bridge.running})
        if current is not None and current is self._cell_task:
            raise KeyboardInterrupt
        self.bridge.interrupt()

    # --- the loop ---------------------------------------------------------------

    async def serve(self) -> int:
        """Run until the session ends; the return value is the host's exit code."""
        loop = asyncio.get_running_loop()
        if hasattr(loop, "_keyboard_interrupt_handler"):
            # Pyodide's WebLoop re-raises a KeyboardInterrupt that ends a task step,
            # into JavaScript, which kills the worker. The cell's task ends with it
            # and _run reports it; nothing else needs to see it.
            loop._keyboard_interrupt_handler = lambda: None
        announcement, self._announcement = self._announcement, None
        if announcement is None:
            announcement = self._send_announcement(restarted=self.config.restarted)
        await self._await_announcement(announcement)
        while True:
            try:
                code = await self._step()
            except KeyboardInterrupt:
                continue  # an interrupt that arrived just after its cell ended
            if code is not None:
                return code

    async def _step(self) -> int | None:
        """One turn of the loop: react to the log, run one execution, or wait."""
        if self.bridge.shutdown_requested.is_set():
            self._send_finished()
            return await self._end("shutdown")
        session = self.state.kernels.get(self.session_id)
        if session is not None and session.status != "live":
            self._send_finished()
            log(f"session {self.session_id} is {session.status}; starting a new one")
            self.session_id = new_session_id()
            await self._announce(restarted=False)
            return None
        if session is not None and session.restart_requested:
            self._send_finished()
            self.bridge.send({"type": "restart"})
            await asyncio.Event().wait()  # the host replaces this worker
        run = self._next_pending()
        if run is not None:
            await self._claim_and_run(run)
            return None
        self._send_finished()
        await self._wait_for_events()
        return None

    def _send_finished(self) -> None:
        if self._finished:
            self.bridge.push_many_nowait(self._finished)
            self._finished = []

    def announce(self) -> None:
        """Announce the session now, without an event loop: the host calls this as soon
        as the interpreter is up, and ``serve()`` waits for the answer."""
        if self._announcement is None:
            self._announcement = self._send_announcement(restarted=self.config.restarted)

    async def _announce(self, restarted: bool) -> None:
        await self._await_announcement(self._send_announcement(restarted))

    def _send_announcement(self, restarted: bool) -> int:
        announcement: Event
        if restarted:
            announcement = ev.KernelRestarted(session_id=self.session_id)
        else:
            announcement = ev.KernelSessionStarted(
                session_id=self.session_id,
                host=self.config.host,
                lease_seconds=self.config.lease_seconds,
                label=self.config.label,
            )
        first = pushed(self.ids, announcement)
        self.bridge.send(
            {
                "type": "session",
                "session_id": self.session_id,
                "lease_seconds": self.config.lease_seconds,
            }
        )
        return self.bridge.push_many_nowait([[first]], keep_last=True)[-1]

    async def _await_announcement(self, push_id: int) -> None:
        result = await self.bridge.answer(push_id)
        await self._fold_until(max(result.seqs, default=result.head))

    async def _end(self, reason: str) -> int:
        try:
            await self.bridge.push(
                [pushed(self.ids, ev.KernelSessionEnded(session_id=self.session_id, reason=reason))]
            )
        except PushFailed as error:
            log(f"could not end the session cleanly: {error}")
        self.bridge.send({"type": "exit", "code": 0})
        return 0

    # --- claiming and running ---------------------------------------------------

    def _next_pending(self) -> Execution | None:
        """The oldest pending execution this session may run (``Execution.claimable_by``)."""
        session = self.state.kernels.get(self.session_id)
        if session is None:
            return None
        executions = self.state.executions
        for execution_id in self.state.queue:
            run = executions[execution_id]
            if run.status == "pending" and run.claimable_by(session):
                return run
        return None

    async def _claim_and_run(self, run: Execution) -> None:
        count = self.runner.execution_count + 1
        claim = [
            pushed(self.ids, ev.ExecutionAssigned(execution_id=run.id, session_id=self.session_id)),
            pushed(
                self.ids,
                ev.ExecutionStarted(
                    execution_id=run.id, session_id=self.session_id, execution_count=count
                ),
            ),
        ]
        finished, self._finished = self._finished, []
        try:
            result = await self.bridge.push(claim, before=finished)
        except PushFailed as error:
            log(f"claim of {run.id} refused: {error}")
            await self._wait_for_events()
            return
        await self._fold_until(max(result.seqs, default=result.head))
        mine = self.state.executions.get(run.id)
        if mine is None or mine.kernel_session != self.session_id or mine.status != "executing":
            return  # another kernel came first, or it was cancelled: not ours to run
        await self._run(mine)

    async def _run(self, run: Execution) -> None:
        self.bridge.busy(run.id, after=self.state.seq)
        events = self._events = EventSink(self.bridge, self.ids, run.id)
        sink = CappedSink(events, cap_bytes=self.config.output_cap_bytes)
        status = "cancelled"
        try:
            if not run.interrupt_requested:
                status = await self._run_interruptibly(run.source, sink, events)
        except KeyboardInterrupt:
            # It hit the runner's own code around the cell: still an interrupted run,
            # and it must still be completed, or it would stay `executing` for good.
            sink.output(_INTERRUPTED)
        sink.finish()
        self._events = None
        self.bridge.idle()
        completed = pushed(
            self.ids,
            ev.ExecutionCompleted(
                execution_id=run.id,
                session_id=self.session_id,
                status=status,
                execution_count=self.runner.execution_count,
            ),
        )
        # Sent by `_step`: with the next claim when there is one, else at once.
        self._finished = [*events.take(), [completed]]

    async def _pip(self, args: list[str]) -> None:
        """``%pip``: install, and record what was installed as the notebook's requirements."""
        assert self.installer is not None
        pinned = await self.installer(args)
        events = self._events
        if pinned and events is not None:
            added = ev.RequirementsAdded(execution_id=events.execution_id, requirements=pinned)
            events.event(added)

    async def _prepare(self, source: str) -> None:
        """Before a cell: the notebook's requirements (before the first), imported packages."""
        if not self._requirements_installed and self.installer is not None:
            self._requirements_installed = True
            wanted = requirements_of(self.state.metadata)
            if wanted:
                print(f"Installing this notebook's requirements: {', '.join(wanted)}")
                installed = await self.installer.install_requirements(wanted)
                print(f"Installed {', '.join(installed)}" if installed else "All installed already")
        await load_imported_packages(source)

    async def _cell(self, source: str, sink: CappedSink, events: EventSink) -> str:
        try:
            return await self.runner.run(source, sink)
        finally:
            events.closed = True  # what it holds now goes out with the completion

    async def _run_interruptibly(self, source: str, sink: CappedSink, events: EventSink) -> str:
        """Run a cell; an interrupt message cancels it even while it awaits."""
        task = self._cell_task = asyncio.ensure_future(self._cell(source, sink, events))
        # The cell may be awaiting, where a KeyboardInterrupt cannot reach it: cancel it.
        self.bridge.on_interrupt = task.cancel
        if self.bridge.interrupted.is_set():
            task.cancel()
        try:
            return await task
        except asyncio.CancelledError:
            if not task.cancelled():
                raise
            sink.output(_INTERRUPTED)  # cancelled before the runner could say so itself
            return "cancelled"
        finally:
            self.bridge.on_interrupt = None
            self._cell_task = None

    # --- the log ----------------------------------------------------------------

    async def _wait_for_events(self) -> None:
        """Fold at least one batch from the feed (and any others already there)."""
        await self.bridge.wait_for_feed()
        feed = self.bridge.feed
        while feed:
            last, body = feed.popleft()
            if last > self.state.seq:  # else it only brings back what this kernel folded itself
                self._fold_body(body)
        self._fold_own()

    async def _fold_until(self, seq: int) -> None:
        """Fold the log up to ``seq``: from this kernel's own pushes while they
        follow on, from the feed otherwise."""
        self._fold_own()
        while self.state.seq < seq:
            await self._wait_for_events()
            if self.bridge.shutdown_requested.is_set():
                return

    def _fold_body(self, body: str) -> None:
        for raw in json.loads(body)["events"]:
            if raw["seq"] > self.state.seq:
                advance(self.state, stored_from_json(raw))

    def _fold_own(self) -> None:
        """Fold this kernel's own pushed events that come right after ``state.seq``.

        The relay's log is dense and has one order, and the bridge knows the
        seq of each event the relay stored for us: when the next seq is ours,
        the event there is exactly the one we pushed, and nobody else's can
        sit before it. Only ``actor`` and ``ts`` are not known here; they
        stand in as this session's actor and the local clock, and the kernel
        decides nothing from either.
        """
        own = self.bridge.own
        if not own:
            return
        while (raw := own.pop(self.state.seq + 1, None)) is not None:
            session = self.state.kernels.get(self.session_id)
            actor = session.actor if session else self.config.actor
            stored = {**raw, "seq": self.state.seq + 1, "actor": actor, "ts": time.time()}
            advance(self.state, stored_from_json(stored, trusted=True))
        for seq in [seq for seq in own if seq <= self.state.seq]:
            del own[seq]  # the feed brought these first


_INTERRUPTED = {
    "output_type": "error",
    "ename": "KeyboardInterrupt",
    "evalue": "",
    "traceback": ["KeyboardInterrupt: the cell was interrupted"],
}


def log(message: str) -> None:
    print(f"anode kernel: {message}", file=sys.stderr, flush=True)
