"""The kernel cache's management: info, clear, and the size cap with LRU eviction.

Each test points ``$SYMGRAD_CACHE_DIR`` at its own folder and forgets the kernels this
process loaded, so kernels are really written (and compiled) there.
"""

import subprocess
import sys

import numpy as np
import pytest

import symgrad as sg
from symgrad.backends import kernel_cache, numba_backend

x = sg.tensor("x", (3,))
# three small kernels that differ only in a constant (so each is its own cache entry)
GRAPHS = [sg.sum(sg.tanh(x) * c) for c in (2.0, 3.0, 5.0)]
VALUE = np.array([0.1, -0.2, 0.3])


def compiled(i):
    return sg.compile(GRAPHS[i])


def expected(i):
    return float(np.sum(np.tanh(VALUE) * (2.0, 3.0, 5.0)[i]))


def keys():
    return {e.key for e in kernel_cache.entries()}


def test_info_counts_kernels_and_bytes(empty_cache):
    assert sg.cache.info().entries == 0
    f = compiled(0)
    info = sg.cache.info()
    assert info.path == empty_cache
    assert info.entries == 1 and info.bytes > 0
    assert info.max_bytes == sg.cache.DEFAULT_MAX_MB * 2**20
    assert "1 kernels" in str(info)
    assert f(x=VALUE) == pytest.approx(expected(0))


def test_clear_removes_every_kernel_and_loaded_ones_keep_working(empty_cache):
    fs = [compiled(0), compiled(1)]
    assert sg.cache.clear() == 2
    assert sg.cache.info().entries == 0
    assert not list(empty_cache.glob("k_*")) and not list(empty_cache.glob("__pycache__/k_*"))
    for i, f in enumerate(fs):
        assert f(x=VALUE) == pytest.approx(expected(i))


def test_size_cap_evicts_least_recently_used(empty_cache, monkeypatch):
    first = compiled(0)
    one = sg.cache.info().bytes
    second = compiled(1)
    # a new process loads the first kernel again: it becomes the most recently used
    monkeypatch.setattr(numba_backend, "_loaded", {})
    assert compiled(0).stats.cache_hit
    before = keys()
    monkeypatch.setenv("SYMGRAD_CACHE_MAX_MB", str(2.5 * one / 2**20))
    third = compiled(2)
    after = keys()
    assert len(after) == 2 and sg.cache.info().bytes <= 2.5 * one
    new = (after - before).pop()
    (gone,) = before - after
    assert gone not in after and new in after
    # the one evicted is the second kernel (least recently used), whose key differs from
    # the first's: recompiling the second is a miss, the first is still a hit
    monkeypatch.setattr(numba_backend, "_loaded", {})
    assert compiled(0).stats.cache_hit
    assert not compiled(1).stats.cache_hit
    # kernels in use were never invalidated
    for i, f in enumerate([first, second, third]):
        assert f(x=VALUE) == pytest.approx(expected(i))


def test_cap_zero_keeps_only_the_newest(empty_cache, monkeypatch):
    monkeypatch.setenv("SYMGRAD_CACHE_MAX_MB", "0")
    compiled(0)
    compiled(1)
    assert sg.cache.info().entries == 1


@pytest.mark.parametrize("text", ["lots", "-1", "nan"])
def test_bad_cap_is_a_clear_error(empty_cache, monkeypatch, text):
    monkeypatch.setenv("SYMGRAD_CACHE_MAX_MB", text)
    with pytest.raises(sg.ArgumentError, match="SYMGRAD_CACHE_MAX_MB"):
        sg.cache.info()


def test_import_does_not_import_numba():
    code = "import sys, symgrad; assert 'numba' not in sys.modules, 'numba imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_records_rescan_the_folder_only_when_they_could_pass_the_cap(empty_cache, monkeypatch):
    # Every compile writes a small warm-start record, the NumPy backend's too; scanning the
    # whole folder after each one made thousands of compiles in one folder quadratic.
    scans = []
    real = kernel_cache.entries
    monkeypatch.setattr(kernel_cache, "entries", lambda *a, **k: scans.append(1) or real(*a, **k))
    y = sg.tensor("y", (3,))
    for c in range(1, 41):
        sg.value_and_grad(sg.sum(sg.tanh(y) * c), y, backend="numpy")
    assert sg.cache.info().records == 40
    assert len(scans) <= 2  # the first write (nothing known yet) and the info() call
    # under a cap that a few records exceed, every write that could pass it evicts
    one = max(p.stat().st_size for p in empty_cache.glob("g_*.rec"))
    monkeypatch.setenv("SYMGRAD_CACHE_MAX_MB", str(45 * one / 2**20))
    for c in range(41, 81):
        sg.value_and_grad(sg.sum(sg.tanh(y) * c), y, backend="numpy")
        assert sum(p.stat().st_size for p in empty_cache.glob("*.rec")) <= 45 * one
