"""Shared test setup: one kernel cache folder per test run, the backend parameter, and
scripts run in a new Python process."""

import os
import subprocess
import sys
import tempfile
from pathlib import Path

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


@pytest.fixture
def run_python(tmp_path):
    """``run(source, *args)``: the standard output of ``source`` run as a script in a new
    Python process that imports this checkout's symgrad, with the kernel cache folder
    ``tmp_path / "cache"`` (kept between runs of one test) and glibc's default malloc
    settings (Dask's nanny, tests/test_dask.py, leaves ``MALLOC_TRIM_THRESHOLD_`` in this
    process's environment, and a threshold set so is not adapted: see ``arrays.reserve``).
    A script that fails fails the test."""
    import symgrad

    root = str(Path(symgrad.__file__).resolve().parents[1])
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    env["SYMGRAD_CACHE_DIR"] = str(tmp_path / "cache")
    env["PYTHONPATH"] = os.pathsep.join([root] + [p for p in [env.get("PYTHONPATH")] if p])
    script = tmp_path / "child.py"

    def run(source: str, *args: str) -> str:
        script.write_text(source)
        out = subprocess.run(
            [sys.executable, str(script), *args], env=env, capture_output=True, text=True,
            timeout=600,
        )
        assert out.returncode == 0, out.stderr[-3000:]
        return out.stdout

    return run
