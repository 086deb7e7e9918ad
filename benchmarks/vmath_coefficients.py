"""The polynomial coefficients of symgrad/backends/vmath.py that are not fdlibm's or Cephes'.

Chebyshev fits (``mpmath.chebyfit``, near-minimax) at 40 digits, printed lowest degree
first as vmath.py holds them, with the fit's maximum error:

- ``_EP``: e**r = 1 + r + r**2 P(r) on |r| <= ln2/2 (slightly widened), P of degree 10;
- ``_EP_F``: the same for float32, P of degree 4.

Usage: ``python benchmarks/vmath_coefficients.py`` (a few seconds).
"""

from __future__ import annotations

import mpmath as mp


def exp_tail(r):
    """(e**r - 1 - r) / r**2, its series near 0."""
    if abs(r) < mp.mpf("1e-10"):
        return mp.mpf(1) / 2 + r / 6 + r * r / 24
    return (mp.exp(r) - 1 - r) / (r * r)


def fit(f, lo, hi, n):
    coeffs, err = mp.chebyfit(f, [lo, hi], n, error=True)
    return [float(c) for c in coeffs[::-1]], err


def main():
    mp.mp.dps = 40
    half_ln2 = mp.log(2) / 2
    for name, widen, n in (("_EP", "1.0001", 11), ("_EP_F", "1.001", 5)):
        a = half_ln2 * mp.mpf(widen)
        coeffs, err = fit(exp_tail, -a, a, n)
        print(f"{name} = {tuple(coeffs)}")
        print(f"  # max error of P {mp.nstr(err, 3)}, of e**r {mp.nstr(err * a * a, 3)}\n")


if __name__ == "__main__":
    main()
