"""symgrad's main job in three short acts, on built-in defaults.

(a) The lecture's backprop slide: f = (x + y) * z at (-2, 5, -4), its gradients, the
    symbolic df/dz as SymPy, and the generated kernel.
(b) Multiclass hinge loss + L2 on a linear model over random CIFAR-like data, its gradient
    checked against the hand derivation of the lecture; exits 1 on a mismatch.
(c) A few SGD steps of the slide's two-layer net (sigmoid, sum of squares), loss falling.

Run:  python -m symgrad.demo [--backend numba|numpy] [--seed N]   (or: symgrad-demo)
"""

from __future__ import annotations

import argparse
import itertools
import time

import numpy as np

import symgrad as sg

TOLERANCE = 1e-7


def rel_error(a, b):
    """Max elementwise relative difference, as in the course's gradient checks."""
    return float(np.max(np.abs(a - b) / np.maximum(1e-8, np.abs(a) + np.abs(b))))


def header(title):
    print(f"\n== {title} " + "=" * max(3, 72 - len(title)))


def slide(backend):
    header("(a) backprop slide: f = (x + y) * z at x=-2, y=5, z=-4")
    x, y, z = sg.symbols("x y z")
    f = (x + y) * z
    dz = sg.grad(f, z)
    vg = sg.value_and_grad(f, wrt=[x, y, z], backend=backend)
    value, (gx, gy, gz) = vg(x=-2.0, y=5.0, z=-4.0)
    print(f"f = {value:g}    df/dx = {gx:g}, df/dy = {gy:g}, df/dz = {gz:g}")
    print(f"symbolic df/dz = {sg.to_sympy(dz)}")
    print(f"generated kernel ({backend} backend):")
    print("    " + vg.source.strip().replace("\n", "\n    "))
    return (value, gx, gy, gz) == (-12.0, -4.0, -4.0, 3.0)


def hinge_hand(X, y, W, reg):
    """The lecture's vectorised SVM loss and gradient, derived on paper."""
    N = X.shape[0]
    scores = X @ W
    margins = np.maximum(0.0, scores - scores[np.arange(N), y][:, None] + 1.0)
    margins[np.arange(N), y] = 0.0
    mask = (margins > 0).astype(X.dtype)
    mask[np.arange(N), y] = -mask.sum(axis=1)  # minus the row counts
    loss = margins.sum() / N + reg * np.sum(W * W)
    return loss, X.T @ mask / N + 2 * reg * W


def hinge(backend, rng, N=500, D=3073, C=10, reg=0.05):
    header(f"(b) multiclass hinge + L2, linear model, N={N} D={D} C={C}")
    # CIFAR-like: centred pixel values of 32x32x3 images, plus a bias column of ones
    pixels = rng.integers(0, 256, size=(N, D - 1)).astype(np.float64)
    X = np.hstack([pixels - pixels.mean(axis=0), np.ones((N, 1))])
    y = rng.integers(0, C, size=N)
    W = 5e-4 * rng.standard_normal((D, C))  # scores spread so ~2/3 of margins are active

    Xs, Ws = sg.tensor("X", ("N", "D")), sg.tensor("W", ("D", "C"))
    ys = sg.tensor("y", ("N",), dtype="int64")
    loss = sg.losses.multiclass_hinge(Xs @ Ws, ys) + reg * sg.losses.l2(Ws)
    started = time.perf_counter()
    vg = sg.value_and_grad(loss, wrt=Ws, backend=backend)
    value, dW = vg(X=X, y=y, W=W)
    elapsed = time.perf_counter() - started
    hand_value, hand_dW = hinge_hand(X, y, W, reg)
    err = max(rel_error(dW, hand_dW), rel_error(np.array(value), np.array(hand_value)))
    ok = err < TOLERANCE
    print(f"loss: symgrad {value:.6f}   hand {hand_value:.6f}")
    print(
        f"max relative difference vs hand derivation: {err:.2e} (tolerance {TOLERANCE:g}; "
        f"compile + first call {elapsed:.2f} s)"
    )
    print("OK" if ok else "MISMATCH")
    return ok


def two_layer(backend, rng, steps=5, N=64, D_in=1000, H=100, D_out=10, lr=1e-4):
    header(f"(c) two-layer net (sigmoid, sum of squares), N={N} D_in={D_in} H={H} D_out={D_out}")
    xs, ys = sg.tensor("x", ("N", D_in)), sg.tensor("y", ("N", D_out))
    w1s, w2s = sg.tensor("w1", (D_in, H)), sg.tensor("w2", (H, D_out))
    y_pred = sg.sigmoid(xs @ w1s) @ w2s
    vg = sg.value_and_grad(sg.losses.squared_error(y_pred, ys), wrt=[w1s, w2s], backend=backend)
    x, y = rng.standard_normal((N, D_in)), rng.standard_normal((N, D_out))
    w1, w2 = rng.standard_normal((D_in, H)), rng.standard_normal((H, D_out))
    losses = []
    for t in range(steps):
        loss, (g1, g2) = vg(x=x, y=y, w1=w1, w2=w2)
        losses.append(loss)
        print(f"step {t}: loss {loss:12.2f}")
        w1 -= lr * g1
        w2 -= lr * g2
    falling = all(b < a for a, b in itertools.pairwise(losses))
    print(f"loss {'falls' if falling else 'does NOT fall'}: {losses[0]:.1f} -> {losses[-1]:.1f}")
    return falling


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="symgrad-demo", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--backend",
        choices=["numba", "numpy"],
        default="numba",
        help="kernel backend (default: numba)",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    started = time.perf_counter()
    print(f"symgrad {sg.__version__} demo, backend={args.backend}, seed={args.seed}")
    results = {
        "backprop slide": slide(args.backend),
        "hinge gradient vs hand": hinge(args.backend, rng),
        "two-layer SGD": two_layer(args.backend, rng),
    }
    header("summary")
    for name, ok in results.items():
        print(f"  {name:<26} {'OK' if ok else 'MISMATCH'}")
    print(f"  total time {time.perf_counter() - started:.1f} s")
    return 0 if all(results.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
