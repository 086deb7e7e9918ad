"""Matrix products for generated kernels, compiled once per machine instead of per kernel.

A kernel's ``np.dot`` makes Numba compile its BLAS glue again for every new combination
of argument types (dtype, layout, read-only or not), about 0.5 s each, in every process
that compiles a new kernel: four of the five seconds of an MLP's cold compile.  Kernels
call :func:`matmul` instead, a function of its own cached on disk by Numba
(``cache=True``): each combination of types is compiled the first time it is met on the
machine and loaded from Numba's cache (milliseconds) by every later compile.  It is
``np.dot`` itself (the same BLAS call, so the same results), called natively from the
kernel.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def matmul(a, b):
    """``np.dot(a, b)`` for 1-D and 2-D float operands of one dtype (BLAS ``gemm``/``gemv``)."""
    return np.dot(a, b)


# Kernels that call matmul carry this digest in their cache key (Numba's cache would not
# notice a change of this file in a kernel compiled earlier).
DIGEST = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16]
