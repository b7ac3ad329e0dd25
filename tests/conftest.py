"""Shared fixtures."""
from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Keep the scan cache of the test run out of the user's cache dir."""
    os.environ.setdefault("ASYNC_EXPERT_CACHE_DIR", str(tmp_path_factory.mktemp("scan-cache")))
    # every scan records itself in a memory file: keep the test run's out of the repo
    # (tests of the default location delete this variable with monkeypatch)
    os.environ.setdefault("ASYNC_EXPERT_MEMORY", str(tmp_path_factory.mktemp("memory") / "sub_agents_memory.md"))
