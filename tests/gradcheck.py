"""A small reusable gradient checker: symgrad's derived gradients against finite differences.

The check is the one SymPy's and autograd's test suites use: for random directions ``v``
(one random array per tensor in ``wrt``, jointly of unit norm), the directional derivative
predicted by the gradient, ``<g, v>``, must equal the central difference
``(f(x + h v) - f(x - h v)) / 2h`` computed in float64 from the same compiled function.
A non-scalar ``f`` is first contracted with a random cotangent ``c`` (``sum(f * c)``), so
the check covers the whole vector-Jacobian product, not only its sum.

The tolerance is ``rtol * max(|<g,v>|, |fd|) + atol + rounding`` where ``rounding`` bounds the
floating-point error of the difference quotient itself (``~ eps * |f| / h``), so a small
directional derivative of a large function is not a false failure.  Defaults per dtype are
in :data:`TOLERANCES`.

Usage::

    from gradcheck import check_grads
    check_grads(f, [W, b], {"X": X, "W": W0, "b": b0, "y": labels}, backend="numpy")

``grad_fn`` replaces the compiled gradient by any callable ``(**inputs) -> (value, grads)``;
the self-test of the checker feeds it deliberately wrong gradients and expects a failure.
"""

from __future__ import annotations

import numpy as np

import symgrad as sg

# dtype -> (rtol, atol, step h).  h ~ eps**(1/3) balances truncation and rounding errors.
TOLERANCES = {
    "float64": (1e-6, 1e-9, 1e-5),
    "float32": (3e-2, 1e-3, 3e-2),
}

COTANGENT_NAME = "gradcheck_cotangent"

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


def scalarize(f):
    """``(f, None)`` for a scalar ``f``; else ``(sum(f * c), c)`` with ``c`` a new input tensor."""
    if f.shape == ():
        return f, None
    ct = sg.tensor(COTANGENT_NAME, f.shape, dtype=f.dtype)
    return sg.sum(f * ct), ct


def _shape_of_output(f, inputs, backend):
    """The concrete shape of ``f`` for these inputs (named dims resolved by a forward run)."""
    known = {d: np.shape(inputs[n.name])[i] for n in sg.ir.inputs_of([f]) for i, d in enumerate(n.shape)
             if isinstance(d, str) and n.name in inputs}
    if all(isinstance(d, int) or d in known for d in f.shape):
        return tuple(known.get(d, d) if isinstance(d, str) else d for d in f.shape)
    return np.shape(compile_cached(f, backend)(**inputs))


def check_grads(f, wrt, inputs, backend="numpy", rtol=None, atol=None, eps=None, n_dirs=3,
                seed=0, grad_fn=None, cotangent=None):
    """Assert that symgrad's gradient of ``f`` w.r.t. ``wrt`` matches central differences.

    ``f``: a graph (scalar, or any shape: it is contracted with a random cotangent);
    ``wrt``: one float tensor or a list; ``inputs``: keyword values of every input tensor.
    ``grad_fn``: optional replacement for the compiled ``value_and_grad`` (it gets the inputs,
    including the cotangent if ``f`` is not a scalar, and returns ``(value, grads)``).
    Returns ``(value, grads)`` of the checked function (grads always a list).
    """
    wrt_list = [wrt] if isinstance(wrt, sg.Tensor) else list(wrt)
    dtype = f.dtype
    d_rtol, d_atol, d_eps = TOLERANCES[dtype]
    rtol = d_rtol if rtol is None else rtol
    atol = d_atol if atol is None else atol
    h = d_eps if eps is None else eps
    rng = np.random.default_rng(seed)

    scalar_f, ct = scalarize(f)
    inputs = {k: (np.asarray(v) if not isinstance(v, (int, float)) else v) for k, v in inputs.items()}
    if ct is not None:
        if cotangent is None:
            cotangent = rng.standard_normal(_shape_of_output(f, inputs, backend))
        inputs[COTANGENT_NAME] = np.asarray(cotangent, dtype=np.float64)

    if grad_fn is None:
        grad_fn = value_and_grad_cached(scalar_f, wrt_list, backend)
    value, grads = grad_fn(**inputs)
    grads = list(grads)
    assert len(grads) == len(wrt_list), f"{len(grads)} gradients for {len(wrt_list)} tensors"

    base = {k: np.array(v, dtype=np.float64) for k, v in inputs.items()
            if k in {w.name for w in wrt_list}}
    for w, g in zip(wrt_list, grads):
        assert np.shape(g) == base[w.name].shape, (
            f"gradient of {w.name!r} has shape {np.shape(g)}, input has {base[w.name].shape}")
        assert np.all(np.isfinite(g)), f"gradient of {w.name!r} is not finite: {g}"

    eps_mach = float(np.finfo(dtype).eps)
    for k in range(n_dirs):
        dirs = {name: rng.standard_normal(a.shape) for name, a in base.items()}
        norm = np.sqrt(sum(np.sum(d * d) for d in dirs.values()))
        dirs = {name: d / norm for name, d in dirs.items()}
        predicted = float(sum(np.sum(np.asarray(g, dtype=np.float64) * dirs[w.name])
                              for w, g in zip(wrt_list, grads)))

        def at(sign, dirs=dirs):
            moved = dict(inputs)
            for name, a in base.items():
                moved[name] = a + sign * h * dirs[name]
            return float(grad_fn(**moved)[0])

        f_plus, f_minus = at(+1), at(-1)
        fd = (f_plus - f_minus) / (2 * h)
        rounding = 8 * eps_mach * (abs(f_plus) + abs(f_minus)) / (2 * h)
        tol = rtol * max(abs(predicted), abs(fd)) + atol + rounding
        assert abs(predicted - fd) <= tol, (
            f"gradient check failed for wrt={[w.name for w in wrt_list]} (direction {k}, "
            f"backend {backend!r}): <grad, v> = {predicted!r} but the central difference "
            f"(h={h}) is {fd!r}; |diff| = {abs(predicted - fd):.3e} > tol {tol:.3e}")
    return value, grads
