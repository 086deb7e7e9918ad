"""Branch-free transcendental functions that LLVM vectorises inside generated loops.

Numba calls the scalar libm (``math.exp`` ...) once per element, and without a vector
math library LLVM cannot turn a loop over such calls into SIMD code.  The functions here
are plain arithmetic on floats and on their bit patterns: range reduction, a polynomial or
rational approximation, exponent manipulation through an integer view of the float
(:func:`_bits`, :func:`_from_bits`), and selects (``a if c else b`` on values already
computed, which LLVM turns into blend instructions) instead of branches.  Once Numba
links them into a kernel, LLVM inlines them and vectorises the loop (packed ``ymm``/``zmm``
instructions on AVX2/AVX-512 machines); a loop that calls them also calls
:func:`wide_vectors`, so that Intel CPUs with AVX-512 get ``zmm`` too.

exp and expm1 are a reduction x = k ln2 + r and a polynomial in r evaluated in fused
multiply-adds (:func:`_fma`), with no division; log, log1p, tanh and erf follow fdlibm
(Sun's freely distributable libm, as kept in FreeBSD msun and musl) and Cephes, rewritten
without branches: every special case is a select on the result.  sin and cos reduce
every argument, however large, exactly enough (Payne and Hanek's method, with the bits
of 2/pi read from a table by the argument's exponent), then evaluate fdlibm's kernels.
Each function states its method; ``docs/accuracy.md`` gives the measured maximum error in
ulps against extended precision or mpmath (``python tests/ulp.py``).

float32 ``exp``, ``expm1``, ``log``, ``log1p``, ``tanh``, ``sigmoid`` and ``erf`` compute
in float32 lanes (16 per AVX-512 vector) with their own coefficients; their bit
manipulation is in LLVM IR intrinsics, since Numba widens int32 arithmetic to int64.
``sin_f32`` and ``cos_f32`` reduce in float64 (a float32 has 24 bits, so two parts of
2/pi do) and evaluate FreeBSD's float32 kernels in float64, rounding once.

Every function takes any real scalar: the float64 ones convert it to float64 first, the
float32 ones to float32, as NumPy converts an int64 or float32 operand of a float64 formula.

Conventions, as C99 Annex F and NumPy: NaN in gives NaN out, ``exp(-inf) = 0``,
``log(0) = -inf``, ``log(x < 0) = nan``, ``log1p(-1) = -inf``, signed zeros are kept by
the odd functions (``expm1``, ``log1p``, ``tanh``, ``erf``, ``sin``).

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


@intrinsic
def _fma(typingctx, a, b, c):
    """a * b + c rounded once (``llvm.fma``: a ``vfmadd`` where the CPU has FMA, as every
    x86 with AVX2 does; elsewhere LLVM calls libm's ``fma``, slow but still exact).  Used
    where the single rounding matters and to halve the instruction count of polynomials
    (Numba does not contract ``a * b + c`` itself)."""
    if not (a == b == c and a in (types.float64, types.float32)):
        return None

    def codegen(context, builder, signature, args):
        return builder.fma(*args)

    return a(a, a, a), codegen


# float32 bit manipulation is written in LLVM IR: Numba widens int32 arithmetic to int64,
# which would halve the vector width of float32 loops.
_I32, _FLT = ir.IntType(32), ir.FloatType()
_F32_SHIFT_BITS = 0x4B400000  # the bits of 1.5 * 2**23


def _i32(v):
    return ir.Constant(_I32, v)


def _pow2_ir(builder, k):
    """2**k as a float32 from the int32 k (-126 <= k <= 127)."""
    return builder.bitcast(builder.shl(builder.add(k, _i32(127)), _i32(23)), _FLT)


@intrinsic
def _scale_f32(typingctx, y, z):
    """y * 2**k for z = float32(k) + 1.5 * 2**23 (k in its low mantissa bits),
    -252 <= k <= 254, as two factors 2**(k >> 1) and 2**(k - (k >> 1)), so that a result
    that overflows is inf and one in the subnormal range is rounded once."""
    if not (y == z == types.float32):
        return None

    def codegen(context, builder, signature, args):
        k = builder.sub(builder.bitcast(args[1], _I32), _i32(_F32_SHIFT_BITS))
        k1 = builder.ashr(k, _i32(1))
        p1, p2 = _pow2_ir(builder, k1), _pow2_ir(builder, builder.sub(k, k1))
        return builder.fmul(builder.fmul(args[0], p1), p2)

    return types.float32(types.float32, types.float32), codegen


@intrinsic
def _pow2_f32(typingctx, z):
    """2**k for z = float32(k) + 1.5 * 2**23, -126 <= k <= 127."""
    if z != types.float32:
        return None

    def codegen(context, builder, signature, args):
        return _pow2_ir(builder, builder.sub(builder.bitcast(args[0], _I32),
                                             _i32(_F32_SHIFT_BITS)))

    return types.float32(types.float32), codegen


@intrinsic
def _split_f32(typingctx, x):
    """(float32(k), m) with x = 2**k m, sqrt(2)/2 <= m < sqrt(2), for a positive normal
    float32 x, from its bits (as musl's ``logf``)."""
    if x != types.float32:
        return None
    ret = types.UniTuple(types.float32, 2)

    def codegen(context, builder, signature, args):
        ix = builder.bitcast(args[0], _I32)
        tmp = builder.sub(ix, _i32(0x3F3504F3))
        k = builder.sitofp(builder.ashr(tmp, _i32(23)), _FLT)
        m = builder.bitcast(builder.sub(ix, builder.and_(tmp, _i32(-(1 << 23)))), _FLT)
        return context.make_tuple(builder, ret, (k, m))

    return ret(types.float32), codegen


@intrinsic
def _high_bits_f32(typingctx, x):
    """The float32 x with its low 12 mantissa bits cleared (11 left: its square is exact)."""
    if x != types.float32:
        return None

    def codegen(context, builder, signature, args):
        ix = builder.bitcast(args[0], _I32)
        return builder.bitcast(builder.and_(ix, _i32(-(1 << 12))), _FLT)

    return types.float32(types.float32), codegen


@intrinsic
def _copysign(typingctx, mag, sgn):
    """|mag| with the sign of sgn (``llvm.copysign``: two bitwise operations)."""
    if not (mag == sgn and mag in (types.float64, types.float32)):
        return None

    def codegen(context, builder, signature, args):
        ty = args[0].type
        fn = builder.module.declare_intrinsic("llvm.copysign", [ty], ir.FunctionType(ty, [ty, ty]))
        return builder.call(fn, args)

    return mag(mag, mag), codegen


@intrinsic
def wide_vectors(typingctx):
    """Marks the function being compiled (a kernel, or the body of its ``prange``) so that
    LLVM vectorises its loops with the widest vectors the CPU has: 512-bit ``zmm`` on
    AVX-512, where LLVM otherwise stays at 256 bits for Intel CPUs (its ``prefer-256-bit``
    tuning; AMD Zen 4 has no such preference).  The functions here are compute-bound: on
    this Sapphire Rapids class Xeon float64 ``exp`` in a loop ran at 770 M/s with ``ymm``
    and 1050 M/s with ``zmm``.  A no-op otherwise (no instruction; on an AVX2 CPU the
    widest vector is 256 bits anyway).  It sets the function attribute
    ``"prefer-vector-width"="512"``; the attribute belongs to the function that contains
    the loop, which is why a call inside the loop body carries it, whatever Numba
    outlines (llvmlite's attribute set checks names against a list without it)."""

    def codegen(context, builder, signature, args):
        try:
            set.add(builder.function.attributes, '"prefer-vector-width"="512"')
        except TypeError:  # a future llvmlite's attribute set: LLVM's default width then
            pass
        return context.get_dummy_value()

    return types.none(), codegen


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

# e**r = 1 + r + r**2 P(r) for |r| <= ln2/2: P of degree 10, a Chebyshev fit (near-minimax,
# 1.7e-19 relative error in e**r; benchmarks/vmath_coefficients.py), lowest degree first
_EP = (0.5, 0.1666666666666667, 0.04166666666666667, 0.008333333333326136,
       0.0013888888888883748, 0.00019841269874820627, 2.4801587325547743e-05,
       2.7557255400206422e-06, 2.75572736431103e-07, 2.5105217004720745e-08,
       2.0914686968086876e-09)


@_jit
def _horner_fma(c, x):
    """c[0] + c[1] x + c[2] x**2 + ... by Horner's rule, each step one fused multiply-add
    (unrolled by Numba: the tuple's length is part of its type)."""
    acc = c[len(c) - 1]
    for i in range(len(c) - 2, -1, -1):
        acc = _fma(acc, x, c[i])
    return acc


@_jit
def _exp_reduce(x):
    """(k, r, c) with x = k ln2 + r + c, |r| <= ln2/2 and c the rounding error of r (for
    |x| < 2**51 ln2): k from x / ln2 rounded through the shift constant, ln2 in two parts
    whose first has 32 trailing zero bits, so k * ln2_hi and x - k * ln2_hi are exact."""
    z = _fma(x, _INV_LN2, _SHIFT)
    kf = z - _SHIFT
    hi = _fma(-kf, _LN2_HI, x)
    r = _fma(-kf, _LN2_LO, hi)
    c = _fma(-kf, _LN2_LO, hi - r)  # hi - r is exact: r is hi minus a small term
    return _bits(z) - _SHIFT_BITS, r, c


@_jit
def exp(x):
    """e**x for float64, without division: x = k ln2 + r + c (:func:`_exp_reduce`),
    e**r = 1 + r + r**2 P(r) with P of degree 10 (fused multiply-adds), the reduction error
    c added to the small part, 1 + r + (...) summed with the rounding error of 1 + r kept
    (so the result is rounded about once), then 2**k applied in two factors, so results
    that overflow become inf and results in the subnormal range are rounded once."""
    x = np.float64(x)  # an int64 or float32 operand of a float64 formula
    # beyond these e**x is inf / 0 anyway; NaN fails both tests and stays NaN
    xc = 710.0 if x > 710.0 else x
    xc = -746.0 if xc < -746.0 else xc
    k, r, c = _exp_reduce(xc)
    t = _fma(r * r, _horner_fma(_EP, r), c)  # e**(r + c) - 1 - r, to 2**-60 or so
    a = 1.0 + r
    y = a + (((1.0 - a) + r) + t)  # (1 - a) + r: the rounding error of a, exact
    k1 = k >> 1  # 2**k = 2**k1 * 2**(k - k1), each a normal number for |k| <= 1076
    return y * _pow2(k1) * _pow2(k - k1)


# --- expm1 -------------------------------------------------------------------------------


@_jit
def expm1(x):
    """e**x - 1 for float64, without division: with :func:`exp`'s reduction and polynomial,
    e**x - 1 = (2**k - 1) + 2**k r + 2**k (r**2 P(r) + c).  2**k - 1 and 2**k r are exact
    (|k| <= 53; beyond, 2**k - 1 is within 2**-53 of its value relative to the result),
    and their sum is formed with its rounding error (Fast2Sum: |2**k - 1| >= |2**k r|
    or 2**k - 1 = 0), so the result is rounded about once.  For k = 0 this is
    x + x**2 P(x), exact to the last bit for tiny x; above 709.4 (k = 1024) the scale is
    applied as 2**1023 and a final factor 2."""
    x = np.float64(x)  # an int64 or float32 operand of a float64 formula
    # expm1(-40) rounds to -1; e**710 overflows; NaN stays NaN
    xc = 710.0 if x > 710.0 else x
    xc = -40.0 if xc < -40.0 else xc
    k, r, c = _exp_reduce(xc)
    t = _fma(r * r, _horner_fma(_EP, r), c)
    scale = _pow2(1023 if k > 1023 else k)
    wide = k > 53  # 2**k - 1 is not exact: the -1 joins the small terms
    a = scale if wide else scale - 1.0
    b = scale * r
    u = a + b
    y = u + (_fma(scale, t, b - (u - a)) - (1.0 if wide else 0.0))  # b - (u - a): u's error
    y = y * 2.0 if k > 1023 else y
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
    t1 = w * _fma(_fma(w, _LG6, _LG4), w, _LG2)
    t2 = z * _fma(_fma(_fma(w, _LG7, _LG5), w, _LG3), w, _LG1)
    hfsq = 0.5 * f * f
    dk = np.float64(k)
    return _fma(dk, _LN2_HI, -((hfsq - _fma(s, hfsq + t1 + t2, _fma(dk, _LN2_LO, c))) - f))


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
    x = np.float64(x)  # an int64 or float32 operand of a float64 formula
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
    x = np.float64(x)  # an int64 or float32 operand of a float64 formula
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
    """Hyperbolic tangent for float64 (Cephes ``tanh.c``): with a = |x|, below 0.625
    a + a q, q = z P(z)/Q(z) in z = a**2 (degrees 2 and 3), above it 1 - q,
    q = 2 / (exp(2a) + 1); the numerator and denominator of the right q are selected and
    divided once, and the sign of x is copied on."""
    x = np.float64(x)  # an int64 or float32 operand of a float64 formula
    a = abs(x)
    z = a * a
    below = a < 0.625
    num = z * _fma(_fma(_TP0, z, _TP1), z, _TP2) if below else 2.0
    den = _fma(_fma(z + _TQ0, z, _TQ1), z, _TQ2) if below else exp(2.0 * a) + 1.0
    q = num / den  # exp(2a) + 1 = inf from a = 355 on: q = 0, tanh = 1, also for a = inf
    return _copysign(_fma(a, q, a) if below else 1.0 - q, x)


# --- sigmoid -----------------------------------------------------------------------------


@_jit
def sigmoid(x):
    """1 / (1 + e**-x) for float64, within 2 ulp everywhere: with e = exp(-|x|) <= 1,
    1 / (1 + e) for x >= 0 and e / (1 + e) below, one division selected by the sign, and
    the rounding errors of 1 + e and of the division corrected for (so the error is
    about exp's, times at most 1).
    The formula as written rounds 1 + e**-x where e**-x > 2**53 (x < -36.7) with an error
    of up to an ulp of 2 and loses 2.3 ulp; here 1 + e is formed near 1.  Like the
    formula, the result is 0 where e**-x overflows (x < -709.782712893384), although
    the exact value is a subnormal number down to x = -745."""
    x = np.float64(x)  # an int64 or float32 operand of a float64 formula
    e = exp(-abs(x))
    n = 1.0 if x >= 0.0 else e
    d = 1.0 + e
    q = n / d
    # q (1 + ((n - q d) - q (d's rounding error)) / d): the division's and 1 + e's rounding
    # errors put back, 1 / d being q or 1 - q
    dlo = (1.0 - d) + e
    y = _fma(_fma(-q, d, n) - q * dlo, q if x >= 0.0 else 1.0 - q, q)
    # the formula's 0 where exp(-x) overflows (e**709.7827128933841 is 9e-14 above the
    # overflow threshold, e**709.782712893384 2.4e-14 below: every exp within a few ulp
    # agrees), so that calling this instead of the formula changes values by rounding only
    # (docs/semantics.md)
    return 0.0 if x < -709.782712893384 else y


@_jit
def _sigmoid_f32(x):
    """1 / (1 + e**-x) for float32, in float32 lanes: as :func:`sigmoid`."""
    e = _exp_f32(-abs(x))
    n = _ONE_F if x >= _F(0.0) else e
    d = _ONE_F + e
    q = n / d
    dlo = (_ONE_F - d) + e
    y = _fma(_fma(-q, d, n) - q * dlo, q if x >= _F(0.0) else _ONE_F - q, q)
    # where float32 exp overflows: e**88.72283935546875 is 2.7e-7 (2.3 ulp) above the
    # threshold, e**88.72283172607422 7.4e-6 below
    return _F(0.0) if x <= _F(-88.72283935546875) else y


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
    x = np.float64(x)  # an int64 or float32 operand of a float64 formula
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

# 2/pi to 1216 bits (fdlibm's ipio2 table, as one hexadecimal integer: floor(2/pi 2**1216))
_TWO_OVER_PI = int(
    "a2f9836e4e441529fc2757d1f534ddc0db6295993c439041fe5163abdebbc561b7246e3a424dd2e006492eea"
    "09d1921cfe1deb1cb129a73ee88235f52ebb4484e99c7026b45f7e413991d639835339f49c845f8bbdf9283b"
    "1ff897ffde05980fef2f118b5a0a6d1f6d367ecf27cb09b74f463f669e5fea2d7527bac7ebe5f17b3d0739f7"
    "8a5292ea6bfb5fb11f8d5d0856033046fc7b6bab", 16)
_TWO_OVER_PI_BITS = 1216


def _pio2_table():
    """The rows of the wide reduction, one per scale s = 1 ... 971 (row s - 1): 2/pi with
    its bits of weight 2**(2 - s) and above dropped (they contribute multiples of 4 to
    x 2/pi for x a multiple of 2**s), the next 212 bits in four 53-bit parts, each times
    2**s, so that part j is below 2**(2 - 53 j) whatever s."""
    rows = []
    for s in range(1, 972):
        for j in range(4):
            low = _TWO_OVER_PI_BITS + 2 - s - 53 * (j + 1)  # the part's lowest bit
            chunk = (_TWO_OVER_PI >> low) & ((1 << 53) - 1)
            rows.append(float(chunk) * 2.0 ** (2 - 53 * (j + 1)))  # exact: 53 bits
    return np.array(rows)


_PIO2_TABLE = _pio2_table()
_PIO2_HI = 1.5707963267948966  # pi/2 as a double-double
_PIO2_LO = 6.123233995736766e-17
_S = (-1.66666666666666324348e-01, 8.33333333332248946124e-03, -1.98412698298579493134e-04,
      2.75573137070700676789e-06, -2.50507602534068634195e-08, 1.58969099521155010221e-10)
_C = (4.16666666666666019037e-02, -1.38888888888741095749e-03, 2.48015872894767294178e-05,
      -2.75573143513906633035e-07, 2.08757232129817482790e-09, -1.13596475577881948265e-11)


@intrinsic
def _rint(typingctx, x):
    """x rounded to an integer, ties to even (``llvm.rint``: one ``vroundpd`` or
    ``vrndscalepd``), for every x: large floats are integers already, NaN stays NaN."""
    if x not in (types.float64, types.float32):
        return None

    def codegen(context, builder, signature, args):
        ty = args[0].type
        fn = builder.module.declare_intrinsic("llvm.rint", [ty], ir.FunctionType(ty, [ty]))
        return builder.call(fn, args)

    return x(x), codegen


@_jit
def _two_sum(a, b):
    """(s, e): s = a + b rounded and e its rounding error, a + b = s + e exactly (Knuth)."""
    s = a + b
    z = s - a
    return s, (a - (s - z)) + (b - z)


@_jit
def _pio2_row(a):
    """(m, i): a = m 2**s with s >= 1 the scale of a's last bit (s = 1 below 2**53, then
    m = a / 2), and i the index of the row of :data:`_PIO2_TABLE` for s.  m < 2**53; for
    inf and NaN, whose result a select drops, any row."""
    e = (_bits(a) >> 52) - 1075
    s = 1 if e < 1 else (971 if e > 971 else e)
    return a * _pow2(-s), 4 * (s - 1)


@_jit
def _reduce_pio2(a):
    """(n mod 4, y0, y1) with a = n pi/2 + y0 + y1, |y0| <= pi/4 and y1 below half an ulp
    of y0, for every finite a >= 0 (Payne and Hanek's reduction, without a branch).

    With a = m 2**s (:func:`_pio2_row`), a 2/pi mod 4 is m times the row of
    :data:`_PIO2_TABLE` for s: four parts t0 > t1 > t2 > t3 (a gather).  The products
    m tj are exact as two doubles each (fused multiply-adds; m t3 is rounded, below
    2**-104 anyway), their integer parts are removed exactly (they count the quadrant),
    and the fractions are summed with their rounding errors kept, so that f, the fraction
    of a 2/pi, is right to about 2**-103 relative plus 2**-150 absolute: enough for the
    worst case of float64, x = 6381956970095103 2**797, which is only 4.7e-19 (2**-61)
    from a multiple of pi/2 (f about 2**-62 keeps some 88 correct bits).
    Then y = f pi/2 in double-double.  Below pi/4, y0 = a."""
    m, i = _pio2_row(a)
    t0, t1, t2, t3 = _PIO2_TABLE[i], _PIO2_TABLE[i + 1], _PIO2_TABLE[i + 2], _PIO2_TABLE[i + 3]
    h0 = m * t0  # below 2**55
    l0 = _fma(m, t0, -h0)
    h1 = m * t1  # below 4
    l1 = _fma(m, t1, -h1)
    h2 = m * t2  # below 2**-51
    l2 = _fma(m, t2, -h2)
    # integer parts, exact, with h0's reduced mod 4 (it can be large)
    n0, n1, n2 = _rint(h0), _rint(l0), _rint(h1)
    q = (n0 - 4.0 * _rint(0.25 * n0)) + n1 + n2
    f, c1 = _two_sum(h0 - n0, l0 - n1)
    f, c2 = _two_sum(f, h1 - n2)
    n3 = _rint(f)  # |f| <= 1.5
    q += n3
    f, c3 = _two_sum(f - n3, l1)  # the small terms added into f with their errors
    f, c4 = _two_sum(f, h2)
    f, c5 = _two_sum(f, c1)
    f, c6 = _two_sum(f, c2)
    g = (c3 + c4 + c5 + c6) + (l2 + m * t3)
    f, g = f + g, g - ((f + g) - f)  # |f| >= |g| or f = 0: Fast2Sum
    y0 = f * _PIO2_HI
    y1 = _fma(f, _PIO2_HI, -y0) + _fma(f, _PIO2_LO, g * _PIO2_HI)
    r0 = y0 + y1
    r1 = y1 - (r0 - y0)
    n, _ = _round_to_int(q)
    small = a <= 0.7853981633974483
    return (0 if small else n & 3), (a if small else r0), (0.0 if small else r1)


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
    """Sine for float64, every argument: :func:`_reduce_pio2` of |x|, the sine or cosine
    kernel of the reduced argument chosen and signed by the quadrant, the sign of x put
    back.  Within 1 ulp (docs/accuracy.md)."""
    x = np.float64(x)  # an int64 or float32 operand of a float64 formula
    n, y0, y1 = _reduce_pio2(abs(x))
    s, c = _sin_kernel(y0, y1), _cos_kernel(y0, y1)
    y = s if (n & 1) == 0 else c
    y = -y if (n >= 2) != (x < 0.0) else y
    y = x if x == 0.0 else y  # keeps -0.0
    return y if abs(x) < np.inf else np.nan


@_jit
def cos(x):
    """Cosine for float64, every argument: as :func:`sin`, one quadrant on (cos is even)."""
    x = np.float64(x)  # an int64 or float32 operand of a float64 formula
    n, y0, y1 = _reduce_pio2(abs(x))
    s, c = _sin_kernel(y0, y1), _cos_kernel(y0, y1)
    y = c if (n & 1) == 0 else s
    y = -y if n == 1 or n == 2 else y
    return y if abs(x) < np.inf else np.nan


# --- float32 -----------------------------------------------------------------------------


_F = np.float32
_SHIFT_F = _F(12582912.0)  # 1.5 * 2**23
_INV_LN2_F = _F(1.4426950408889634)
_LN2_HI_F = _F(6.93145751953125e-01)  # 0x3f317200: 9 trailing zero bits (fdlibm e_expf.c)
_LN2_LO_F = _F(1.428606765330187e-06)
# e**r = 1 + r + r**2 P(r), |r| <= ln2/2: P of degree 4 (Chebyshev fit, 7.9e-9 relative)
_EP_F = (_F(0.5), _F(0.16666576666119928), _F(0.04166655421298415), _F(0.008363232883682618),
         _F(0.0013926250831497611))
_ONE_F, _TWO_F, _HALF_F = _F(1.0), _F(2.0), _F(0.5)


@_jit
def _exp_f32(x):
    """e**x for float32, in float32 lanes (twice as many per vector as float64): the
    method of :func:`exp` with float32 constants, P of degree 4, 2**k in two factors."""
    xc = _F(89.0) if x > _F(89.0) else x  # e**89 > float32's max; NaN stays NaN
    xc = _F(-104.0) if xc < _F(-104.0) else xc  # e**-104 < half the smallest subnormal
    z = _fma(xc, _INV_LN2_F, _SHIFT_F)
    kf = z - _SHIFT_F
    r = _fma(-kf, _LN2_LO_F, _fma(-kf, _LN2_HI_F, xc))
    y = _ONE_F + _fma(r * r, _horner_fma(_EP_F, r), r)
    return _scale_f32(y, z)


@_jit
def _expm1_f32(x):
    """e**x - 1 for float32, in float32 lanes: the method of :func:`expm1` with the
    constants of :func:`exp_f32` (above 88.0, k = 128, the scale is 2**127 times 2)."""
    xc = _F(89.0) if x > _F(89.0) else x  # NaN stays NaN
    xc = _F(-18.0) if xc < _F(-18.0) else xc  # expm1(-18) rounds to -1
    z = _fma(xc, _INV_LN2_F, _SHIFT_F)
    kf = z - _SHIFT_F
    hi = _fma(-kf, _LN2_HI_F, xc)
    r = _fma(-kf, _LN2_LO_F, hi)
    c = _fma(-kf, _LN2_LO_F, hi - r)
    t = _fma(r * r, _horner_fma(_EP_F, r), c)
    big = kf > _F(127.0)
    scale = _pow2_f32(_SHIFT_F + _F(127.0) if big else z)
    wide = kf > _F(24.0)
    a = scale if wide else scale - _ONE_F
    b = scale * r
    u = a + b
    y = u + (_fma(scale, t, b - (u - a)) - (_ONE_F if wide else _F(0.0)))
    y = y * _TWO_F if big else y
    return x if x == _F(0.0) else y


# fdlibm e_logf.c: log(1 + f) = f - f**2/2 + s (f**2/2 + R(s**2)), s = f / (2 + f)
_LG1_F, _LG2_F = _F(0.66666662693), _F(0.40000972152)
_LG3_F, _LG4_F = _F(0.28498786688), _F(0.24279078841)
_LN2_HI_LOG_F = _F(6.9313812256e-01)  # 0x3f317180
_LN2_LO_LOG_F = _F(9.0580006145e-06)


@_jit
def _log_core_f32(f, kf, c):
    """log(2**k (1 + f)) + c in float32 for sqrt(2)/2 <= 1 + f < sqrt(2) (fdlibm's
    ``e_logf.c``: R of degree 8 in s)."""
    s = f / (_TWO_F + f)
    z = s * s
    w = z * z
    r = z * _fma(w, _LG3_F, _LG1_F) + w * _fma(w, _LG4_F, _LG2_F)
    hfsq = _HALF_F * f * f
    return _fma(kf, _LN2_HI_LOG_F, -((hfsq - _fma(s, hfsq + r, _fma(kf, _LN2_LO_LOG_F, c))) - f))


@_jit
def _log_f32(x):
    """log(x) for float32, in float32 lanes: k and m from the bits (subnormals scaled by
    2**23 first), then :func:`_log_core_f32` of f = m - 1."""
    sub = x < _F(1.1754943508222875e-38)
    xs = x * _F(8388608.0) if sub else x
    kf, m = _split_f32(xs)
    kf = kf - _F(23.0) if sub else kf
    y = _log_core_f32(m - _ONE_F, kf, _F(0.0))
    y = _F(np.inf) if x == _F(np.inf) else y
    y = _F(-np.inf) if x == _F(0.0) else y
    return y if x >= _F(0.0) else _F(np.nan)


@_jit
def _log1p_f32(x):
    """log(1 + x) for float32, in float32 lanes: as :func:`log1p` (u = 1 + x, its
    rounding error added back as c / u), with :func:`_log_core_f32`."""
    u = _ONE_F + x
    kf, m = _split_f32(u)
    c = (_ONE_F - (u - x) if kf >= _TWO_F else x - (u - _ONE_F)) / u
    c = _F(0.0) if kf == _F(0.0) or kf >= _F(25.0) else c
    f = x if kf == _F(0.0) else m - _ONE_F
    y = _log_core_f32(f, kf, c)
    y = _F(np.inf) if x == _F(np.inf) else y
    y = _F(-np.inf) if x == -_ONE_F else y
    y = y if x >= -_ONE_F else _F(np.nan)
    return x if x == _F(0.0) else y


# Cephes tanhf.c: tanh(a) = a + a z P(z), z = a**2, for |a| < 0.625
_TP_F = (_F(-3.33332819422e-1), _F(1.33314422036e-1), _F(-5.37397155531e-2),
         _F(2.06390887954e-2), _F(-5.70498872745e-3))


@_jit
def _tanh_f32(x):
    """tanh(x) for float32, in float32 lanes (Cephes ``tanhf.c``): with a = |x|, below
    0.625 a + a z P(z) in z = a**2 (P of degree 4), above it 1 - 2 / (exp(2a) + 1) with
    :func:`_exp_f32`'s method; the sign of x copied on."""
    a = abs(x)
    z = a * a
    below = _fma(a * z, _horner_fma(_TP_F, z), a)
    # e**b for b = 2a <= 20 (tanh(10) rounds to 1) by exp_f32's method without its range
    # checks: 2**k, k <= 29, is one factor
    b = _F(20.0) if a > _F(10.0) else _TWO_F * a  # NaN stays NaN
    zb = _fma(b, _INV_LN2_F, _SHIFT_F)
    kf = zb - _SHIFT_F
    r = _fma(-kf, _LN2_LO_F, _fma(-kf, _LN2_HI_F, b))
    e = (_ONE_F + _fma(r * r, _horner_fma(_EP_F, r), r)) * _pow2_f32(zb)
    above = _ONE_F - _TWO_F / (e + _ONE_F)
    return _copysign(below if a < _F(0.625) else above, x)


# fdlibm s_erff.c: the intervals and rational approximations of s_erf.c, in float32
_ERF_F = {
    "pp": (1.2837916613e-01, -3.2504209876e-01, -2.8481749818e-02, -5.7702702470e-03,
           -2.3763017452e-05),
    "qq": (3.9791721106e-01, 6.5022252500e-02, 5.0813062117e-03, 1.3249473704e-04,
           -3.9602282413e-06),
    "pa": (-2.3621185683e-03, 4.1485610604e-01, -3.7220788002e-01, 3.1834661961e-01,
           -1.1089469492e-01, 3.5478305072e-02, -2.1663755178e-03),
    "qa": (1.0642088205e-01, 5.4039794207e-01, 7.1828655899e-02, 1.2617121637e-01,
           1.3637083583e-02, 1.1984500103e-02),
    "ra": (-9.8649440333e-03, -6.9385856390e-01, -1.0558626175e+01, -6.2375331879e+01,
           -1.6239666748e+02, -1.8460508728e+02, -8.1287437439e+01, -9.8143291473e+00),
    "sa": (1.9651271820e+01, 1.3765776062e+02, 4.3456588745e+02, 6.4538726807e+02,
           4.2900814819e+02, 1.0863500214e+02, 6.5702495575e+00, -6.0424413532e-02),
    "rb": (-9.8649431020e-03, -7.9928326607e-01, -1.7757955551e+01, -1.6063638306e+02,
           -6.3756646729e+02, -1.0250950928e+03, -4.8351919556e+02),
    "sb": (3.0338060379e+01, 3.2579251099e+02, 1.5367296143e+03, 3.1998581543e+03,
           2.5530502930e+03, 4.7452853394e+02, -2.2440952301e+01),
}
_PP_F, _QQ_F, _PA_F, _QA_F, _RA_F, _SA_F, _RB_F, _SB_F = (
    tuple(_F(c) for c in _ERF_F[k]) for k in ("pp", "qq", "pa", "qa", "ra", "sa", "rb", "sb"))
_ERX_F = _F(8.4506291151e-01)


@_jit
def _erf_f32(x):
    """erf(x) for float32, in float32 lanes (fdlibm ``s_erff.c``): the method of
    :func:`erf` with float32 coefficients, :func:`_exp_f32`, and the square split by
    clearing 12 bits (:func:`_high_bits_f32`); 1 from 6 on.  Below 0.84375 a + a q in
    one fused multiply-add, which is also right for tiny and subnormal a (z = 0, q is
    2/sqrt(pi) - 1)."""
    a = abs(x)
    z = a * a
    s = _ONE_F / z
    am1 = a - _ONE_F
    small, mid, near = a < _F(0.84375), a < _F(1.25), a < _F(2.857142857142857)
    num = _horner_fma(_PP_F, z) if small else (
        _horner_fma(_PA_F, am1) if mid else (
            _horner_fma(_RA_F, s) if near else _horner_fma(_RB_F, s)))
    den = _ONE_F + (z * _horner_fma(_QQ_F, z) if small else (
        am1 * _horner_fma(_QA_F, am1) if mid else (
            s * _horner_fma(_SA_F, s) if near else s * _horner_fma(_SB_F, s))))
    q = num / den
    zh = _high_bits_f32(a)
    tail = _exp_f32(-zh * zh - _F(0.5625)) * _exp_f32((zh - a) * (zh + a) + q) / a
    y = _ONE_F - tail
    y = _ERX_F + q if mid else y
    y = _fma(a, q, a) if small else y  # one rounding: right for subnormal a too
    y = _ONE_F if a >= _F(6.0) else y
    return _copysign(y, x)


# The float32 entry points: a float32 kernel may pass a float64 operand (math.pi in a
# formula); the argument is rounded to float32 first, as the kernel's arithmetic is.


@_jit
def exp_f32(x):
    """e**x for float32 (see :func:`_exp_f32`)."""
    return _exp_f32(np.float32(x))


@_jit
def expm1_f32(x):
    """e**x - 1 for float32 (see :func:`_expm1_f32`)."""
    return _expm1_f32(np.float32(x))


@_jit
def log_f32(x):
    """log(x) for float32 (see :func:`_log_f32`)."""
    return _log_f32(np.float32(x))


@_jit
def log1p_f32(x):
    """log(1 + x) for float32 (see :func:`_log1p_f32`)."""
    return _log1p_f32(np.float32(x))


@_jit
def tanh_f32(x):
    """tanh(x) for float32 (see :func:`_tanh_f32`)."""
    return _tanh_f32(np.float32(x))


@_jit
def sigmoid_f32(x):
    """1 / (1 + e**-x) for float32 (see :func:`_sigmoid_f32`)."""
    return _sigmoid_f32(np.float32(x))


@_jit
def erf_f32(x):
    """erf(x) for float32 (see :func:`_erf_f32`)."""
    return _erf_f32(np.float32(x))


# FreeBSD k_sinf.c and k_cosf.c: float32 sine and cosine kernels evaluated in float64,
# |sin(y)/y - y S(y**2)| < 2**-37.5 and |cos(y) - C(y**2)| < 2**-34.1 for |y| <= pi/4
_S_F = (-0.166666666416265235595, 0.0083333293858894631756, -0.000198393348360966317347,
        0.0000027183114939898219064)
_C_F = (-0.499999997251031003120, 0.0416666233237390631894, -0.00138867637746099294692,
        0.0000243904487962774090654)


@_jit
def _reduce_pio2_f32(a):
    """(n mod 4, y) with a = n pi/2 + y, |y| <= pi/4, y within 2**-50 relative, for a the
    float64 value of |x|, x a float32: the reduction of :func:`_reduce_pio2` cut to what
    float32 needs.  m < 2**24 (a float32 has 24 bits), so m t0 is exact as h0 + l0, the
    fraction (h0 - n0) + l0 rounds once, and m t1 (below 2**-27, rounded, the rest of
    2/pi below 2**-80) is added: f is within 2**-78 of the exact fraction.  No float32 is
    closer than 1.6e-9 to a multiple of pi/2 (a scan of all of them: 7.729179e28 is the
    closest), so y keeps about 50 correct bits."""
    m, i = _pio2_row(a)
    t0 = _PIO2_TABLE[i]
    h0 = m * t0
    n0 = _rint(h0)
    f = ((h0 - n0) + _fma(m, t0, -h0)) + m * _PIO2_TABLE[i + 1]
    n1 = _rint(f)
    n, _ = _round_to_int((n0 - 4.0 * _rint(0.25 * n0)) + n1)
    small = a <= 0.7853981633974483
    return (0 if small else n & 3), (a if small else (f - n1) * _PIO2_HI)


@_jit
def _sin_cos_f32(x, odd):
    """sin(x) if odd else cos(x), x a float32, in float64 (:func:`_reduce_pio2_f32`, the
    kernels of k_sinf.c and k_cosf.c, the quadrant by selects) and rounded once."""
    a = np.float64(abs(x))
    n, y = _reduce_pio2_f32(a)
    z = y * y
    w = z * z
    s = (y + z * y * _fma(z, _S_F[1], _S_F[0])) + z * y * w * _fma(z, _S_F[3], _S_F[2])
    c = (_fma(z, _C_F[0], 1.0) + w * _C_F[1]) + w * z * _fma(z, _C_F[3], _C_F[2])
    n = n if odd else n + 1  # cos(a) = sin(a + pi/2)
    r = s if (n & 1) == 0 else c
    r = -r if (n & 2) != 0 else r
    r = -r if odd and x < _F(0.0) else r
    r = np.float64(x) if odd and x == _F(0.0) else r  # keeps -0.0
    return np.float32(r) if a < np.inf else _F(np.nan)


@_jit
def sin_f32(x):
    """sin(x) for float32, every argument (see :func:`_sin_cos_f32`)."""
    return _sin_cos_f32(np.float32(x), True)


@_jit
def cos_f32(x):
    """cos(x) for float32, every argument (see :func:`_sin_cos_f32`)."""
    return _sin_cos_f32(np.float32(x), False)


# The functions a generated kernel calls, by SymPy function name: (float64, float32).
# Each is within its documented bound on its whole domain.
FUNCTIONS = {
    "exp": ("exp", "exp_f32"),
    "expm1": ("expm1", "expm1_f32"),
    "log": ("log", "log_f32"),
    "log1p": ("log1p", "log1p_f32"),
    "tanh": ("tanh", "tanh_f32"),
    "erf": ("erf", "erf_f32"),
    "sin": ("sin", "sin_f32"),
    "cos": ("cos", "cos_f32"),
    # not a SymPy function: the printer writes 1 / (1 + exp(-u)) as sigmoid(u) before it
    # splits common subexpressions (numba_printers.vector_sigmoids)
    "sigmoid": ("sigmoid", "sigmoid_f32"),
}


def scalar(name: str, dtype: str):
    """The function of :data:`FUNCTIONS` called ``name``, for ``dtype``."""
    f64, f32 = FUNCTIONS[name]
    return globals()[f32 if dtype == "float32" else f64]


def mapped(fn):
    """``fn`` (a scalar Numba function) over a 1-D array, one element per iteration: the loop
    a fused kernel runs, for the accuracy sweeps and the throughput benchmark."""

    @njit(error_model="numpy")
    def run(a):
        out = np.empty_like(a)
        for i in range(a.shape[0]):
            out[i] = fn(a[i])
            wide_vectors()  # as generated loops do
        return out

    return run


# A digest of this file: kernels that call these functions carry it in their cache key,
# since Numba's cache does not notice when a function a kernel calls has changed.
DIGEST = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16]
