"""``parallel=True`` against serial, per call, at small and large sizes.

Each workload is compiled twice with ``backend="numba"`` (``parallel=False`` and ``True``),
both results are checked against each other (1e-8 relative, normwise: a parallel sum adds in
another order), and the two are timed interleaved in rounds as in ``run.py`` (median of
per-round paired ratios ``parallel / serial``: below 1 is faster).  Workloads:

* ``chain``: ``benchmarks/run.py``'s ``elementwise_chain`` at n = 10^3, 10^4, 10^5, 10^6
  (one compiled function each, the size is a named dim);
* ``digits_mlp``: 64-128-10 ReLU MLP, softmax cross-entropy, batch N = 64 (the shape of
  scikit-learn's digits; random data);
* ``softmax`` and ``mlp_act`` of ``run.py``.

``--threshold`` instead times a cheap loop (``x*0.999 + 0.001*tanh(x)`` and its gradient)
serial and with every loop forced parallel, at sizes 2^8 .. 2^20: where parallel starts to
win is ``numba_codegen.PARALLEL_MIN_ELEMENTS``.

BLAS threads: ``--blas-threads`` (default 1, as ``run.py``); the Numba threads are Numba's
default (``NUMBA_NUM_THREADS``, one per core).

Usage::

    python benchmarks/parallel.py
    python benchmarks/parallel.py --threshold
"""

from __future__ import annotations

import argparse
import os
import random
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
np = None  # NumPy, once _setup has set the BLAS thread variables


def _setup(blas_threads: int):
    if blas_threads:
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = str(blas_threads)
    global np  # imported after the BLAS variables are set
    import numpy as np

    sys.path.insert(0, str(HERE))
    import run

    return run, run._import_symgrad()


def digits_mlp(sg):
    X = sg.tensor("X", ("N", 64))
    y = sg.tensor("y", ("N",), dtype="int64")
    W1, b1 = sg.tensor("W1", (64, 128)), sg.tensor("b1", (128,))
    W2, b2 = sg.tensor("W2", (128, 10)), sg.tensor("b2", (10,))
    scores = sg.relu(X @ W1 + b1) @ W2 + b2
    loss = sg.losses.softmax_cross_entropy(scores, y) + 1e-4 * sg.losses.l2(W1, W2)
    return loss, [W1, b1, W2, b2]


def digits_inputs(rng, n=64):
    return {
        "X": rng.uniform(0, 16, size=(n, 64)),
        "y": rng.integers(0, 10, n),
        "W1": 0.05 * rng.normal(size=(64, 128)),
        "b1": np.zeros(128),
        "W2": 0.05 * rng.normal(size=(128, 10)),
        "b2": np.zeros(10),
    }


def check(a, b, what):
    (va, ga), (vb, gb) = a, b
    ga = ga if isinstance(ga, list) else [ga]
    gb = gb if isinstance(gb, list) else [gb]
    for x, y in zip([va] + ga, [vb] + gb):
        x, y = np.asarray(x), np.asarray(y)
        scale = max(float(np.max(np.abs(y))), 1e-300)
        if float(np.max(np.abs(x - y))) > 1e-8 * scale:
            raise SystemExit(f"{what}: parallel and serial results differ")


def pair(run, sg, f, wrt, inputs, what, rounds, batch_s, rng):
    serial = sg.value_and_grad(f, wrt, parallel=False)
    parallel = sg.value_and_grad(f, wrt, parallel=True)
    check(parallel(**inputs), serial(**inputs), what)
    samples, _ = run.time_interleaved(
        {"serial": serial, "parallel": parallel}, inputs, rounds, batch_s, rng
    )
    ratio = run.paired_ratio(samples["parallel"], samples["serial"])
    med = {k: run.summarize(v)["median"] for k, v in samples.items()}
    return med, ratio, (serial, parallel)


