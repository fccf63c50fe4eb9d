"""Every event a notebook's log may hold: name, version, typed arguments.

Each event is a frozen dataclass in one registry. ``decode`` reads the name
first, then validates every argument with the check declared on its field,
so a malformed event never gets past the relay, and a client or kernel that
folds the log only ever sees well-formed ones.

``writer`` says who may write an event: ``editor`` (people), ``kernel``
(kernel sessions) or ``relay`` (only the relay itself; refused in pushes).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from . import fields, limits, requirements
from .errors import SchemaError
from .ids import CellId, ExecutionId, SessionId
from .ot import TextOps
from .outputs import STREAM_NAMES, check_mime_bundle, check_output

Writer = Literal["editor", "kernel", "relay"]

CELL_TYPES = ("code", "markdown", "raw")
HOST_KINDS = ("node", "browser", "tab", "other")
#: Where a request asks to run: ``"tab"``, in the requester's own tab kernel (``None``: any
#: kernel that is not a tab's).
RUNNERS = ("tab",)
COMPLETED_STATUSES = ("ok", "error", "cancelled")

_MISSING: Any = dataclasses.MISSING


def arg(check: fields.Check, default: Any = _MISSING, *, factory: Any = _MISSING) -> Any:
    """Declare an event argument with its check (and optional default or factory)."""
    return field(default=default, default_factory=factory, metadata={"check": check})


@dataclass(frozen=True, slots=True)
class Event:
    """Base of all events. Subclasses set ``name``, ``version`` and ``writer``."""

    name: ClassVar[str]
    version: ClassVar[int] = 1
    writer: ClassVar[Writer] = "editor"

    def to_args(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def to_json(self) -> dict[str, Any]:
        """The event as pushed: ``{"name", "v", "args"}`` (the author adds ``id``)."""
        return {"name": self.name, "v": self.version, "args": self.to_args()}


REGISTRY: dict[str, type[Event]] = {}

#: Upgraders for older versions: ``(name, v) -> args at v+1``. Deprecate before removing.
UPGRADES: dict[tuple[str, int], Callable[[dict[str, Any]], dict[str, Any]]] = {}


def register(cls: type[Event]) -> type[Event]:
    if cls.name in REGISTRY:
        raise RuntimeError(f"event {cls.name} registered twice")
    REGISTRY[cls.name] = cls
    return cls


_id = fields.identifier
_optional_id = fields.optional(fields.identifier)
_cell_type = fields.choice(*CELL_TYPES)
_title = fields.text(limits.MAX_TITLE)
_source = fields.text(limits.MAX_SOURCE)
_key = fields.text(limits.MAX_KEY, allow_empty=False)
_metadata_value = fields.json_value(limits.MAX_METADATA_BYTES)
_metadata = fields.json_object(limits.MAX_METADATA_BYTES)
_count = fields.optional(fields.integer(0, limits.MAX_EXECUTION_COUNT))
_reason = fields.text(limits.MAX_REASON)


# --- the notebook -----------------------------------------------------------


@register
@dataclass(frozen=True, slots=True)
class NotebookInitialized(Event):
    """The first event of every notebook, written by the relay on create."""

    name: ClassVar[str] = "notebookInitialized"
    writer: ClassVar[Writer] = "relay"
    title: str = arg(_title, "")
    metadata: dict = arg(_metadata, factory=dict)


@register
@dataclass(frozen=True, slots=True)
class NotebookTitleChanged(Event):
    name: ClassVar[str] = "notebookTitleChanged"
    title: str = arg(_title)


@register
@dataclass(frozen=True, slots=True)
class NotebookMetadataSet(Event):
    """Set one notebook metadata key; ``value: null`` removes it."""

    name: ClassVar[str] = "notebookMetadataSet"
    key: str = arg(_key)
    value: Any = arg(_metadata_value)


@register
@dataclass(frozen=True, slots=True)
class RequirementRemoved(Event):
    """An editor takes a package off the notebook's requirements (``requirements``)."""

    name: ClassVar[str] = "requirementRemoved"
    package: str = arg(requirements.check_name)


