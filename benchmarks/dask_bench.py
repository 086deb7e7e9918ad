"""One process against a Dask LocalCluster of worker processes: full-batch value and
gradient of the svm and softmax losses, and the scheduler's per-step overhead.

    python benchmarks/dask_bench.py                 # N = 200,000, D = 256, C = 10
    python benchmarks/dask_bench.py --n 20000 --repeat 3

For each loss: the median time of one full-batch step in this process (``vg(...)`` on NumPy
arrays) and through ``sg.dask.Step`` on the cluster (the data persisted on the workers
once, the parameters scattered every step), and the largest relative difference between
the two results.  The overhead is the median step time over the same number of chunks with
one row each: what a step costs beyond the computation (task submission, scattering the
parameters, moving the chunk results, the tree sum).  Needs the dask extra
(``pip install -e ".[dask]"``).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

import symgrad as sg

try:
    import dask.array as da
    from distributed import Client, LocalCluster
except ImportError as exc:  # said plainly, not as a traceback
    raise SystemExit(
        f"benchmarks/dask_bench.py needs the dask extra: pip install -e '.[dask]' ({exc})"
    ) from None


def losses():
    X = sg.tensor("X", ("N", "D"))
    y = sg.tensor("y", ("N",), dtype="int64")
    W = sg.tensor("W", ("D", "C"))
    scores = X @ W
    reg = 1e-3 * sg.losses.l2(W)
    return {
        "svm": sg.value_and_grad(sg.losses.multiclass_hinge(scores, y) + reg, W),
        "softmax": sg.value_and_grad(sg.losses.softmax_cross_entropy(scores, y) + reg, W),
    }


def median_time(fn, repeat):
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200_000, help="rows")
    ap.add_argument("--d", type=int, default=256, help="features")
    ap.add_argument("--c", type=int, default=10, help="classes")
    ap.add_argument("--workers", type=int, default=2, help="worker processes")
    ap.add_argument("--chunks", type=int, default=8, help="chunks of rows")
    ap.add_argument("--repeat", type=int, default=5, help="timed steps (median)")
    args = ap.parse_args(argv)

    rng = np.random.default_rng(0)
    X = rng.normal(size=(args.n, args.d))
    y = rng.integers(0, args.c, args.n)
    W = 0.01 * rng.normal(size=(args.d, args.c))
    rows = -(-args.n // args.chunks)
    vgs = losses()

    print(
        f"N = {args.n}, D = {args.d}, C = {args.c}; {args.chunks} chunks; "
        f"LocalCluster of {args.workers} worker processes x 1 thread; median of {args.repeat}"
    )
    with (
        LocalCluster(
            n_workers=args.workers, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as cluster,
        Client(cluster) as client,
    ):
        started = time.perf_counter()
        dX = da.from_array(X, chunks=(rows, args.d))
        dy = da.from_array(y, chunks=rows)
        steps = {k: sg.dask.Step(vg, client, X=dX, y=dy) for k, vg in vgs.items()}
        setup = time.perf_counter() - started
        tiny = {
            k: sg.dask.Step(
                vg,
                client,
                X=da.from_array(X[: args.chunks], chunks=(1, args.d)),
                y=da.from_array(y[: args.chunks], chunks=1),
            )
            for k, vg in vgs.items()
        }
        print(f"data to the workers (persist) and set-up: {setup:.2f} s\n")
        print("| loss | one process | cluster | speed-up | overhead per step | max rel. diff |")
        print("|---|---|---|---|---|---|")
        for name, vg in vgs.items():
            step, small = steps[name], tiny[name]
            local = vg(X=X, y=y, W=W)  # also compiles
            step({"W": W})  # warm: the workers build the function
            small({"W": W})
            one = median_time(lambda: vg(X=X, y=y, W=W), args.repeat)  # noqa: B023
            many = median_time(lambda: step({"W": W}), args.repeat)  # noqa: B023
            overhead = median_time(lambda: small({"W": W}), args.repeat)  # noqa: B023
            value, grad = step({"W": W})
            diff = max(
                abs(value - local[0]) / abs(local[0]),
                float(np.max(np.abs(grad - local[1])) / np.max(np.abs(local[1]))),
            )
            print(
                f"| {name} | {one * 1e3:.0f} ms | {many * 1e3:.0f} ms | {one / many:.2f}x "
                f"| {overhead * 1e3:.0f} ms | {diff:.1e} |"
            )


if __name__ == "__main__":
    main()
