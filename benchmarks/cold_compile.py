"""Cold compile time: graph to compiled Numba kernel, in a fresh process, empty kernel cache.

For each workload of ``benchmarks/run.py`` and for a GELU MLP of width 64 with 5, 10, 20
and 40 layers (softmax cross-entropy on 10 classes, gradients for every weight and bias),
in a new Python process with a new empty ``SYMGRAD_CACHE_DIR`` (``--repeats`` times,
medians reported), after ``import numba`` and ``import symgrad``:

* ``wall``    -- wall time of ``sg.value_and_grad(f, wrt, backend="numba")``;
* ``cpu``     -- the process's CPU time over the same span (less disturbed by other load
  on a shared machine than the wall time);
* ``derive`` / ``simplify`` / ``codegen`` / ``numba`` -- its split from ``.stats``
  (``numba`` includes Numba's one-off initialisation of its first compile in a process).

The first result is checked against the NumPy backend (1e-8 normwise).  ``--base PATH``
times another checkout too (its ``symgrad`` on the children's ``PYTHONPATH``), in the same
run, workload by workload, its processes alternating with this checkout's: the "before"
columns.  ``--split N`` sets the lines per kernel part (``symgrad.backends.split.MAX_LINES``;
default and 100000: no split), ``--min-repeats N`` how often a loop nest must occur to
become a shared function (``split.MIN_REPEATS``; a large number: none),
``--no-vector-math`` compiles with ``vector_math=False``.  Numba's own cache of the library's helpers (``blas.matmul``,
``arrays``, ``vmath``) is what a user's machine has after the first use, so each workload
is run once untimed first (``--no-warm-up`` skips that).

Usage::

    python benchmarks/cold_compile.py --repeats 1               # all workloads
    python benchmarks/cold_compile.py --repeats 1 --base ../main  # before / after
    python benchmarks/cold_compile.py --only gelu20 --split 30 --split 60 --split 100000
    python benchmarks/cold_compile.py --only gelu5 --only gelu10 --only gelu20 --only gelu40
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from run import child_env, marked_json

HERE = Path(__file__).resolve().parent
MARK = "@@COLD@@ "
WORKLOADS = ["slide_mlp", "svm", "softmax", "mlp_act", "gelu5", "gelu10", "gelu20", "gelu40"]


def gelu_mlp(sg, layers: int, width: int = 64, classes: int = 10):
    X = sg.tensor("X", ("N", width))
    y = sg.tensor("y", ("N",), dtype="int64")
    h, wrt = X, []
    for i in range(layers):
        W, b = sg.tensor(f"W{i}", (width, width)), sg.tensor(f"b{i}", (width,))
        wrt += [W, b]
        h = sg.gelu(h @ W + b)
    W = sg.tensor("W_out", (width, classes))
    return sg.losses.softmax_cross_entropy(h @ W, y), wrt + [W]


def gelu_inputs(np, layers: int, width: int = 64, classes: int = 10, n: int = 16):
    rng = np.random.default_rng(0)
    values = {"X": rng.normal(size=(n, width)), "y": rng.integers(0, classes, n)}
    for i in range(layers):
        values[f"W{i}"] = rng.normal(size=(width, width)) / width**0.5
        values[f"b{i}"] = rng.normal(size=width) * 0.1
    values["W_out"] = rng.normal(size=(width, classes)) / width**0.5
    return values


def child(name: str, split: int, vector_math: bool, min_repeats: int) -> None:
    sys.path.insert(0, str(HERE))
    import numba  # noqa: F401  (its import is not part of a compile)
    import numpy as np
    from run import SEED, _import_reference, build_graph

    import symgrad as sg

    try:
        import symgrad.backends.split as splitting

        splitting.MAX_LINES = split
        if min_repeats and hasattr(splitting, "MIN_REPEATS"):
            splitting.MIN_REPEATS = min_repeats
    except ImportError:  # an older symgrad, measured for comparison: kernels are whole
        pass
    if name.startswith("gelu"):
        layers = int(name[4:])
        f, wrt = gelu_mlp(sg, layers)
        inputs = gelu_inputs(np, layers)
    else:
        f, wrt = build_graph(sg, name)
        inputs = _import_reference().WORKLOADS[name].make_inputs(np.random.default_rng(SEED))
    wall, cpu = time.perf_counter(), time.process_time()
    vg = sg.value_and_grad(f, wrt, backend="numba", vector_math=vector_math)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    got = vg(**inputs)
    want = sg.value_and_grad(f, wrt, backend="numpy")(**inputs)
    for a, b in zip([got[0], *got[1]], [want[0], *want[1]]):
        a, b = np.asarray(a), np.asarray(b)
        assert np.max(np.abs(a - b)) <= 1e-8 * max(np.max(np.abs(b)), 1e-300), name
    s = vg.stats
    out = dict(wall=wall, cpu=cpu, derive=s.derive, simplify=s.simplify, codegen=s.codegen,
               numba=s.numba, lines=vg.source.count("\n"))
    print(MARK + json.dumps(out), flush=True)


def run_child(name: str, split: int, vector_math: bool, min_repeats: int, checkout=None):
    with tempfile.TemporaryDirectory(prefix="symgrad-cold-") as cache:
        # the children import this checkout's symgrad (or --base's), installed or not
        env = child_env(cache, checkout or HERE.parent)
        cmd = [sys.executable, __file__, "--child", name, str(split), str(int(vector_math)),
               str(min_repeats)]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    return marked_json(proc, MARK, name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", action="append", choices=WORKLOADS)
    parser.add_argument("--split", type=int, action="append", help="lines per kernel part")
    parser.add_argument("--min-repeats", type=int, default=0,
                        help="occurrences that make a loop nest a shared function")
    parser.add_argument("--no-vector-math", action="store_true")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--base", type=Path, help="another checkout, timed as 'before'")
    parser.add_argument("--no-warm-up", action="store_true")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        name, split, vm, min_repeats = args.child
        child(name, int(split), vm == "1", int(min_repeats))
        return
    splits = args.split or [100_000]
    med = statistics.median
    vm = not args.no_vector_math
    checkouts = ([("before", args.base.resolve())] if args.base else []) + [("now", None)]
    print(f"cold compile, fresh process, empty kernel cache; median of {args.repeats}"
          f"{'; vector_math=False' if args.no_vector_math else ''}"
          f"{f'; before: {args.base}' if args.base else ''}\n")
    if args.base:
        print("| workload | lines before | lines now | wall before | wall now | cpu before "
              "| cpu now | cpu now / before | numba now |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    else:
        print("| workload | lines/part | kernel lines | wall | cpu | derive | simplify "
              "| codegen | numba |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name in args.only or WORKLOADS:
        for split in splits:
            rows = {label: [] for label, _ in checkouts}
            if not args.no_warm_up:  # fills Numba's cache of the helpers this workload uses
                for _, checkout in checkouts:
                    run_child(name, split, vm, args.min_repeats, checkout)
            # before and now alternate, so that a drift of the machine's speed hits both
            for _ in range(args.repeats):
                for label, checkout in checkouts:
                    rows[label].append(run_child(name, split, vm, args.min_repeats, checkout))

            def cell(label, column, rows=rows):  # (rows: this workload's, bound now)
                return med(r[column] for r in rows[label])

            if args.base:
                ratio = cell("now", "cpu") / cell("before", "cpu")
                print(f"| `{name}` | {rows['before'][0]['lines']} | {rows['now'][0]['lines']} "
                      f"| {cell('before', 'wall'):.2f} s | {cell('now', 'wall'):.2f} s "
                      f"| {cell('before', 'cpu'):.2f} s | {cell('now', 'cpu'):.2f} s "
                      f"| {ratio:.2f} | {cell('now', 'numba'):.2f} s |", flush=True)
                continue
            cells = " | ".join(
                f"{cell('now', c):.3f} s"
                for c in ("wall", "cpu", "derive", "simplify", "codegen", "numba")
            )
            part = "whole" if split >= 100000 else str(split)
            print(f"| `{name}` | {part} | {rows['now'][0]['lines']} | {cells} |", flush=True)


if __name__ == "__main__":
    main()
