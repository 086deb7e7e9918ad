"""Simplification quality: derived gradients as small as the hand derivations, and passes
that never change what a graph computes.

Node counts are of the optimised graphs the backends run (``Compiled.outputs`` is
``symgrad.passes.optimize`` of the forward + backward graphs), counted with
``symgrad.ir.toposort`` (every node once, inputs included).
"""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp
from gradcheck import compile_cached

import symgrad as sg
from symgrad import backends
from symgrad.backends.inputs import Signature
from symgrad.ir import toposort
from symgrad.ops.elementwise import to_native
from symgrad.passes import fuse, optimize, simplify


def ops_of(outputs):
    return [n.op for n in toposort(outputs)]


def count(outputs, op):
    return ops_of(outputs).count(op)


def calls(outputs, fn):
    """How many elementwise nodes evaluate the SymPy function ``fn`` (e.g. sp.exp; the
    formulas hold symgrad's own opaque functions, compared here as SymPy's)."""
    return sum(
        1 for n in toposort(outputs) if n.op == "ew" and to_native(n.attr("expr")).has(fn)
    )


def no_jacobian(outputs, batch="N", classes="C"):
    """No node of rank > 2 and none with a dim repeated (an (N, C, C) or (C, C) Jacobian)."""
    for n in toposort(outputs):
        assert n.ndim <= 2, f"{n!r} has shape {n.shape}"
        named = [d for d in n.shape if isinstance(d, str)]
        assert len(named) == len(set(named)), f"{n!r} has shape {n.shape}: a Jacobian?"


def _linear(loss_name):
    X = sg.tensor("X", ("N", "D"))
    W = sg.tensor("W", ("D", "C"))
    y = sg.tensor("y", ("N",), dtype="int64")
    loss = {"softmax": sg.losses.softmax_cross_entropy,
            "hinge": sg.losses.multiclass_hinge}[loss_name]
    return loss(X @ W, y) + 1e-3 * sg.losses.l2(W), W


# --- the linear classifiers: as small as the hand derivation -------------------------------


@pytest.mark.parametrize("loss_name", ["softmax", "hinge"])
def test_linear_model_value_and_grad_is_hand_sized(loss_name):
    f, W = _linear(loss_name)
    vg = sg.value_and_grad(f, W, backend="numpy")
    out = vg.outputs
    print(f"\n{loss_name} value+grad graph ({len(toposort(out))} nodes):\n{vg.graph_text}")
    no_jacobian(out)
    # scores = X @ W forward, dW = X.T @ G backward: nothing more
    assert count(out, "matmul") == 2
    assert count(out, "transpose") <= 1
    # the stop_gradient'ed max shift leaves no max-selection mask in the gradient
    assert count(out, "argmax_mask") == 0 and count(out, "stop_gradient") == 0
    assert count(out, "one_hot") == 1
    if loss_name == "softmax":
        # exp(s - max) computed once, read by the loss and by the gradient (softmax reuse)
        assert calls(out, sp.exp) == 1
        assert count(out, "max") == 1
    # a hand-written forward + backward has ~20 nodes; allow little slack
    assert len(toposort(out)) <= 25


def test_softmax_gradient_wrt_scores_is_p_minus_onehot():
    S = sg.tensor("S", ("N", "C"))
    y = sg.tensor("y", ("N",), dtype="int64")
    g = sg.grad(sg.losses.softmax_cross_entropy(S, y), S)
    out = optimize([g])
    print("\n" + sg.to_text(out))
    no_jacobian(out)
    # (exp(S - max) / sum - onehot) / N: inputs S, y; dim N; max, exp, sum, one_hot, the
    # final formula (and at most one scalar constant): nothing like a softmax Jacobian.
    assert len(toposort(out)) <= 11  # 10, and the -inf of logsumexp's masked-row guard
    assert count(out, "sum") == 1 and count(out, "max") == 1 and calls(out, sp.exp) == 1
    assert count(out, "matmul") == 0
    # "sum" reduction: exactly softmax - onehot
    g_sum = optimize([sg.grad(sg.losses.softmax_cross_entropy(S, y, reduction="sum"), S)])
    assert len(toposort(g_sum)) <= 9  # 8, and the -inf of logsumexp's masked-row guard


def test_hinge_gradient_wrt_scores_is_mask_and_row_count():
    S = sg.tensor("S", ("N", "C"))
    y = sg.tensor("y", ("N",), dtype="int64")
    out = optimize([sg.grad(sg.losses.multiclass_hinge(S, y), S)])
    print("\n" + sg.to_text(out))
    no_jacobian(out)
    # mask of positive margins, its row count (one sum over classes), minus it at the label
    assert count(out, "sum") == 1
    assert count(out, "matmul") == 0 and count(out, "max") == 0
    assert len(toposort(out)) <= 11


