"""Time to first result with ``backend="auto"``, against ``backend="numba"``, cold cache.

For every workload of ``benchmarks/run.py``, in a fresh Python process with an empty kernel
cache folder (``--repeats`` times, medians reported):

* ``construct``   -- wall time of ``sg.value_and_grad(f, wrt, backend=...)``;
* ``first``       -- from its return to the first result (the target for ``auto``: <= 0.3 s);
* ``ready``       -- (auto) from its return until the Numba kernel answers calls, while the
  process keeps calling the function in a loop as an interactive user would;
* ``calls``       -- (auto) how many calls the NumPy interpreter answered meanwhile.

Every result is checked against the hand-written Numba version (``reference.py``) to the
tolerance of ``run.py``.  BLAS runs single-threaded, as in ``run.py``.

``--warm`` measures the warm start instead: a cold run fills a cache folder, then

* ``fresh``       -- a new process from ``import symgrad`` (building the graph,
  ``value_and_grad``, loading the inputs) to the first result, with its parts: the import,
  and the Numba time of ``stats.numba`` (importing Numba and loading the kernel);
* ``numba import`` -- a new process's ``import numba`` alone, and ``bare njit`` -- from
  ``import numba`` to the first result of a cached ``@njit(cache=True)`` function of the
  same kind (the Numba start-up any user of Numba pays: its import, its first load, which
  imports SciPy for BLAS);
* ``in process``  -- in a process where Numba is loaded and a kernel already ran (one with
  arrays and a matrix product: ``run.startup_graph``; what it starts is paid once a
  process), from building the graph to the first result, with its parts: building the graph,
  ``value_and_grad`` (finding the records, Numba loading the kernel), the first call, and,
  for scale, the same call again (the kernel's own time, best of 5); and the passes of
  Python's garbage collector that fell within the span.

Reading the workload's inputs from disk is not counted in either: a user's data is not part
of symgrad's start.

Each is checked to have taken the warm path (``stats.warm`` and ``stats.codegen_skipped``).

``--per-call`` times one checked call of ``scalar_slide`` (``vg(x=..., y=..., z=...)``,
three Python floats in, ``(value, [three grads])`` out) against a bare ``@njit`` call of the
same formula returning the same four numbers (``reference._scalar_slide_nb``), in one
process, interleaved in rounds (medians of per-round ratios).

Usage::

    python benchmarks/latency.py                       # every workload, 3 repeats
    python benchmarks/latency.py --only svm --repeats 1
    python benchmarks/latency.py --warm --repeats 5    # the warm-start table
    python benchmarks/latency.py --per-call            # scalar_slide per call
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from run import child_env, marked_json

HERE = Path(__file__).resolve().parent
MARK = "@@LATENCY@@ "


def child(name: str, backend: str, inputs_path: str) -> None:
    sys.path.insert(0, str(HERE))
    import numpy as np
    from run import _import_symgrad, build_graph

    sg = _import_symgrad()
    with np.load(inputs_path) as data:
        inputs = {k: (float(data[k]) if data[k].ndim == 0 else data[k]) for k in data.files}
    f, wrt = build_graph(sg, name)
    t0 = time.perf_counter()
    vg = sg.value_and_grad(f, wrt, backend=backend)
    t1 = time.perf_counter()
    first = vg(**inputs)
    t2 = time.perf_counter()
    out = {"construct": t1 - t0, "first": t2 - t1, "tier": vg.stats.tier}
    results = [first]
    if backend == "auto":
        while not vg.ready():
            results.append(vg(**inputs))
        vg.wait()
        out["ready"] = time.perf_counter() - t1
        out["calls"] = vg.stats.numpy_calls
        results.append(vg(**inputs))
        out["last_tier"] = vg.stats.tier
    loss = [float(r[0]) for r in results]
    out["losses"] = [loss[0], loss[-1]]
    grads = [np.asarray(g) for g in results[0][1]]
    last = [np.asarray(g) for g in results[-1][1]]
    out["first_vs_last"] = max(
        [abs(loss[0] - loss[-1]) / max(abs(loss[-1]), 1e-300)]
        + [
            float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))
            for a, b in zip(grads, last)
        ]
    )
    print(MARK + json.dumps(out), flush=True)


def warm_child(mode: str, name: str, inputs_path: str) -> None:
    """One warm-start measurement (see the module docstring); prints its JSON."""
    if mode == "numba_import":
        t0 = time.perf_counter()
        import numba  # noqa: F401

        print(MARK + json.dumps({"time": time.perf_counter() - t0}), flush=True)
        return
    if mode == "bare_njit":
        t0 = time.perf_counter()
        sys.path.insert(0, os.environ["SYMGRAD_CACHE_DIR"])
        from bare_formula import formula  # an @njit(cache=True) module, written by main

        value = formula(0.3, -1.2, 0.7)
        out = {"time": time.perf_counter() - t0, "value": value[0]}
        out["cache_hit"] = sum(formula.stats.cache_hits.values()) > 0
        print(MARK + json.dumps(out), flush=True)
        return
    sys.path.insert(0, str(HERE))
    pauses = _gc_pauses()
    t0 = time.perf_counter()
    from run import _import_symgrad, build_graph

    sg = _import_symgrad()
    t_import = time.perf_counter() - t0
    if mode == "in_process":  # Numba loaded and one kernel run (not this one)
        from run import startup_graph, startup_inputs

        f, wrt = startup_graph(sg)
        sg.value_and_grad(f, wrt)(**startup_inputs())
        pauses.clear()
        t0 = time.perf_counter()
    import numpy as np

    started = time.perf_counter()  # the user's data: read from disk, not part of the start
    with np.load(inputs_path) as data:
        inputs = {k: (float(data[k]) if data[k].ndim == 0 else data[k]) for k in data.files}
    t_inputs = time.perf_counter() - started
    t1 = time.perf_counter()
    f, wrt = build_graph(sg, name)
    t2 = time.perf_counter()
    vg = sg.value_and_grad(f, wrt)
    t3 = time.perf_counter()
    loss, _ = vg(**inputs)
    t4 = time.perf_counter()
    s = vg.stats
    calls = []
    for _ in range(5):  # the kernel's own time: the same call again, warm
        started = time.perf_counter()
        vg(**inputs)
        calls.append(time.perf_counter() - started)
    out = {
        "time": t4 - t0 - t_inputs, "import": t_import, "numba": s.numba, "loss": float(loss),
        "graph": t2 - t1, "vg": t3 - t2, "first": t4 - t3, "call": min(calls),
        "gc": sum(p for p, when in pauses if when <= t4),
        "warm": s.warm and s.codegen_skipped and s.cache_hit,
    }
    print(MARK + json.dumps(out), flush=True)


def _gc_pauses() -> list:
    """(duration, end) of every pass of the garbage collector from now on."""
    import gc

    pauses, start = [], [0.0]

    def timer(phase, info):
        if phase == "start":
            start[0] = time.perf_counter()
        else:
            now = time.perf_counter()
            pauses.append((now - start[0], now))

    gc.callbacks.append(timer)
    return pauses


def run_child(name, backend, inputs_path) -> dict:
    with tempfile.TemporaryDirectory(prefix="symgrad-latency-") as cache:
        cmd = [sys.executable, __file__, "--child", name, backend, inputs_path]
        proc = subprocess.run(cmd, env=child_env(cache), capture_output=True, text=True)
    return marked_json(proc, MARK, f"{name} {backend}")


def saved_inputs(name: str, folder: str) -> tuple[str, float]:
    """The workload's inputs saved in ``folder`` for the child processes, and the loss that
    hand-written Numba computes for them (what every child's first result is checked
    against)."""
    import numpy as np
    import reference
    from run import SEED

    w = reference.WORKLOADS[name]
    inputs = w.make_inputs(np.random.default_rng(SEED))
    path = os.path.join(folder, f"{name}.npz")
    np.savez(path, **inputs)
    return path, float(w.numba(**inputs)[0])


def run_warm_child(mode, name, inputs_path, cache) -> dict:
    cmd = [sys.executable, __file__, "--warm-child", mode, name, inputs_path]
    proc = subprocess.run(cmd, env=child_env(cache), capture_output=True, text=True)
    return marked_json(proc, MARK, f"{name} {mode}")


BARE = """from numba import njit


