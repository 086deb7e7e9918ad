"""The lecture's two-layer network, trained with symgrad.

Part 1 runs the slide's NumPy loop exactly as written (N, D_in, H, D_out = 64, 1000, 100,
10; sigmoid hidden layer; sum-of-squares loss; hand-written backward pass; lr 1e-4) side
by side with the same net whose gradient symgrad derives.  Both start from the same
weights; the losses agree to the last digits at every iteration.

Part 2 trains a classifier the slide's way but with the lecture's other pieces: a ReLU (or
GELU) hidden layer, softmax cross-entropy + reg * (R(W1) + R(W2)), minibatch SGD and a
step-decayed learning rate, on the classic synthetic 2-D spiral (3 interleaved arms, not
linearly separable), with ``sg.nn.optim``'s minibatches and SGD.  It reports the train and
test accuracy; exits with status 1 if a net's test accuracy is below 90 % (below 80 % with
--quick).

Run:  python examples/train_two_layer.py [--backend numba|numpy] [--quick] [--seed N]
                                         [--activations relu,gelu]
      (default: the library's default backend; SYMGRAD_BACKEND also chooses one)
"""

import time

import numpy as np
from _common import accuracy, backend_kwargs, make_parser, sg

optim = sg.nn.optim


def slide_side_by_side(kw, rng, iterations):
    print("== part 1: the slide's NumPy loop vs symgrad ==========================")
    N, D_in, H, D_out = 64, 1000, 100, 10
    x, y = rng.standard_normal((N, D_in)), rng.standard_normal((N, D_out))
    w1, w2 = rng.standard_normal((D_in, H)), rng.standard_normal((H, D_out))

    xs, ys = sg.tensor("x", ("N", D_in)), sg.tensor("y", ("N", D_out))
    w1s, w2s = sg.tensor("w1", (D_in, H)), sg.tensor("w2", (H, D_out))
    y_pred_s = sg.sigmoid(xs @ w1s) @ w2s
    step = sg.value_and_grad(sg.losses.squared_error(y_pred_s, ys), wrt=[w1s, w2s], **kw)
    v1, v2 = w1.copy(), w2.copy()  # symgrad's copy of the weights
    opt = optim.SGD({"w1": v1, "w2": v2}, lr=1e-4)  # v -= 1e-4 * grad, as the slide does

    print(f"{'t':>3} {'loss (slide NumPy)':>22} {'loss (symgrad)':>22} {'max grad rel diff':>18}")
    worst = 0.0
    for t in range(iterations):
        # --- the slide, verbatim ---
        h = 1 / (1 + np.exp(-x.dot(w1)))
        y_pred = h.dot(w2)
        loss = np.square(y_pred - y).sum()
        grad_y_pred = 2.0 * (y_pred - y)
        grad_w2 = h.T.dot(grad_y_pred)
        grad_h = grad_y_pred.dot(w2.T)
        grad_w1 = x.T.dot(grad_h * h * (1 - h))
        w1 -= 1e-4 * grad_w1
        w2 -= 1e-4 * grad_w2
        # --- symgrad ---
        loss_s, (g1, g2) = step(x=x, y=y, w1=v1, w2=v2)
        opt.step([g1, g2])
        diff = max(
            np.max(np.abs(g - r)) / np.max(np.abs(r)) for g, r in ((g1, grad_w1), (g2, grad_w2))
        )
        worst = max(worst, diff, abs(loss_s - loss) / abs(loss))
        print(f"{t:3d} {loss:22.10f} {loss_s:22.10f} {diff:18.2e}")
    ok = worst < 1e-9
    print(
        f"losses and gradients identical to rounding (max rel diff {worst:.1e}):",
        "OK" if ok else "MISMATCH",
    )
    return ok


def spiral(rng, n_per_class, n_classes=3):
    """The classic spiral: arm j sweeps angle 4j..4(j+1) as the radius goes 0..1."""
    X, y = [], []
    for j in range(n_classes):
        r = np.linspace(0.0, 1.0, n_per_class)
        t = np.linspace(j * 4, (j + 1) * 4, n_per_class) + 0.2 * rng.standard_normal(n_per_class)
        X.append(np.c_[r * np.sin(t), r * np.cos(t)])
        y.append(np.full(n_per_class, j))
    return np.concatenate(X), np.concatenate(y)


def train_classifier(kw, rng, activation, quick):
    H, C, reg, batch = 100, 3, 1e-3, 64
    lr, epochs = 0.5, (40 if quick else 100)
    decay_at = (int(epochs * 0.6), int(epochs * 0.85))  # lr *= 0.1 after these epochs
    X_train, y_train = spiral(rng, 300)
    X_test, y_test = spiral(rng, 300)

    Xs, ys = sg.tensor("X", ("N", 2)), sg.tensor("y", ("N",), dtype="int64")
    W1s, b1s = sg.tensor("W1", (2, H)), sg.tensor("b1", (H,))
    W2s, b2s = sg.tensor("W2", (H, C)), sg.tensor("b2", (C,))
    act = {"relu": sg.relu, "gelu": sg.gelu}[activation]
    scores = act(Xs @ W1s + b1s) @ W2s + b2s
    loss = sg.losses.softmax_cross_entropy(scores, ys) + reg * sg.losses.l2(W1s, W2s)
    started = time.perf_counter()
    step = sg.value_and_grad(loss, wrt=[W1s, b1s, W2s, b2s], **kw)
    predict = sg.compile(scores, **kw)

    params = {
        "W1": 2.0 * rng.standard_normal((2, H)),
        "b1": np.zeros(H),
        "W2": 0.1 * rng.standard_normal((H, C)),
        "b2": np.zeros(C),
    }

    opt = optim.SGD(params, lr=lr, milestones=decay_at)  # updates params' arrays in place

    print(
        f"\n-- {activation} hidden layer (H={H}), batch {batch}, lr {lr} x0.1 after epochs "
        f"{list(decay_at)}, reg {reg}"
    )
    report = max(1, epochs // 5)
    for epoch in range(1, epochs + 1):
        for rows in optim.minibatches(len(y_train), batch, rng):
            _, grads = step(X=X_train[rows], y=y_train[rows], **params)
            opt.step(grads)  # in the order of params: W1, b1, W2, b2
        if epoch % report == 0 or epoch == 1:
            full, _ = step(X=X_train, y=y_train, **params)
            print(
                f"   epoch {epoch:4d}  lr {opt.lr:6.3f}  loss {full:.4f}  "
                f"train acc {accuracy(predict, X_train, y_train, **params):6.2%}"
            )
        opt.next_epoch()
    test_acc = accuracy(predict, X_test, y_test, **params)
    print(
        f"{activation}: test accuracy {test_acc:.2%} "
        f"({time.perf_counter() - started:.1f} s including compilation)"
    )
    return test_acc


def main(argv=None):
    parser = make_parser(__doc__, quick_help="fewer iterations and epochs")
    parser.add_argument(
        "--activations",
        default="relu,gelu",
        help="comma-separated hidden activations for part 2 (relu, gelu)",
    )
    args = parser.parse_args(argv)
    kw = backend_kwargs(args.backend)
    rng = np.random.default_rng(args.seed)

    ok = slide_side_by_side(kw, rng, iterations=3 if args.quick else 8)
    print("\n== part 2: spiral classification, softmax cross-entropy + L2 ==============")
    threshold = 0.8 if args.quick else 0.9
    for activation in args.activations.split(","):
        ok &= train_classifier(kw, rng, activation.strip(), args.quick) >= threshold
    print("\nall done:", "OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
