"""Run one cell as Jupyter would, and report what it did to an ``OutputSink``.

``Runner.run`` compiles the cell (top-level ``await`` allowed), runs it with
stdout/stderr captured, shows the last expression as an ``execute_result``
and turns any exception into an ``error`` output whose traceback shows the
user's frames only. Every failure mode of user code (``sys.exit()``,
``input()``, deep recursion, running out of memory, an interrupt) ends as an
output and a status, and the runner stays usable.
"""

from __future__ import annotations

import ast
import asyncio
import builtins
import contextlib
import inspect
import io
import linecache
import os
import re
import shlex
import sys
import time
import tokenize
import traceback
import types
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, Literal

from shared_schema import limits

from . import display as _display
from . import figures as _figures
from .packages import note_missing_module
from .sink import DEFAULT_CAP_BYTES, CappedSink, OutputSink, safe_text
from .streams import StreamWriter

Status = Literal["ok", "error", "cancelled"]
PipInstaller = Callable[[list[str]], Awaitable[object]]
#: Runs before a cell, its output the cell's: installs requirements, loads imported packages.
Prepare = Callable[[str], Awaitable[None]]

_COMPILE_FLAGS = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
_MAX_LINE = 2_000  # characters per traceback line: the most lines stay far below an output's limit
_MAX_EVALUE = 100_000


class StdinNotImplementedError(NotImplementedError):
    """``input()`` in a cell: nobody can answer it yet, so fail instead of hanging."""


class UsageError(Exception):
    """A magic or shell command that Anode does not provide (IPython's name for it)."""


#: Magics that tune IPython or a Jupyter front end, pasted along with the code
#: they came with. Here they change nothing, so they run as no-ops with a note
#: on stderr rather than failing the cell. ``%matplotlib inline`` is silent:
#: output in the notebook is the only kind there is here.
IGNORED_MAGICS = frozenset(
    {"matplotlib", "config", "load_ext", "reload_ext", "unload_ext", "autoreload", "aimport"}
)
#: What the magics Anode knows do, for the error an unknown one raises.
_KNOWN_MAGICS = "Anode runs %pip; it accepts and ignores " + ", ".join(
    f"%{name}" for name in sorted(IGNORED_MAGICS)
)


#: ``%config InlineBackend.figure_format(s) = ...``: how matplotlib figures are published.
_FIGURE_FORMATS = re.compile(r"InlineBackend\.figure_formats? ?= ?(?P<value>.+)")


class Shell:
    """What ``get_ipython()`` returns: the little of IPython's shell that notebooks touch."""

    def __init__(self, runner: Runner) -> None:
        self._runner = runner
        self.config: dict = {}
        self.kernel = None
        self.events = _Events()

    @property
    def user_ns(self) -> dict[str, Any]:
        return self._runner.namespace

    @property
    def execution_count(self) -> int:
        return self._runner.execution_count

    def run_line_magic(self, name: str, line: str = "") -> None:
        if name not in IGNORED_MAGICS:
            raise UsageError(f"unknown magic %{name} ({_KNOWN_MAGICS})")
        line = " ".join(line.split())
        if name == "matplotlib" and line in ("", "inline"):
            return  # outputs are inline here anyway
        figure_formats = _FIGURE_FORMATS.fullmatch(line) if name == "config" else None
        if figure_formats is not None:
            value = ast.literal_eval(figure_formats["value"])
            _figures.set_formats([value] if isinstance(value, str) else list(value))
            return
        shown = f"%{name} {line}".strip()
        print(f"{_clip(shown)}: ignored (no effect in Anode)", file=sys.stderr)

    def run_cell_magic(self, name: str, line: str, cell: str) -> None:
        raise UsageError(f"unknown magic %%{name} (Anode has no cell magics)")

    def system(self, command: str) -> None:
        raise UsageError(f"shell commands are not supported in Anode: !{command}")


