# textback — developer entry points. Everything runs from a local .venv that `make` builds.
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: test lint unit demo bench bench-quick soak clean

$(STAMP): setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $(STAMP)

lint: $(STAMP)
	$(VENV)/bin/ruff check textback tests bench
	$(VENV)/bin/mypy textback
	$(VENV)/bin/lint-imports

unit: $(STAMP)
	$(VENV)/bin/pytest -q

## make test: linters, then every test (pytest exits non-zero when nothing is collected)
test: lint unit

## make demo: the real listener/daemon against a replayed PBX capture
## make demo SERVE=1: then keep it up with the web app on 127.0.0.1:8025 (Ctrl-C stops)
demo: $(STAMP)
	$(PY) -m textback.demo $(if $(SERVE),--serve,)

## make bench: every bench/ script, full run, results in bench/results.json
bench: $(STAMP)
	sh bench/install-deps.sh
	$(PY) bench/run_all.py

bench-quick: $(STAMP)
	sh bench/install-deps.sh
	$(PY) bench/run_all.py --quick

soak: $(STAMP)
	$(VENV)/bin/pytest -q tests/reliability --soak --timeout=0

clean:
	rm -rf $(VENV) build *.egg-info