# --- cells ------------------------------------------------------------------


@register
@dataclass(frozen=True, slots=True)
class CellCreated(Event):
    """A new cell right after ``after`` (``null``: first). Later creates win ties."""

    name: ClassVar[str] = "cellCreated"
    cell_id: CellId = arg(_id)
    cell_type: str = arg(_cell_type, "code")
    after: CellId | None = arg(_optional_id, None)
    source: str = arg(_source, "")


@register
@dataclass(frozen=True, slots=True)
class CellSourceEdited(Event):
    """A text change made against revision ``base_rev`` of the cell's source."""

    name: ClassVar[str] = "cellSourceEdited"
    cell_id: CellId = arg(_id)
    base_rev: int = arg(fields.integer(0, 2**53))
    ops: TextOps = arg(fields.text_ops)


@register
@dataclass(frozen=True, slots=True)
class CellTypeChanged(Event):
    name: ClassVar[str] = "cellTypeChanged"
    cell_id: CellId = arg(_id)
    cell_type: str = arg(_cell_type)


@register
@dataclass(frozen=True, slots=True)
class CellMoved(Event):
    name: ClassVar[str] = "cellMoved"
    cell_id: CellId = arg(_id)
    after: CellId | None = arg(_optional_id)


@register
@dataclass(frozen=True, slots=True)
class CellDeleted(Event):
    name: ClassVar[str] = "cellDeleted"
    cell_id: CellId = arg(_id)


@register
@dataclass(frozen=True, slots=True)
class CellMetadataSet(Event):
    """Set one cell metadata key (e.g. ``collapsed``, ``tags``); ``null`` removes it."""

    name: ClassVar[str] = "cellMetadataSet"
    cell_id: CellId = arg(_id)
    key: str = arg(_key)
    value: Any = arg(_metadata_value)


@register
@dataclass(frozen=True, slots=True)
class CellOutputsCleared(Event):
    """A person clears a cell's outputs (``cell_id: null``: every cell's)."""

    name: ClassVar[str] = "cellOutputsCleared"
    cell_id: CellId | None = arg(_optional_id, None)


@register
@dataclass(frozen=True, slots=True)
class CellImported(Event):
    """A whole cell from an ``.ipynb``: source, metadata, attachments and the outputs
    it had there, which show until the cell runs here (``shared_schema.ipynb``)."""

    name: ClassVar[str] = "cellImported"
    cell_id: CellId = arg(_id)
    cell_type: str = arg(_cell_type, "code")
    after: CellId | None = arg(_optional_id, None)
    source: str = arg(_source, "")
    metadata: dict = arg(fields.key_values(_metadata_value), factory=dict)
    attachments: dict = arg(fields.key_values(check_mime_bundle), factory=dict)
    outputs: list = arg(fields.items(check_output, limits.MAX_IMPORTED_OUTPUTS), factory=list)
    execution_count: int | None = arg(_count, None)


# --- executions -------------------------------------------------------------


@register
@dataclass(frozen=True, slots=True)
class ExecutionRequested(Event):
    """Run ``source`` (what was on screen when Run was pressed) for a cell.

    ``runner="tab"``: only a tab kernel of the person who asked may run it
    (``Execution.claimable_by``); without it, any kernel but a tab's.
    """

    name: ClassVar[str] = "executionRequested"
    execution_id: ExecutionId = arg(_id)
    cell_id: CellId = arg(_id)
    source: str = arg(_source)
    runner: str | None = arg(fields.optional(fields.choice(*RUNNERS)), None)


@register
@dataclass(frozen=True, slots=True)
class ExecutionAssigned(Event):
    """A kernel session claims a pending execution. The first claim in log order wins."""

    name: ClassVar[str] = "executionAssigned"
    writer: ClassVar[Writer] = "kernel"
    execution_id: ExecutionId = arg(_id)
    session_id: SessionId = arg(_id)


