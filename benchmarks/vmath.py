"""Vector math throughput: symgrad's functions vs NumPy's ufuncs vs Numba's libm calls.

Usage::

    flock /work/timing.lock python benchmarks/vmath.py            # ~2 min on a quiet machine
    python benchmarks/vmath.py --rounds 5 --only exp,log          # quicker, fewer functions

1. **Per function**, 10**6 elements, one thread, float64 and float32: elements per second
   of a loop calling symgrad's ``vmath`` function (``out[i] = vm.exp(x[i])`` and
   ``vm.wide_vectors()``, as in a generated kernel), of NumPy's ufunc (``np.exp(x)``;
   SciPy's for erf and expit for sigmoid) and of the same Numba loop calling libm
   (``math.exp``).  Each allocates its output, as a kernel does.  sin and cos are timed
   on |x| < 100 and again ("wide") on |x| spread over 1e-3 ... 1e300 (float32: 1e38).
2. **elementwise_chain** (benchmarks/reference.py: value and gradient of
   ``sum(tanh(sigmoid(x) x + exp(-x**2)) log1p(x**2))``, 10**6 float64): symgrad with
   ``vector_math`` on and off, at one thread (``parallel=False``) and two
   (``parallel=True``, ``numba.set_num_threads(2)``), against hand-written NumPy and
   hand-written fused Numba (one thread).

Variants are interleaved: every round times each variant once in shuffled order (best of
``--repeats`` calls); reported are medians over rounds and, for ratios, the median of the
per-round ratios, so that drift in the machine's load cancels.  The load average before
and after is printed: the figures are from a shared machine.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")  # BLAS is not used, but keep it quiet

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import numba  # noqa: E402
import numpy as np  # noqa: E402
import scipy.special  # noqa: E402
from numba import njit  # noqa: E402

import symgrad as sg  # noqa: E402
from symgrad.backends import vmath  # noqa: E402

N = 1_000_000


@njit(error_model="numpy")
def _sigmoid_libm(x):
    return 1.0 / (1.0 + math.exp(-x))


@njit(error_model="numpy")
def _sigmoid_libm32(x):
    return np.float32(1) / (math.exp(-x) + np.float32(1))


def _libm(name):
    f = getattr(math, name)

    @njit(error_model="numpy")
    def call(x):
        return f(x)

    return call


# "sin wide": sin on arguments up to 1e300 (float32: 1e38), where NumPy's float32 loops
# leave their vector path for libm and symgrad's reduction costs what it costs below 100
FUNCTIONS = ["exp", "expm1", "log", "log1p", "tanh", "sigmoid", "erf", "sin", "cos",
             "sin wide", "cos wide"]
UFUNCS = {"erf": scipy.special.erf, "sigmoid": scipy.special.expit}


def inputs(name, dtype, rng):
    if name in ("log",):
        x = rng.lognormal(0, 3, N)
    elif name == "log1p":
        x = rng.lognormal(0, 2, N) - 0.9
    elif name in ("sin", "cos"):
        x = rng.uniform(-100, 100, N)
    elif name in ("sin wide", "cos wide"):
        top = 38 if dtype == "float32" else 300
        x = rng.choice([-1.0, 1.0], N) * 10.0 ** rng.uniform(-3, top, N)
    else:
        x = rng.normal(0, 3, N)
    return x.astype(dtype)


def variants(name, dtype):
    name = name.split()[0]
    f32 = dtype == "float32"
    vm = vmath.scalar(name, dtype)
    if name == "sigmoid":  # libm: the formula a kernel computes with vector_math=False
        libm = _sigmoid_libm32 if f32 else _sigmoid_libm
    else:
        libm = _libm(name)
    ufunc = UFUNCS.get(name) or getattr(np, name)
    return {"symgrad": vmath.mapped(vm), "numpy": ufunc, "numba_libm": vmath.mapped(libm)}


def time_rounds(fns: dict, args: tuple, rounds: int, repeats: int, rng: random.Random):
    for fn in fns.values():  # compile and warm up
        fn(*args)
    samples = {k: [] for k in fns}
    keys = list(fns)
    for _ in range(rounds):
        rng.shuffle(keys)
        for k in keys:
            best = math.inf
            for _ in range(repeats):
                started = time.perf_counter()
                fns[k](*args)
                best = min(best, time.perf_counter() - started)
            samples[k].append(best)
    return samples


def ratio(num, den):
    return statistics.median(a / b for a, b in zip(num, den))


def per_function(names, rounds, repeats):
    rng = np.random.default_rng(0)
    shuffle = random.Random(0)
    print("## Per function: 10^6 elements, one thread (million elements per second)\n")
    print("| function | dtype | symgrad | NumPy ufunc | Numba libm | symgrad / NumPy "
          "| symgrad / libm |")
    print("|---|---|---|---|---|---|---|")
    for name in names:
        for dtype in ("float64", "float32"):
            x = inputs(name, dtype, rng)
            fns = variants(name, dtype)
            s = time_rounds(fns, (x,), rounds, repeats, shuffle)
            rate = {k: N / statistics.median(v) / 1e6 for k, v in s.items()}
            print(
                f"| {name} | {dtype} | {rate['symgrad']:.0f} | {rate['numpy']:.0f} | "
                f"{rate['numba_libm']:.0f} | {ratio(s['numpy'], s['symgrad']):.2f}x | "
                f"{ratio(s['numba_libm'], s['symgrad']):.2f}x |"
            )
            sys.stdout.flush()


def chain(rounds, repeats):
    import reference

    x = sg.tensor("x", ("n",))
    loss = sg.sum(sg.tanh(sg.sigmoid(x) * x + sg.exp(-(x**2))) * sg.log1p(x**2))
    xs = np.random.default_rng(0).standard_normal(N)
    want = reference.elementwise_chain_numpy(xs)
    compiled = {
        (vm, par): sg.value_and_grad(loss, x, vector_math=vm, parallel=par)
        for vm in (True, False)
        for par in (False, True)
    }
    for (vm, par), f in compiled.items():  # checked before anything is timed
        value, grad = f(x=xs)
        assert abs(value - want[0]) <= 1e-10 * abs(want[0]), (vm, par)
        np.testing.assert_allclose(grad, want[1][0], rtol=1e-10, atol=1e-12)

    def threads(n, fn):
        def run(xs):
            numba.set_num_threads(n)
            try:
                return fn(x=xs)
            finally:
                numba.set_num_threads(1)

        return run

    fns = {
        "vm on, 1 thread": lambda xs: compiled[True, False](x=xs),
        "vm off, 1 thread": lambda xs: compiled[False, False](x=xs),
        "vm on, 2 threads": threads(2, compiled[True, True]),
        "vm off, 2 threads": threads(2, compiled[False, True]),
        "hand NumPy": reference.elementwise_chain_numpy,
        "hand Numba": reference.elementwise_chain_numba,
    }
    numba.set_num_threads(1)
    s = time_rounds(fns, (xs,), rounds, repeats, random.Random(1))
    print("\n## elementwise_chain: value and gradient, 10^6 float64\n")
    print("| variant | median ms | / hand NumPy | / hand Numba |")
    print("|---|---|---|---|")
    for k, v in s.items():
        print(
            f"| {k} | {statistics.median(v) * 1e3:.2f} | {ratio(v, s['hand NumPy']):.2f} | "
            f"{ratio(v, s['hand Numba']):.2f} |"
        )


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--only", default=",".join(FUNCTIONS), help="comma-separated functions")
    p.add_argument("--no-chain", action="store_true")
    args = p.parse_args(argv)
    print(f"load average before: {os.getloadavg()}; numba {numba.__version__}, "
          f"numpy {np.__version__}, {os.cpu_count()} cpus\n")
    per_function([n for n in args.only.split(",") if n], args.rounds, args.repeats)
    if not args.no_chain:
        chain(args.rounds, args.repeats)
    print(f"\nload average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
