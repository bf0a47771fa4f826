# The README's first two commands: `make quickstart` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
# A pinned CPU wheel by default; `make quickstart TORCH=torch` (or a CUDA index) for other builds.
TORCH  ?= torch==2.13.0
BIN     = $(VENV)/bin
STAMP  := $(shell date +%Y%m%d-%H%M%S)

.PHONY: install quickstart test test-fast bench browser postgres fashion clean

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH)" -e ".[test]"  # the test tools and, through `all`, every extra
	touch $@

install: $(BIN)/.installed

# Train the seed CNN and the default DCGAN on the default dataset, evaluate both, print where it all is.
quickstart: install
	$(BIN)/mnistlab train cnn --preset seed --out runs/quickstart-$(STAMP)/cnn
	$(BIN)/mnistlab evaluate cnn runs/quickstart-$(STAMP)/cnn
	$(BIN)/mnistlab train gan --preset default --time-budget 240 --out runs/quickstart-$(STAMP)/gan
	$(BIN)/mnistlab evaluate gan runs/quickstart-$(STAMP)/gan --classifier runs/quickstart-$(STAMP)/cnn -n 5000
	@echo "quickstart done: runs/quickstart-$(STAMP)/  (mnistlab serve --cnn runs/quickstart-$(STAMP)/cnn --gan runs/quickstart-$(STAMP)/gan)"

# Debian's Chromium for the browser test, when apt can install it (skipped with a reason otherwise).
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) || echo "no chromium: the browser test will be skipped"; }

# Debian's PostgreSQL for the shared-study sweep test (started by the test itself, on 127.0.0.1).
postgres:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  (apt-get update -qq && apt-get install -y -qq postgresql >/dev/null) || echo "no postgresql: the shared-study test will be skipped"; }

# Debian's Fashion-MNIST for the system-copy dataset test (skipped with a reason otherwise).
fashion:
	@[ -d /usr/share/datasets/fashion-mnist ] || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  (apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist >/dev/null) || echo "no dataset-fashion-mnist: its test will be skipped"; }

# Two test processes: most tests are single-threaded (one compute thread each, see tests/conftest.py).
test: install browser postgres fashion
	$(BIN)/python -m pytest -n 2

# The edit loop: everything but the tests marked slow (real browsers, databases, training for seconds, and the
# docstring examples, which train real runs).
test-fast: install
	$(BIN)/python -m pytest -n 2 -m "not slow and not browser"

bench: install
	$(BIN)/python -m mnistlab.bench all

clean:
	rm -rf $(VENV) build *.egg-info