class _Events:
    """``get_ipython().events``: libraries (matplotlib) register hooks; none fire here."""

    def __init__(self) -> None:
        self.callbacks: dict[str, list[Callable[..., Any]]] = {}

    def register(self, event: str, function: Callable[..., Any]) -> None:
        self.callbacks.setdefault(event, []).append(function)

    def unregister(self, event: str, function: Callable[..., Any]) -> None:
        with contextlib.suppress(ValueError):
            self.callbacks.get(event, []).remove(function)


class Runner:
    """One namespace and its execution count: what a kernel restart throws away.

    ``pip`` is the host's package installer; ``%pip install a b`` becomes
    ``await pip(["install", "a", "b"])``. Without one, ``%pip`` fails clearly.
    """

    def __init__(
        self,
        *,
        pip: PipInstaller | None = None,
        prepare: Prepare | None = None,
        cap_bytes: int = DEFAULT_CAP_BYTES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.pip = pip
        self.prepare = prepare
        os.environ["MPLBACKEND"] = _figures.BACKEND  # read when a cell imports matplotlib
        self.cap_bytes = cap_bytes
        self.clock = clock
        self.shell = Shell(self)
        # One pair for the runner's life, like ipykernel's: a logging handler made
        # in one cell holds sys.stdout, and its records belong to the cell running now.
        self.stdout = StreamWriter("stdout", _CONSOLE, clock=clock)
        self.stderr = StreamWriter("stderr", _CONSOLE, clock=clock)
        self.reset()

    def reset(self) -> None:
        """A fresh namespace and ``execution_count`` 0, as after a kernel restart."""
        self.execution_count = 0
        self.main_module = types.ModuleType("__main__")
        self.namespace: dict[str, Any] = self.main_module.__dict__
        self.namespace.update(
            {
                "__builtins__": builtins,
                "display": _display.display,
                "get_ipython": self.get_ipython,
                "In": [""],  # In[n] is cell n's source
                "Out": {},  # Out[n] is cell n's result
            }
        )
        self._shown: Any = None  # the value we last put in `_`

    def get_ipython(self) -> Shell:
        return self.shell

    async def run(self, source: str, sink: OutputSink) -> Status:
        """Run one cell; every output goes to ``sink``. Never raises for anything the cell does.

        Output is capped at ``cap_bytes``. A host that passes its own
        ``CappedSink`` keeps its cap instead, and calls its ``finish()`` itself.
        Cancelling the task that runs this interrupts the cell: the result is
        ``"cancelled"``, as for a ``KeyboardInterrupt``.
        """
        self.execution_count += 1
        count = self.execution_count
        filename = f"<cell-{count}>"
        _remember_source(filename, source)
        if isinstance(self.namespace.get("In"), list):
            self.namespace["In"].append(source)
        owned = not isinstance(sink, CappedSink)
        capped = CappedSink(sink, self.cap_bytes) if owned else sink
        ordered = _FlushFirst(capped, self)
        with self._captured(capped, ordered):
            if self.prepare is not None:
                await self._prepare(source)
            status = await self._execute(source, filename, count, ordered)
            if status != "cancelled":
                self._show_figures(ordered)
        if owned:
            capped.finish()
        return status

    async def _execute(self, source: str, filename: str, count: int, sink: OutputSink) -> Status:
        try:
            body, last, quiet = compile_cell(source, filename)
        except Exception as error:  # SyntaxError mostly; also null bytes, nesting too deep
            sink.output(error_output(error, frames=False))
            return "error"
        try:
            result = eval(body, self.namespace)
            if body.co_flags & inspect.CO_COROUTINE:
                await result
            if last is None:
                return "ok"
            value = eval(last, self.namespace)
            if last.co_flags & inspect.CO_COROUTINE:
                value = await value
            if value is not None and not quiet:
                self._show_result(value, count, sink)
            return "ok"
        except KeyboardInterrupt as error:
            sink.output(error_output(error))
            return "cancelled"
        except asyncio.CancelledError as error:
            task = asyncio.current_task()
            if task is None or not task.cancelling():
                sink.output(error_output(error))  # the cell's own affair, not an interrupt
                return "error"
            # The host cancelled us: that is how an awaiting cell is interrupted.
            task.uncancel()
            sink.output(error_output(KeyboardInterrupt().with_traceback(error.__traceback__)))
            return "cancelled"
        except SystemExit as error:
            sink.output(_system_exit_output(error))
            return "error"
        except BaseException as error:
            note_missing_module(error)
            sink.output(error_output(error))
            return "error"

    async def _prepare(self, source: str) -> None:
        """The host's preparation of a cell; a failure is said on stderr, and the cell runs."""
        assert self.prepare is not None
        try:
            await self.prepare(source)
        except Exception as error:
            print(f"Anode: {type(error).__name__}: {error}", file=sys.stderr)

    def _show_figures(self, sink: OutputSink) -> None:
        """matplotlib figures still open at the cell's end, as Jupyter's inline backend."""
        try:
            _figures.show_figures()
        except Exception as error:  # a figure that cannot be drawn is the cell's error
            sink.output(error_output(error))

    def _show_result(self, value: Any, count: int, sink: OutputSink) -> None:
        """IPython's display hook: history (``_``, ``__``, ``___``, ``_N``, ``Out``), then show."""
        ns = self.namespace
        if ns.get("_") is self._shown:  # the user has not taken `_` for themselves
            ns["___"], ns["__"], ns["_"] = ns.get("__"), ns.get("_"), value
            self._shown = value
        ns[f"_{count}"] = value
        if isinstance(ns.get("Out"), dict):
            ns["Out"][count] = value
        custom = _display.get_real_method(value, "_ipython_display_")
        if custom is not None:
            custom()
            return
        data, metadata = _display.format_mimebundle(value)
        result = {"output_type": "execute_result", "execution_count": count}
        sink.output({**result, "data": data, "metadata": metadata})

    @contextlib.contextmanager
    def _captured(self, sink: CappedSink, ordered: OutputSink) -> Iterator[None]:
        """Point stdout/stderr, ``display``, ``input`` and ``__main__`` at this cell; undo after."""
        saved = sys.stdout, sys.stderr, builtins.input, sys.modules.get("__main__")
        previous_sink = _display.set_sink(ordered)
        _display.install_ipython_shim(self.get_ipython)
        self.namespace["__anode_pip__"] = self.pip or _no_pip
        self.namespace["__anode_magic__"] = self._magic
        self.stdout.sink = self.stderr.sink = sink
        sys.stdout, sys.stderr = self.stdout, self.stderr
        builtins.input = _no_input
        sys.modules["__main__"] = self.main_module  # so pickle and typing find cell-defined names
        try:
            yield
        finally:
            self.flush()
            self.stdout.sink = self.stderr.sink = _CONSOLE  # text written between cells
            sys.stdout, sys.stderr, builtins.input, main = saved
            if main is not None:
                sys.modules["__main__"] = main
            _display.set_sink(previous_sink)

    def flush(self) -> None:
        """Hand buffered stdout/stderr text to the sink now."""
        self.stdout.flush()
        self.stderr.flush()

    def _magic(self, kind: str, line: str, cell: str | None = None) -> None:
        name, _, rest = line.partition(" ")
        if kind == "!":
            self.shell.system(line)
        elif kind == "%%":
            self.shell.run_cell_magic(name, rest, cell or "")
        else:
            self.shell.run_line_magic(name, rest)


class _FlushFirst:
    """Flushes the cell's stdout and stderr before any other output, so order is kept."""

    def __init__(self, sink: OutputSink, runner: Runner) -> None:
        self.sink = sink
        self.runner = runner

    def stream(self, name: str, text: str) -> None:
        self.runner.flush()
        self.sink.stream(name, text)

    def output(self, output: dict) -> None:
        self.runner.flush()
        self.sink.output(output)

    def update_display(self, display_id: str, data: dict, metadata: dict) -> None:
        self.runner.flush()
        self.sink.update_display(display_id, data, metadata)

    def clear(self, wait: bool) -> None:
        self.runner.flush()
        self.sink.clear(wait)


class _Console:
    """Where the runner's streams write while no cell runs: the process's own stdout/stderr.

    Only code kept from an earlier cell (a logging handler, a background task)
    writes then; its text goes to the host's console rather than into a
    finished cell.
    """

    def stream(self, name: str, text: str) -> None:
        console = sys.__stdout__ if name == "stdout" else sys.__stderr__
        if console is not None:
            console.write(text)

    def output(self, output: dict) -> None:
        pass

    def update_display(self, display_id: str, data: dict, metadata: dict) -> None:
        pass

    def clear(self, wait: bool) -> None:
        pass


_CONSOLE = _Console()


def _clip(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _no_input(prompt: object = "") -> str:
    raise StdinNotImplementedError("input() is not supported in Anode yet")


async def _no_pip(args: list[str]) -> None:
    raise UsageError("%pip is not available: this kernel was started without a package installer")


# --- compiling ------------------------------------------------------------------------


def compile_cell(source: str, filename: str) -> tuple[types.CodeType, types.CodeType | None, bool]:
    """``(body, last_expression, quiet)``: the cell split the way Jupyter shows results.

    ``last_expression`` is the final statement when it is an expression;
    ``quiet`` is true when the cell ends with ``;``, which hides it.
    """
    transformed = transform_magics(source)
    tree = ast.parse(transformed, filename, "exec")
    last = None
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        last = ast.Expression(tree.body.pop().value)
    body = compile(tree, filename, "exec", flags=_COMPILE_FLAGS, dont_inherit=True)
    if last is None:
        return body, None, False
    last_code = compile(last, filename, "eval", flags=_COMPILE_FLAGS, dont_inherit=True)
    return body, last_code, _ends_with_semicolon(transformed)


def _ends_with_semicolon(source: str) -> bool:
    """IPython's rule: the last token, comments and blank lines aside, is ``;``."""
    if ";" not in source:
        return False
    last = None
    try:
        for token in tokenize.generate_tokens(io.StringIO(source).readline):
            if token.type not in _LAYOUT_TOKENS:
                last = token
    except (tokenize.TokenError, SyntaxError):
        return False
    return last is not None and last.type == tokenize.OP and last.string == ";"


_LAYOUT_TOKENS = frozenset(
    {
        tokenize.COMMENT,
        tokenize.NL,
        tokenize.NEWLINE,
        tokenize.INDENT,
        tokenize.DEDENT,
        tokenize.ENDMARKER,
    }
)


def _remember_source(filename: str, source: str) -> None:
    """Put the cell in ``linecache``, so tracebacks (now and later) show its lines."""
    lines = [line + "\n" for line in source.split("\n")]
    linecache.cache[filename] = (len(source), None, lines, filename)


# --- magics ------------------------------------------------------------------------------

_MAGIC = re.compile(r"(?P<indent>[ \t]*)(?P<kind>%%|%|!)(?P<body>(?<=!)\S.*|[A-Za-z_].*)")
_PIP = re.compile(r"pip3?(\s+(?P<args>.*))?")


def transform_magics(source: str) -> str:
    """IPython's escapes, one line for one line so tracebacks keep their line numbers.

    ``%pip install x`` and ``!pip install x`` become ``await __anode_pip__(["install", "x"])``;
    any other ``%magic``, ``%%magic`` or ``!command`` becomes a call that raises
    ``UsageError``. A ``%`` that continues an expression or sits inside a
    string is left alone: only lines that start a statement are escapes.
    """
    if "%" not in source and "!" not in source:
        return source
    lines = source.split("\n")
    out: list[str] = []
    for index, line in enumerate(lines):
        match = _MAGIC.fullmatch(line)
        if match is None or not _starts_statement(out):
            out.append(line)
            continue
        indent, kind, body = match["indent"], match["kind"], match["body"].rstrip()
        if kind == "%%":
            if any(previous.strip() for previous in out):
                out.append(line)  # not a cell magic: let the compiler say so
                continue
            cell = "\n".join(lines[index + 1 :])
            out.append(f"{indent}__anode_magic__('%%', {body!r}, {cell!r});")
            out.extend("" for _ in lines[index + 1 :])
            break
        pip = _PIP.fullmatch(body)
        if pip is not None:
            out.append(f"{indent}await __anode_pip__({_split_args(pip['args'] or '')!r});")
        else:
            out.append(f"{indent}__anode_magic__({kind!r}, {body!r});")
    return "\n".join(out)


def _starts_statement(previous_lines: list[str]) -> bool:
    """Whether the next line begins a statement.

    It does unless the lines before it leave a bracket, a triple-quoted string
    or a backslash continuation open, which is exactly when tokenizing them fails.
    """
    prefix = "\n".join(previous_lines)
    if not prefix.strip():
        return True
    try:
        for _ in tokenize.generate_tokens(io.StringIO(prefix + "\n").readline):
            pass
    except (tokenize.TokenError, SyntaxError):
        return False
    return True


def _split_args(args: str) -> list[str]:
    try:
        return shlex.split(args)
    except ValueError:
        return args.split()


# --- errors as outputs --------------------------------------------------------------------


def error_output(error: BaseException, *, frames: bool = True) -> dict:
    """An nbformat ``error`` output; the traceback keeps user frames and drops the runner's.

    ``frames=False`` drops them all: a cell that does not compile has no frame
    of its own, and the compiler's are noise.
    """
    try:
        report = traceback.TracebackException.from_exception(error)
        _drop_runner_frames(report, set())
        if not frames:
            report.stack = traceback.StackSummary.from_list([])
        lines = "".join(report.format()).splitlines()
        if _is_ours(type(error)) and lines:
            lines[-1] = f"{type(error).__name__}: {_exception_text(error)}"  # no module path
        return {
            "output_type": "error",
            "ename": type(error).__name__,
            "evalue": _fit(_exception_text(error), _MAX_EVALUE),
            "traceback": _fit_lines(lines),
        }
    except Exception:  # e.g. still out of memory: say what happened, if not where
        name = type(error).__name__
        return {"output_type": "error", "ename": name, "evalue": "", "traceback": [name]}


def _system_exit_output(error: SystemExit) -> dict:
    output = error_output(error)
    note = "the kernel does not exit; your variables are kept"
    code = "" if error.code is None else _fit(safe_text(str(error.code)), 1_000)
    output["evalue"] = f"{code}: {note}" if code else note
    output["traceback"] = [*output["traceback"][:-1], f"SystemExit: {output['evalue']}"]
    return output


def _drop_runner_frames(report: traceback.TracebackException, seen: set[int]) -> None:
    if id(report) in seen:
        return
    seen.add(id(report))
    report.stack = traceback.StackSummary.from_list(
        [frame for frame in report.stack if not frame.filename.startswith(_PACKAGE_DIR)]
    )
    group = getattr(report, "exceptions", None) or []  # an ExceptionGroup's members
    for chained in (report.__cause__, report.__context__, *group):
        if chained is not None:
            _drop_runner_frames(chained, seen)


def _is_ours(kind: type) -> bool:
    return kind.__module__.partition(".")[0] == __name__.partition(".")[0]


def _exception_text(error: BaseException) -> str:
    try:
        return safe_text(str(error))
    except Exception:
        return "<exception str() failed>"


def _fit(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit:,} more characters)"


def _fit_lines(lines: list[str]) -> list[str]:
    lines = [_fit(safe_text(line), _MAX_LINE) for line in lines]
    if len(lines) <= limits.MAX_TRACEBACK_LINES:
        return lines
    keep = limits.MAX_TRACEBACK_LINES // 2 - 1
    return [*lines[:keep], f"... ({len(lines) - 2 * keep:,} lines not shown) ...", *lines[-keep:]]
