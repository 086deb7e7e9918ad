"""Compiled functions under threads and processes, and the on-disk kernel cache when damaged.

- one compiled function called from 8 threads at once gives what serial calls give;
- compiling from several threads at once (the same graph, and different graphs) works;
- two processes compiling the same graph into one fresh cache folder at the same time both
  succeed, and leave a cache that a third process loads without compiling;
- a damaged cache entry (the generated ``.py``, or Numba's ``.nbi`` index / ``.nbc`` data in
  ``__pycache__``) is rebuilt -- with a warning where the library can tell it was damaged --
  never a crash, and gives correct results.

Everything that needs a process of its own (a cache folder nobody in this process has
loaded from) runs ``CHILD`` with ``sys.executable``.  One small graph serves all of it: the
softmax cross-entropy of a linear classifier with L2, ``CE(X @ W, y) + reg * sum(W**2)``, on
named dims; ``reg`` makes a graph (and so a kernel) unique to a test where one is needed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from gradcheck import value_and_grad_cached

import symgrad as sg

THREADS = 8
WARNING = "kernel cache entry"  # what symgrad's warning about a damaged entry says
CALLS_PER_THREAD = 30
REG = 1e-3

# --- the graph and its NumPy reference ------------------------------------------------------


def linear_softmax(reg=REG):
    X = sg.tensor("X", ("N", "D"))
    W = sg.tensor("W", ("D", "C"))
    y = sg.tensor("y", ("N",), dtype="int64")
    loss = sg.losses.softmax_cross_entropy(X @ W, y) + reg * sg.losses.l2(W)
    return loss, W


def make_inputs(seed, n=12, d=5, c=4):
    rng = np.random.default_rng(seed)
    return {"X": rng.normal(size=(n, d)), "W": rng.normal(size=(d, c)), "y": rng.integers(0, c, size=n)}


def reference(X, W, y, reg=REG):
    s = X @ W
    m = s.max(axis=1, keepdims=True)
    e = np.exp(s - m)
    p = e / e.sum(axis=1, keepdims=True)
    n = len(y)
    lse = np.log(e.sum(axis=1)) + m[:, 0]
    value = float(np.mean(lse - s[np.arange(n), y]) + reg * np.sum(W**2))
    onehot = np.zeros_like(s)
    onehot[np.arange(n), y] = 1.0
    return value, X.T @ (p - onehot) / n + 2 * reg * W


def check_against_reference(value, grad, inputs, reg=REG):
    want_value, want_grad = reference(**inputs, reg=reg)
    assert value == pytest.approx(want_value, rel=1e-12)
    np.testing.assert_allclose(grad, want_grad, rtol=1e-10, atol=1e-14)


# --- (a) one compiled function, many threads --------------------------------------------------


def test_one_compiled_function_called_from_8_threads(backend):
    loss, W = linear_softmax()
    vg = value_and_grad_cached(loss, W, backend)
    # every thread has its own inputs, with its own sizes of the named dims N and C
    work = [
        [make_inputs(1000 * t + k, n=5 + (t + k) % 7, c=3 + t % 3) for k in range(CALLS_PER_THREAD)]
        for t in range(THREADS)
    ]
    serial = [[vg(**inputs) for inputs in calls] for calls in work]
    start = threading.Barrier(THREADS)

    def run(calls):
        start.wait()  # all threads call at the same moment
        return [vg(**inputs) for inputs in calls]

    for _ in range(2):
        with ThreadPoolExecutor(THREADS) as pool:
            threaded = list(pool.map(run, work))
        for t in range(THREADS):
            for k in range(CALLS_PER_THREAD):
                (v1, g1), (v2, g2) = serial[t][k], threaded[t][k]
                assert v2 == pytest.approx(v1, rel=1e-13, abs=0), (t, k)
                np.testing.assert_allclose(g2, g1, rtol=1e-13, atol=0, err_msg=f"thread {t} call {k}")
    # and the results are the right ones, not only the same ones
    for t in (0, THREADS - 1):
        value, grad = serial[t][0]
        check_against_reference(value, grad, work[t][0])
    # no two calls share an output buffer (each thread's arrays stayed what they were)
    grads = [g for calls in threaded for _, g in calls]
    assert len({id(g) for g in grads}) == len(grads)


def test_forward_and_backward_first_used_from_8_threads(backend):
    """forward()/backward() build their two kernels lazily; the first use comes from 8
    threads at once."""
    loss, W = linear_softmax(reg=2.5e-3)  # a graph of its own: its split is not built yet
    vg = sg.value_and_grad(loss, W, backend=backend)
    work = [make_inputs(50 + t, n=4 + t) for t in range(THREADS)]
    start = threading.Barrier(THREADS)

    def run(inputs):
        start.wait()
        value, residuals = vg.forward(**inputs)
        return value, vg.backward(residuals)

    with ThreadPoolExecutor(THREADS) as pool:
        results = list(pool.map(run, work))
    for inputs, (value, grad) in zip(work, results):
        check_against_reference(value, grad, inputs, reg=2.5e-3)


# --- (b) compiling from several threads at once -----------------------------------------------


def test_compile_the_same_graph_from_8_threads(backend):
    reg = 3.25e-3 if backend == "numba" else 3.5e-3  # a kernel this process has not loaded
    start = threading.Barrier(THREADS)

    def build(_):
        start.wait()
        loss, W = linear_softmax(reg)  # built in each thread: hash-consing gives one graph
        return sg.value_and_grad(loss, W, backend=backend)

    with ThreadPoolExecutor(THREADS) as pool:
        compiled = list(pool.map(build, range(THREADS)))
    inputs = make_inputs(7)
    for vg in compiled:
        value, grad = vg(**inputs)
        check_against_reference(value, grad, inputs, reg=reg)
    assert len({c.outputs[0] for c in compiled}) == 1  # one graph, interned once
    if backend == "numba":
        assert len({c.source for c in compiled}) == 1


def test_compile_different_graphs_from_threads(backend):
    regs = [4e-3, 5e-3]  # kernels this process has not loaded
    regs = [r + (0.5e-4 if backend == "numpy" else 0.0) for r in regs]
    start = threading.Barrier(len(regs) + 2)

    def build(job):
        start.wait()
        if job < len(regs):
            loss, W = linear_softmax(regs[job])
            return sg.value_and_grad(loss, W, backend=backend)
        # and a forward-only compile and an elementwise graph, built concurrently too
        x = sg.tensor("x", ("N",))
        if job == len(regs):
            return sg.compile([sg.softplus(x) * 1.75, sg.sum(sg.sigmoid(x))], backend=backend)
        return sg.value_and_grad(sg.sum(sg.tanh(x) * 2.75), x, backend=backend)

    with ThreadPoolExecutor(len(regs) + 2) as pool:
        compiled = list(pool.map(build, range(len(regs) + 2)))
    inputs = make_inputs(8)
    for reg, vg in zip(regs, compiled):
        value, grad = vg(**inputs)
        check_against_reference(value, grad, inputs, reg=reg)
    xs = np.array([-3.0, 0.0, 0.5, 20.0])
    sp_, total = compiled[len(regs)](x=xs)
    np.testing.assert_allclose(sp_, 1.75 * np.logaddexp(0.0, xs), rtol=1e-14)
    assert total == pytest.approx(np.sum(1 / (1 + np.exp(-xs))), rel=1e-14)
    value, grad = compiled[-1](x=xs)
    assert value == pytest.approx(2.75 * np.sum(np.tanh(xs)), rel=1e-14)
    np.testing.assert_allclose(grad, 2.75 * (1 - np.tanh(xs) ** 2), rtol=1e-13)


# --- processes --------------------------------------------------------------------------------

# A process compiling the graph (numba backend) into $SYMGRAD_CACHE_DIR.  Arguments: reg,
# then optionally READY GO: it creates READY when symgrad is imported and the graph built,
# and compiles when GO exists, so two processes compile at the same moment.
CHILD = r"""
import json, sys, time
from pathlib import Path
import numpy as np
import symgrad as sg

