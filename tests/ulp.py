"""Measuring the error of ``symgrad.backends.vmath`` in ulps (units in the last place).

The oracle is the function evaluated in x86 extended precision (``np.longdouble``, 64-bit
mantissa: its libm error, about one ulp of that format, is 2**-11 ulp of float64), or
mpmath at 60 digits where NumPy has no extended-precision version (erf) or the platform
has no extended format.  The error of a result y for the exact value v is
``|y - v| / ulp(v)``, with ulp(v) the spacing of the target format at v (the smallest
subnormal below the normal range): 0.5 means correctly rounded.

Sweeps cover each function's whole domain: random bit patterns (so every binade has as
many points as any other), a dense uniform grid over the range where the function varies,
and the special values.  Run as a script for the full sweep and the table of
``docs/accuracy.md``::

    python tests/ulp.py              # 2 million points per function and dtype
    python tests/ulp.py --points 20000
"""

from __future__ import annotations

import argparse
import sys

import mpmath
import numpy as np

from symgrad.backends import vmath

EXTENDED = np.finfo(np.longdouble).nmant >= 63  # x86 80-bit long double

# name -> (domain lo, hi of the dense grid, domain of the bit-pattern sample, oracle)
# The bit-pattern sample is of |x| in [tiny, big], both signs unless `positive`.
DOMAINS = {
    "exp": dict(grid=(-745.2, 709.8), big=745.2, signs=True),
    "expm1": dict(grid=(-40.0, 709.7), big=709.7, signs=True),
    "log": dict(grid=(0.0, 8.0), big=1.7e308, signs=False),
    "log1p": dict(grid=(-1.0, 8.0), big=1.7e308, signs=False, also=(-1.0, 0.0)),
    "tanh": dict(grid=(-20.0, 20.0), big=1e300, signs=True),
    "erf": dict(grid=(-7.0, 7.0), big=1e300, signs=True),
    "sin": dict(grid=(-1e5, 1e5), big=1.7e308, signs=True, also=(-10.0, 10.0)),
    "cos": dict(grid=(-1e5, 1e5), big=1.7e308, signs=True, also=(-10.0, 10.0)),
    # below -709.78 (float32: -88.72) exp(-x) overflows and sigmoid, as the formula, is 0
    # where the exact value is a number below 1e-308 (1e-38)
    "sigmoid": dict(grid=(-40.0, 40.0), big=709.78, big32=88.72, signs=True),
}

_EXT = {
    "exp": np.exp,
    "expm1": np.expm1,
    "log": np.log,
    "log1p": np.log1p,
    "tanh": np.tanh,
    "sin": np.sin,
    "cos": np.cos,
    "sigmoid": lambda x: 1 / (1 + np.exp(-x)),
}
_MP = {
    "exp": mpmath.exp,
    "expm1": mpmath.expm1,
    "log": mpmath.log,
    "log1p": mpmath.log1p,
    "tanh": mpmath.tanh,
    "erf": mpmath.erf,
    "sin": mpmath.sin,
    "cos": mpmath.cos,
    "sigmoid": lambda x: 1 / (1 + mpmath.exp(-x)),
}


NAMES = list(vmath.FUNCTIONS)
_LOOPS: dict[tuple[str, str], object] = {}


def vector(name: str, dtype: str):
    """The vmath function ``name`` for ``dtype`` mapped over an array (compiled once)."""
    key = (name, dtype)
    if key not in _LOOPS:
        _LOOPS[key] = vmath.mapped(vmath.scalar(name, dtype))
    return _LOOPS[key]


def reference(name: str, x: np.ndarray) -> np.ndarray:
    """The exact value of ``name`` at float64 points ``x``, as long doubles."""
    if EXTENDED and name in _EXT:
        with np.errstate(all="ignore"):
            return _EXT[name](x.astype(np.longdouble))
    mpmath.mp.dps = 60
    f = _MP[name]
    out = np.empty(x.shape, dtype=np.longdouble)
    for i, v in enumerate(x.tolist()):
        try:
            out[i] = np.longdouble(str(f(mpmath.mpf(v))))
        except ValueError:  # outside the domain
            out[i] = np.nan
    return out