@njit(cache=True)
def formula(x, y, z):
    q = x + y
    return q * z, z, z, q
"""


def per_call(rounds: int = 15, number: int = 100_000) -> None:
    """The per-call table (``--per-call``)."""
    import timeit

    import reference
    from run import _import_symgrad, build_graph

    sg = _import_symgrad()
    f, wrt = build_graph(sg, "scalar_slide")
    vg = sg.value_and_grad(f, wrt)
    bare = reference._scalar_slide_nb
    x, y, z = 0.3, -1.2, 0.7
    got, want = vg(x=x, y=y, z=z), bare(x, y, z)
    assert got == (want[0], list(want[1:])), (got, want)
    calls = {  # statements, not lambdas: no extra call layer in any of them
        "symgrad, checked call": "vg(x=x, y=y, z=z)",
        "bare @njit": "bare(x, y, z)",
        "hand Numba (reference.py, packs a list)": "hand(x, y, z)",
    }
    names = dict(vg=vg, bare=bare, hand=reference.scalar_slide_numba, x=x, y=y, z=z)
    times = {k: [] for k in calls}
    for _ in range(rounds):
        for k, stmt in calls.items():
            times[k].append(timeit.timeit(stmt, globals=names, number=number) / number)
    med = statistics.median
    ratios = [a / b for a, b in zip(times["symgrad, checked call"], times["bare @njit"])]
    print(f"per call, median of {rounds} rounds of {number:,} calls\n")
    print("| call | time per call |\n|---|---:|")
    for k, ts in times.items():
        print(f"| {k} | {med(ts) * 1e9:.0f} ns |")
    print(f"\nsymgrad / bare @njit: {med(ratios):.2f}x (median of per-round ratios)")


def warm_table(names, repeats) -> None:
    """The warm-start table (``--warm``)."""
    from run import RTOL

    med = statistics.median
    ms = 1e3
    with tempfile.TemporaryDirectory(prefix="symgrad-latency-warm-") as tmp:
        bare_cache = os.path.join(tmp, "bare")
        os.makedirs(bare_cache)
        Path(bare_cache, "bare_formula.py").write_text(BARE)
        run_warm_child("bare_njit", "-", "-", bare_cache)  # compiles and caches it
        numba_import = [run_warm_child("numba_import", "-", "-", bare_cache)["time"]
                        for _ in range(repeats)]
        bare = []
        for _ in range(repeats):
            r = run_warm_child("bare_njit", "-", "-", bare_cache)
            assert r["cache_hit"], "the bare @njit function was not loaded from its cache"
            bare.append(r["time"])
        print(f"warm start: cache filled by a cold run; median of {repeats} processes each\n")
        print(f"Numba alone: `import numba` {med(numba_import) * ms:.0f} ms; from `import numba` "
              f"to the first result of a cached `@njit` function {med(bare) * ms:.0f} ms\n")
        head = ("| workload | fresh process: import symgrad to first result | of which "
                "`import symgrad` | of which Numba (import, load) | the rest "
                "| with Numba loaded: to first result | building the graph | `value_and_grad` "
                "| first call | (the kernel's own call) | garbage collector |")
        lines = [head, "|---|" + "---:|" * 10]
        for name in names:
            path, expected = saved_inputs(name, tmp)
            cache = os.path.join(tmp, name)
            run_warm_child("fresh", name, path, cache)  # cold: fills the cache
            rows = {"fresh": [], "in_process": []}
            for _ in range(repeats):
                for mode in rows:
                    r = run_warm_child(mode, name, path, cache)
                    if not r["warm"]:
                        raise SystemExit(f"{name} {mode}: the warm path was not taken")
                    if abs(r["loss"] - expected) > RTOL * max(abs(expected), 1.0):
                        raise SystemExit(f"{name} {mode}: loss {r['loss']} vs {expected}")
                    rows[mode].append(r)
            fresh, inproc = rows["fresh"], rows["in_process"]
            total, imp = med(r["time"] for r in fresh), med(r["import"] for r in fresh)
            nb = med(r["numba"] for r in fresh)
            parts = " | ".join(f"{med(r[k] for r in inproc) * ms:.1f} ms"
                               for k in ("graph", "vg", "first", "call"))
            pauses = [r["gc"] * ms for r in inproc]
            lines.append(
                f"| `{name}` | **{total * ms:.0f} ms** | {imp * ms:.0f} ms | {nb * ms:.0f} ms "
                f"| {(total - imp - nb) * ms:.0f} ms "
                f"| **{med(r['time'] for r in inproc) * ms:.1f} ms** | {parts} "
                f"| {', '.join(f'{p:.0f}' for p in pauses)} ms |"
            )
        print("\n".join(lines))
        print("\n(reading the inputs from disk is not counted; 'garbage collector': its passes "
              "within the span with Numba loaded, in each process)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", action="append", help="workload(s) (repeatable)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warm", action="store_true", help="the warm-start table")
    parser.add_argument("--per-call", action="store_true", help="scalar_slide per call")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--warm-child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    if args.warm_child:
        warm_child(*args.warm_child)
        return
    sys.path.insert(0, str(HERE))
    from run import ORDER, RTOL

    names = args.only or ORDER
    if args.warm:
        warm_table(names, args.repeats)
        return
    if args.per_call:
        per_call()
        return
    med = statistics.median
    print(f"time to first result, cold cache, fresh process; median of {args.repeats}\n")
    print("| workload | numba: construct | numba: first result | auto: construct "
          "| auto: first result | auto: Numba ready after | calls interpreted meanwhile "
          "| first vs last (rel) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory(prefix="symgrad-latency-inputs-") as tmp:
        for name in names:
            path, expected = saved_inputs(name, tmp)
            rows = {"numba": [], "auto": []}
            for _ in range(args.repeats):
                for backend in rows:
                    r = run_child(name, backend, path)
                    for loss in r["losses"]:
                        if abs(loss - expected) > RTOL * max(abs(expected), 1.0):
                            raise SystemExit(f"{name} {backend}: loss {loss} vs {expected}")
                    rows[backend].append(r)
            nb, au = rows["numba"], rows["auto"]
            print(
                f"| `{name}` | {med(r['construct'] for r in nb):.3f} s "
                f"| {med(r['first'] for r in nb):.3f} s "
                f"| {med(r['construct'] for r in au):.3f} s "
                f"| **{med(r['first'] for r in au):.3f} s** "
                f"| {med(r['ready'] for r in au):.2f} s | {med(r['calls'] for r in au):.0f} "
                f"| {max(r['first_vs_last'] for r in au):.1e} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
