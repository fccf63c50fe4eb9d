"""IPython's display API without IPython: ``display``, the ``_repr_*_`` protocol, ``HTML``...

Notebooks written for Jupyter call ``display(df)``, define ``_repr_html_`` and
write ``from IPython.display import HTML``; all of that works unchanged here.
``install_ipython_shim`` registers this module as ``IPython.display``.

Where output goes: the *current sink*, one per process like ``sys.stdout``
(only one cell runs at a time). The runner sets it with ``set_sink`` while a
cell runs. With no sink, ``display`` prints the ``text/plain`` form, as
IPython does in a plain terminal.
"""

from __future__ import annotations

import base64
import html
import importlib.machinery
import json
import os
import pprint
import sys
import uuid
from collections.abc import Callable, Iterable
from types import ModuleType
from typing import Any

from .sink import OutputSink, safe_text

MimeBundle = dict[str, Any]

# (MIME type, method) in IPython's order; ``_repr_mimebundle_`` wins over all of them.
REPR_METHODS = (
    ("text/html", "_repr_html_"),
    ("text/markdown", "_repr_markdown_"),
    ("image/svg+xml", "_repr_svg_"),
    ("image/png", "_repr_png_"),
    ("image/jpeg", "_repr_jpeg_"),
    ("application/pdf", "_repr_pdf_"),
    ("application/json", "_repr_json_"),
    ("application/javascript", "_repr_javascript_"),
    ("text/latex", "_repr_latex_"),
)
MAX_PLAIN_CHARS = 100_000  # a repr longer than this is cut, like IPython's max_seq_length
_MAX_DISPLAY_ID = 128
_PPRINT_TYPES = (dict, list, tuple, set, frozenset)

_sink: OutputSink | None = None


def set_sink(sink: OutputSink | None) -> OutputSink | None:
    """Route display output to ``sink`` (``None``: print instead); returns the previous one."""
    global _sink
    previous, _sink = _sink, sink
    return previous


def get_sink() -> OutputSink | None:
    return _sink


# --- formatting (pure) -------------------------------------------------------------


def format_mimebundle(
    obj: Any, include: Iterable[str] | None = None, exclude: Iterable[str] | None = None
) -> tuple[MimeBundle, dict]:
    """``(data, metadata)`` for ``obj``: every MIME type it can show, ``text/plain`` always.

    A repr method that raises is skipped (with a one-line note on stderr), so
    a broken ``_repr_html_`` costs a rich view, never the cell.
    """
    data: MimeBundle = {}
    metadata: dict = {}
    bundle = _call_repr(obj, "_repr_mimebundle_", include=include, exclude=exclude)
    if isinstance(bundle, tuple) and len(bundle) == 2:
        bundle, bundle_metadata = bundle
        if isinstance(bundle_metadata, dict):
            metadata.update(bundle_metadata)
    if isinstance(bundle, dict):
        for mime, value in bundle.items():
            _put(data, mime, value)
    for mime, method in REPR_METHODS:
        if mime in data:
            continue
        value = _call_repr(obj, method)
        if isinstance(value, tuple) and len(value) == 2:
            value, metadata[mime] = value
        if value is not None:
            _put(data, mime, value)
    if "text/plain" not in data:
        data["text/plain"] = plain_text(obj)
    if include is not None:
        data = {mime: value for mime, value in data.items() if mime in set(include)}
    if exclude is not None:
        data = {mime: value for mime, value in data.items() if mime not in set(exclude)}
    return data, {key: value for key, value in metadata.items() if _is_json(value)}


def plain_text(obj: Any) -> str:
    """``repr(obj)``, pretty-printed for small built-in containers, never raising."""
    try:
        if type(obj) in _PPRINT_TYPES and len(obj) <= 1000:
            text = pprint.pformat(obj, sort_dicts=False)
        else:
            text = repr(obj)
    except Exception as error:  # a broken __repr__ must not kill the cell
        text = f"<{type(obj).__name__} object; repr() failed: {type(error).__name__}: {error}>"
    if len(text) > MAX_PLAIN_CHARS:
        text = f"{text[:MAX_PLAIN_CHARS]}\n... ({len(text) - MAX_PLAIN_CHARS:,} more characters)"
    return safe_text(text)


def _call_repr(obj: Any, name: str, **kwargs: Any) -> Any:
    method = get_real_method(obj, name)
    if method is None:
        return None
    try:
        return method(**kwargs)
    except Exception as error:
        print(
            f"[{type(obj).__name__}.{name}() failed: {type(error).__name__}: {error}]",
            file=sys.stderr,
        )
        return None


