"""The dtypes a node may have, and how they combine."""

import numpy as np

from ..errors import DTypeError

FLOATS = ("float64", "float32")
DTYPES = ("float64", "float32", "int64", "bool")


def check(dtype) -> str:
    """Return the canonical name of ``dtype`` or raise :class:`DTypeError`."""
    try:
        name = np.dtype(dtype).name
    except TypeError:
        name = None
    if name not in DTYPES:
        raise DTypeError(f"dtype {dtype!r} is not supported; expected one of {DTYPES}")
    return name


def is_float(dtype: str) -> bool:
    return dtype in FLOATS


def result_float(dtypes) -> str:
    """The float dtype arithmetic on ``dtypes`` computes in.

    float32 stays float32 unless a float64 operand is present; ints and bools alone
    compute in float64 (as NumPy does for true division).
    """
    floats = [d for d in dtypes if d in FLOATS]
    if not floats:
        return "float64"
    return "float64" if "float64" in floats else "float32"
