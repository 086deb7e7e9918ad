"""Matrix products for generated kernels, compiled once per machine instead of per kernel.

A kernel's ``np.dot`` makes Numba compile its BLAS glue again for every new combination
of argument types (dtype, layout, read-only or not), about 0.5 s each, in every process
that compiles a new kernel: four of the five seconds of an MLP's cold compile.  Kernels
call this module's products instead, functions of their own cached on disk by Numba
(``cache=True``): each combination of types is compiled the first time it is met on the
machine and loaded from Numba's cache (milliseconds) by every later compile.

* :func:`matmul` (two matrices) and :func:`matmul_add` (a product written into an array, or
  added there: ``gemm`` with ``beta = 0`` or ``1``; a row-blocked kernel, ``rowblock.py``,
  sums ``X_b.T @ G_b`` over its blocks of rows in place, the first block writing);
* :func:`matvec`, :func:`vecmat` and their ``_add`` forms (``gemv``), :func:`vecdot` (``dot``).

They call NumPy's own BLAS through the names ``symgrad_dgemm``, ``symgrad_sgemv``,
``symgrad_ddot``, ... (:data:`NAMES`) that :func:`bind_blas` gives them, with the transpose
flags and leading dimensions read from the operands' strides, so a transposed operand
(``X.T``, an F-ordered view) is read where it lies, never copied.

Why NumPy's: its wheels carry OpenBLAS with a CBLAS of 64-bit integers
(``scipy_cblas_dgemm64_``, ...), loaded with NumPy.  Numba's ``np.dot`` calls SciPy's BLAS,
and its first call in a process imports ``scipy.linalg`` (the whole package: 60-85 ms of a
warm start's first result on this machine, about 100 ms in a fast spell).  A product is
then also the very BLAS call of ``np.matmul``: the same bits (but where a dimension is 1,
for which NumPy calls another function).  Where NumPy has no such CBLAS (Accelerate, MKL),
the names are bound to functions of the same signatures that call Numba's ``numba_xxgemm``,
``numba_xxgemv`` and ``numba_xxdot`` (SciPy's BLAS), so a kernel's code is the same either
way.  The functions are small on purpose: Numba links the code of a function into every
kernel that calls it and LLVM optimises it again there (``benchmarks/helper_ir.py``), so
they allocate nothing but their result and copy nothing but a strided vector (NumPy's
``dot`` glue and ``ascontiguousarray`` were 60 % of the code LLVM optimised for a
``softmax`` kernel).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from numba import njit, types
from numba.extending import overload

# CBLAS's constants
COL_MAJOR, NO_TRANS, TRANS = 102, 111, 112
NAMES = ("dgemm", "sgemm", "dgemv", "sgemv", "ddot", "sdot")


def _signature(name: str):
    """The signature of NumPy's CBLAS function ``name`` (``dgemm``, ...): sizes are int64."""
    scalar = types.float64 if name[0] == "d" else types.float32
    n, p = types.int64, types.voidptr
    flag = types.intc
    if name.endswith("gemm"):  # order, transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc
        return types.void(flag, flag, flag, n, n, n, scalar, p, n, p, n, scalar, p, n)
    if name.endswith("gemv"):  # order, trans, m, n, alpha, a, lda, x, incx, beta, y, incy
        return types.void(flag, flag, n, n, scalar, p, n, p, n, scalar, p, n)
    return scalar(n, p, n, p, n)  # dot: n, x, incx, y, incy


# the names kernels call (symgrad_dgemm, ...), bound to addresses by bind_blas
_dgemm, _sgemm, _dgemv, _sgemv, _ddot, _sdot = (
    types.ExternalFunction(f"symgrad_{name}", _signature(name)) for name in NAMES
)


def _numpy_blas() -> list[int] | None:
    """The addresses of NumPy's own CBLAS functions of :data:`NAMES`, or None: the OpenBLAS
    of NumPy 2's wheels (scipy-openblas64) names them ``scipy_cblas_dgemm64_``, ..."""
    import ctypes

    try:  # the BLAS np.matmul calls is a dependency of NumPy's core module
        lib = ctypes.CDLL(np._core._multiarray_umath.__file__)
        functions = [getattr(lib, f"scipy_cblas_{name}64_") for name in NAMES]
        return [ctypes.cast(f, ctypes.c_void_p).value for f in functions]
    except (OSError, AttributeError):  # NumPy 1 (np.core), or another BLAS
        return None


