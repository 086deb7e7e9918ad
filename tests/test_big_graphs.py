"""Big graphs: every stage of the pipeline is iterative, not recursive, and stays fast.

* a chain of 10,000 elementwise nodes (2,500 steps of ``x = x*0.999 + 0.001*tanh(x)``,
  four nodes a step), and
* a 50-layer MLP (100 weight tensors),

are built, differentiated (``sg.grad``), simplified and compiled with the numpy backend, and
evaluated, all under Python's default recursion limit; value and gradients are compared with
a NumPy reference written by hand.  The whole module takes well under 30 s on the numpy
backend.  ``benchmarks/compile_scaling.py`` prints how the stages scale with the chain's
length (and the Numba compile time).

Every test uses tensor names of its own (``_fresh``), so hash-consing cannot hand it nodes,
and SymPy caches, that an earlier test has already built.
"""

from __future__ import annotations

import itertools
import sys

import numpy as np
import pytest

import symgrad as sg
from symgrad.ir import toposort

_names = itertools.count()


def _fresh(prefix: str) -> str:
    return f"{prefix}_big{next(_names)}"


@pytest.fixture(autouse=True)
def default_recursion_limit():
    """Run under CPython's default limit, whatever another test or plugin has set."""
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(1000)
    yield
    sys.setrecursionlimit(old)


# --- a chain of 10,000 elementwise nodes ----------------------------------------------------

CHAIN_STEPS = 2500  # 4 elementwise nodes a step: x*0.999, tanh(x), 0.001*tanh(x), their sum


def build_chain(x, steps):
    for _ in range(steps):
        x = x * 0.999 + 0.001 * sg.tanh(x)
    return x


def chain_reference(x0, steps):
    """Value and gradient of sum(chain(x)) by forward-mode accumulation (x is elementwise)."""
    x, dx = np.array(x0, dtype=np.float64), np.ones_like(x0, dtype=np.float64)
    for _ in range(steps):
        t = np.tanh(x)
        dx = dx * (0.999 + 0.001 * (1 - t * t))
        x = x * 0.999 + 0.001 * t
    return float(np.sum(x)), dx


def test_chain_of_10000_elementwise_nodes():
    x0 = sg.tensor(_fresh("x"), ("N",))
    out = build_chain(x0, CHAIN_STEPS)
    loss = sg.sum(out)
    n_ew = sum(1 for n in toposort([loss]) if n.op == "ew")
    assert n_ew >= 10_000, f"the chain has {n_ew} elementwise nodes"

    vg = sg.value_and_grad(loss, x0, backend="numpy")  # grad, simplify, lower
    assert vg.stats.nodes_before > 2 * n_ew, "the backward graph is missing"
    assert vg.stats.nodes_after < vg.stats.nodes_before, "simplification did nothing"
    values = np.array([0.5, -1.0, 2.0, 0.0, 3.0])
    value, g = vg(**{x0.name: values})
    want_value, want_grad = chain_reference(values, CHAIN_STEPS)
    np.testing.assert_allclose(value, want_value, rtol=1e-12)
    np.testing.assert_allclose(g, want_grad, rtol=1e-12)


def test_chain_forward_compile_and_text():
    """compile (forward only) and the graph's text form of a 10,000-node chain."""
    x0 = sg.tensor(_fresh("x"), (2,))
    out = build_chain(x0, CHAIN_STEPS)
    fwd = sg.compile(out, backend="numpy")
    values = np.array([0.25, -2.0])
    got = fwd(**{x0.name: values})
    x = values.copy()
    for _ in range(CHAIN_STEPS):
        x = x * 0.999 + 0.001 * np.tanh(x)
    np.testing.assert_allclose(got, x, rtol=1e-12)
    text = sg.to_text([out])
    assert text.count("\n") >= 10_000
    assert len(fwd.source) > 0


# --- a 50-layer MLP --------------------------------------------------------------------------

LAYERS, WIDTH, N = 50, 4, 3


