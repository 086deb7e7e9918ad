"""Self-check of benchmarks/reference.py.

For every workload:

* the NumPy and Numba versions agree (loss and every gradient) to 1e-10 relative, normwise
  (max|a - b| <= 1e-10 * max|b|), at the full benchmark size and at a small size;
* neither version modifies its inputs;
* the NumPy gradients match central finite differences of the NumPy loss in a few random
  directions per gradient input (and jointly), at the small size.

Prints one line per workload and exits non-zero if anything fails.  ``--time`` additionally
reports the median per-call time of both versions at full size.

Usage: python benchmarks/check_reference.py [--time]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reference import WORKLOADS  # noqa: E402

AGREE_RTOL = 1e-10
FD_STEP = 1e-6
FD_RTOL = 1e-5
FD_DIRECTIONS = 3

SMALL_SHAPES = {
    "slide_mlp": {"N": 5, "D_in": 7, "H": 4, "D_out": 3},
    "svm": {"N": 9, "D": 6, "C": 4},
    "softmax": {"N": 9, "D": 6, "C": 4},
    "mlp_act": {"N": 6, "D": 7, "H1": 5, "H2": 4, "C": 3},
    "scalar_slide": {},
    "elementwise_chain": {"n": 200},
}


def rel_diff(a, b) -> float:
    """Normwise relative difference max|a - b| / max|b|."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        return float("inf")
    scale = np.max(np.abs(b)) if b.size else 0.0
    diff = np.max(np.abs(a - b)) if b.size else 0.0
    return float(diff / scale) if scale > 0 else float(diff)


def agreement(w, inputs) -> float:
    """Worst relative difference between the numpy and numba outputs (inf on mismatch)."""
    before = copy.deepcopy(inputs)
    loss_np, grads_np = w.numpy(**inputs)
    loss_nb, grads_nb = w.numba(**inputs)
    for k, v in before.items():
        if not np.array_equal(v, inputs[k]):
            raise AssertionError(f"{w.name}: input {k!r} was modified")
    if len(grads_np) != len(w.wrt) or len(grads_nb) != len(w.wrt):
        return float("inf")
    worst = rel_diff(loss_nb, loss_np)
    for name, g_np, g_nb in zip(w.wrt, grads_np, grads_nb, strict=True):
        if np.shape(g_np) != np.shape(inputs[name]):
            return float("inf")
        worst = max(worst, rel_diff(g_nb, g_np))
    return worst


def fd_error(w, inputs, rng) -> float:
    """Worst relative error of <grad, v> against a central difference of the numpy loss.

    Directions are random unit vectors in one gradient input at a time, then in all of them
    jointly.  The error is relative to max(|<grad, v>|, 1e-3 * max(1, |loss|)), so a tiny
    directional derivative is not judged against pure rounding noise.
    """
    loss, grads = w.numpy(**inputs)
    grads = dict(zip(w.wrt, grads, strict=True))
    floor = 1e-3 * max(1.0, abs(loss))
    groups = [[k] for k in w.wrt] + ([list(w.wrt)] if len(w.wrt) > 1 else [])
    worst = 0.0
    for group in groups:
        for _ in range(FD_DIRECTIONS):
            dirs = {k: rng.standard_normal(np.shape(inputs[k])) for k in group}
            norm = np.sqrt(sum(np.sum(d * d) for d in dirs.values()))
            dirs = {k: d / norm for k, d in dirs.items()}

            def shifted(sign, dirs=dirs):
                moved = dict(inputs)
                for k, d in dirs.items():
                    val = inputs[k] + sign * FD_STEP * d
                    moved[k] = float(val) if isinstance(inputs[k], float) else val
                return w.numpy(**moved)[0]

            fd = (shifted(+1.0) - shifted(-1.0)) / (2.0 * FD_STEP)
            analytic = sum(np.sum(np.asarray(grads[k]) * d) for k, d in dirs.items())
            worst = max(worst, abs(fd - analytic) / max(abs(analytic), floor))
    return worst


def median_time(fn, inputs, min_seconds=1.0, min_calls=7) -> float:
    fn(**inputs)  # warm-up (and JIT compilation for the numba versions)
    times = []
    start = time.perf_counter()
    while len(times) < min_calls or time.perf_counter() - start < min_seconds:
        t0 = time.perf_counter()
        fn(**inputs)
        times.append(time.perf_counter() - t0)
        if len(times) >= 10_000:
            break
    return statistics.median(times)


def fmt_time(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:8.2f} us"
    return f"{seconds * 1e3:8.3f} ms"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--time", action="store_true", help="also time both versions")
    args = parser.parse_args()

    failed = False
    for name, w in WORKLOADS.items():
        rng = np.random.default_rng(1234)
        full = w.make_inputs(rng)
        small = w.make_inputs(rng, **SMALL_SHAPES[name])
        try:
            agree = max(agreement(w, full), agreement(w, small))
            fd = fd_error(w, small, rng)
        except Exception as exc:  # report and keep going
            print(f"FAIL {name:18s} {type(exc).__name__}: {exc}")
            failed = True
            continue
        ok = agree <= AGREE_RTOL and fd <= FD_RTOL
        failed |= not ok
        line = (
            f"{'ok  ' if ok else 'FAIL'} {name:18s} numpy~numba rel {agree:.1e} "
            f"(<= {AGREE_RTOL:.0e})   fd rel {fd:.1e} (<= {FD_RTOL:.0e})"
        )
        if args.time:
            t_np = median_time(w.numpy, full)
            t_nb = median_time(w.numba, full)
            line += f"   numpy {fmt_time(t_np)}  numba {fmt_time(t_nb)}  x{t_np / t_nb:.2f}"
        print(line, flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
