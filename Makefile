# textback — developer entry points. Everything runs from a local .venv that `make` builds.
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: test lint unit install-check demo bench bench-quick soak clean

$(STAMP): setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $(STAMP)

lint: $(STAMP)
	$(VENV)/bin/ruff check textback tests bench
	$(VENV)/bin/mypy textback
	$(VENV)/bin/mypy --explicit-package-bases bench
	$(VENV)/bin/lint-imports

unit: $(STAMP)
	$(VENV)/bin/pytest -q

## make install-check: build the wheel and the sdist, install the wheel into a fresh venv
## (no checkout on its path), run `textback --version` and `check-config --strict` on the
## shipped example config, and check the docs the unit's Documentation= names are installed
DIST := build/dist
ICHK := build/install-check
install-check: $(STAMP)
	rm -rf $(DIST) $(ICHK)
	$(PY) -m build --no-isolation --sdist --wheel --outdir $(DIST) . > /dev/null
	$(PYTHON) -m venv $(ICHK)/venv
	$(ICHK)/venv/bin/pip install --quiet --disable-pip-version-check $(DIST)/textback-*.whl
	$(ICHK)/venv/bin/textback --version
	test -f $(ICHK)/venv/share/doc/textback/deploy.md
	install -m 0644 docs/textback.example.toml $(ICHK)/textback.toml
	printf 'example-secret\n' > $(ICHK)/pbx.secret && chmod 0600 $(ICHK)/pbx.secret
	cd $(ICHK) && venv/bin/textback check-config --strict --config textback.toml > /dev/null
	@echo "install-check: OK ($$(ls $(DIST) | tr "\n" " "))"

## make test: linters, every test (pytest exits non-zero when nothing is collected), then
## the built wheel installed and run in a fresh venv
test: lint unit install-check

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
	rm -rf $(VENV) build dist *.egg-info