def get_real_method(obj: Any, name: str) -> Callable | None:
    """``obj.name`` if it is a method to call (IPython's rule).

    Classes don't count (``display(HTML)`` shows the class), nor do objects
    whose ``__getattr__`` claims every name.
    """
    if isinstance(obj, type):
        return None
    try:
        if getattr(obj, "_ipython_canary_method_should_not_exist_", None) is not None:
            return None
        method = getattr(obj, name, None)
    except Exception:
        return None
    return method if callable(method) else None


def _put(data: MimeBundle, mime: str, value: Any) -> None:
    """Store ``value`` JSON-ready: bytes become text or base64; bad values are skipped."""
    if not isinstance(mime, str) or "/" not in mime:
        return
    if _is_json_mime(mime):
        if _is_json(value):
            data[mime] = value
        return
    if isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
        value = (
            raw.decode("utf-8", "replace")
            if _is_text_mime(mime)
            else base64.b64encode(raw).decode()
        )
    if isinstance(value, str):
        data[mime] = safe_text(value)


def _is_json_mime(mime: str) -> bool:
    return mime == "application/json" or mime.endswith("+json")


def _is_text_mime(mime: str) -> bool:
    return mime.startswith("text/") or mime.endswith("+xml") or mime == "application/javascript"


def _is_json(value: Any) -> bool:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError, RecursionError):
        return False
    return True


# --- publishing ----------------------------------------------------------------------


class DisplayHandle:
    """What ``display(..., display_id=...)`` returns: show or replace that output later."""

    def __init__(self, display_id: str | None = None) -> None:
        self.display_id = display_id or uuid.uuid4().hex

    def __repr__(self) -> str:
        return f"<{type(self).__name__} display_id={self.display_id}>"

    def display(self, obj: Any, **kwargs: Any) -> None:
        display(obj, display_id=self.display_id, **kwargs)

    def update(self, obj: Any, **kwargs: Any) -> None:
        update_display(obj, display_id=self.display_id, **kwargs)


def display(
    *objs: Any,
    include: Iterable[str] | None = None,
    exclude: Iterable[str] | None = None,
    metadata: dict | None = None,
    transient: dict | None = None,
    display_id: str | bool | None = None,
    raw: bool = False,
    clear: bool = False,
    update: bool = False,
) -> DisplayHandle | None:
    """Show each object as a ``display_data`` output (IPython's signature).

    ``display_id=True`` makes a fresh id; with an id, a ``DisplayHandle`` is
    returned (also for ``display(display_id=True)``, which shows nothing yet).
    ``raw=True`` takes ready MIME bundles; ``clear=True`` clears the cell's
    output first (when the next output comes).
    """
    if display_id is None and transient:
        display_id = transient.get("display_id")
    if display_id is True:
        display_id = uuid.uuid4().hex
    elif display_id is not None and display_id is not False:
        display_id = _check_display_id(display_id)
    else:
        display_id = None
    if update and display_id is None:
        raise TypeError("display(update=True) needs a display_id")
    if metadata is not None and not (isinstance(metadata, dict) and _is_json(metadata)):
        raise TypeError("display() metadata must be a JSON-serializable dict")
    if clear:
        clear_output(wait=True)
    for obj in objs:
        if raw:
            data: MimeBundle = {}
            for mime, value in dict(obj).items():
                _put(data, mime, value)
            bundle_metadata: dict = {}
        elif not update and (custom := get_real_method(obj, "_ipython_display_")) is not None:
            custom()
            continue
        else:
            data, bundle_metadata = format_mimebundle(obj, include, exclude)
        if metadata:
            bundle_metadata = {**bundle_metadata, **metadata}
        if data:
            _publish(data, bundle_metadata, display_id, update)
    return DisplayHandle(display_id) if display_id is not None else None


def update_display(obj: Any, *, display_id: str, **kwargs: Any) -> None:
    """Replace what is shown under ``display_id`` (in any cell) with ``obj``."""
    display(obj, display_id=display_id, update=True, **kwargs)


def clear_output(wait: bool = False) -> None:
    """Clear the running cell's output; ``wait=True`` waits for the next output (no flicker)."""
    if _sink is not None:
        _sink.clear(wait)


