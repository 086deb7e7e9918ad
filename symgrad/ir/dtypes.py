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


def widens(dtype: str, inputs) -> bool:
    """Whether an elementwise formula of result ``dtype`` over operands of dtypes ``inputs``
    converts its float32 operands to float64 before it computes: it reads float32 values and
    computes in float64 (a float64 result or operand).

    A formula computes as one NumPy ufunc does on mixed dtypes, converting first, not op by
    op: the chain rule's ``g * Paren(2 * x)`` for a float64 cotangent ``g`` and a float32
    ``x`` doubles ``x`` in float64, so 2 * 3.4e38 is not inf.  Every backend and the
    reference convert so (docs/semantics.md, "Dtypes")."""
    return "float32" in inputs and (dtype == "float64" or "float64" in inputs)


def promote(strong, weak=()) -> str:
    """The dtype NumPy 2 gives arithmetic on tensors of dtypes ``strong`` and Python numbers
    of types ``weak`` (NEP 50: a Python number takes the dtype of the tensors it meets
    unless its kind is higher: a float with int64 tensors gives float64).

    NumPy scalars (``np.float64(2.0)``) are strong, like tensors.  Bools read as numbers:
    arithmetic on bools alone is float64 (symgrad reads a bool as 1.0 / 0.0).

    >>> promote(["float32"], [float]), promote(["int64"], [int]), promote(["int64"], [float])
    ('float32', 'int64', 'float64')
    """
    strong = [d for d in strong if d != "bool"]
    weak = list(weak)
    if not strong:
        return "int64" if weak and float not in weak else "float64"
    if "int64" in strong:  # int64 with float32 is float64, as in NumPy
        return "float64" if float in weak or len(set(strong)) > 1 else "int64"
    return result_float(strong)
