"""Array helpers for generated kernels, compiled once per machine instead of per kernel.

Numba's NumPy functions (``np.empty``, ``np.zeros``, ``np.full``, ``reshape``, ``astype``,
``np.transpose``) are ``@overload`` implementations that it compiles again in every process
that compiles a kernel calling them: each costs 0.1-0.3 s of a cold compile, whatever the
kernel's size (``benchmarks/cold_compile.py``; README, "Compile time").  Kernels call these
functions instead, the same NumPy calls in functions of their own that Numba caches on disk
(``cache=True``, like ``blas.matmul``): each combination of argument types is compiled the
first time it is met on a machine and then loads in milliseconds.  The arrays are the ones
NumPy's functions make (C order, the same values), so the kernels compute what they did.

:func:`rows` is the array ``X @ W + b`` starts from before gemm adds the product into it:
the rows of ``b``, a loop compiled here once instead of a loop nest in every kernel.

:func:`max_nan` is the running maximum of ``np.max``, inlined by LLVM into the loops that
reduce (``forceinline``, as the ``vmath`` functions are), so those loops still vectorise.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from numba import njit

_cached = njit(cache=True, nogil=True)


@_cached
def empty(shape, dtype):
    """``np.empty(shape, dtype)``."""
    return np.empty(shape, dtype=dtype)


@_cached
def zeros(shape, dtype):
    """``np.zeros(shape, dtype)``."""
    return np.zeros(shape, dtype=dtype)


@_cached
def full(shape, value, dtype):
    """``np.full(shape, value, dtype)``."""
    return np.full(shape, value, dtype=dtype)


@_cached
def reshape(a, shape):
    """``a`` with a new shape: a view if ``a`` is C-contiguous, else a C-ordered copy."""
    return np.ascontiguousarray(a).reshape(shape)


@_cached
def astype(a, dtype):
    """``a.astype(dtype)``: a C-ordered copy converted to ``dtype``."""
    return a.astype(dtype)


@_cached
def transpose(a, axes):
    """``np.transpose(a, axes)``: a view."""
    return np.transpose(a, axes)


@_cached
def rows(v, n):
    """A new ``(n, len(v))`` array whose every row is the vector ``v``."""
    out = np.empty((n, v.shape[0]), dtype=v.dtype)
    for i in range(n):
        out[i] = v
    return out


# glibc's mmap threshold: its default (below it, a kernel's arrays come from the heap and
# the trim threshold is above them anyway), and just under its largest on 64-bit, 32 MiB:
# freeing a block raises the threshold only if the block, with the array's header and
# rounded up to whole pages, is at most that (a 32 MiB array's block is not)
RESERVE_MIN = 128 * 1024
RESERVE_MAX = 32 * 1024 * 1024 - 64 * 1024


@_cached
def reserve(nbytes):
    """Allocate ``nbytes`` (at most :data:`RESERVE_MAX`; nothing below :data:`RESERVE_MIN`)
    and free them at once, untouched.

    A kernel calls this first, with the bytes of the arrays it allocates, because of how
    glibc's ``malloc`` adapts: a block above its mmap threshold (128 KB at first) is mapped
    on its own, and freeing one raises the threshold to its size and the heap's trim
    threshold to twice that.  A kernel whose arrays are many and mid-sized (the README's
    ``mlp_act``: 4.7 MB in arrays of at most 0.5 MB) frees more at the end of a call than
    the trim threshold its largest array set, so glibc gives that memory back to the system
    and the next call faults it in again, page by page: 1,000 faults, 15-20 % of the
    call, in a process where nothing else allocated large blocks (hand-written Numba pays
    them too).  This block, freed the first time, raises both thresholds above the kernel's
    arrays; later calls take it from the heap and give it back, touching no page.  Where
    the thresholds are set (``mallopt``, or ``MALLOC_TRIM_THRESHOLD_``, which Dask's nanny
    sets for its workers) glibc does not adapt them, and this changes nothing; other
    allocators just allocate and free it.  Returns its size (so that nothing elides it).
    """
    if nbytes < RESERVE_MIN:
        return 0
    return np.empty(min(nbytes, RESERVE_MAX), np.uint8).size


@njit(cache=True, nogil=True, forceinline=True, error_model="numpy")
def max_nan(acc, val):
    """The running max of ``np.max``: NaN wins and then stays."""
    return val if (val > acc or val != val) and acc == acc else acc


# Kernels that call these functions carry this digest in their cache key (Numba's cache
# would not notice a change of this file in a kernel compiled earlier).
DIGEST = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16]
