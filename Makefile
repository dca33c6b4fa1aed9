# LiveCharts: `make run` for the embedded demo, `make test` for the whole suite.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PG_TEST_URL ?= postgres://postgres@127.0.0.1:5432/test
# `make run PORT=8001` when 8000 is taken.
PORT ?= 8000

.PHONY: run test lint format clean bench

$(PY):
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "LiveCharts needs Python 3.11 or newer" or 0)'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

# Runtime dependencies only; reinstalled when pyproject.toml changes. Then every installed module
# is byte-compiled, on every core at once (COMPILE): pip alone would do it on one (--no-compile
# skips that). Compiled they must be: where PYTHONDONTWRITEBYTECODE is set (this project's
# machines set it), Python never writes what it compiles on import, so each process start
# compiled Django, Twisted, redis-py... again: 2.3-2.6 s of CPU to load the app, against 0.75-0.8.
# A file that does not compile (a package's test data) only costs that file its speed-up.
COMPILE = $(PY) -m compileall -q -j 0 "$$($(PY) -c 'import sysconfig; print(sysconfig.get_path("purelib"))')" \
	>/dev/null || echo "some installed files did not byte-compile: Python compiles them on import"
$(VENV)/.runtime: pyproject.toml | $(PY)
	$(PY) -m pip install -q --no-compile -e .
	$(COMPILE)
	@touch $@

# The test tools, and the bench's peers (Dash, gunicorn, Bokeh, django-eventstream), whose real
# messages tests/bench reads: under CI=true a missing one fails rather than skips.
$(VENV)/.test: pyproject.toml | $(PY)
	$(PY) -m pip install -q --no-compile -e '.[test]'
	$(COMPILE)
	@touch $@ $(VENV)/.runtime

run: $(VENV)/.runtime
	$(PY) manage.py migrate --noinput -v 0
	$(PY) manage.py demo
	$(PY) manage.py serve --port $(PORT)

lint: $(VENV)/.test
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(VENV)/.test
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# The whole suite: lint, migrations in step, the browser client's pure modules under node,
# everything on SQLite, then every database test again on PostgreSQL.
test: lint
	$(PY) manage.py makemigrations --check --dry-run -v 0
	@$(PY) -m tests.services node; rc=$$?; \
	  if [ $$rc -eq 0 ]; then node --test tests/static/; elif [ $$rc -ne 3 ]; then exit $$rc; fi
	$(PY) -m pytest
	@$(PY) -m tests.services postgres; rc=$$?; \
	  if [ $$rc -eq 0 ]; then DATABASE_URL=$(PG_TEST_URL) $(PY) -m pytest -m "not e2e and not browser" -p no:cacheprovider -q; \
	  elif [ $$rc -ne 3 ]; then exit $$rc; fi

# The bench's extra on top of the test extra (which has the peers): the sampling profiler.
$(VENV)/.bench: pyproject.toml | $(PY)
	$(PY) -m pip install -q --no-compile -e '.[test,bench]'
	$(COMPILE)
	@touch $@ $(VENV)/.test $(VENV)/.runtime

# Benchmarks (bench/): rewrites the measured sections of docs/performance.md; stopped after 20 min.
bench: $(VENV)/.bench
	timeout 1200 $(PY) -m bench

clean:
	rm -rf $(VENV) db.sqlite3 db.sqlite3-wal db.sqlite3-shm staticfiles .pytest_cache .ruff_cache
