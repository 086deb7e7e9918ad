"""The tests' gradient checker: ``sg.check_grad`` (symgrad/check.py) with cached kernels.

``check_grads`` asserts (``sg.GradientCheckError`` is an ``AssertionError``) and returns
``(value, grads)``; the kernels it compiles are kept per graph and backend, so a test that
rebuilds its graph compiles it once.

Usage::

    from gradcheck import check_grads
    check_grads(f, [W, b], {"X": X, "W": W0, "b": b0, "y": labels}, backend="numpy")

``grad_fn`` replaces the compiled gradient by any callable ``(**inputs) -> (value, grads)``;
the self-test of the checker feeds it deliberately wrong gradients and expects a failure.
"""

from __future__ import annotations

import symgrad as sg
from symgrad.check import COTANGENT_NAME, TOLERANCES, scalarize  # noqa: F401 (re-exported)

# Compiled value_and_grad objects, keyed by (f, wrt, backend).  Nodes are hash-consed, so
# building the same graph again yields the very same nodes and hits this cache: a test that
# rebuilds its graph on every run (or per backend parameter) compiles it only once.
_CACHE: dict = {}


def value_and_grad_cached(f, wrt, backend):
    """``sg.value_and_grad(f, wrt, backend=backend)``, compiled once per graph and backend."""
    key = (f, tuple(wrt) if isinstance(wrt, (list, tuple)) else wrt, backend)
    vg = _CACHE.get(key)
    if vg is None:
        vg = _CACHE[key] = sg.value_and_grad(f, wrt, backend=backend)
    return vg


def compile_cached(outputs, backend):
    """``sg.compile(outputs, backend=backend)``, compiled once per graph and backend."""
    key = ("fwd", tuple(outputs) if isinstance(outputs, (list, tuple)) else outputs, backend)
    fn = _CACHE.get(key)
    if fn is None:
        fn = _CACHE[key] = sg.compile(outputs, backend=backend)
    return fn


def check_grads(f, wrt, inputs, backend="numpy", rtol=None, atol=None, eps=None, n_dirs=3,
                seed=0, grad_fn=None, cotangent=None):
    """Assert that symgrad's gradient of ``f`` w.r.t. ``wrt`` matches central differences.

    ``f``: a graph (scalar, or any shape: it is contracted with a random cotangent);
    ``wrt``: one float tensor or a list; ``inputs``: keyword values of every input tensor.
    Returns ``(value, grads)`` of the checked function (grads always a list).
    """
    report = sg.check_grad(
        f, wrt, backends=(backend,), rtol=rtol, atol=atol, eps=eps, n_dirs=n_dirs, seed=seed,
        grad_fn=grad_fn, cotangent=cotangent, compiler=value_and_grad_cached, **inputs,
    )
    return report.value, report.grads