def ulp_errors(y: np.ndarray, ref: np.ndarray, dtype: str) -> np.ndarray:
    """|y - ref| in ulps of ``dtype`` at ref; 0 where both agree exactly (inf, nan),
    inf where one is nan or infinite and the other not."""
    ft = np.dtype(dtype).type
    info = np.finfo(ft)
    with np.errstate(all="ignore"):
        rounded = ref.astype(ft)
        _, e = np.frexp(np.where(np.isfinite(ref), ref, 1))  # |ref| in [2**(e-1), 2**e)
        spacing = np.ldexp(np.longdouble(1), e.astype(np.int64) - (info.nmant + 1))
        spacing = np.maximum(spacing, np.longdouble(info.smallest_subnormal))
        err = np.abs(y.astype(np.longdouble) - ref) / spacing
    same = (y.astype(np.longdouble) == ref) | (np.isnan(y) & np.isnan(ref))
    # a result that rounds to +-inf: compare with the rounded value
    inf_ok = np.isinf(rounded) & (y == rounded)
    err[same | inf_ok] = 0.0
    err[np.isnan(err)] = np.inf
    return err


def sample(name: str, n: int, dtype: str = "float64", seed: int = 0) -> np.ndarray:
    """``n`` float64 points over the domain of ``name`` (exactly representable in dtype)."""
    spec = DOMAINS[name]
    rng = np.random.default_rng(seed)
    ft = np.dtype(dtype).type
    big = spec.get("big32" if dtype == "float32" else "big", spec["big"])
    big = min(big, float(np.finfo(ft).max))
    tiny = float(np.finfo(ft).smallest_subnormal)
    bits_t, float_t = (np.int64, np.float64) if dtype == "float64" else (np.int32, np.float32)
    lo_b = np.array(tiny, float_t).view(bits_t)
    hi_b = np.array(big, float_t).view(bits_t)
    mags = rng.integers(lo_b, hi_b, n // 2, dtype=bits_t).view(float_t)
    if spec["signs"]:
        mags = mags * rng.choice(np.array([-1, 1], float_t), mags.size)
    lo, hi = spec["grid"]
    grid = np.linspace(lo, hi, n - mags.size).astype(ft)
    parts = [mags.astype(ft), grid]
    if "also" in spec:
        a, b = spec["also"]
        parts.append(rng.uniform(a, b, n // 8).astype(ft))
    return np.concatenate(parts).astype(np.float64)


SPECIALS = [
    0.0, -0.0, np.inf, -np.inf, np.nan, 1.0, -1.0, 5e-324, -5e-324, 2.2250738585072014e-308,
    1e-300, -1e-300, 1e-20, -1e-20, 0.5, -0.5, 1.7976931348623157e308, -1.7976931348623157e308,
    709.782712893384, 709.79, -745.1332191019411, -745.14, 0.34657359027997264,
    -0.34657359027997264, 20.0, 22.0, -22.0, 1e10, -1e10,
    # the float64 closest to a multiple of pi/2 (6381956970095103 2**797: 4.7e-19 from it)
    5.319372648326541e255, -5.319372648326541e255, 1e22, 1e300, -1e300,
]


def max_error(name: str, dtype: str, n: int, seed: int = 0) -> tuple[float, float]:
    """(max ulp error, the x where it occurs) over ``sample(name, n, dtype)`` and SPECIALS."""
    specials = np.array(SPECIALS)
    spec = DOMAINS[name]
    big = spec.get("big32" if dtype == "float32" else "big", spec["big"])
    big = min(big, float(np.finfo(dtype).max))
    specials = specials[(np.abs(specials) <= big) | ~np.isfinite(specials)]
    x = np.concatenate([sample(name, n, dtype, seed), specials])
    x = x.astype(dtype)
    y = vector(name, dtype)(x)
    ref = reference(name, x.astype(np.float64))
    err = ulp_errors(y, ref, dtype)
    i = int(np.argmax(err))
    return float(err[i]), float(x[i])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--points", type=int, default=2_000_000)
    args = parser.parse_args(argv)
    print("| function | float64 max ulp (at x) | float32 max ulp (at x) |")
    print("|---|---|---|")
    for name in NAMES:
        row = []
        for dtype in ("float64", "float32"):
            err, at = max_error(name, dtype, args.points)
            row.append(f"{err:.3f} ({at:.6g})")
        print(f"| {name} | {' | '.join(row)} |")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