def mlp_reference(x, target, weights, biases):
    """Forward and hand-written backprop of mean((tanh-MLP(x) - target)**2)."""
    hs = [x]
    for w, b in zip(weights, biases):
        hs.append(np.tanh(hs[-1] @ w + b))
    diff = hs[-1] - target
    loss = float(np.mean(diff**2))
    g = 2 * diff / diff.size
    gw, gb = [None] * LAYERS, [None] * LAYERS
    for k in reversed(range(LAYERS)):
        g = g * (1 - hs[k + 1] ** 2)  # through tanh
        gw[k], gb[k] = hs[k].T @ g, g.sum(axis=0)
        g = g @ weights[k].T
    return loss, gw, gb


def test_mlp_with_50_layers():
    X = sg.tensor(_fresh("X"), ("N", WIDTH))
    T = sg.tensor(_fresh("T"), ("N", WIDTH))
    Ws = [sg.tensor(_fresh(f"W{k}"), (WIDTH, WIDTH)) for k in range(LAYERS)]
    bs = [sg.tensor(_fresh(f"b{k}"), (WIDTH,)) for k in range(LAYERS)]
    h = X
    for w, b in zip(Ws, bs):
        h = sg.tanh(h @ w + b)
    loss = sg.mean((h - T) ** 2)

    grads = sg.grad(loss, Ws + bs)
    assert len(grads) == 2 * LAYERS
    vg = sg.value_and_grad(loss, Ws + bs, backend="numpy")

    rng = np.random.default_rng(0)
    x, target = rng.standard_normal((N, WIDTH)), rng.standard_normal((N, WIDTH))
    # weights scaled so that 50 tanh layers neither saturate nor vanish entirely
    weights = [rng.standard_normal((WIDTH, WIDTH)) * 0.9 for _ in range(LAYERS)]
    biases = [rng.standard_normal(WIDTH) * 0.1 for _ in range(LAYERS)]
    inputs = {X.name: x, T.name: target}
    inputs.update({w.name: v for w, v in zip(Ws, weights)})
    inputs.update({b.name: v for b, v in zip(bs, biases)})
    value, got = vg(**inputs)

    want_loss, gw, gb = mlp_reference(x, target, weights, biases)
    np.testing.assert_allclose(value, want_loss, rtol=1e-12)
    scale = max(np.max(np.abs(g)) for g in gw + gb)
    assert scale > 1e-12, "the reference gradient vanished: the test would prove nothing"
    for k, (g, want) in enumerate(zip(got, gw + gb)):
        np.testing.assert_allclose(g, want, rtol=1e-9, atol=1e-12 * scale, err_msg=f"gradient {k}")


# --- the steps of a chain share their formulas ------------------------------------------------


def alternating_chain(x, steps):
    """The chain of issue 9: tanh(h)*0.5 + 0.1 and h*0.99 + 0.01 in turn."""
    for k in range(steps):
        x = sg.tanh(x) * 0.5 + 0.1 if k % 2 == 0 else x * 0.99 + 0.01
    return x


def _distinct_formulas(steps):
    from symgrad.passes import optimize

    x0 = sg.tensor(_fresh("x"), (8,))
    loss = sg.sum(alternating_chain(x0, steps))
    optimised = optimize([loss, sg.grad(loss, x0)])
    formulas = [n.attr("expr") for n in toposort(optimised) if n.op == "ew" and n.inputs]
    return len(formulas), len(set(formulas))


def test_chain_steps_share_their_fused_formulas():
    """Inputs numbered by height (``Node.order_key``) give every fused group of a chain the
    formula of the group of the same layout a few steps on: the passes compose, and a
    backend prints, a handful of formulas whatever the length (by digest alone, each group
    got a permutation of its inputs of its own: 7, 13, 33 formulas for 100, 300, 900 steps)."""
    short, long = _distinct_formulas(100), _distinct_formulas(400)
    assert long[0] > 3 * short[0]  # the long chain has more fused nodes...
    assert long[1] == short[1] <= 8  # ...but no more distinct formulas
