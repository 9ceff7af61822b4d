# Two commands set everything up: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: test lint typecheck pytest demo bench install clean

# Reinstall only when the project metadata changes, so the second run is fast.
# The notebooks' kernel "python3" is registered in the venv, so it is the venv's python.
# pip's output goes to a log; a failure shows its end, a success one progress line.
LOG    := $(VENV)/install.log
PIP    := $(PY) -m pip --disable-pip-version-check --no-input
$(STAMP): pyproject.toml siotools/protocol/_columns.c
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@printf 'siotools: installing into $(VENV) with every extra (about a minute, once)... '
	@( $(PIP) install --quiet --upgrade pip \
	  && $(PIP) install --quiet -e '.[all,dev]' \
	  && $(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (siotools)" \
	) > $(LOG) 2>&1 || { echo failed; tail -n 30 $(LOG); echo "(the whole log: $(LOG))"; exit 1; }
	@touch $(STAMP)
	@echo done

install: $(STAMP)

lint: $(STAMP)
	$(VENV)/bin/ruff check siotools tui tests bench
	$(VENV)/bin/ruff format --check siotools tui tests bench

typecheck: $(STAMP)
	$(VENV)/bin/mypy siotools tui

# The suite mostly waits on real servers (Redis, Node peers, timeouts), so three workers
# run it in about a third of the time even on two cores. PYTEST_WORKERS=0 runs it serially.
PYTEST_WORKERS ?= 3
pytest: $(STAMP)
	$(PY) -m pytest -q -n $(PYTEST_WORKERS) $(PYTEST_ARGS)

test: lint typecheck pytest

# The demo cluster plus `siotools tui` on it; quitting the TUI stops the cluster.
# Without a terminal it runs headless until Ctrl-C. E.g. make demo DEMO_ARGS=--node-peer
demo: $(STAMP)
	$(VENV)/bin/siotools demo --with-tui $(DEMO_ARGS)

bench: $(STAMP)
	$(PY) -m bench

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