# The same signatures over Numba's numba_xxgemm, numba_xxgemv and numba_xxdot (SciPy's BLAS,
# imported at their first call): LLVM IR compiled by llvmlite in milliseconds (a Numba cfunc
# loaded from its cache would start Numba's compiler up, 200 ms).  "kind" is "d" or "s"
# (100, 115); a transpose flag is "n" (110) or "t" (116) where CBLAS says NO_TRANS (111) or
# TRANS (fortran_flag); Numba's gemv and dot take unit increments only, which is all this
# module passes.  Pointers are written typed (i8*): LLVM 15 (Numba 0.61) reads no other
# form, and later LLVMs read them as their opaque ``ptr``.
_SCIPY_IR = """
declare i32 @numba_xxgemm(i8, i8, i8, i64, i64, i64, i8*, i8*, i64, i8*, i64, i8*, i8*, i64)
declare i32 @numba_xxgemv(i8, i8, i64, i64, i8*, i8*, i64, i8*, i8*, i8*)
declare i32 @numba_xxdot(i8, i8, i64, i8*, i8*, i8*)
define internal i8 @fortran_flag(i32 %cblas) alwaysinline {
  %no = icmp eq i32 %cblas, 111
  %flag = select i1 %no, i8 110, i8 116
  ret i8 %flag
}
"""
# Numba's functions take alpha and beta by reference
_SCALARS_BY_REFERENCE = """  %ta = alloca {t}
  store {t} %alpha, {t}* %ta
  %pa = bitcast {t}* %ta to i8*
  %tb = alloca {t}
  store {t} %beta, {t}* %tb
  %pb = bitcast {t}* %tb to i8*"""
_SCIPY_FUNCTIONS = """
define void @symgrad_scipy_{kind}gemm(i32 %order, i32 %transa, i32 %transb, i64 %m, i64 %n,
    i64 %k, {t} %alpha, i8* %a, i64 %lda, i8* %b, i64 %ldb, {t} %beta, i8* %c, i64 %ldc) {{
{by_reference}
  %fa = call i8 @fortran_flag(i32 %transa)
  %fb = call i8 @fortran_flag(i32 %transb)
  %status = call i32 @numba_xxgemm(i8 {code}, i8 %fa, i8 %fb, i64 %m, i64 %n, i64 %k,
      i8* %pa, i8* %a, i64 %lda, i8* %b, i64 %ldb, i8* %pb, i8* %c, i64 %ldc)
  ret void
}}
define void @symgrad_scipy_{kind}gemv(i32 %order, i32 %trans, i64 %m, i64 %n,
    {t} %alpha, i8* %a, i64 %lda, i8* %x, i64 %incx, {t} %beta, i8* %y, i64 %incy) {{
{by_reference}
  %ft = call i8 @fortran_flag(i32 %trans)
  %status = call i32 @numba_xxgemv(i8 {code}, i8 %ft, i64 %m, i64 %n,
      i8* %pa, i8* %a, i64 %lda, i8* %x, i8* %pb, i8* %y)
  ret void
}}
define {t} @symgrad_scipy_{kind}dot(i64 %n, i8* %x, i64 %incx, i8* %y, i64 %incy) {{
  %r = alloca {t}
  %pr = bitcast {t}* %r to i8*
  %status = call i32 @numba_xxdot(i8 {code}, i8 0, i64 %n, i8* %x, i8* %y, i8* %pr)
  %v = load {t}, {t}* %r
  ret {t} %v
}}
"""
_engines = []  # the compiled functions live as long as their engine


