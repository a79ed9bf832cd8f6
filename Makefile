# The two commands a newcomer needs: `make demo` and `make test`.
# The virtual environment is created once (torch first, from this machine's pip cache/disk),
# then reused; it is rebuilt only when pyproject.toml changes.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: test test-fast demo bench venv clean system-deps

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

# Debian packages some tests use (a real redis-server, headless Chromium). Installed when missing
# and when we are root; otherwise those tests skip and say why.
system-deps:
	@if ! command -v redis-server >/dev/null || ! command -v chromium >/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	      redis-server chromium chromium-driver >/dev/null) || echo "system-deps: apt-get failed; dependent tests will skip"; \
	  else echo "system-deps: not root; redis/chromium tests will skip"; fi; fi

# Every test, spread over one worker per core (pytest-xdist). Tests that share a module's world run
# on one worker (loadgroup; conftest.py groups them), in the order conftest.py gives: the
# minutes-long tests first, so that the others run beside them.
PYTEST := $(PY) -m pytest -q -p no:cacheprovider -n auto --dist loadgroup --no-loadscope-reorder

test: $(STAMP) system-deps
	$(PYTEST) tests

# The edit loop: everything but the end-to-end runs (demo worlds, crawls, kills and reruns).
test-fast: $(STAMP) system-deps
	$(PYTEST) -m "not e2e" tests

demo: $(STAMP)
	$(VENV)/bin/pixelrec demo

bench: $(STAMP)
	@for script in bench/[!_]*.py; do echo "== $$script"; $(PY) $$script || exit 1; done

clean:
	rm -rf $(VENV) build *.egg-info