def table(args):
    run, sg = _setup(args.blas_threads)
    import reference

    rng, shuffle = np.random.default_rng(0), random.Random(0)
    print(f"parallel=True vs serial, BLAS threads {args.blas_threads or 'default'}, "
          f"Numba threads {os.environ.get('NUMBA_NUM_THREADS', 'default')}, "
          f"{args.rounds} rounds\n")
    print("| workload | size | serial | parallel | parallel / serial (IQR) |")
    print("|---|---:|---:|---:|---:|")

    def row(name, size, med, ratio):
        print(f"| `{name}` | {size} | {run.fmt_time(med['serial'])} | "
              f"{run.fmt_time(med['parallel'])} | {ratio['median']:.2f} "
              f"({ratio['q1']:.2f} – {ratio['q3']:.2f}) |", flush=True)

    f, wrt = run.build_graph(sg, "elementwise_chain")
    fns = None
    for n in (10**3, 10**4, 10**5, 10**6):
        x = {"x": rng.normal(size=n)}
        if fns is None:
            med, ratio, fns = pair(run, sg, f, wrt, x, "chain", args.rounds, args.batch_s, shuffle)
        else:
            check(fns[1](**x), fns[0](**x), "chain")
            samples, _ = run.time_interleaved(
                {"serial": fns[0], "parallel": fns[1]}, x, args.rounds, args.batch_s, shuffle
            )
            ratio = run.paired_ratio(samples["parallel"], samples["serial"])
            med = {k: run.summarize(v)["median"] for k, v in samples.items()}
        row("elementwise_chain", f"n = {n:,}", med, ratio)
    f, wrt = digits_mlp(sg)
    med, ratio, _ = pair(run, sg, f, wrt, digits_inputs(rng), "digits", args.rounds,
                         args.batch_s, shuffle)
    row("digits_mlp", "N = 64", med, ratio)
    for name in args.workloads:
        w = reference.WORKLOADS[name]
        f, wrt = run.build_graph(sg, name)
        med, ratio, _ = pair(run, sg, f, wrt, w.make_inputs(np.random.default_rng(0)), name,
                             args.rounds, args.batch_s, shuffle)
        row(name, run.shape_text(reference, name), med, ratio)


def threshold(args):
    run, sg = _setup(args.blas_threads)
    from symgrad.backends import numba_codegen

    x0 = sg.tensor("x", ("n",))
    loss = sg.sum(x0 * 0.999 + 0.001 * sg.tanh(x0))
    serial = sg.value_and_grad(loss, x0)
    numba_codegen.PARALLEL_MIN_ELEMENTS = 0  # every loop parallel, whatever its size
    forced = sg.value_and_grad(loss, x0, parallel=True)
    shuffle, rng = random.Random(0), np.random.default_rng(0)
    print("a cheap loop, serial vs every loop parallel (PARALLEL_MIN_ELEMENTS = 0)\n")
    print("| elements | serial | forced parallel | parallel / serial |")
    print("|---:|---:|---:|---:|")
    for log2 in range(8, 21, 2):
        x = {"x": rng.normal(size=2**log2)}
        check(forced(**x), serial(**x), "threshold")
        samples, _ = run.time_interleaved(
            {"serial": serial, "parallel": forced}, x, args.rounds, args.batch_s, shuffle
        )
        ratio = run.paired_ratio(samples["parallel"], samples["serial"])
        print(f"| 2^{log2} | {run.fmt_time(run.summarize(samples['serial'])['median'])} | "
              f"{run.fmt_time(run.summarize(samples['parallel'])['median'])} | "
              f"{ratio['median']:.2f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threshold", action="store_true", help="measure the size threshold")
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--batch-ms", type=float, default=20.0)
    parser.add_argument("--blas-threads", type=int, default=1, help="0: leave as it is")
    parser.add_argument("--workloads", nargs="*", default=["softmax", "mlp_act"])
    args = parser.parse_args()
    args.batch_s = args.batch_ms / 1e3
    (threshold if args.threshold else table)(args)


if __name__ == "__main__":
    main()
