# The two README commands: `make demo` (the main job on a real example) and `make test`.
PY ?= python3
PIP = $(PY) -m pip install -q --disable-pip-version-check

.PHONY: install install-test demo test docs bench

install:
	$(PIP) -e .

install-test:
	$(PIP) -e ".[test,browser,bench]"
	@command -v chromium >/dev/null 2>&1 || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null)

# The main job on a real example: scan a real installed package (starlette) and a small
# FastAPI service, then run the service under the instrumented event loop, then recall
# what the memory file learned.
demo: install
	$(PIP) fastapi starlette httpx
	$(PY) -m async_expert_ext scan examples/buggy_service.py --exit-zero
	$(PY) -m async_expert_ext scan starlette --severity warning --exit-zero
	$(PY) -m async_expert_ext profile examples/buggy_service.py --exit-zero
	$(PY) -m async_expert_ext memory --stats

docs:
	$(PY) -m async_expert_ext.docs

test: install-test
	$(PY) -m async_expert_ext.docs --check
	$(PY) -m pytest -q

bench: install-test
	$(PY) bench/run_all.py
