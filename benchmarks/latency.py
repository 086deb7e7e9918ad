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

Usage::

    python benchmarks/latency.py                       # every workload, 3 repeats
    python benchmarks/latency.py --only svm --repeats 1
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


def run_child(name, backend, inputs_path) -> dict:
    with tempfile.TemporaryDirectory(prefix="symgrad-latency-") as cache:
        env = dict(os.environ, SYMGRAD_CACHE_DIR=cache)
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env[var] = "1"
        cmd = [sys.executable, __file__, "--child", name, backend, inputs_path]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    for line in proc.stdout.splitlines():
        if line.startswith(MARK):
            return json.loads(line[len(MARK):])
    raise SystemExit(f"{name} {backend} failed:\n{proc.stdout}\n{proc.stderr}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", action="append", help="workload(s) (repeatable)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    sys.path.insert(0, str(HERE))
    import numpy as np
    import reference
    from run import ORDER, RTOL, SEED

    names = args.only or ORDER
    med = statistics.median
    print(f"time to first result, cold cache, fresh process; median of {args.repeats}\n")
    print("| workload | numba: construct | numba: first result | auto: construct "
          "| auto: first result | auto: Numba ready after | calls interpreted meanwhile "
          "| first vs last (rel) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory(prefix="symgrad-latency-inputs-") as tmp:
        for name in names:
            w = reference.WORKLOADS[name]
            inputs = w.make_inputs(np.random.default_rng(SEED))
            path = os.path.join(tmp, f"{name}.npz")
            np.savez(path, **inputs)
            expected = float(w.numba(**inputs)[0])
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
