"""The gradient check: symgrad's derived gradients against central finite differences.

For random directions ``v`` (one per input at a time, of unit norm), the directional
derivative predicted by the gradient, ``<g, v>``, must equal the central difference
``(f(x + h v) - f(x - h v)) / 2h`` computed in float64 from the same compiled function, on
each backend.  A non-scalar ``f`` is first contracted with a random cotangent ``c``
(``sum(f * c)``), so the check covers the whole vector-Jacobian product, not only its sum.

The tolerance is ``rtol * max(|<g,v>|, |fd|) + atol + rounding``, where ``rounding`` bounds
the floating-point error of the difference quotient itself (``~ eps * |f| / h``), so a small
directional derivative of a large function is not a false failure.  Defaults per dtype are
in :data:`TOLERANCES`.

>>> import numpy as np, symgrad as sg
>>> W = sg.tensor("W", (3, 2))
>>> report = sg.check_grad(sg.sum(sg.tanh(W) ** 2), W, backends=["numpy"], W=np.ones((3, 2)))
>>> report.ok, report.rows[0].input
(True, 'W')
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .errors import GradientCheckError
from .ir import Node, inputs_of

# dtype -> (rtol, atol, step h).  h ~ eps**(1/3) balances truncation and rounding errors.
TOLERANCES = {
    "float64": (1e-6, 1e-9, 1e-5),
    "float32": (3e-2, 1e-3, 3e-2),
}

COTANGENT_NAME = "gradcheck_cotangent"


@dataclass
class Row:
    """The worst of the checked directions for one input on one backend."""

    backend: str
    input: str
    abs_error: float  # max |<g, v> - fd|
    rel_error: float  # max |<g, v> - fd| / max(|<g, v>|, |fd|)
    ratio: float  # max |<g, v> - fd| / tolerance: <= 1 passes
    problem: str = ""  # what failed, in words (empty when it passed)

    @property
    def ok(self) -> bool:
        return not self.problem


@dataclass
class Report:
    """What ``check_grad`` found: one :class:`Row` per backend and input, plus the value
    and gradients of the first backend."""

    rows: list[Row]
    value: float = float("nan")
    grads: list = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.rows)

    @property
    def failures(self) -> list[Row]:
        return [r for r in self.rows if not r.ok]

    def max_error(self, name: str) -> float:
        """The largest relative error of input ``name`` over the backends."""
        return max(r.rel_error for r in self.rows if r.input == name)

    def __str__(self):
        lines = [f"{'backend':<8} {'input':<16} {'max abs err':>12} {'max rel err':>12}  result"]
        for r in self.rows:
            lines.append(
                f"{r.backend:<8} {r.input:<16} {r.abs_error:>12.2e} {r.rel_error:>12.2e}  "
                + ("ok" if r.ok else "FAILED: " + r.problem)
            )
        return "\n".join(lines)


def scalarize(f: Node):
    """``(f, None)`` for a scalar ``f``; else ``(sum(f * c), c)`` with ``c`` a new input."""
    from .ops import api

    if f.shape == ():
        return f, None
    ct = api.tensor(COTANGENT_NAME, f.shape, dtype=f.dtype)
    return api.sum(f * ct), ct


def _value_and_grad(f, wrt, backend):
    from .compile import value_and_grad

    return value_and_grad(f, wrt, backend=backend)


def _output_shape(f, inputs, backend):
    """The concrete shape of ``f`` for these inputs (named dims resolved by a forward run)."""
    known = {
        d: np.shape(inputs[n.name])[i]
        for n in inputs_of([f])
        for i, d in enumerate(n.shape)
        if isinstance(d, str) and n.name in inputs
    }
    if all(isinstance(d, int) or d in known for d in f.shape):
        return tuple(known.get(d, d) if isinstance(d, str) else d for d in f.shape)
    from .compile import compile as compile_

    return np.shape(compile_(f, backend=backend)(**inputs))


def check_grad(
    f,
    wrt,
    *,
    backends=("numpy", "numba"),
    rtol=None,
    atol=None,
    eps=None,
    n_dirs=3,
    seed=0,
    grad_fn=None,
    cotangent=None,
    compiler=None,
    raise_on_failure=True,
    **values,
) -> Report:
    """Check the gradient of ``f`` with respect to ``wrt`` at ``values`` by central differences.

    ``f``: a graph (scalar, or any shape: it is contracted with a random cotangent);
    ``wrt``: one float tensor or a list; ``values``: every input tensor by name.  Each input
    of ``wrt`` gets ``n_dirs`` random directions on each backend.  Returns a :class:`Report`
    (max errors per backend and input) and raises :class:`GradientCheckError` listing the
    failures unless ``raise_on_failure=False``.

    ``grad_fn`` replaces the compiled gradient by any callable ``(**inputs) -> (value,
    grads)`` (checked once, as backend "custom"); ``compiler(f, wrt, backend)`` replaces
    ``sg.value_and_grad`` (the tests pass one that caches kernels).
    """
    from .ops.api import as_node

    f = as_node(f)
    wrt_list = [wrt] if isinstance(wrt, Node) else list(wrt)
    d_rtol, d_atol, d_eps = TOLERANCES.get(f.dtype, TOLERANCES["float64"])
    tol = (d_rtol if rtol is None else rtol, d_atol if atol is None else atol)
    h = d_eps if eps is None else eps
    rng = np.random.default_rng(seed)

    scalar_f, ct = scalarize(f)
    inputs = {k: v if isinstance(v, (int, float)) else np.asarray(v) for k, v in values.items()}
    if ct is not None:
        if cotangent is None:
            cotangent = rng.standard_normal(_output_shape(f, inputs, "numpy"))
        inputs[COTANGENT_NAME] = np.asarray(cotangent, dtype=np.float64)

    compiler = compiler or _value_and_grad
    runs = (
        [("custom", grad_fn)]
        if grad_fn is not None
        else [(b, compiler(scalar_f, wrt_list, b)) for b in backends]
    )
    report = Report([])
    for k, (backend, fn) in enumerate(runs):
        value, grads = fn(**inputs)
        grads = list(grads)
        if k == 0:
            report.value, report.grads = value, grads
        report.rows += _check_one(
            fn, backend, wrt_list, grads, inputs, f.dtype, tol, h, n_dirs, rng
        )
    if raise_on_failure and not report.ok:
        names = [w.name for w in wrt_list]
        raise GradientCheckError(
            f"gradient check failed for wrt={names}:\n"
            + "\n".join(f"  {r.backend} {r.input!r}: {r.problem}" for r in report.failures)
            + f"\n{report}"
        )
    return report


def _check_one(fn, backend, wrt, grads, inputs, dtype, tol, h, n_dirs, rng) -> list[Row]:
    rtol, atol = tol
    if len(grads) != len(wrt):
        return [
            Row(
                backend,
                "*",
                np.inf,
                np.inf,
                np.inf,
                f"{len(grads)} gradients for {len(wrt)} tensors",
            )
        ]
    base = {w.name: np.array(inputs[w.name], dtype=np.float64) for w in wrt}
    eps_mach = float(np.finfo(dtype if dtype in TOLERANCES else "float64").eps)
    rows = []
    for w, g in zip(wrt, grads):
        if np.shape(g) != base[w.name].shape:
            rows.append(
                Row(
                    backend,
                    w.name,
                    np.inf,
                    np.inf,
                    np.inf,
                    f"gradient has shape {np.shape(g)}, the input {base[w.name].shape}",
                )
            )
            continue
        if not np.all(np.isfinite(g)):
            rows.append(Row(backend, w.name, np.inf, np.inf, np.inf, "gradient is not finite"))
            continue
        worst = Row(backend, w.name, 0.0, 0.0, 0.0)
        for k in range(n_dirs):
            v = rng.standard_normal(base[w.name].shape)
            v /= np.sqrt(np.sum(v * v)) or 1.0
            predicted = float(np.sum(np.asarray(g, dtype=np.float64) * v))

            def at(sign, v=v, name=w.name):
                return float(fn(**dict(inputs, **{name: base[name] + sign * h * v}))[0])

            f_plus, f_minus = at(+1), at(-1)
            fd = (f_plus - f_minus) / (2 * h)
            rounding = 8 * eps_mach * (abs(f_plus) + abs(f_minus)) / (2 * h)
            diff = abs(predicted - fd)
            allowed = rtol * max(abs(predicted), abs(fd)) + atol + rounding
            worst.abs_error = max(worst.abs_error, diff)
            worst.rel_error = max(worst.rel_error, diff / max(abs(predicted), abs(fd), 1e-300))
            if diff / allowed > worst.ratio:
                worst.ratio = diff / allowed
                if diff > allowed:
                    worst.problem = (
                        f"direction {k}: <grad, v> = {predicted!r} but the central difference "
                        f"(h={h}) is {fd!r}; |diff| = {diff:.3e} > tol {allowed:.3e}"
                    )
        rows.append(worst)
    return rows