def test_two_layer_net_graph_is_hand_sized():
    x = sg.tensor("x", ("N", "D_in"))
    y = sg.tensor("y", ("N", "D_out"))
    w1 = sg.tensor("w1", ("D_in", "H"))
    w2 = sg.tensor("w2", ("H", "D_out"))
    for h in (1 / (1 + sg.exp(-(x @ w1))), sg.sigmoid(x @ w1)):
        loss = sg.sum((h @ w2 - y) ** 2)
        vg = sg.value_and_grad(loss, [w1, w2], backend="numpy")
        out = vg.outputs
        no_jacobian(out)
        # the slide: 2 forward matmuls, and grad_w2 = h.T @ g, grad_h = g @ w2.T,
        # grad_w1 = x.T @ (...): 3 backward ones
        assert count(out, "matmul") == 5
        assert count(out, "transpose") <= 3
        # sigmoid' reuses the forward h (h * (1 - h)): exp is evaluated once
        assert calls(out, sp.exp) == 1
        assert len(toposort(out)) <= 22


# --- deep nets: no expression swell -------------------------------------------------------


def _mlp(depth, act, width=16):
    X = sg.tensor("X", ("N", width))
    y = sg.tensor("y", ("N",), dtype="int64")
    h, params = X, []
    for i in range(depth):
        W = sg.tensor(f"W{i}", (width, width))
        b = sg.tensor(f"b{i}", (width,))
        params += [W, b]
        h = act(h @ W + b)
    return sg.losses.softmax_cross_entropy(h, y), params


def _counts(depth, act):
    f, params = _mlp(depth, act)
    forward = len(toposort(optimize([f])))
    both = len(toposort(optimize([f, *sg.grad(f, params)])))
    return forward, both


# A hand-written layer is 4 forward nodes (W, b, h @ W, act(. + b)) and 6 backward nodes
# (the activation's local gradient times the adjoint, the bias sum, h_prev.T, the dW
# matmul, W.T, the dh matmul): value + grad / forward -> 10 / 4 = 2.5 for deep nets.
# symgrad may spend at most 20% more (3.0), and must grow linearly in depth.
MAX_RATIO = 3.0
MAX_NODES_PER_LAYER = 12


@pytest.mark.parametrize("act", [sg.tanh, sg.relu, sg.sigmoid], ids=["tanh", "relu", "sigmoid"])
def test_deep_mlp_node_count_ratio(act):
    fwd20, both20 = _counts(20, act)
    ratio = both20 / fwd20
    print(f"\n20-layer {act.__name__} MLP (width 16): forward {fwd20} nodes, "
          f"value+grad {both20} nodes, ratio {ratio:.3f}")
    assert ratio < MAX_RATIO
    # linear growth in depth (no swell): the same number of nodes per extra layer
    fwd5, both5 = _counts(5, act)
    fwd10, both10 = _counts(10, act)
    per_layer = (both20 - both10) / 10
    assert both10 - both5 == (both20 - both10) / 2
    assert per_layer <= MAX_NODES_PER_LAYER
    # and the fused formulas stay small (bounded cost simplification)
    f, params = _mlp(20, act)
    out = optimize([f, *sg.grad(f, params)])
    biggest = max(sp.count_ops(n.attr("expr")) for n in toposort(out) if n.op == "ew")
    assert biggest <= 30


