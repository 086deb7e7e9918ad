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


# forceinline: LLVM inlines every call (the instructions keep their own flags: no fastmath
# leaks in from a fastmath kernel), so the calling loop can vectorise
_jit = njit(error_model="numpy", cache=True, forceinline=True)

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


# --- erf ---------------------------------------------------------------------------------

_ERX = 8.45062911510467529297e-01
_EFX8 = 1.02703333676410069053e00
_PP = (1.28379167095512558561e-01, -3.25042107247001499370e-01, -2.84817495755985104766e-02,
       -5.77027029648944159157e-03, -2.37630166566501626084e-05)
_QQ = (3.97917223959155352819e-01, 6.50222499887672944485e-02, 5.08130628187576562776e-03,
       1.32494738004321644526e-04, -3.96022827877536812320e-06)
_PA = (-2.36211856075265944077e-03, 4.14856118683748331666e-01, -3.72207876035701323847e-01,
       3.18346619901161753674e-01, -1.10894694282396677476e-01, 3.54783043256182359371e-02,
       -2.16637559486879084300e-03)
_QA = (1.06420880400844228286e-01, 5.40397917702171048937e-01, 7.18286544141962662868e-02,
       1.26171219808761642112e-01, 1.36370839120290507362e-02, 1.19844998467991074170e-02)
_RA = (-9.86494403484714822705e-03, -6.93858572707181764372e-01, -1.05586262253232909814e01,
       -6.23753324503260060396e01, -1.62396669462573470355e02, -1.84605092906711035994e02,
       -8.12874355063065934246e01, -9.81432934416914548592e00)
_SA = (1.96512716674392571292e01, 1.37657754143519042600e02, 4.34565877475229228821e02,
       6.45387271733267880336e02, 4.29008140027567833386e02, 1.08635005541779435134e02,
       6.57024977031928170135e00, -6.04244152148580987438e-02)
_RB = (-9.86494292470009928597e-03, -7.99283237680523006574e-01, -1.77579549177547519889e01,
       -1.60636384855821916062e02, -6.37566443368389627722e02, -1.02509513161107724954e03,
       -4.83519191608651397019e02)
_SB = (3.03380607434824582924e01, 3.25792512996573918826e02, 1.53672958608443695994e03,
       3.19985821950859553908e03, 2.55305040643316442583e03, 4.74528541206955367215e02,
       -2.24409524465858183362e01)
_LOW_WORD = -(1 << 32)  # clears the low 32 bits


@_jit
def _horner(c, x):
    """c[0] + c[1] x + c[2] x**2 + ... (unrolled by Numba: the tuple's length is a type)."""
    acc = c[len(c) - 1]
    for i in range(len(c) - 2, -1, -1):
        acc = acc * x + c[i]
    return acc


@_jit
def erf(x):
    """The error function for float64 (fdlibm ``s_erf.c``): on a = |x| < 0.84375
    a + a P(a**2)/Q(a**2); below 1.25 erx + P(a - 1)/Q(a - 1); below 6
    1 - exp(-z**2 - 0.5625) exp((z - a)(z + a) + R(1/a**2)/S(1/a**2)) / a, z = a with its
    low 32 bits cleared, with one pair (R, S) below 1/0.35 and another above; 1 from 6 on.
    Every interval's numerator and denominator are computed, the right pair selected and
    divided once; the sign of x is copied onto the result."""
    a = abs(x)
    z = a * a
    s = 1.0 / z
    small, mid, near = a < 0.84375, a < 1.25, a < 2.857142857142857
    num = _horner(_PP, z) if small else (
        _horner(_PA, a - 1.0) if mid else (_horner(_RA, s) if near else _horner(_RB, s))
    )
    den = 1.0 + (z * _horner(_QQ, z) if small else (
        (a - 1.0) * _horner(_QA, a - 1.0) if mid else (
            s * _horner(_SA, s) if near else s * _horner(_SB, s)
        )
    ))
    q = num / den
    zh = _from_bits(_bits(a) & _LOW_WORD)
    tail = exp(-zh * zh - 0.5625) * exp((zh - a) * (zh + a) + q) / a
    y = 1.0 - tail
    y = _ERX + q if mid else y
    y = a + a * q if small else y
    y = 0.125 * (8.0 * a + _EFX8 * a) if a < 3.725290298461914e-09 else y  # 2**-28
    y = 1.0 if a >= 6.0 else y
    return _from_bits(_bits(y) | (_bits(x) & _SIGN))


# --- sin and cos -------------------------------------------------------------------------