def publish_display_data(
    data: MimeBundle, metadata: dict | None = None, *, transient: dict | None = None
) -> None:
    """IPython's low-level call: show a ready MIME bundle."""
    display(data, raw=True, metadata=metadata, transient=transient)


def _publish(data: MimeBundle, metadata: dict, display_id: str | None, update: bool) -> None:
    sink = _sink
    if sink is None:
        print(data.get("text/plain", ""))
    elif update:
        assert display_id is not None
        sink.update_display(display_id, data, metadata)
    else:
        output = {"output_type": "display_data", "data": data, "metadata": metadata}
        if display_id is not None:
            output["transient"] = {"display_id": display_id}
        sink.output(output)


def _check_display_id(display_id: Any) -> str:
    if not isinstance(display_id, str) or not 0 < len(display_id) <= _MAX_DISPLAY_ID:
        raise ValueError(f"display_id must be a string of 1-{_MAX_DISPLAY_ID} characters, or True")
    return display_id


# --- objects that know how to show themselves ---------------------------------------------


class DisplayObject:
    """Data to show, given as ``data`` or read from ``filename``; subclasses pick the MIME type."""

    _read_binary = False

    def __init__(
        self,
        data: Any = None,
        url: str | None = None,
        filename: str | None = None,
        metadata: dict | None = None,
    ) -> None:
        if url is not None:
            raise ValueError(
                f"{type(self).__name__}(url=...) would need a download; fetch the data and pass it"
            )
        if filename is not None:
            with open(filename, "rb" if self._read_binary else "r") as file:
                data = file.read()
        self.data = data
        self.filename = filename
        self.metadata = metadata or {}

    def __repr__(self) -> str:
        return f"<{type(self).__name__} object>"  # no address: the same object shows the same text

    def _data_and_metadata(self) -> Any:
        return (self.data, self.metadata) if self.metadata else self.data


class HTML(DisplayObject):
    def _repr_html_(self) -> Any:
        return self._data_and_metadata()

    def __html__(self) -> str:
        """For Jinja/markupsafe: this is already HTML."""
        return str(self.data)


class Markdown(DisplayObject):
    def _repr_markdown_(self) -> Any:
        return self._data_and_metadata()


class Latex(DisplayObject):
    def _repr_latex_(self) -> Any:
        return self._data_and_metadata()


class Math(DisplayObject):
    """A formula, without the ``$``: ``Math(r"\\int_0^1 x\\,dx")``."""

    def _repr_latex_(self) -> Any:
        formula = rf"$\displaystyle {str(self.data).strip('$')}$"
        return (formula, self.metadata) if self.metadata else formula


class SVG(DisplayObject):
    def _repr_svg_(self) -> Any:
        return self._data_and_metadata()


class Javascript(DisplayObject):
    def _repr_javascript_(self) -> Any:
        return self._data_and_metadata()


class Pretty(DisplayObject):
    """Text shown as it is, as ``text/plain``."""

    def __repr__(self) -> str:
        return str(self.data)


class JSON(DisplayObject):
    """A JSON-able value (or a JSON string), shown by front ends as a collapsible tree."""

    def __init__(
        self,
        data: Any = None,
        url: str | None = None,
        filename: str | None = None,
        expanded: bool = False,
        metadata: dict | None = None,
        root: str = "root",
    ) -> None:
        super().__init__(data, url, filename, metadata)
        if isinstance(self.data, str):
            self.data = json.loads(self.data)
        self.metadata = {"expanded": expanded, "root": root, **self.metadata}

    def _repr_json_(self) -> Any:
        return self.data, self.metadata


_IMAGE_FORMATS = {
    "png": "image/png",
    "jpeg": "image/jpeg",
    "jpg": "image/jpeg",
    "gif": "image/gif",
    "webp": "image/webp",
}
_SIGNATURES = ((b"\x89PNG", "png"), (b"\xff\xd8", "jpeg"), (b"GIF8", "gif"), (b"RIFF", "webp"))