def _scipy_blas() -> list[int]:
    """Functions of the signatures of NumPy's CBLAS that call Numba's ``numba_xx*``, for a
    NumPy without a CBLAS of its own (SciPy, a dependency, has the BLAS)."""
    from llvmlite import binding
    from numba._helperlib import c_helpers

    for helper in ("xxgemm", "xxgemv", "xxdot"):
        binding.add_symbol(f"numba_{helper}", c_helpers[helper])
    binding.initialize_native_target()
    binding.initialize_native_asmprinter()
    text = _SCIPY_IR + "".join(
        _SCIPY_FUNCTIONS.format(
            kind=kind, t=t, code=ord(kind), by_reference=_SCALARS_BY_REFERENCE.format(t=t)
        )
        for kind, t in (("d", "double"), ("s", "float"))
    )
    module = binding.parse_assembly(text)
    module.verify()
    machine = binding.Target.from_default_triple().create_target_machine()
    engine = binding.create_mcjit_compiler(module, machine)
    engine.finalize_object()
    _engines.append(engine)
    return [engine.get_function_address(f"symgrad_scipy_{name}") for name in NAMES]


def bind_blas(numpy_first: bool = True) -> str:
    """Bind the names kernels call (``symgrad_dgemm``, ...) to NumPy's CBLAS, or, where
    NumPy has none (or ``numpy_first`` is false), to SciPy's BLAS; say which."""
    from llvmlite import binding

    found = _numpy_blas() if numpy_first else None
    for name, address in zip(NAMES, found or _scipy_blas()):
        binding.add_symbol(f"symgrad_{name}", address)
    return "numpy" if found else "scipy"


BLAS = bind_blas()  # before any kernel that calls these functions is loaded


@njit(cache=True, nogil=True)
def matmul(a, b):
    """``a @ b`` for two float matrices of one dtype, in a new C-ordered array: the ``gemm``
    ``np.matmul`` calls (:func:`matmul_add` with beta = 0)."""
    out = np.empty((a.shape[0], b.shape[1]), a.dtype)
    matmul_add(a, b, out, False)
    return out


@njit(inline="always")
def _as_blas(x, rows, cols):
    """How column-major BLAS reads the row-major matrix ``x`` (``rows`` x ``cols``): its
    transpose flag for ``x.T`` (``NO_TRANS`` if ``x`` is row-major, ``TRANS`` if
    column-major) and its leading dimension; -1 if BLAS cannot read it where it lies (no
    unit stride along either axis, or lines that overlap or run backwards: a broadcast or a
    reversed view, which BLAS would read out of bounds)."""
    unit = x.itemsize
    if x.strides[1] == unit or cols == 1:  # rows of `cols` elements, `ld` apart
        ld = x.strides[0] // unit
        if rows == 1 or (ld >= cols and x.strides[0] % unit == 0):
            return NO_TRANS, max(ld, cols, 1)
    if x.strides[0] == unit or rows == 1:  # columns of `rows` elements, `ld` apart
        ld = x.strides[1] // unit
        if cols == 1 or (ld >= rows and x.strides[1] % unit == 0):
            return TRANS, max(ld, rows, 1)
    return -1, 0


@njit(cache=True, nogil=True)
def matmul_add(a, b, out, add):
    """``out += a @ b`` if ``add`` (BLAS ``gemm`` with beta = 1), else ``out = a @ b`` (beta
    = 0: ``out`` is not read), for 2-D float operands of one dtype, ``out`` C-contiguous,
    ``a`` and ``b`` with a unit stride along one axis (a kernel's arrays are C-ordered, or
    transposes of C-ordered ones; anything else raises).  No copy and no allocation here:
    Numba links this function's code into every kernel that calls it, and LLVM optimises it
    again there (``benchmarks/helper_ir.py``)."""
    m, k = a.shape
    n = b.shape[1]
    if m == 0 or n == 0:
        return
    if k == 0:  # an empty sum
        if not add:
            out[...] = 0
        return
    # column-major BLAS sees the C-ordered out as out.T and computes out.T = b.T @ a.T + ...
    ta, lda = _as_blas(a, m, k)
    tb, ldb = _as_blas(b, k, n)
    if ta < 0 or tb < 0:
        raise ValueError("symgrad: matmul_add needs operands BLAS reads where they lie")
    if out.itemsize == 8:
        beta = 1.0 if add else 0.0
        _dgemm(COL_MAJOR, tb, ta, n, m, k, 1.0, b.ctypes, ldb, a.ctypes, lda, beta, out.ctypes, n)
    else:
        beta32 = np.float32(1.0 if add else 0.0)
        _sgemm(COL_MAJOR, tb, ta, n, m, k, np.float32(1.0), b.ctypes, ldb, a.ctypes, lda, beta32,
               out.ctypes, n)


