"""The Anode browser client: Python in Pyodide, started by PyScript from ``index.html``.

Modules, one job each (docs/client.md tells the whole story):

- ``app``: which page to show (home or a notebook) and the notebook page's wiring;
- ``model``: ``fold(confirmed) + replay(pending)`` and the commands a person gives;
- ``store``: the local log in IndexedDB;
- ``sync``: pushing pending events and following the log over SSE;
- ``presence``: who else is here, in which cell, with which cursor;
- ``view``, ``render``, ``editor``, ``home``: what is on screen;
- ``browser``, ``dom``, ``positions``: thin helpers over the browser and CodeMirror.

``model`` and ``positions`` are pure Python; the rest talks to the browser
through the ``js`` module.
"""