reg = float(sys.argv[1])
X = sg.tensor("X", ("N", "D"))
W = sg.tensor("W", ("D", "C"))
y = sg.tensor("y", ("N",), dtype="int64")
loss = sg.losses.softmax_cross_entropy(X @ W, y) + reg * sg.losses.l2(W)
if len(sys.argv) > 3:
    Path(sys.argv[2]).touch()
    deadline = time.monotonic() + 60
    while not Path(sys.argv[3]).exists() and time.monotonic() < deadline:
        time.sleep(0.0005)
vg = sg.value_and_grad(loss, W)
rng = np.random.default_rng(0)
inputs = dict(X=rng.normal(size=(12, 5)), W=rng.normal(size=(5, 4)), y=rng.integers(0, 4, size=12))
value, grad = vg(**inputs)
s = vg.stats
print(json.dumps({"value": value, "grad": grad.tolist(), "cache_hit": s.cache_hit, "warm": s.warm,
                  "codegen_skipped": s.codegen_skipped}))
"""


def child_inputs():
    rng = np.random.default_rng(0)
    return {"X": rng.normal(size=(12, 5)), "W": rng.normal(size=(5, 4)), "y": rng.integers(0, 4, size=12)}


def child_env(cache_dir: Path) -> dict:
    env = dict(os.environ)
    env["SYMGRAD_CACHE_DIR"] = str(cache_dir)
    env["PYTHONWARNINGS"] = "default"  # warnings reach stderr
    # the children import the symgrad this test imported
    root = str(Path(sg.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join([root] + [p for p in [env.get("PYTHONPATH")] if p])
    return env


def start_child(script: Path, cache_dir: Path, reg=REG, barrier=()) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(script), repr(reg), *map(str, barrier)],
        env=child_env(cache_dir),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


class Run:
    """A finished child: return code, its JSON result (if any) and stderr."""

    def __init__(self, proc: subprocess.Popen):
        out, self.err = proc.communicate(timeout=180)
        self.rc = proc.returncode
        self.result = json.loads(out.strip().splitlines()[-1]) if self.rc == 0 and out.strip() else None

    def describe(self):
        return f"rc={self.rc}\nstderr:\n{self.err[-3000:]}"

    def check_ok(self, reg=REG):
        assert self.rc == 0, self.describe()
        assert "Traceback" not in self.err, self.describe()
        check_against_reference(self.result["value"], np.array(self.result["grad"]), child_inputs(), reg)


@pytest.fixture(scope="module")
def child_script(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("child") / "child.py"
    path.write_text(CHILD)
    return path


def snapshot(cache_dir: Path) -> dict:
    """Every file of the cache with its size, modification time and content."""
    return {
        str(p.relative_to(cache_dir)): (p.stat().st_size, p.stat().st_mtime_ns, p.read_bytes())
        for p in sorted(cache_dir.rglob("*"))
        if p.is_file()
    }


# --- (c) two processes, one fresh cache -------------------------------------------------------


def test_two_processes_compile_into_one_fresh_cache_at_once(child_script, tmp_path):
    cache = tmp_path / "cache"  # does not exist yet: both processes create it
    ready = [tmp_path / "ready0", tmp_path / "ready1"]
    go = tmp_path / "go"
    procs = [start_child(child_script, cache, barrier=(r, go)) for r in ready]
    deadline = time.monotonic() + 60
    while not all(r.exists() for r in ready) and time.monotonic() < deadline:
        if any(p.poll() is not None for p in procs):
            break
        time.sleep(0.005)
    go.touch()
    runs = [Run(p) for p in procs]
    for run in runs:
        run.check_ok()
        assert WARNING not in run.err, run.describe()
    assert runs[0].result["value"] == runs[1].result["value"]
    assert runs[0].result["grad"] == runs[1].result["grad"]
    # (which of the two reports a cache hit depends on who wrote the module first)

    # a usable cache: one kernel module, Numba's index and data, no temporary files
    modules = sorted(p.name for p in cache.glob("*.py"))
    assert len(modules) == 1, sorted(p.name for p in cache.iterdir())
    assert not [p for p in cache.rglob("*") if p.suffix == ".tmp" or p.name.endswith(".tmp")]
    assert list(cache.glob("__pycache__/*.nbi")) and list(cache.glob("__pycache__/*.nbc"))

    # a third process loads it: a cache hit for symgrad, and Numba loads its machine code
    # instead of compiling again (which would rewrite the index and data files)
    before = snapshot(cache)
    third = Run(start_child(child_script, cache))
    third.check_ok()
    assert third.result["cache_hit"] is True
    assert WARNING not in third.err, third.describe()
    assert snapshot(cache) == before, "the third process rewrote the cache instead of loading it"
    # ... and a warm start: the two racers left one intact record of the optimised graph
    # and one of the kernel, so the third neither derived, simplified nor generated code
    assert third.result["warm"] is True and third.result["codegen_skipped"] is True
    assert len(list(cache.glob("g_*.rec"))) == 1 and len(list(cache.glob("b_*.rec"))) == 1


# --- (d) damaged cache entries ----------------------------------------------------------------


def _truncate(path: Path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _not_utf8(path: Path):
    path.write_bytes(bytes(np.random.default_rng(0).integers(128, 256, size=2000, dtype=np.uint8)))


def _zero_elf_header(path: Path):
    data = bytearray(path.read_bytes())
    at = data.index(b"\x7fELF")
    data[at : at + 64] = bytes(64)  # the object file's ELF header
    path.write_bytes(bytes(data))


def _garbage(path: Path):
    path.write_bytes(b"this is not a pickle" * 50)


# variant: (file to damage (glob in the cache folder), how, the library can tell it was
# damaged, check that the next process then loads the repaired entry)
DAMAGE = {
    "py-truncated": ("k_*.py", _truncate, False, True),
    "py-not-utf8": ("k_*.py", _not_utf8, False, False),
    "nbi-truncated": ("__pycache__/*.nbi", _truncate, True, True),
    "nbc-truncated": ("__pycache__/*.nbc", _truncate, True, False),
    "nbc-elf-header-zeroed": ("__pycache__/*.nbc", _zero_elf_header, True, False),
}
REG_DISK = 6.125e-3  # the graph of the damage tests: compiled by children only, and by
# test_damaged_numba_index_warns_in_process in this process


@pytest.fixture(scope="module")
def pristine_cache(child_script, tmp_path_factory) -> Path:
    """A cache folder holding the REG_DISK kernel, compiled by another process."""
    cache = tmp_path_factory.mktemp("pristine") / "cache"
    Run(start_child(child_script, cache, reg=REG_DISK)).check_ok(REG_DISK)
    return cache


@pytest.fixture(scope="module")
def damaged_runs(child_script, pristine_cache, tmp_path_factory):
    """Copy the pristine cache per variant, damage each copy, run a process on every copy
    (all at once), then a second process on the copies whose variant asks for it.

    Returns variant -> (cache folder, first run, snapshot of the cache between the runs,
    second run or None, generated source)."""
    base = tmp_path_factory.mktemp("damage")
    (module,) = pristine_cache.glob("k_*.py")
    source = module.read_text()
    caches = {}
    for name, (pattern, damage, _, _) in DAMAGE.items():
        cache = base / name
        shutil.copytree(pristine_cache, cache)
        (target,) = cache.glob(pattern)
        damage(target)
        caches[name] = cache
    first = {name: start_child(child_script, cache, reg=REG_DISK) for name, cache in caches.items()}
    first = {name: Run(proc) for name, proc in first.items()}
    between = {name: snapshot(cache) for name, cache in caches.items()}
    second = {
        name: start_child(child_script, caches[name], reg=REG_DISK)
        for name, run in first.items()
        if run.rc == 0 and DAMAGE[name][3]
    }
    second = {name: Run(proc) for name, proc in second.items()}
    return {name: (caches[name], first[name], between[name], second.get(name), source) for name in DAMAGE}


@pytest.mark.parametrize("variant", list(DAMAGE))
def test_damaged_cache_entry_is_rebuilt_not_a_crash(damaged_runs, variant):
    cache, first, between, second, source = damaged_runs[variant]
    _, _, detectable, check_next = DAMAGE[variant]
    first.check_ok(REG_DISK)  # no crash, correct results
    # A damaged module file is rewritten and Numba's intact machine code reused (a hit);
    # damaged machine code is detected, deleted and compiled again (a miss).
    assert first.result["cache_hit"] is not detectable, first.describe()
    if detectable:
        assert WARNING in first.err and "recompiling" in first.err, first.describe()
    # the entry is whole again: the module is the generated source, Numba's files are there
    (module,) = cache.glob("k_*.py")
    assert module.read_text() == source
    assert len(list(cache.glob("__pycache__/*.nbi"))) == 1
    assert list(cache.glob("__pycache__/*.nbc"))
    if check_next:
        # the next process loads it without a warning and without compiling
        assert second is not None
        second.check_ok(REG_DISK)
        assert second.result["cache_hit"] is True
        assert WARNING not in second.err, second.describe()
        assert snapshot(cache) == between, "the next process compiled again instead of loading"


def test_damaged_numba_index_warns_in_process(pristine_cache, tmp_path, monkeypatch):
    """The same through pytest.warns: a cache populated by another process, its Numba index
    truncated, then loaded here (a graph this process has not compiled before)."""
    cache = tmp_path / "cache"
    shutil.copytree(pristine_cache, cache)
    (index,) = cache.glob("__pycache__/*.nbi")
    _truncate(index)
    monkeypatch.setenv("SYMGRAD_CACHE_DIR", str(cache))
    loss, W = linear_softmax(REG_DISK)
    with pytest.warns(UserWarning, match="recompiling"):
        vg = sg.value_and_grad(loss, W)
    assert vg.stats.cache_hit is False
    inputs = child_inputs()
    value, grad = vg(**inputs)
    check_against_reference(value, grad, inputs, REG_DISK)
    (index,) = cache.glob("__pycache__/*.nbi")  # rebuilt whole
    assert index.stat().st_size > 0