_INV_PIO2 = 6.36619772367581382433e-01
_PIO2_1 = 1.57079632673412561417e00  # pi/2 in three parts of 33 bits and their tails
_PIO2_1T = 6.07710050650619224932e-11
_PIO2_2 = 6.07710050630396597660e-11
_PIO2_2T = 2.02226624879595063154e-21
_PIO2_3 = 2.02226624871116645580e-21
_PIO2_3T = 8.47842766036889956997e-32
_S = (-1.66666666666666324348e-01, 8.33333333332248946124e-03, -1.98412698298579493134e-04,
      2.75573137070700676789e-06, -2.50507602534068634195e-08, 1.58969099521155010221e-10)
_C = (4.16666666666666019037e-02, -1.38888888888741095749e-03, 2.48015872894767294178e-05,
      -2.75573143513906633035e-07, 2.08757232129817482790e-09, -1.13596475577881948265e-11)


@_jit
def _reduce_pio2(x):
    """(n mod 4, y0, y1): x = n pi/2 + y0 + y1, |y0| <= pi/4 (fdlibm ``e_rem_pio2.c``,
    the medium case, all three steps: pi/2 to about 2**-150 in parts whose products
    with n are exact for |n| < 2**20, i.e. |x| < 2**20 pi/2, about 1.6e6)."""
    n, fn = _round_to_int(x * _INV_PIO2)
    r = x - fn * _PIO2_1
    w = fn * _PIO2_1T
    t = r
    w = fn * _PIO2_2
    r = t - w
    w = fn * _PIO2_2T - ((t - r) - w)
    t = r
    w = fn * _PIO2_3
    r = t - w
    w = fn * _PIO2_3T - ((t - r) - w)
    y0 = r - w
    return n & 3, y0, (r - y0) - w


@_jit
def _sin_kernel(x, y):
    """sin(x + y) for |x| <= pi/4, |y| tiny (fdlibm ``k_sin.c``)."""
    z = x * x
    v = z * x
    r = _S[1] + z * (_S[2] + z * (_S[3] + z * (_S[4] + z * _S[5])))
    return x - ((z * (0.5 * y - v * r) - y) - v * _S[0])


@_jit
def _cos_kernel(x, y):
    """cos(x + y) for |x| <= pi/4, |y| tiny (fdlibm ``k_cos.c``, FreeBSD's version)."""
    z = x * x
    w = z * z
    r = z * (_C[0] + z * (_C[1] + z * _C[2])) + w * w * (_C[3] + z * (_C[4] + z * _C[5]))
    hz = 0.5 * z
    w = 1.0 - hz
    return w + (((1.0 - w) - hz) + (z * r - x * y))


@_jit
def sin(x):
    """Sine for float64: :func:`_reduce_pio2`, then the sine or cosine kernel of the
    reduced argument chosen and signed by the quadrant.  Within 1.5 ulp for
    |x| < 2**20 pi/2 (about 1.6e6); beyond, the reduction is wrong and so is the result
    (hence not in :data:`FUNCTIONS`; see docs/accuracy.md)."""
    n, y0, y1 = _reduce_pio2(x)
    s, c = _sin_kernel(y0, y1), _cos_kernel(y0, y1)
    y = s if (n & 1) == 0 else c
    y = -y if n >= 2 else y
    y = x if x == 0.0 else y  # keeps -0.0
    return y if abs(x) < np.inf else np.nan


@_jit
def cos(x):
    """Cosine for float64: as :func:`sin`, one quadrant on."""
    n, y0, y1 = _reduce_pio2(x)
    s, c = _sin_kernel(y0, y1), _cos_kernel(y0, y1)
    y = c if (n & 1) == 0 else s
    y = -y if n == 1 or n == 2 else y
    return y if abs(x) < np.inf else np.nan


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


@_jit
def erf_f32(x):
    """erf(x) for float32: the float64 method, rounded once."""
    return np.float32(erf(np.float64(x)))


@_jit
def sin_f32(x):
    """sin(x) for float32: the float64 method, rounded once."""
    return np.float32(sin(np.float64(x)))


@_jit
def cos_f32(x):
    """cos(x) for float32: the float64 method, rounded once."""
    return np.float32(cos(np.float64(x)))


# The functions a generated kernel calls, by SymPy function name: (float64, float32).
# Each is within its documented bound on its whole domain.
FUNCTIONS = {
    "exp": ("exp", "exp_f32"),
    "expm1": ("expm1", "expm1_f32"),
    "log": ("log", "log_f32"),
    "log1p": ("log1p", "log1p_f32"),
    "tanh": ("tanh", "tanh_f32"),
    "erf": ("erf", "erf_f32"),
}

# Measured, but not called by kernels: their range reduction is exact only for
# |x| < 2**20 pi/2 (about 1.6e6), and beyond it they do not compute the sine at all; a
# kernel would need a second, wide reduction for those elements.  sg.sin and sg.cos call
# libm's.
LIMITED = {"sin": ("sin", "sin_f32"), "cos": ("cos", "cos_f32")}

# A digest of this file: kernels that call these functions carry it in their cache key,
# since Numba's cache does not notice when a function a kernel calls has changed.
DIGEST = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16]