def test_deep_mlp_compiles_and_is_right(backend):
    f, params = _mlp(20, sg.tanh)
    fn = compile_cached([f, *sg.grad(f, params)], backend)
    rng = np.random.default_rng(0)
    inputs = {"X": rng.standard_normal((8, 16)), "y": rng.integers(0, 16, 8)}
    for p in params:
        inputs[p.name] = rng.standard_normal(p.shape) * (0.4 if p.ndim == 2 else 0.1)
    got = fn(**inputs)
    # hand backprop of the same net
    hs = [inputs["X"]]
    for i in range(20):
        hs.append(np.tanh(hs[-1] @ inputs[f"W{i}"] + inputs[f"b{i}"]))
    s = hs[-1]
    p = np.exp(s - s.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    loss = -np.mean(np.log(p[np.arange(8), inputs["y"]]))
    g = p.copy()
    g[np.arange(8), inputs["y"]] -= 1
    g /= 8
    grads = {}
    for i in reversed(range(20)):
        g = g * (1 - hs[i + 1] ** 2)
        grads[f"W{i}"] = hs[i].T @ g
        grads[f"b{i}"] = g.sum(0)
        g = g @ inputs[f"W{i}"].T
    assert got[0] == pytest.approx(loss, rel=1e-12)
    for p_, value in zip(params, got[1:]):
        np.testing.assert_allclose(value, grads[p_.name], rtol=1e-9, atol=1e-14, err_msg=p_.name)


# --- every pass preserves what the graph computes ------------------------------------------


def _graphs():
    """name -> (outputs of forward + backward, before any pass, and an input maker)."""
    out = {}

    for loss_name in ("softmax", "hinge"):
        f, W = _linear(loss_name)
        X = sg.tensor("X", ("N", "D"))
        out[loss_name] = ([f, *sg.grad(f, [W, X])], lambda rng: {
            "X": rng.standard_normal((7, 5)), "W": rng.standard_normal((5, 4)),
            "y": rng.integers(0, 4, 7)})

    f, params = _mlp(4, sg.relu, width=6)
    out["mlp_relu"] = ([f, *sg.grad(f, params)], lambda rng: dict(
        {"X": rng.standard_normal((5, 6)), "y": rng.integers(0, 6, 5)},
        **{p.name: rng.standard_normal(p.shape) for p in params}))

    a = sg.tensor("a", ("N", 3))
    b = sg.tensor("b", (3,))
    c = sg.tensor("c", ())
    e = (sg.exp(a * 0 + b) * 1 + sg.log1p(sg.abs(a)) / (1 + sg.sigmoid(b)) - c ** 2
         + sg.maximum(a, b) * sg.minimum(a, 0.5) + sg.softplus(a - b) * sg.gelu(a)
         + sg.elu(a, alpha=0.7) - sg.leaky_relu(b) + sg.silu(a) * 0.25)
    f = (sg.sum(sg.max(e, axis=1) * sg.mean(e, axis=1)) + sg.logsumexp(e)
         + sg.sum(sg.transpose(sg.reshape(e, ("N", 3, 1)), (2, 0, 1)) ** 2) + sg.sum(sg.softmax(e, axis=0) * a))
    out["grab_bag"] = ([f, *sg.grad(f, [a, b, c])], lambda rng: {
        "a": rng.standard_normal((4, 3)), "b": rng.standard_normal(3), "c": rng.standard_normal(())})

    x = sg.tensor("x", ())
    d1 = sg.grad(sg.tanh(x) * sg.exp(x) / (1 + x ** 2), x)
    out["second_derivative"] = ([d1, sg.grad(d1, x)], lambda rng: {"x": rng.standard_normal(())})
    return out


GRAPH_NAMES = ["softmax", "hinge", "mlp_relu", "grab_bag", "second_derivative"]
_GRAPHS: dict = {}


def graph_of(name):
    if not _GRAPHS:
        _GRAPHS.update(_graphs())
    return _GRAPHS[name]

PASSES = {
    "simplify": simplify,
    "fuse": fuse,
    "fuse_after_simplify": lambda o: fuse(simplify(o)),
    "optimize": optimize,
    "optimize_twice": lambda o: optimize(optimize(o)),
}


def evaluate(outputs, inputs):
    """The NumPy interpreter run directly on ``outputs`` (no pass in between), through the
    backend contract of ``symgrad.backends``: ``build(outputs, signature, options)``."""
    signature = Signature(outputs)
    program = backends.get("numpy")(outputs, signature, {})
    return program(*signature.bind(inputs))


@pytest.mark.parametrize("graph", GRAPH_NAMES)
@pytest.mark.parametrize("pass_name", list(PASSES))
def test_pass_preserves_values(graph, pass_name):
    raw, make = graph_of(graph)
    after = PASSES[pass_name](raw)
    assert len(after) == len(raw)
    for node_before, node_after in zip(raw, after):
        assert node_after.shape == node_before.shape and node_after.dtype == node_before.dtype
    assert len(toposort(after)) <= len(toposort(raw))
    for seed in range(3):
        inputs = make(np.random.default_rng(seed))
        names = {n.name for n in sg.ir.inputs_of(raw)}
        inputs = {k: v for k, v in inputs.items() if k in names}
        before = evaluate(raw, inputs)
        used = {n.name for n in sg.ir.inputs_of(after)}
        now = evaluate(after, {k: v for k, v in inputs.items() if k in used})
        for i, (u, v) in enumerate(zip(before, now)):
            np.testing.assert_allclose(v, u, rtol=1e-11, atol=1e-13, err_msg=f"{graph} output {i}")


@pytest.mark.parametrize("graph", GRAPH_NAMES)
def test_compiled_matches_unoptimised_graph(backend, graph):
    raw, make = graph_of(graph)
    fn = compile_cached(raw, backend)
    inputs = make(np.random.default_rng(7))
    names = {n.name for n in sg.ir.inputs_of(raw)}
    before = evaluate(raw, {k: v for k, v in inputs.items() if k in names})
    got = fn(**{k: v for k, v in inputs.items() if k in fn.input_names})
    for i, (u, v) in enumerate(zip(before, got)):
        np.testing.assert_allclose(v, u, rtol=1e-11, atol=1e-13, err_msg=f"{graph} output {i}")


def test_passes_shrink_the_raw_gradient():
    # The raw derived graph of a deep net is bigger than the optimised one: the passes work.
    f, params = _mlp(10, sg.tanh)
    raw = [f, *sg.grad(f, params)]
    assert len(toposort(optimize(raw))) < len(toposort(raw))
    # zero adjoints are pruned: a parameter the loss does not use gets a bare zero
    unused = sg.tensor("unused", (3, 3))
    g = optimize(sg.grad(f, [params[0], unused]))
    assert toposort([g[1]])[-1].op in ("broadcast_to", "ew")
    assert len(toposort([g[1]])) <= 2
