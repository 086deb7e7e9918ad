"""Shared test setup: one kernel cache folder per test run, and the backend parameter."""

import os
import tempfile

import numpy as np
import pytest

# One cache folder for the whole run, so every Numba kernel is compiled once and shared by
# all tests (and by subprocesses the tests start).
os.environ.setdefault("SYMGRAD_CACHE_DIR", tempfile.mkdtemp(prefix="symgrad-test-cache-"))

BACKENDS = ["numpy", "numba"]


@pytest.fixture(params=BACKENDS)
def backend(request):
    """Run a test once per backend."""
    return request.param


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture
def empty_cache(tmp_path, monkeypatch):
    """A kernel cache folder of this test's own, empty, with the default size cap, and no
    kernel loaded in this process yet (each is loaded from that folder or compiled)."""
    from symgrad.backends import numba_backend

    monkeypatch.setenv("SYMGRAD_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("SYMGRAD_CACHE_MAX_MB", raising=False)
    monkeypatch.setattr(numba_backend, "_loaded", {})
    return tmp_path
