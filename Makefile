# `make demo` and `make test` are the two commands a fresh clone needs; both set up first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.stamp-dev

.PHONY: setup demo test lint typecheck pytest install-check bench clean chromium redis-server

setup: $(STAMP)

# Reinstall only when the project's requirements change.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(PY) examples/planner.py --log artifacts/planner.jsonl
	$(PY) -m specroute.engine.report._cli report artifacts/planner.jsonl --html artifacts/report.html
	@echo "Run log: artifacts/planner.jsonl; HTML report: file://$(CURDIR)/artifacts/report.html"

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy
	MYPYPATH=.ci/typing:examples $(VENV)/bin/mypy --strict examples/*.py

# The HTML report tests render in headless Chromium; Debian's package, installed as root.
chromium:
	command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium)

# The shared-state tests start a real redis-server on a free port; Debian's package, as root.
redis-server:
	command -v redis-server >/dev/null || (apt-get update -qq && apt-get install -y -qq redis-server)

pytest: $(STAMP) chromium redis-server
	$(PY) -m pytest -q $(if $(filter true,$(CI)),--hypothesis-profile=ci,)

# Both install kinds must import from outside the checkout: editable (the venv) and a plain wheel.
install-check: $(STAMP)
	cd / && $(CURDIR)/$(PY) -c "import specroute.engine, specroute.routes, specroute.cache"
	rm -rf $(VENV)/.install-check
	$(PY) -m pip install --quiet --no-deps --target $(VENV)/.install-check .
	@# PYTHONPATH entries process no .pth files, so the editable finder stays out of this import.
	cd / && PYTHONPATH=$(CURDIR)/$(VENV)/.install-check:$$($(CURDIR)/$(PY) -c "import sysconfig; print(sysconfig.get_paths()['purelib'])") \
		$$($(CURDIR)/$(PY) -c "import sys; print(sys._base_executable)") -c \
		"import specroute.engine, specroute.cache, specroute.routes as r; assert '.install-check' in r.__file__, r.__file__"
	rm -rf $(VENV)/.install-check

test: lint typecheck install-check pytest

bench: $(STAMP) redis-server
	$(PY) bench/overhead.py
	$(PY) bench/concurrency.py
	OPENBLAS_NUM_THREADS=1 $(PY) bench/cache.py
	$(PY) bench/llm_client.py
	$(PY) bench/speculation.py
	$(PY) bench/policy.py
	$(PY) bench/asyncio_bridge.py
	$(PY) bench/streams.py
	$(PY) bench/hedging.py
	$(PY) bench/tools.py
	OPENBLAS_NUM_THREADS=1 $(PY) bench/redis.py

clean:
	rm -rf $(VENV) build *.egg-info
