"""The slide "use regularisation, not the network's size": lambda = 0.001, 0.01, 0.1.

    L(W) = 1/N sum_i L_i(f(x_i, W), y_i) + lambda R(W),   R(W) = sum of squares of W1, W2

The same over-sized net (2 -> 100 -> 100 -> 2, ReLU, softmax cross-entropy) is trained on a small
noisy "two moons" set (generated here) with the slide's three values of lambda; the picture shows the three
decision boundaries side by side (the slide's ConvNetJS demo, made with symgrad): the
boundary is wiggly with a small lambda and smooth with a large one.

Run:  python examples/regularization.py [--quick] [--out FOLDER] [--backend numba|numpy]
Writes FOLDER/regularization.png (default folder examples/out/).
"""

import numpy as np
from _common import (
    backend_kwargs,
    decision_map,
    draw_classes,
    make_parser,
    out_dir,
    pyplot,
    sg,
)

LAMBDAS = (0.001, 0.01, 0.1)


def moons(rng, n, noise=0.3):
    """Two interleaved half circles, classes 0 and 1, with Gaussian noise; centred."""
    t = np.pi * rng.uniform(0, 1, n)
    y = rng.integers(0, 2, n)
    X = np.where(
        y[:, None] == 0, np.c_[np.cos(t), np.sin(t)], np.c_[1 - np.cos(t), 0.5 - np.sin(t)]
    )
    return (X + noise * rng.standard_normal((n, 2)) - [0.5, 0.25]) / 1.2, y


def main(argv=None):
    parser = make_parser(__doc__, quick_help="fewer epochs, a coarser picture", pictures=True)
    args = parser.parse_args(argv)
    kw = backend_kwargs(args.backend)
    rng = np.random.default_rng(args.seed)
    X_train, y_train = moons(rng, 80)  # few, noisy points: easy to overfit
    X_test, y_test = moons(rng, 1000)
    epochs = 100 if args.quick else 1000

    X, y = sg.tensor("X", ("N", 2)), sg.tensor("y", ("N",), dtype="int64")
    net = sg.nn.MLP([2, 100, 100, 2], activation="relu")
    scores = net(X)
    R = sg.losses.l2(net.params["W1"], net.params["W2"], net.params["W3"])

    plt = pyplot()
    fig, axes = plt.subplots(1, len(LAMBDAS), figsize=(4 * len(LAMBDAS), 4.2))
    print(
        f"two moons: {len(y_train)} noisy training points, {len(y_test)} test points; {epochs} epochs"
    )
    ok = True
    for ax, lam in zip(axes, LAMBDAS):
        loss = sg.losses.softmax_cross_entropy(scores, y) + lam * R
        weights = net.init(args.seed)
        opt = sg.nn.optim.Adam(weights, lr=1e-2, schedule=sg.nn.schedules.cosine(epochs, 0.05))
        history = sg.nn.fit(
            loss,
            net.params,
            {"X": X_train, "y": y_train},
            opt,
            epochs,
            batch_size=256,
            seed=args.seed,
            scores=scores,
            labels=y,
            val_data={"X": X_test, "y": y_test},
            **kw,
        )
        train_acc, test_acc = history.train_accuracy[-1], history.val_accuracy[-1]
        size = sum(float(np.sum(weights[k] ** 2)) for k in ("W1", "W2", "W3"))
        print(
            f"lambda = {lam:<6g} R(W) = {size:8.2f}   train accuracy {train_acc:6.1%}   "
            f"test accuracy {test_acc:6.1%}"
        )
        ok &= train_acc > 0.75 and np.isfinite(history.loss[-1])
        predict = sg.compile(scores, **kw)
        xx, yy, label = decision_map(predict, weights, X_train, steps=120 if args.quick else 300)
        draw_classes(ax, xx, yy, label, X_train, y_train)
        ax.set_title(f"λ = {lam:g}   (test accuracy {test_acc:.0%})", fontsize=11)
    fig.suptitle("L = softmax cross-entropy + λ R(W), a 2-100-100-2 ReLU net", fontsize=11)
    fig.tight_layout()
    path = out_dir(args) / "regularization.png"
    fig.savefig(path, dpi=80)
    print(f"wrote {path}")
    print("all trained:", "OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
