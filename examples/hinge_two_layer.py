"""The slide "how to compute the gradient": s = W2 max(0, W1 x), hinge loss + regularisation.

    s = f(x; W1, W2) = W2 max(0, W1 x)
    L = 1/N sum_i sum_{j != y_i} max(0, s_j - s_{y_i} + 1) + lambda R(W1) + lambda R(W2)

Each x carries a constant 1 as its last entry (the course's bias trick), so W1 x has a
bias; without it the net could only tell directions apart, not the spiral's turns.

The slide's complaint: the gradient by hand takes pages of matrix calculus, and swapping
the hinge loss for softmax means deriving it all again.  Here the net is trained on a 2-D
spiral (3 classes), then the data loss is swapped for softmax cross-entropy by changing
one line (``DATA_LOSS``); symgrad derives the new gradient.  Prints both accuracies and
writes the two decision boundaries and loss curves side by side (exit status 1 if a test
accuracy is below 90 %, 80 % with --quick).

Run:  python examples/hinge_two_layer.py [--quick] [--out FOLDER] [--backend numba|numpy]
Writes FOLDER/hinge_two_layer.png (default folder examples/out/).
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
    spiral,
)

LAMBDA, HIDDEN = 1e-3, 100

DATA_LOSS = {
    "hinge": sg.losses.multiclass_hinge,  # sum_{j != y} max(0, s_j - s_y + 1)
    "softmax": sg.losses.softmax_cross_entropy,  # -log(e^{s_y} / sum_j e^{s_j})
}


def train(name, train_set, test_set, epochs, kw, seed):
    X, y = sg.tensor("X", ("N", 3)), sg.tensor("y", ("N",), dtype="int64")
    net = sg.nn.MLP([3, HIDDEN, 3], activation="relu", bias=False)  # W2 max(0, W1 x)
    W1, W2 = net.params["W1"], net.params["W2"]
    s = net(X)
    L = (
        DATA_LOSS[name](s, y) + LAMBDA * sg.losses.l2(W1) + LAMBDA * sg.losses.l2(W2)
    )  # <- the one line
    weights = net.init(seed)
    opt = sg.nn.optim.SGD(weights, lr=0.2, momentum=0.9, milestones=(int(0.7 * epochs),))
    history = sg.nn.fit(
        L,
        net.params,
        train_set,
        opt,
        epochs,
        batch_size=64,
        seed=seed,
        scores=s,
        labels=y,
        val_data=test_set,
        **kw,
    )
    print(
        f"{name:8s} loss: train loss {history.loss[0]:.3f} -> {history.loss[-1]:.3f}, "
        f"test accuracy {history.val_accuracy[-1]:.1%}"
    )
    predict = sg.compile(s, **kw)
    return history, lambda X, **w: predict(X=with_one(X), **w), weights


def with_one(X):
    """x with a constant 1 appended: the bias trick."""
    return np.c_[X, np.ones(len(X))]


def main(argv=None):
    parser = make_parser(__doc__, quick_help="fewer epochs", pictures=True)
    args = parser.parse_args(argv)
    kw = backend_kwargs(args.backend)
    rng = np.random.default_rng(args.seed)
    X_train, y_train = spiral(rng, 200)
    X_test, y_test = spiral(rng, 200)
    train_set = {"X": with_one(X_train), "y": y_train}
    test_set = {"X": with_one(X_test), "y": y_test}
    epochs = 60 if args.quick else 200
    print(
        f"spiral: {len(y_train)} training / {len(y_test)} test points, 3 classes; "
        f"H = {HIDDEN}, lambda = {LAMBDA}, {epochs} epochs of SGD with momentum"
    )

    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.8))
    threshold = 0.8 if args.quick else 0.9
    ok = True
    for ax, name in zip(axes, DATA_LOSS):
        history, predict, weights = train(name, train_set, test_set, epochs, kw, args.seed)
        ok &= history.val_accuracy[-1] >= threshold
        xx, yy, label = decision_map(predict, weights, X_train, steps=120 if args.quick else 250)
        draw_classes(ax, xx, yy, label, X_train, y_train)
        ax.set_title(f"{name}: test accuracy {history.val_accuracy[-1]:.1%}", fontsize=10)
        axes[2].plot(history.epochs, history.loss, label=f"{name} (training)")
    axes[2].set(xlabel="epoch", ylabel="loss", yscale="log", title="loss (incl. lambda R)")
    axes[2].legend()
    axes[2].grid(alpha=0.3)
    fig.suptitle("s = W2 max(0, W1 x): hinge loss, then softmax by changing one line", fontsize=11)
    fig.tight_layout()
    path = out_dir(args) / "hinge_two_layer.png"
    fig.savefig(path, dpi=90)
    print(f"wrote {path}")
    print("both losses trained:", "OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
