"""Branch-free transcendental functions that LLVM vectorises inside generated loops.

Numba calls the scalar libm (``math.exp`` ...) once per element, and without a vector
math library LLVM cannot turn a loop over such calls into SIMD code.  The functions here
are plain arithmetic on floats and on their bit patterns: range reduction, a polynomial or
rational approximation, exponent manipulation through an integer view of the float
(:func:`_bits`, :func:`_from_bits`), and selects (``a if c else b`` on values already
computed, which LLVM turns into blend instructions) instead of branches.  Once Numba
links them into a kernel, LLVM inlines them and vectorises the loop (packed ``ymm``/``zmm``
instructions on AVX2/AVX-512 machines).

The algorithms are those of fdlibm (Sun's freely distributable libm, as kept in FreeBSD
msun and musl), rewritten without branches: every special case is a select on the
result.  Each function states its method; ``docs/accuracy.md`` gives the measured
maximum error in ulps against mpmath (``python benchmarks/vmath_accuracy.py``).

float32 functions (``*_f32``) widen to float64, evaluate the float64 method and round
once, as musl's ``expf``/``logf`` do in double: the result is within 0.5 ulp of float32
plus a 2^-29 ulp double-rounding term, and the float32 loop still vectorises (it
converts 4 or 8 lanes at a time).

Conventions, as C99 Annex F and NumPy: NaN in gives NaN out, ``exp(-inf) = 0``,
``log(0) = -inf``, ``log(x < 0) = nan``, ``log1p(-1) = -inf``, signed zeros are kept by
the odd functions (``expm1``, ``log1p``, ``tanh``).

>>> import math
>>> abs(exp(1.0) - math.e) <= 4.5e-16
True
>>> log1p(-0.0), expm1(-0.0), tanh(-0.0)
(-0.0, -0.0, -0.0)
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

# --- bit views ---------------------------------------------------------------------------


@intrinsic
def _bits(typingctx, x):
    """The IEEE bit pattern of a float64 as an int64 (an LLVM bitcast: no memory, no
    branch, and defined for every input, NaN included)."""
    if x != types.float64:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(64))

    return types.int64(types.float64), codegen


@intrinsic
def _from_bits(typingctx, i):
    """The float64 whose bit pattern is the int64 ``i``."""
    if i != types.int64:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())

    return types.float64(types.int64), codegen


_jit = njit(error_model="numpy", cache=False)

_SHIFT = 6755399441055744.0  # 1.5 * 2**52: x + _SHIFT rounds x to an integer in the low bits
_SHIFT_BITS = 0x4338000000000000
_INV_LN2 = 1.44269504088896338700e00
_LN2_HI = 6.93147180369123816490e-01  # 32 trailing zero bits: k * _LN2_HI is exact
_LN2_LO = 1.90821492927058770002e-10
_SIGN = -(1 << 63)  # the sign bit as an int64


@_jit
def _pow2(k):
    """2**k as a float64, for -1022 <= k <= 1023 (the exponent field set directly)."""
    return _from_bits((k + 1023) << 52)


@_jit
def _round_to_int(x):
    """(k, float(k)) with k the integer nearest to x (|x| < 2**51), without a float to
    int conversion (whose result LLVM leaves undefined for NaN): the integer is read
    from the low mantissa bits of x + 1.5 * 2**52."""
    z = x + _SHIFT
    return _bits(z) - _SHIFT_BITS, z - _SHIFT


# --- exp ---------------------------------------------------------------------------------

_P1 = 1.66666666666666019037e-01
_P2 = -2.77777777770155933842e-03
_P3 = 6.61375632143793436117e-05
_P4 = -1.65339022054652515390e-06
_P5 = 4.13813679705723846039e-08


@_jit
def exp(x):
    """e**x for float64 (fdlibm ``e_exp.c``): x = k ln2 + r with |r| <= ln2/2 (ln2 in two
    parts, so r is exact to about 2**-70), e**r from Remez's rational form
    ``1 + 2r / (2 - R(r))`` evaluated as ``1 - ((lo - r c / (2 - c)) - hi)``, then
    ``2**k`` applied in two factors, so results that overflow become inf and results in
    the subnormal range are rounded once."""
    # beyond these e**x is inf / 0 anyway; NaN fails both tests and stays NaN
    xc = 710.0 if x > 710.0 else x
    xc = -746.0 if xc < -746.0 else xc
    k, kf = _round_to_int(xc * _INV_LN2)
    hi = xc - kf * _LN2_HI
    lo = kf * _LN2_LO
    r = hi - lo
    t = r * r
    c = r - t * (_P1 + t * (_P2 + t * (_P3 + t * (_P4 + t * _P5))))
    y = 1.0 - ((lo - (r * c) / (2.0 - c)) - hi)
    k1 = k >> 1  # 2**k = 2**k1 * 2**(k - k1), each a normal number for |k| <= 1076
    return y * _pow2(k1) * _pow2(k - k1)


# --- expm1 -------------------------------------------------------------------------------

_Q1 = -3.33333333333331316428e-02
_Q2 = 1.58730158725481460165e-03
_Q3 = -7.93650757867487942473e-05
_Q4 = 4.00821782732936239552e-06
_Q5 = -2.01099218183624371326e-07


@_jit
def expm1(x):
    """e**x - 1 for float64 (fdlibm ``s_expm1.c``): the reduction of :func:`exp` keeping
    the rounding error ``c`` of r; expm1(r) from a rational approximation in r**2 / 2;
    then the reconstruction fdlibm chooses by k, all computed and one selected, so that
    2**k - 1 is formed exactly where it matters."""
    # expm1(-40) rounds to -1; e**710 overflows; NaN stays NaN
    xc = 710.0 if x > 710.0 else x
    xc = -40.0 if xc < -40.0 else xc
    k, kf = _round_to_int(xc * _INV_LN2)
    hi = xc - kf * _LN2_HI
    lo = kf * _LN2_LO
    r = hi - lo
    c = (hi - r) - lo  # r + c is the reduced argument to ~2**-100
    hfx = 0.5 * r
    hxs = r * hfx
    r1 = 1.0 + hxs * (_Q1 + hxs * (_Q2 + hxs * (_Q3 + hxs * (_Q4 + hxs * _Q5))))
    t = 3.0 - r1 * hfx
    e = hxs * ((r1 - t) / (6.0 - r * t))
    e = (r * (e - c) - c) - hxs  # expm1(r + c) = r - e
    d = e - r
    # (bit patterns outside the exponent range are garbage, but only in unselected lanes)
    scale = _pow2(k)  # -58 <= k <= 56 where it is used
    tiny = _pow2(-k)  # 2**-k
    y_small_k = ((1.0 - tiny) - d) * scale  # 2 <= k < 20: 1 - 2**-k is exact
    y_mid_k = ((r - (e + tiny)) + 1.0) * scale  # 20 <= k <= 56
    k1 = k >> 1  # 2**k in two factors: finite up to e**709.78
    y_far = (1.0 - d) * _pow2(k1) * _pow2(k - k1) - 1.0  # k <= -2 or k > 56
    y_m1 = 0.5 * (r - e) - 0.5  # k == -1
    y_p1 = -2.0 * (e - (r + 0.5)) if r < -0.25 else 1.0 + 2.0 * (r - e)  # k == 1
    y = y_far
    y = y_mid_k if k <= 56 else y
    y = y_small_k if k < 20 else y
    y = y_p1 if k == 1 else y
    y = (r - e) if k == 0 else y
    y = y_m1 if k == -1 else y
    y = y_far if k <= -2 else y
    return x if x == 0.0 else y  # keeps -0.0


# --- log and log1p -----------------------------------------------------------------------

_LG1 = 6.666666666666735130e-01
_LG2 = 3.999999999940941908e-01
_LG3 = 2.857142874366239149e-01
_LG4 = 2.222219843214978396e-01
_LG5 = 1.818357216161805012e-01
_LG6 = 1.531383769920937332e-01
_LG7 = 1.479819860511658591e-01
_SQRT_HALF_BITS = 0x3FE6A09E667F3BCD  # sqrt(2)/2
_EXP_MASK = -(1 << 52)  # sign and exponent field: 0xfff0000000000000 as int64


@_jit
def _log_core(f, k, c):
    """log(2**k * (1 + f)) + c for sqrt(2)/2 <= 1 + f < sqrt(2): fdlibm's ``e_log.c``,
    s = f / (2 + f) and log(1 + f) = f - f**2/2 + s (f**2/2 + R(s**2)), R of degree 14."""
    s = f / (2.0 + f)
    z = s * s
    w = z * z
    t1 = w * (_LG2 + w * (_LG4 + w * _LG6))
    t2 = z * (_LG1 + w * (_LG3 + w * (_LG5 + w * _LG7)))
    hfsq = 0.5 * f * f
    dk = np.float64(k)
    return dk * _LN2_HI - ((hfsq - (s * (hfsq + t1 + t2) + (dk * _LN2_LO + c))) - f)


@_jit
def _split(ix):
    """(k, z) with x = 2**k z, sqrt(2)/2 <= z < sqrt(2), for x > 0 normal given as bits."""
    tmp = ix - _SQRT_HALF_BITS
    k = tmp >> 52
    return k, _from_bits(ix - (tmp & _EXP_MASK))


@_jit
def log(x):
    """Natural logarithm for float64 (fdlibm ``e_log.c``, branch-free as in musl): the
    exponent k and a mantissa z in [sqrt(2)/2, sqrt(2)) from the bits (subnormals first
    scaled by 2**54), then :func:`_log_core` of f = z - 1."""
    sub = x < 2.2250738585072014e-308
    xs = x * 18014398509481984.0 if sub else x
    k, z = _split(_bits(xs))
    k = k - 54 if sub else k
    y = _log_core(z - 1.0, k, 0.0)
    y = np.inf if x == np.inf else y
    y = -np.inf if x == 0.0 else y
    return y if x >= 0.0 else np.nan  # x < 0 or NaN


@_jit
def log1p(x):
    """log(1 + x) for float64 (fdlibm ``s_log1p.c``): u = 1 + x rounded, k and z from u
    as in :func:`log`, and the rounding error of u added back as c = (x - (u - 1)) / u
    (or (1 - (u - x)) / u for u >= 2); where u's exponent is 0, f = x exactly."""
    u = 1.0 + x
    k, z = _split(_bits(u))
    c = (1.0 - (u - x) if k >= 2 else x - (u - 1.0)) / u
    c = 0.0 if k == 0 or k >= 54 else c
    f = x if k == 0 else z - 1.0
    y = _log_core(f, k, c)
    y = np.inf if x == np.inf else y
    y = -np.inf if x == -1.0 else y
    y = y if x >= -1.0 else np.nan  # x < -1 or NaN
    return x if x == 0.0 else y  # keeps -0.0


