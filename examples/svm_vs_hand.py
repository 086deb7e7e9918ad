"""symgrad's derived gradients of the two linear-classifier losses vs the hand derivations.

The lecture derives the gradient of each loss on paper and warns that changing the loss
means starting over.  Here both are one ``sg.value_and_grad`` call, checked against the
vectorised formulas of the course on random CIFAR-like data (N x 3073 with a bias column):

* multiclass hinge (SVM) + L2:
      margins = max(0, s - s_y + 1) off the label;  mask = (margins > 0), and at the label
      minus the row count of positive margins;  dW = X.T @ mask / N + 2 * reg * W
* softmax cross-entropy + L2:
      p = softmax(X @ W);  dW = X.T @ (p - onehot(y)) / N + 2 * reg * W

It prints the optimised gradient graph symgrad derived (the margin mask and its row count,
the softmax minus one-hot), the loss values, and the max relative difference of dW.

Run:  python examples/svm_vs_hand.py [--backend numba|numpy] [--quick] [--seed N]
      (default: the library's default backend; SYMGRAD_BACKEND also chooses one)
"""

import numpy as np
from _common import backend_kwargs, make_parser, sg

TOLERANCE = 1e-7


def rel_error(a, b):
    """Max elementwise relative difference, as in the course's gradient checks."""
    a, b = np.asarray(a), np.asarray(b)
    return float(np.max(np.abs(a - b) / np.maximum(1e-8, np.abs(a) + np.abs(b))))


def svm_hand(X, y, W, reg):
    N = X.shape[0]
    rows = np.arange(N)
    scores = X @ W
    margins = np.maximum(0.0, scores - scores[rows, y][:, None] + 1.0)
    margins[rows, y] = 0.0
    loss = margins.sum() / N + reg * np.sum(W * W)
    mask = (margins > 0).astype(float)
    mask[rows, y] = -mask.sum(axis=1)
    return loss, X.T @ mask / N + 2 * reg * W


def softmax_hand(X, y, W, reg):
    N = X.shape[0]
    rows = np.arange(N)
    scores = X @ W
    scores = scores - scores.max(axis=1, keepdims=True)
    p = np.exp(scores)
    p /= p.sum(axis=1, keepdims=True)
    loss = -np.log(p[rows, y]).mean() + reg * np.sum(W * W)
    dscores = p.copy()
    dscores[rows, y] -= 1.0  # p - onehot
    return loss, X.T @ dscores / N + 2 * reg * W


def main(argv=None):
    parser = make_parser(__doc__, quick_help="smaller data (N=100, D=257)")
    args = parser.parse_args(argv)
    kw = backend_kwargs(args.backend)
    N, D, C = (100, 257, 10) if args.quick else (500, 3073, 10)
    reg = 0.05
    rng = np.random.default_rng(args.seed)

    pixels = rng.integers(0, 256, size=(N, D - 1)).astype(np.float64)
    X = np.hstack([pixels - pixels.mean(axis=0), np.ones((N, 1))])
    y = rng.integers(0, C, size=N)
    W = 5e-4 * rng.standard_normal((D, C))  # scores spread so ~2/3 of margins are active

    Xs = sg.tensor("X", ("N", "D"))
    ys = sg.tensor("y", ("N",), dtype="int64")
    Ws = sg.tensor("W", ("D", "C"))
    scores = Xs @ Ws
    cases = [
        ("multiclass hinge + L2", sg.losses.multiclass_hinge(scores, ys), svm_hand),
        ("softmax cross-entropy + L2", sg.losses.softmax_cross_entropy(scores, ys), softmax_hand),
    ]
    print(f"random CIFAR-like data: N={N}, D={D} (with bias column), C={C}, reg={reg}")
    all_ok = True
    for title, data_loss, hand in cases:
        vg = sg.value_and_grad(data_loss + reg * sg.losses.l2(Ws), wrt=Ws, **kw)
        print(f"\n== {title} " + "=" * (60 - len(title)))
        print(
            f"derived loss and gradient, optimised ({vg.stats.nodes_before} -> "
            f"{vg.stats.nodes_after} nodes):"
        )
        print("    " + vg.graph_text.replace("\n", "\n    "))
        value, dW = vg(X=X, y=y, W=W)
        hand_value, hand_dW = hand(X, y, W, reg)
        err = max(rel_error(dW, hand_dW), rel_error(value, hand_value))
        ok = err < TOLERANCE
        all_ok &= ok
        print(f"loss: symgrad {value:.10f}   hand {hand_value:.10f}")
        print(
            f"max relative difference vs hand derivation: {err:.2e} -> {'OK' if ok else 'MISMATCH'}"
        )
    print("\nall gradients match the hand derivations:", "OK" if all_ok else "MISMATCH")
    return 0 if all_ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
