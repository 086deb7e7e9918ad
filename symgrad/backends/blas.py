"""Matrix products for generated kernels, compiled once per machine instead of per kernel.

A kernel's ``np.dot`` makes Numba compile its BLAS glue again for every new combination
of argument types (dtype, layout, read-only or not), about 0.5 s each, in every process
that compiles a new kernel: four of the five seconds of an MLP's cold compile.  Kernels
call :func:`matmul` (two matrices) and :func:`dot` (a vector) instead, functions of their
own cached on disk by Numba (``cache=True``): each combination of types is compiled the
first time it is met on the machine and loaded from Numba's cache (milliseconds) by every
later compile.  They make the BLAS calls ``np.dot`` makes (so the same results), called
natively from the kernel.

:func:`matmul_add` writes a product into an array, or adds it there (``gemm`` with
``beta = 0`` or ``1``): a row-blocked kernel (``rowblock.py``) sums ``X_b.T @ G_b`` over its
blocks of rows in place, the first block writing.  It calls the ``gemm`` Numba's ``np.dot``
calls (Numba's ``numba_xxgemm``, SciPy's BLAS), with the transpose flags and leading
dimensions read from the operands' strides, so a transposed operand (``X.T``, an F-ordered
view) is read where it lies, never copied.  It is small on purpose: Numba links the code of
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

_xxgemm = types.ExternalFunction(
    "numba_xxgemm",  # Numba's C helper: kind ("s"/"d"), then the Fortran gemm's arguments
    types.intc(
        types.char, types.char, types.char,  # kind, transa, transb
        types.intp, types.intp, types.intp,  # m, n, k
        types.voidptr, types.voidptr, types.intp,  # alpha, a, lda
        types.voidptr, types.intp, types.voidptr,  # b, ldb, beta
        types.voidptr, types.intp,  # c, ldc
    ),
)


@njit(cache=True, nogil=True)
def dot(a, b):
    """``np.dot(a, b)`` for float operands of one dtype, one or both of them a vector (BLAS
    ``gemv`` or ``dot``)."""
    return np.dot(a, b)


@njit(cache=True, nogil=True)
def matmul(a, b):
    """``a @ b`` for two float matrices of one dtype, in a new C-ordered array: the ``gemm``
    ``np.dot`` calls (the same bits; :func:`matmul_add` with beta = 0), without NumPy's
    ``dot`` glue (see the module docstring)."""
    out = np.empty((a.shape[0], b.shape[1]), a.dtype)
    matmul_add(a, b, out, False)
    return out


@njit(inline="always")
def _as_blas(x, rows, cols):
    """How column-major BLAS reads the row-major matrix ``x`` (``rows`` x ``cols``): its
    transpose flag for ``x.T`` ("n" if ``x`` is row-major, "t" if column-major) and its
    leading dimension; -1 if neither axis has unit stride."""
    unit = x.itemsize
    if x.strides[1] == unit or cols == 1:
        return ord("n"), max(x.strides[0] // unit, cols, 1)
    if x.strides[0] == unit or rows == 1:
        return ord("t"), max(x.strides[1] // unit, rows, 1)
    return -1, 0


# alpha and beta of gemm, read through pointers: (1, 0) writes the product, (1, 1) adds it.
# Global arrays are constants of the compiled code, so no call allocates them.
_SCALES_F64 = np.array([1.0, 0.0, 1.0, 1.0])
_SCALES_F32 = np.array([1.0, 0.0, 1.0, 1.0], dtype=np.float32)


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
    at = 2 if add else 0
    if out.itemsize == 8:
        scales = _SCALES_F64[at:]
        status = _xxgemm(ord("d"), tb, ta, n, m, k, scales[0:].ctypes, b.ctypes, ldb,
                         a.ctypes, lda, scales[1:].ctypes, out.ctypes, n)
    else:
        scales32 = _SCALES_F32[at:]
        status = _xxgemm(ord("s"), tb, ta, n, m, k, scales32[0:].ctypes, b.ctypes, ldb,
                         a.ctypes, lda, scales32[1:].ctypes, out.ctypes, n)
    if status != 0:
        raise RuntimeError("symgrad: no BLAS gemm found (Numba needs SciPy's BLAS)")


# Kernels that call matmul carry this digest in their cache key (Numba's cache would not
# notice a change of this file in a kernel compiled earlier).
DIGEST = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16]
