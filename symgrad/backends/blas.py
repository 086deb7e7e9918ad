"""Matrix products for generated kernels, compiled once per machine instead of per kernel.

A kernel's ``np.dot`` makes Numba compile its BLAS glue again for every new combination
of argument types (dtype, layout, read-only or not), about 0.5 s each, in every process
that compiles a new kernel: four of the five seconds of an MLP's cold compile.  Kernels
call :func:`matmul` (two matrices) and :func:`dot` (a vector) instead, functions of their
own cached on disk by Numba (``cache=True``): each combination of types is compiled the
first time it is met on the machine and loaded from Numba's cache (milliseconds) by every
later compile.  A product of two matrices makes the ``gemm`` call NumPy's ``matmul``
makes (below); a product with a vector is Numba's ``np.dot`` (SciPy's BLAS).

:func:`matmul_add` writes a product into an array, or adds it there (``gemm`` with
``beta = 0`` or ``1``): a row-blocked kernel (``rowblock.py``) sums ``X_b.T @ G_b`` over its
blocks of rows in place, the first block writing.  It calls the ``gemm`` of NumPy's own
BLAS, through the names ``symgrad_dgemm`` and ``symgrad_sgemm`` that :func:`bind_gemm` gives
it, with the transpose flags and leading dimensions read from the operands' strides, so a
transposed operand (``X.T``, an F-ordered view) is read where it lies, never copied.

Why NumPy's: its wheels carry OpenBLAS with a CBLAS of 64-bit integers
(``scipy_cblas_dgemm64_``), loaded with NumPy.  Numba's ``np.dot`` calls SciPy's BLAS, and
its first call in a process imports ``scipy.linalg`` (the whole package: 60-85 ms of a
warm start's first result on this machine, about 100 ms in a fast spell).  A product of two
matrices is then also the very ``gemm`` call of ``np.matmul``: the same bits.  Where NumPy
has no such CBLAS (Accelerate, MKL), the names are bound to functions of the same signature
that call Numba's ``numba_xxgemm`` (SciPy's BLAS), so a kernel's code is the same either
way.  It is small on purpose: Numba links the code of
a function into every kernel that calls it and LLVM optimises it again there
(``benchmarks/helper_ir.py``), so it allocates nothing and copies nothing (NumPy's ``dot``
glue and ``ascontiguousarray`` were 60 % of the code LLVM optimised for a ``softmax``
kernel).  :func:`matmul` is a product of two matrices in a new array through it; :func:`dot`
(``np.dot``) serves products with a vector.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from numba import njit, types

# CBLAS's constants, and the signature of NumPy's cblas_?gemm (its sizes are int64)
COL_MAJOR, NO_TRANS, TRANS = 102, 111, 112
_GEMM = {
    kind: types.void(
        types.intc, types.intc, types.intc,  # order, transa, transb
        types.int64, types.int64, types.int64,  # m, n, k
        scalar, types.voidptr, types.int64,  # alpha, a, lda
        types.voidptr, types.int64, scalar,  # b, ldb, beta
        types.voidptr, types.int64,  # c, ldc
    )
    for kind, scalar in (("d", types.float64), ("s", types.float32))
}
_dgemm = types.ExternalFunction("symgrad_dgemm", _GEMM["d"])
_sgemm = types.ExternalFunction("symgrad_sgemm", _GEMM["s"])

# NumPy's CBLAS dgemm and sgemm by the names the OpenBLAS of NumPy 2's wheels
# (scipy-openblas64) gives them; both take 64-bit integers
NUMPY_GEMM = ("scipy_cblas_dgemm64_", "scipy_cblas_sgemm64_")


def _numpy_gemm() -> tuple[int, int] | None:
    """The addresses of NumPy's own CBLAS ``dgemm`` and ``sgemm``, or None."""
    import ctypes

    try:  # the BLAS np.matmul calls is a dependency of NumPy's core module
        lib = ctypes.CDLL(np._core._multiarray_umath.__file__)
        return tuple(ctypes.cast(getattr(lib, n), ctypes.c_void_p).value for n in NUMPY_GEMM)
    except (OSError, AttributeError):  # NumPy 1 (np.core), or another BLAS
        return None


