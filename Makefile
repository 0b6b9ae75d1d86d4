# Two commands for a newcomer: `make demo` (set up, run the main job on the local
# stack) and `make test` (set up, run every test against the real services).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: setup demo test lint up down status clean helm lock browser

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@command -v java >/dev/null || { echo "error: java not found; install a JDK 17+ (21+ for OpenSearch 3)"; exit 1; }
	@command -v mvn >/dev/null || { echo "error: mvn not found; install Maven 3.6+"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $@

# The image's dependency lock (deploy/image/requirements.lock: versions and hashes),
# regenerated from pyproject.toml's runtime dependencies and its tracing extra (the image
# sends traces when observability.tracing asks) after changing them.
lock:
	$(PYTHON) -m venv $(VENV)-lock && $(VENV)-lock/bin/pip install --quiet pip-tools
	$(VENV)-lock/bin/pip-compile --quiet --generate-hashes --strip-extras --allow-unsafe --extra tracing \
	    --no-emit-index-url --no-emit-find-links -o deploy/image/requirements.lock pyproject.toml

# The pinned Helm the chart tests render with; built once (about 3.5 min) with Go.
helm:
	@bash deploy/helm/install-helm.sh

# A real browser for the operator console's test: Debian's Chromium (driven by Playwright
# with the system browser; no browser download).
browser:
	@command -v chromium >/dev/null || { apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }
	@chromium --version

demo: setup
	$(BIN)/cqrs demo

test: setup
	$(BIN)/pytest

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .
	$(BIN)/lint-imports

up: setup
	$(BIN)/cqrs stack up

down: setup
	$(BIN)/cqrs stack down

status: setup
	$(BIN)/cqrs stack status

clean: down
	rm -rf .cqrs-stack
