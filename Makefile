# Anode — the two commands of the README:
#
#   make serve   set everything up, then start the notebook  (ARGS="--port 9000")
#   make test    set everything up, lint, then run every test (PYTEST_ARGS="-k smoke")
#
# Setup is idempotent: the Python venv and node_modules are each rebuilt only
# when their input (pyproject.toml, package-lock.json) changed since the stamp
# file written at the end of the last successful install.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# Debian keeps ensurepip (which `python3 -m venv` needs) in python3-venv.
SUDO   := $(if $(filter 0,$(shell id -u)),,sudo)

.DEFAULT_GOAL := setup
.PHONY: setup serve test lint bench clean chromium bubblewrap postgres

# micropip is not in Pyodide's npm package; kernels load it for %pip.
MICROPIP := vendor/micropip/micropip-0.11.1-py3-none-any.whl
# The browser client's npm libraries (CodeMirror 6; marked, DOMPurify and KaTeX), bundled once.
# KaTeX's CSS and fonts are served from node_modules/katex/dist as they are (relay/static.py).
BUNDLES  := vendor/bundles/editor.js vendor/bundles/markdown.js
SNAPSHOT := vendor/snapshot/.made

setup: $(VENV)/.installed node_modules/.installed $(MICROPIP) $(BUNDLES) chromium bubblewrap \
	$(SNAPSHOT)

serve: setup
	$(BIN)/anode serve $(ARGS)

test: setup lint postgres
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The tests' PostgreSQL: started if installed and stopped, installed (Debian's) if missing.
# Each test makes its own throw-away database on it (tests/postgres_server.py).
postgres: $(VENV)/.installed
	$(BIN)/python -m tests.postgres_server

# The rules a reviewer should not have to check by eye (pyproject.toml says which).
lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: setup
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test,bench]'
	$(BIN)/python -m bench.relay $(ARGS)
	$(BIN)/python -m bench.kernel $(ARGS)
	$(BIN)/python -m bench.client $(ARGS)

clean:
	rm -rf $(VENV) node_modules vendor

$(BIN)/python:
	@$(PYTHON) -c 'import ensurepip' 2>/dev/null || { \
	  echo "$(PYTHON) has no ensurepip: installing Debian's python3-venv"; \
	  $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q python3-venv; }
	$(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); exit 1; }

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $@

$(MICROPIP): | $(BIN)/python
	$(BIN)/python -m pip download --quiet --disable-pip-version-check --no-deps \
	  --only-binary=:all: --python-version 3.14 -d vendor/micropip micropip==0.11.1

# Chromium, for the browser kernel (`anode kernel --host browser`) and the
# browser tests: the system's when there is one (checked in a blink, so a
# second `make setup` does nothing); else Debian's package; else, where
# there is no apt-get or it has no `chromium`, Playwright's own download.
HAVE_CHROMIUM = test -n "$$ANODE_CHROMIUM" || test -x /usr/bin/chromium \
  || command -v chromium >/dev/null || command -v chromium-browser >/dev/null \
  || command -v google-chrome >/dev/null

chromium: | $(VENV)/.installed
	@$(HAVE_CHROMIUM) || { \
	  if command -v apt-get >/dev/null; then \
	    echo "Installing Chromium with apt-get (for the browser kernel and tests)"; \
	    $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q chromium; \
	  fi; \
	  $(HAVE_CHROMIUM) || $(BIN)/python -m playwright install chromium; }

# bubblewrap confines server-side kernels (kernel_headless/launch/sandbox.py): the
# system's when there is one; else Debian's package. Without it kernels run
# under Node's permission model alone, and `anode serve` says so.
bubblewrap:
	@command -v bwrap >/dev/null || { \
	  if command -v apt-get >/dev/null; then \
	    echo "Installing bubblewrap with apt-get (it confines kernels)"; \
	    $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q bubblewrap; \
	  else echo "bubblewrap is not installed: kernels will not be confined (see SECURITY.md)"; fi; }

# The page's Pyodide memory snapshot, which the relay serves at /snapshot/: a first
# visit starts from it instead of starting CPython and importing the client
# (anode/page_snapshot.py; made in headless Chromium, about 10 s). Keyed by its
# files' contents, so a stale one is never used; remade when they change.
$(SNAPSHOT): $(wildcard client/*.py shared_schema/*.py client/js/*.js client/js/*.mjs) \
	  client/pyscript.json index.html package-lock.json $(BUNDLES) \
	  | chromium $(VENV)/.installed node_modules/.installed
	$(BIN)/python -m anode.page_snapshot vendor/snapshot
	touch $@

# CodeMirror ships as many small ES modules; esbuild (an npm dev dependency)
# bundles each glue file of client/js/ with what it imports into one file.
vendor/bundles/%.js: client/js/%.mjs node_modules/.installed
	node_modules/.bin/esbuild $< --bundle --format=esm --minify --log-level=warning --outfile=$@

# `npm ci` empties node_modules first, so the stamp is always written after it.
node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@