def _blas_dot(n, x, y):
    """BLAS ``dot`` of two unit-stride vectors of ``n`` elements, in their dtype (typed by
    the overload below: a branch on the dtype would make a float32 dot a float64 value)."""


@overload(_blas_dot)
def _blas_dot_typed(n, x, y):
    blas_dot = _ddot if x.dtype == types.float64 else _sdot
    return lambda n, x, y: blas_dot(n, x.ctypes, 1, y.ctypes, 1)


@njit(inline="always")
def _unit(x):
    """The vector ``x`` with a unit stride: itself, or a copy (Numba's and SciPy's gemv and
    dot read unit strides only)."""
    if x.strides[0] == x.itemsize or x.shape[0] < 2:
        return x
    out = np.empty(x.shape[0], x.dtype)
    for i in range(x.shape[0]):
        out[i] = x[i]
    return out


@njit(cache=True, nogil=True)
def vecdot(a, b):
    """``a @ b`` for two float vectors of one dtype (BLAS ``dot``)."""
    return _blas_dot(a.shape[0], _unit(a), _unit(b))


@njit(inline="always")
def _gemv(a, transposed, x, out, add):
    """``out (+)= a.T @ x`` if ``transposed``, else ``a @ x`` (BLAS ``gemv``), as
    :func:`matmul_add` does for two matrices."""
    rows, cols = a.shape
    if out.shape[0] == 0:
        return
    if x.shape[0] == 0:  # an empty sum
        if not add:
            out[:] = 0
        return
    # column-major BLAS sees a row-major a as a.T (NO_TRANS gives a.T): flip for a @ x
    t, ld = _as_blas(a, rows, cols)
    if t < 0:
        raise ValueError("symgrad: a vector product needs a matrix BLAS reads where it lies")
    m, n = (cols, rows) if t == NO_TRANS else (rows, cols)  # a as BLAS stores it
    if not transposed:
        t = TRANS if t == NO_TRANS else NO_TRANS
    x = _unit(x)
    if out.itemsize == 8:
        beta = 1.0 if add else 0.0
        _dgemv(COL_MAJOR, t, m, n, 1.0, a.ctypes, ld, x.ctypes, 1, beta, out.ctypes, 1)
    else:
        one, beta32 = np.float32(1.0), np.float32(1.0 if add else 0.0)
        _sgemv(COL_MAJOR, t, m, n, one, a.ctypes, ld, x.ctypes, 1, beta32, out.ctypes, 1)


@njit(cache=True, nogil=True)
def matvec_add(a, x, out, add):
    """``out += a @ x`` if ``add``, else ``out = a @ x``, for a float matrix ``a`` with a unit
    stride along one axis and a C-contiguous ``out`` (BLAS ``gemv``)."""
    _gemv(a, False, x, out, add)


@njit(cache=True, nogil=True)
def vecmat_add(x, b, out, add):
    """``out += x @ b`` if ``add``, else ``out = x @ b`` (``b.T @ x``: BLAS ``gemv``)."""
    _gemv(b, True, x, out, add)


@njit(cache=True, nogil=True)
def matvec(a, x):
    """``a @ x`` for a float matrix and vector of one dtype, in a new array."""
    out = np.empty(a.shape[0], a.dtype)
    _gemv(a, False, x, out, False)
    return out


@njit(cache=True, nogil=True)
def vecmat(x, b):
    """``x @ b`` for a float vector and matrix of one dtype, in a new array."""
    out = np.empty(b.shape[1], b.dtype)
    _gemv(b, True, x, out, False)
    return out


# Kernels that call these functions carry this digest in their cache key (Numba's cache would not
# notice a change of this file in a kernel compiled earlier).
DIGEST = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16]