@register
@dataclass(frozen=True, slots=True)
class ExecutionStarted(Event):
    name: ClassVar[str] = "executionStarted"
    writer: ClassVar[Writer] = "kernel"
    execution_id: ExecutionId = arg(_id)
    session_id: SessionId = arg(_id)
    execution_count: int | None = arg(_count, None)


@register
@dataclass(frozen=True, slots=True)
class ExecutionCompleted(Event):
    name: ClassVar[str] = "executionCompleted"
    writer: ClassVar[Writer] = "kernel"
    execution_id: ExecutionId = arg(_id)
    session_id: SessionId = arg(_id)
    status: str = arg(fields.choice(*COMPLETED_STATUSES))
    execution_count: int | None = arg(_count, None)


@register
@dataclass(frozen=True, slots=True)
class ExecutionCancelled(Event):
    """Cancel: a pending or claimed execution never runs; a running one is interrupted."""

    name: ClassVar[str] = "executionCancelled"
    execution_id: ExecutionId = arg(_id)


@register
@dataclass(frozen=True, slots=True)
class InterruptRequested(Event):
    name: ClassVar[str] = "interruptRequested"
    execution_id: ExecutionId = arg(_id)


@register
@dataclass(frozen=True, slots=True)
class KernelRestartRequested(Event):
    """Ask one kernel session (or, with ``null``, every live one) to restart."""

    name: ClassVar[str] = "kernelRestartRequested"
    session_id: SessionId | None = arg(_optional_id, None)


# --- outputs ----------------------------------------------------------------


@register
@dataclass(frozen=True, slots=True)
class RequirementsAdded(Event):
    """What a ``%pip install`` in this execution installed, pinned (``name==version``):
    the notebook requires them from now on, and every kernel installs them first."""

    name: ClassVar[str] = "requirementsAdded"
    writer: ClassVar[Writer] = "kernel"
    execution_id: ExecutionId = arg(_id)
    requirements: list = arg(requirements.check_requirement_list)


@register
@dataclass(frozen=True, slots=True)
class OutputAdded(Event):
    name: ClassVar[str] = "outputAdded"
    writer: ClassVar[Writer] = "kernel"
    execution_id: ExecutionId = arg(_id)
    output: dict = arg(check_output)


@register
@dataclass(frozen=True, slots=True)
class StreamAppended(Event):
    """Text written to stdout/stderr, coalesced by the kernel into chunks."""

    name: ClassVar[str] = "streamAppended"
    writer: ClassVar[Writer] = "kernel"
    execution_id: ExecutionId = arg(_id)
    stream: str = arg(fields.choice(*STREAM_NAMES))
    text: str = arg(fields.text(limits.MAX_STREAM_TEXT))


@register
@dataclass(frozen=True, slots=True)
class DisplayUpdated(Event):
    """``update_display_data``: replace every output showing ``display_id``."""

    name: ClassVar[str] = "displayUpdated"
    writer: ClassVar[Writer] = "kernel"
    execution_id: ExecutionId = arg(_id)
    display_id: str = arg(_key)
    data: dict = arg(check_mime_bundle)
    metadata: dict = arg(_metadata, factory=dict)


@register
@dataclass(frozen=True, slots=True)
class OutputsCleared(Event):
    """``clear_output(wait=)`` from running code; with ``wait`` it waits for the next output."""

    name: ClassVar[str] = "outputsCleared"
    writer: ClassVar[Writer] = "kernel"
    execution_id: ExecutionId = arg(_id)
    wait: bool = arg(fields.boolean, False)


# --- kernels ----------------------------------------------------------------


@register
@dataclass(frozen=True, slots=True)
class KernelSessionStarted(Event):
    """A kernel announces itself; it must heartbeat within ``lease_seconds``."""

    name: ClassVar[str] = "kernelSessionStarted"
    writer: ClassVar[Writer] = "kernel"
    session_id: SessionId = arg(_id)
    host: str = arg(fields.choice(*HOST_KINDS))
    lease_seconds: float = arg(fields.number(limits.MIN_LEASE_SECONDS, limits.MAX_LEASE_SECONDS))
    label: str = arg(fields.text(limits.MAX_LABEL), "")


