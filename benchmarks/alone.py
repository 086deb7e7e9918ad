"""Per-call time of each workload in a process of its own, with its page faults per call.

``run.py`` times symgrad and the hand-written versions interleaved in one process, whose
NumPy interpreter and hand-written NumPy allocate large arrays: glibc's ``malloc`` adapts
its thresholds to them, which changes how every other kernel in that process allocates.
A user's training loop runs one kernel alone.  Here each variant runs in a fresh process
that does nothing else: the kernel is loaded (the cache filled by a first, untimed
process), called 5 times, then ``--calls`` times one by one; reported are the median time
and the median minor page faults (``ru_minflt``) per call, medians over ``--repeats``
processes.  The processes of the variants alternate, so a drift of the machine's speed hits
all of them.  BLAS runs single-threaded, as in ``run.py``.

Variants: symgrad (``backend="numba"``) of this checkout, the hand-written fused Numba
version (``reference.py``), and with ``--base <checkout>`` symgrad of another checkout.

Usage::

    python benchmarks/alone.py                          # every workload, 3 processes each
    python benchmarks/alone.py --only mlp_act --repeats 5 --base ../symgrad-main
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from run import child_env, marked_json

HERE = Path(__file__).resolve().parent
MARK = "@@ALONE@@ "
WORKLOADS = ["slide_mlp", "svm", "softmax", "mlp_act", "elementwise_chain"]


def child(name: str, variant: str, calls: int) -> None:
    sys.path.insert(0, str(HERE))
    import numpy as np
    import reference
    from run import SEED

    w = reference.WORKLOADS[name]
    inputs = w.make_inputs(np.random.default_rng(SEED))
    if variant == "hand":
        function = w.numba
    else:
        from run import _import_symgrad, build_graph

        sg = _import_symgrad()
        f, wrt = build_graph(sg, name)
        vg = sg.value_and_grad(f, wrt)

        def function(**kw):
            return vg(**kw)

    for _ in range(5):
        function(**inputs)
    times, faults = [], []
    for _ in range(calls):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        started = time.perf_counter()
        function(**inputs)
        times.append(time.perf_counter() - started)
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    out = {"time": statistics.median(times), "faults": statistics.median(faults)}
    print(MARK + json.dumps(out), flush=True)


def run_child(name, variant, checkout, cache, calls) -> dict:
    cmd = [sys.executable, __file__, "--child", name, variant, str(calls)]
    proc = subprocess.run(cmd, env=child_env(cache, checkout), capture_output=True, text=True)
    return marked_json(proc, MARK, f"{name} {variant}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", action="append", choices=WORKLOADS)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--calls", type=int, default=41)
    parser.add_argument("--base", type=Path, help="another checkout, timed as 'before'")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        name, variant, calls = args.child
        child(name, variant, int(calls))
        return
    variants = [("now", "symgrad", None), ("hand", "hand", None)]
    if args.base:
        variants.insert(1, ("before", "symgrad", args.base.resolve()))
    print(f"each variant in a process of its own; median of {args.calls} calls, "
          f"median of {args.repeats} processes\n")
    columns = ["symgrad", "faults/call"]
    if args.base:
        columns += ["before", "faults/call", "now / before"]
    columns += ["hand Numba", "faults/call", "symgrad / hand"]
    print("| workload | " + " | ".join(columns) + " |")
    print("|---|" + "---:|" * len(columns))
    with tempfile.TemporaryDirectory(prefix="symgrad-alone-") as folder:
        for name in args.only or WORKLOADS:
            caches = {label: os.path.join(folder, label) for label, _, _ in variants}
            for label, variant, checkout in variants:  # fills the caches, untimed
                run_child(name, variant, checkout, caches[label], 1)
            results = {label: [] for label, _, _ in variants}
            for _ in range(args.repeats):
                for label, variant, checkout in variants:
                    results[label].append(
                        run_child(name, variant, checkout, caches[label], args.calls)
                    )

            def med(label, key, results=results):
                return statistics.median(r[key] for r in results[label])

            row = f"| `{name}` | {1e3 * med('now', 'time'):.3f} ms | {med('now', 'faults'):.0f} |"
            if args.base:
                row += (f" {1e3 * med('before', 'time'):.3f} ms | {med('before', 'faults'):.0f} "
                        f"| {med('now', 'time') / med('before', 'time'):.2f} |")
            row += (f" {1e3 * med('hand', 'time'):.3f} ms | {med('hand', 'faults'):.0f} "
                    f"| {med('now', 'time') / med('hand', 'time'):.2f} |")
            print(row, flush=True)


if __name__ == "__main__":
    main()
