# edgenn — the two set-up commands are `make demo` and `make test`; both install what they need.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
NPM_STAMP := node_modules/.installed
OUT    := out

.PHONY: setup demo test test-host test-firmware test-e2e bench dist lint docs clean

setup: $(STAMP) $(NPM_STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	$(BIN)/python -m edgenn.fleet.board_lib  # the board's MQTT client (an sdist pip cannot download), sha256 pinned
	touch $@

$(NPM_STAMP): package.json
	npm install --no-audit --no-fund --silent
	touch $@

demo: setup
	$(BIN)/python -m edgenn.demo --out $(OUT)

test: setup docs
	$(BIN)/ruff check host_tools tests bench
	$(BIN)/pytest

# The documentation site (mkdocs.yml, docs/): --strict makes every warning (a broken link, a page
# missing from the nav, the command reference's marker gone) an error, so CI catches it.
docs: setup
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

test-host: setup
	$(BIN)/pytest tests/host

test-firmware: setup
	$(BIN)/pytest tests/firmware

test-e2e: setup
	$(BIN)/pytest tests/e2e

BENCH_STAMP := $(VENV)/.bench-installed

$(BENCH_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -e '.[test,bench]'
	touch $@

bench: setup $(BENCH_STAMP)
	$(BIN)/python -m bench.run

# the runtime as mip packages: prebuilt .mpy per architecture and .mpy ABI (docs/install.md)
dist: setup
	$(BIN)/python -m edgenn.dist dist/mip

lint: setup
	$(BIN)/ruff check host_tools tests bench
	$(BIN)/ruff format --check host_tools tests bench

clean:
	rm -rf $(OUT) .pytest_cache bench/results site dist