# The same signature over Numba's numba_xxgemm (SciPy's BLAS, imported at its first call):
# LLVM IR compiled by llvmlite in milliseconds (a Numba cfunc loaded from its cache would
# start Numba's compiler up, 200 ms); "kind" is "d" or "s" (100, 115), and the transpose
# flags are "n" (110) or "t" (116) where CBLAS says NO_TRANS (111) or TRANS.
_SCIPY_GEMM_IR = """
declare i32 @numba_xxgemm(i8, i8, i8, i64, i64, i64, ptr, ptr, i64, ptr, i64, ptr, ptr, i64)
"""
_SCIPY_GEMM_FUNCTION = """
define void @symgrad_scipy_{kind}gemm(i32 %order, i32 %ta, i32 %tb, i64 %m, i64 %n, i64 %k,
    {t} %alpha, ptr %a, i64 %lda, ptr %b, i64 %ldb, {t} %beta, ptr %c, i64 %ldc) {{
  %pa = alloca {t}
  store {t} %alpha, ptr %pa
  %pb = alloca {t}
  store {t} %beta, ptr %pb
  %na = icmp eq i32 %ta, 111
  %fa = select i1 %na, i8 110, i8 116
  %nb = icmp eq i32 %tb, 111
  %fb = select i1 %nb, i8 110, i8 116
  %status = call i32 @numba_xxgemm(i8 {code}, i8 %fa, i8 %fb, i64 %m, i64 %n, i64 %k,
      ptr %pa, ptr %a, i64 %lda, ptr %b, i64 %ldb, ptr %pb, ptr %c, i64 %ldc)
  ret void
}}
"""
_engines = []  # the compiled functions live as long as their engine


def _scipy_gemm() -> tuple[int, int]:
    """Functions of the signature of NumPy's gemm that call Numba's ``numba_xxgemm``, for a
    NumPy without a CBLAS of its own (SciPy, a dependency, has the BLAS)."""
    from llvmlite import binding
    from numba._helperlib import c_helpers

    binding.add_symbol("numba_xxgemm", c_helpers["xxgemm"])
    binding.initialize_native_target()
    binding.initialize_native_asmprinter()
    text = _SCIPY_GEMM_IR + "".join(
        _SCIPY_GEMM_FUNCTION.format(kind=kind, t=t, code=ord(kind))
        for kind, t in (("d", "double"), ("s", "float"))
    )
    module = binding.parse_assembly(text)
    module.verify()
    machine = binding.Target.from_default_triple().create_target_machine()
    engine = binding.create_mcjit_compiler(module, machine)
    engine.finalize_object()
    _engines.append(engine)
    return tuple(engine.get_function_address(f"symgrad_scipy_{k}gemm") for k in "ds")


def bind_gemm(numpy_first: bool = True) -> str:
    """Bind the names kernels call (``symgrad_dgemm``, ``symgrad_sgemm``) to NumPy's gemm,
    or, where NumPy has none (or ``numpy_first`` is false), to SciPy's; say which."""
    from llvmlite import binding

    found = _numpy_gemm() if numpy_first else None
    for name, address in zip(("symgrad_dgemm", "symgrad_sgemm"), found or _scipy_gemm()):
        binding.add_symbol(name, address)
    return "numpy" if found else "scipy"


GEMM_BLAS = bind_gemm()  # before any kernel that calls matmul_add is loaded


@njit(cache=True, nogil=True)
def dot(a, b):
    """``np.dot(a, b)`` for float operands of one dtype, one or both of them a vector (BLAS
    ``gemv`` or ``dot``)."""
    return np.dot(a, b)


@njit(cache=True, nogil=True)
def matmul(a, b):
    """``a @ b`` for two float matrices of one dtype, in a new C-ordered array: the ``gemm``
    ``np.matmul`` calls (:func:`matmul_add` with beta = 0), without Numba's ``np.dot`` glue
    (see the module docstring)."""
    out = np.empty((a.shape[0], b.shape[1]), a.dtype)
    matmul_add(a, b, out, False)
    return out


@njit(inline="always")
def _as_blas(x, rows, cols):
    """How column-major BLAS reads the row-major matrix ``x`` (``rows`` x ``cols``): its
    transpose flag for ``x.T`` (``NO_TRANS`` if ``x`` is row-major, ``TRANS`` if
    column-major) and its leading dimension; -1 if neither axis has unit stride."""
    unit = x.itemsize
    if x.strides[1] == unit or cols == 1:
        return NO_TRANS, max(x.strides[0] // unit, cols, 1)
    if x.strides[0] == unit or rows == 1:
        return TRANS, max(x.strides[1] // unit, rows, 1)
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
        raise ValueError("symgrad: matmul_add needs operands with a unit stride")
    if out.itemsize == 8:
        beta = 1.0 if add else 0.0
        _dgemm(COL_MAJOR, tb, ta, n, m, k, 1.0, b.ctypes, ldb, a.ctypes, lda, beta, out.ctypes, n)
    else:
        beta32 = np.float32(1.0 if add else 0.0)
        _sgemm(COL_MAJOR, tb, ta, n, m, k, np.float32(1.0), b.ctypes, ldb, a.ctypes, lda, beta32,
               out.ctypes, n)


# Kernels that call matmul carry this digest in their cache key (Numba's cache would not
# notice a change of this file in a kernel compiled earlier).
DIGEST = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16]
