"""The fast binder and the complete one follow one plan of checks (backends/inputs.py):
on every error case the fast one declines and the complete one raises, with the same
message whatever form the values come in; on valid calls both bind the same values."""

from __future__ import annotations

import numpy as np
import pytest

import symgrad as sg
from symgrad.backends.inputs import Signature

X = sg.tensor("X", ("N", "D"))
W = sg.tensor("W", ("D", 3))
Y = sg.tensor("Y", ("N - 1", "D"))  # an expression dim
y = sg.tensor("y", ("N",), dtype="int64")
s = sg.tensor("s", ())
k = sg.tensor("k", (), dtype="int64")
OUT = [sg.losses.softmax_cross_entropy(X @ W, y) + sg.sum(Y) * s,
       sg.one_hot(k, 3), sg.pick(X @ W, y[::-1]), sg.max(X, axis=1),
       sg.one_hot(np.array([0, 2]), 3)]
SIG = Signature(OUT)


def good(n=4, d=2):
    rng = np.random.default_rng(n)
    return {"X": rng.standard_normal((n, d)), "W": rng.standard_normal((d, 3)),
            "Y": rng.standard_normal((n - 1, d)), "y": np.arange(n) % 3, "s": 0.5, "k": 2}


ERRORS = {
    "missing": lambda v: {key: val for key, val in v.items() if key != "W"},
    "unknown": lambda v: dict(v, Z=1.0),
    "ndim": lambda v: dict(v, X=np.ones(4)),
    "fixed_dim": lambda v: dict(v, W=np.ones((2, 4))),
    "named_dim": lambda v: dict(v, y=np.zeros(5, dtype=np.int64)),
    "expression_dim": lambda v: dict(v, Y=np.ones((4, 2))),
    "dtype": lambda v: dict(v, y=np.zeros(4)),
    "labels_high": lambda v: dict(v, y=np.array([0, 1, 3, 0])),
    "labels_negative": lambda v: dict(v, y=np.array([0, -1, 2, 0])),
    "scalar_labels": lambda v: dict(v, k=3),
    "scalar_shape": lambda v: dict(v, s=np.ones(2)),
    "empty_max": lambda v: dict(v, X=np.ones((4, 0)), Y=np.ones((3, 0)), W=np.ones((0, 3))),
}


def _message(kwargs):
    with pytest.raises(sg.SymgradError) as info:
        SIG.bind(kwargs)
    return type(info.value), str(info.value)


def _slow_forms(kwargs):
    """The same values in forms only the complete binder accepts (NumPy scalars, strided
    and Fortran-ordered arrays)."""
    out = {}
    for key, val in kwargs.items():
        arr = np.asarray(val)
        if arr.ndim == 0:
            out[key] = arr[()]
        elif arr.ndim == 1:
            out[key] = np.repeat(arr, 2)[::2]
        else:
            out[key] = np.asfortranarray(arr) if arr.shape[0] > 1 else arr.T.copy().T
    return out


@pytest.mark.parametrize("case", list(ERRORS))
def test_every_error_case_agrees(case):
    kwargs = ERRORS[case](good())
    assert SIG.fast_bind(kwargs) is None  # the fast binder declines ...
    kind, message = _message(kwargs)  # ... and the complete one explains
    assert _message(_slow_forms(kwargs)) == (kind, message)
    fn = sg.compile(OUT, backend="numpy")
    with pytest.raises(kind) as info:
        fn(**kwargs)
    assert str(info.value) == message


def test_the_error_messages():
    msgs = {case: _message(ERRORS[case](good()))[1] for case in ERRORS}
    assert msgs["named_dim"] == "dim N is 4 for 'X' but 5 for 'y'"
    assert msgs["expression_dim"].endswith("axis 0 is 4, expected N - 1 = 3")
    assert msgs["empty_max"] == "dim D is 0, but the function takes a max over it (of nothing)"
    assert msgs["labels_high"].startswith("labels 'y' must be in [0, 3); found 3 at index 2")


@pytest.mark.parametrize("n", [2, 4, 7])
def test_valid_calls_bind_the_same(n):
    kwargs = good(n)
    fast, slow = SIG.fast_bind(kwargs), SIG.bind(kwargs)
    assert fast is not None
    assert fast[1] == slow[1] == {"N": n, "D": 2}
    for a, b in zip(fast[0], slow[0]):
        np.testing.assert_array_equal(a, b)


def test_one_plan_drives_both_binders():
    kinds = [step[0] for step in SIG.plan]
    assert kinds.count("bind") == 2 and "expr" in kinds and "at_least" in kinds
    assert kinds.index("expr") > max(i for i, kd in enumerate(kinds) if kd == "bind")
