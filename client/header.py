"""The notebook page's header bar: title, notebook-wide controls, who is here, kernel and sync.

``Header.render`` runs with every render of the page (a keystroke makes
one), so each part is written only when what it shows changed: a write
there would restyle the header with every key.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import js

from shared_schema.requirements import requirements_of
from shared_schema.state import NotebookState

from .browser import Listeners, site_link
from .dom import clear, h, set_text
from .presence import Person
from .status import SyncStatus, kernel_status

if TYPE_CHECKING:
    from .view import Actions


#: What the requirements part of the header is.
REQUIREMENTS_TITLE = (
    "Packages this notebook requires: every kernel installs them before its first cell "
    "(%pip install adds one)"
)


def _remove_clicked(event: Any, actions: Actions) -> None:
    """A requirement's × (one listener for all of them: the chips are remade as they change)."""
    package = event.target.dataset.package
    if package:
        actions.remove_requirement(str(package))


class Header:
    """The ``<header>`` element and what it shows; ``element`` goes on the page."""

    def __init__(self, actions: Actions, listeners: Listeners) -> None:
        self.title = h(
            "input", {"class": "title", "aria-label": "Notebook title", "spellcheck": "false"}
        )
        self.kernel = h("span", {"class": "kernel-status", "data-status": "none"})
        self.kernel_text = h("span", {"class": "kernel-text"})
        #: How to start a kernel by hand, shown when none is live and the relay will not start one.
        self.kernel_command = h("code", {"class": "kernel-command", "hidden": True})
        self.kernel.append(self.kernel_text, self.kernel_command)
        #: Where this person's runs go: this tab's kernel or the relay's (hidden with no relay).
        self.run_in = h(
            "select",
            {"class": "run-in", "title": "Where your runs go", "aria-label": "Run in"},
            h("option", {"value": "tab"}, "run in: this tab"),
            h("option", {"value": "server"}, "run in: server"),
        )
        listeners.on(self.run_in, "change", lambda _e: actions.set_run_in(str(self.run_in.value)))
        #: This tab's kernel: (status, detail), set by the page (``client.tab_kernel``).
        self.tab_kernel = ("off", "")
        #: The relay's ``--kernels`` mode ("auto", "none") once ``/api/health`` said it.
        self.kernels_mode: str | None = None
        #: The shell command that starts a kernel for this notebook (set by the page).
        self.start_command = ""
        #: What the kernel part and the sync part show (each written only when it changes).
        self._kernel_key: tuple[Any, ...] | None = None
        self._sync_key: tuple[Any, ...] | None = None
        self._shown_unsynced = ""
        self._people_key: tuple[tuple[str, str], ...] | None = None
        self.sync = h("span", {"class": "sync-status", "data-online": "false"}, "connecting…")
        self.people = h("span", {"class": "people", "data-count": "0"})
        #: The name others see for this person (hidden with no relay: no one else to see it).
        self.my_name = h(
            "input",
            {
                "class": "my-name",
                "aria-label": "Your name",
                "maxlength": "64",
                "size": "10",
                "spellcheck": "false",
                "title": "Your name, as others in this notebook see it",
                "hidden": True,
            },
        )
        listeners.on(self.my_name, "change", lambda _e: actions.rename(str(self.my_name.value)))
        self.share_button = h(
            "button",
            {
                "class": "tool share",
                "type": "button",
                "title": "Share a link to this notebook",
                "hidden": True,
            },
            "Share",
        )
        listeners.on(self.share_button, "click", lambda _e: actions.share())
        self.download_button = h(
            "button",
            {
                "class": "tool download",
                "type": "button",
                "title": "Download this notebook as a Jupyter .ipynb file",
            },
            "Download .ipynb",
        )
        listeners.on(self.download_button, "click", lambda _e: actions.download())
        listeners.on(self.title, "change", lambda _e: actions.set_title(str(self.title.value)))
        controls = h("span", {"class": "controls"})
        for label, name, title, action in (
            ("▶▶", "run-all", "Run all cells", actions.run_all),
            ("■", "interrupt-all", "Interrupt the running cell", actions.interrupt_all),
            ("↻", "restart", "Restart the kernel", actions.restart_kernel),
            ("⌫", "clear-all", "Clear all outputs", actions.clear_outputs),
        ):
            button = h(
                "button",
                {"class": f"tool {name}", "type": "button", "title": title, "data-action": name},
                label,
            )
            listeners.on(button, "click", lambda _e, action=action: action())
            controls.append(button)
        #: The notebook's requirements (what ``%pip install`` put in), each removable by an editor.
        self.requirements = h(
            "span", {"class": "requirements", "hidden": True, "title": REQUIREMENTS_TITLE}
        )
        self._requirements_key: tuple[tuple[str, ...], bool] | None = None
        self._editable = True
        listeners.on(self.requirements, "click", lambda event: _remove_clicked(event, actions))
        self.element = h(
            "header",
            {"class": "bar"},
            h("a", {"class": "home", "href": site_link()}, "Anode"),
            self.title,
            controls,
            self.people,
            self.my_name,
            self.run_in,
            self.kernel,
            self.sync,
            self.requirements,
            self.download_button,
            self.share_button,
        )

    def render(self, state: NotebookState, status: SyncStatus) -> None:
        """Title, kernel and sync status, each written only when it changes."""
        if js.document.activeElement != self.title and self.title.value != state.title:
            self.title.value = state.title  # checked every time: someone may have typed there
        kernel, text, show_command = kernel_status(state, self.kernels_mode, self.tab_kernel)
        restarts = sum(session.restarts for session in state.live_kernels())
        kernel_key = (state.title, kernel, text, show_command, restarts, self.start_command)
        if kernel_key != self._kernel_key:
            self._kernel_key = kernel_key
            js.document.title = f"{state.title or 'Untitled'} · Anode"
            self.kernel.dataset.status = kernel
            self.kernel.dataset.restarts = str(restarts)
            set_text(self.kernel_text, text)
            self.kernel_command.hidden = not show_command
            set_text(self.kernel_command, self.start_command)
        self._show_requirements(requirements_of(state.metadata))
        if str(status.unsynced) != self._shown_unsynced:  # no style depends on it: no restyle
            self._shown_unsynced = str(status.unsynced)
            self.sync.dataset.unsynced = self._shown_unsynced
        sync_text = "online" if status.online else "offline"
        if status.unsynced and status.late:
            sync_text += f" · {status.unsynced} to sync"
        sync_key = (status.online, sync_text, status.detail)
        if sync_key != self._sync_key:
            self._sync_key = sync_key
            self.sync.dataset.online = "true" if status.online else "false"
            set_text(self.sync, sync_text)
            self.sync.title = status.detail

    def set_access(self, editable: bool, can_share: bool) -> None:
        self.share_button.hidden = not can_share
        self.title.readOnly = not editable
        self._editable = editable
        self._requirements_key = None  # the remove buttons come or go

    def _show_requirements(self, requirements: list[str]) -> None:
        key = (tuple(requirements), self._editable)
        if key == self._requirements_key:
            return
        self._requirements_key = key
        clear(self.requirements)
        self.requirements.hidden = not requirements
        if not requirements:
            return
        self.requirements.append(h("span", {"class": "requirements-label"}, "Requires"))
        for requirement in requirements:
            chip = h("span", {"class": "requirement"}, requirement)
            if self._editable:
                package = requirement.partition("==")[0]
                chip.append(
                    h(
                        "button",
                        {
                            "class": "remove-requirement",
                            "type": "button",
                            "title": f"Stop requiring {package} (kernels already running keep it)",
                            "data-package": package,
                        },
                        "×",
                    )
                )
            self.requirements.append(chip)

    def show_my_name(self, name: str, *, committed: bool = False) -> None:
        """The name field shows ``name`` (not while the person is typing there, unless they just
        committed it: then it shows the name as cleaned up)."""
        self.my_name.hidden = False
        if committed or js.document.activeElement != self.my_name:
            self.my_name.value = name

    def show_people(self, people: list[Person]) -> None:
        """Everyone else here, as initials."""
        key = tuple(sorted((person.name, person.color) for person in people))
        if key == self._people_key:
            return
        self._people_key = key
        self.people.dataset.count = str(len(people))
        clear(self.people)
        for name, color in key:
            badge = h("span", {"class": "person", "title": name}, name[:1].upper())
            badge.style.backgroundColor = color
            self.people.append(badge)