@register
@dataclass(frozen=True, slots=True)
class KernelRestarted(Event):
    """The session has a fresh interpreter: its namespace is gone."""

    name: ClassVar[str] = "kernelRestarted"
    writer: ClassVar[Writer] = "kernel"
    session_id: SessionId = arg(_id)


@register
@dataclass(frozen=True, slots=True)
class KernelSessionEnded(Event):
    """A clean shutdown (Ctrl+C, SIGTERM)."""

    name: ClassVar[str] = "kernelSessionEnded"
    writer: ClassVar[Writer] = "kernel"
    session_id: SessionId = arg(_id)
    reason: str = arg(_reason, "")


@register
@dataclass(frozen=True, slots=True)
class KernelSessionExpired(Event):
    """Written by the relay when a session's heartbeats stop for longer than its lease."""

    name: ClassVar[str] = "kernelSessionExpired"
    writer: ClassVar[Writer] = "relay"
    session_id: SessionId = arg(_id)


# --- decoding ---------------------------------------------------------------


def decode(name: Any, version: Any, args: Any) -> Event:
    """Build a validated event from untrusted ``name``, ``v`` and ``args``."""
    if not isinstance(name, str) or name not in REGISTRY:
        raise SchemaError("unknown_event", f"unknown event name {str(name)[:64]!r}", "name")
    cls = REGISTRY[name]
    if isinstance(version, bool) or not isinstance(version, int):
        raise SchemaError("invalid_version", "v must be an integer", "v")
    if version > cls.version or version < 1:
        raise SchemaError(
            "unsupported_version",
            f"{name} v{version} is not supported (this schema knows v1..v{cls.version})",
            "v",
        )
    if not isinstance(args, dict):
        raise SchemaError("invalid_arg", "args must be an object", "args")
    while version < cls.version:
        args = UPGRADES[(name, version)](args)
        version += 1
    return _build(cls, args)


def decode_trusted(name: str, version: int, args: dict[str, Any]) -> Event:
    """Build an event from args that ``decode`` already accepted once: the relay
    reading back JSON it validated and stored itself.

    The name and version are still looked up (and older versions upgraded),
    and the dataclass is still built, but the per-argument checks are skipped:
    they are most of the cost of folding a stored log. Args that do not fit
    the dataclass take the checked path, so a bad row fails as ``decode`` would.
    Never use this on JSON that came from outside the relay.
    """
    cls = REGISTRY.get(name) if isinstance(name, str) else None
    if (
        cls is None
        or type(version) is not int
        or not 1 <= version <= cls.version
        or not isinstance(args, dict)
    ):
        return decode(name, version, args)  # raises the same error ``decode`` would
    while version < cls.version:
        args = UPGRADES[(name, version)](args)
        version += 1
    try:
        return cls(**args)
    except TypeError:  # an unexpected or missing argument
        return _build(cls, args)


def _build(cls: type[Event], args: dict[str, Any]) -> Event:
    declared = {f.name: f for f in dataclasses.fields(cls)}
    for key in args:
        if key not in declared:
            raise SchemaError(
                "unexpected_arg", f"{cls.name} has no argument {str(key)[:64]!r}", f"args.{key}"
            )
    values: dict[str, Any] = {}
    for name, spec in declared.items():
        if name not in args:
            if spec.default is not _MISSING:
                values[name] = spec.default
            elif callable(factory := spec.default_factory):  # dataclasses.MISSING is not callable
                values[name] = factory()
            else:
                raise SchemaError("missing_arg", f"{cls.name} needs {name}", f"args.{name}")
            continue
        try:
            values[name] = spec.metadata["check"](args[name])
        except SchemaError as error:
            raise error.at(f"args.{name}") from None
    return cls(**values)