# --- tanh --------------------------------------------------------------------------------


# Cephes tanh.c: tanh(a) = a + a z P(z) / Q(z), z = a**2, for |a| < 0.625
_TP0 = -9.64399179425052238628e-1
_TP1 = -9.92877231001918586564e1
_TP2 = -1.61468768441708447952e3
_TQ0 = 1.12811678491632931402e2
_TQ1 = 2.23548839060100448583e3
_TQ2 = 4.84406305325125486048e3


@_jit
def tanh(x):
    """Hyperbolic tangent for float64 (Cephes ``tanh.c``): with a = |x|, below 0.625 the
    rational approximation a + a z P(z)/Q(z) in z = a**2 (degrees 2 and 3), above it
    1 - 2 / (exp(2a) + 1); both computed, one selected, and the sign of x copied on."""
    a = abs(x)
    z = a * a
    below = a + a * (z * ((_TP0 * z + _TP1) * z + _TP2) / (((z + _TQ0) * z + _TQ1) * z + _TQ2))
    above = 1.0 - 2.0 / (exp(2.0 * a) + 1.0)  # 1 from a = 19 on, also for a = inf
    y = below if a < 0.625 else above
    return _from_bits(_bits(y) | (_bits(x) & _SIGN))


# --- float32 -----------------------------------------------------------------------------


@_jit
def exp_f32(x):
    """e**x for float32: the float64 method, rounded once."""
    return np.float32(exp(np.float64(x)))


@_jit
def expm1_f32(x):
    """e**x - 1 for float32: the float64 method, rounded once."""
    return np.float32(expm1(np.float64(x)))


@_jit
def log_f32(x):
    """log(x) for float32: the float64 method, rounded once."""
    return np.float32(log(np.float64(x)))


@_jit
def log1p_f32(x):
    """log(1 + x) for float32: the float64 method, rounded once."""
    return np.float32(log1p(np.float64(x)))


@_jit
def tanh_f32(x):
    """tanh(x) for float32: the float64 method, rounded once."""
    return np.float32(tanh(np.float64(x)))


# The functions a generated kernel may call, by SymPy function name: (float64, float32).
FUNCTIONS = {
    "exp": ("exp", "exp_f32"),
    "expm1": ("expm1", "expm1_f32"),
    "log": ("log", "log_f32"),
    "log1p": ("log1p", "log1p_f32"),
    "tanh": ("tanh", "tanh_f32"),
}

# A digest of this file: kernels that call these functions carry it in their cache key,
# since Numba's cache does not notice when a function a kernel calls has changed.
DIGEST = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16]
