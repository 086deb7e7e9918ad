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