class Image(DisplayObject):
    """An image: bytes (``data=``), a file (``filename=``) or a link (``url=``, shown as <img>)."""

    _read_binary = True

    def __init__(
        self,
        data: bytes | str | None = None,
        url: str | None = None,
        filename: str | None = None,
        format: str | None = None,
        embed: bool | None = None,
        width: int | str | None = None,
        height: int | str | None = None,
        metadata: dict | None = None,
        alt: str | None = None,
    ) -> None:
        if isinstance(data, str) and url is None and filename is None:
            if data.startswith(("http://", "https://", "data:")):
                url, data = data, None
            elif os.path.exists(data):
                filename, data = data, None
        self.url = url
        self.embed = url is None if embed is None else embed
        if self.embed and url is not None:
            raise ValueError(
                "Image(url=..., embed=True) would need a download; pass data= or filename="
            )
        super().__init__(data, None, filename, metadata)
        self.format = _image_format(format, filename or url, self.data)
        self.width, self.height, self.alt = width, height, alt

    @property
    def mimetype(self) -> str:
        return _IMAGE_FORMATS[self.format]

    def _repr_mimebundle_(
        self, include: Any = None, exclude: Any = None
    ) -> tuple[MimeBundle, dict]:
        if not self.embed:
            return {"text/html": self._repr_html_(), "text/plain": repr(self)}, {}
        sizes = self._attributes("width", "height", "alt")
        metadata = {**self.metadata, **({self.mimetype: sizes} if sizes else {})}
        return {self.mimetype: self.data, "text/plain": repr(self)}, metadata

    def _repr_html_(self) -> str | None:
        if self.embed:
            return None
        attributes = self._attributes("width", "height", "alt")
        html_attributes = "".join(
            f' {name}="{html.escape(str(value))}"'
            for name, value in {"src": self.url, **attributes}.items()
        )
        return f"<img{html_attributes}/>"

    def _attributes(self, *names: str) -> dict[str, Any]:
        return {name: getattr(self, name) for name in names if getattr(self, name)}

    def _repr_png_(self) -> bytes | None:
        return self.data if self.embed and self.format == "png" else None

    def _repr_jpeg_(self) -> bytes | None:
        return self.data if self.embed and self.format in ("jpeg", "jpg") else None


def _image_format(format: str | None, name: str | None, data: Any) -> str:
    if format is None and name:
        extension = os.path.splitext(name.split("?")[0])[1].lstrip(".").lower()
        format = extension if extension in _IMAGE_FORMATS else None
    if format is None and isinstance(data, (bytes, bytearray)):
        format = next((kind for magic, kind in _SIGNATURES if data.startswith(magic)), None)
    format = (format or "png").lower()
    if format not in _IMAGE_FORMATS:
        known = ", ".join(_IMAGE_FORMATS)
        raise ValueError(f"unknown image format {format!r}: use one of {known}")
    return format


# --- the IPython stand-in ---------------------------------------------------------------


def ipython_modules(get_ipython: Callable[[], Any]) -> dict[str, ModuleType]:
    """``IPython``, ``IPython.display``, ``IPython.core.display`` and ``IPython.core.getipython``.

    The display modules are this module itself, so ``from IPython.display
    import HTML`` gives our ``HTML``. Nothing else of IPython is pretended.
    """
    this = sys.modules[__name__]

    def package(name: str, doc: str) -> ModuleType:
        module = ModuleType(name, doc)
        module.__path__ = []  # a package, so a missing submodule is a clean ImportError
        module.__spec__ = importlib.machinery.ModuleSpec(name, None, is_package=True)
        return module

    ipython = package("IPython", "Anode's stand-in for IPython: display and get_ipython only.")
    core = package("IPython.core", "Anode's stand-in for IPython.core.")
    getipython = ModuleType("IPython.core.getipython")
    getipython.__spec__ = importlib.machinery.ModuleSpec("IPython.core.getipython", None)
    ipython.__anode_shim__ = True  # type: ignore[attr-defined]
    # The IPython API the stand-in follows, for libraries that branch on it (matplotlib).
    ipython.version_info = (8, 24, 0)  # type: ignore[attr-defined]
    ipython.display = core.display = this  # type: ignore[attr-defined]
    ipython.core, core.getipython = core, getipython  # type: ignore[attr-defined]
    ipython.get_ipython = getipython.get_ipython = get_ipython  # type: ignore[attr-defined]
    return {
        "IPython": ipython,
        "IPython.display": this,
        "IPython.core": core,
        "IPython.core.display": this,
        "IPython.core.getipython": getipython,
    }


def install_ipython_shim(get_ipython: Callable[[], Any]) -> bool:
    """Register the stand-in in ``sys.modules``, unless a real IPython is already imported.

    A real but not yet imported IPython is shadowed on purpose: its
    ``display`` would not know how to reach the cell's sink.
    """
    current = sys.modules.get("IPython")
    if current is not None and not getattr(current, "__anode_shim__", False):
        return False
    sys.modules.update(ipython_modules(get_ipython))
    return True
