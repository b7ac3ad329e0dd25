# The two README commands: `make demo` (the main job on a real example) and `make test`.
PY ?= python3
PIP = $(PY) -m pip install -q --disable-pip-version-check

.PHONY: install install-test demo test docs bench

install:
	$(PIP) -e .

install-test:
	$(PIP) -e ".[test,browser,bench]"
	@command -v chromium >/dev/null 2>&1 || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null)

demo: install
	$(PIP) starlette httpx
	$(PY) examples/demo.py

docs:
	$(PY) -m async_expert_ext.docs

test: install-test
	$(PY) -m async_expert_ext.docs --check
	$(PY) -m pytest -q

bench: install-test
	$(PY) bench/run_all.py
