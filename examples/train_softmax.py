"""Train a linear softmax classifier with minibatch SGD and a step-decayed learning rate.

The lecture's recipe, with the gradient derived and compiled by symgrad instead of by hand:

    scores = X @ W + b
    L = mean softmax cross-entropy(scores, y) + reg * sum(W ** 2)
    each epoch: shuffle, then for every batch of 256 rows: W -= lr * dL/dW, b -= lr * dL/db
    step decay: lr *= 0.1 at fixed epochs

on a synthetic, separable-ish data set generated here (Gaussian blobs, one per class; no
downloads).  The shuffle, the update and the schedule are ``sg.nn.optim.minibatches`` and
``sg.nn.optim.SGD``.  Prints the loss and the train / validation accuracy after every epoch
and exits with status 1 if the final validation accuracy is below 85 %.

Run:  python examples/train_softmax.py [--backend numba|numpy] [--quick] [--seed N]
      (default: the library's default backend; SYMGRAD_BACKEND also chooses one)
"""

import time

import numpy as np
from _common import accuracy, backend_kwargs, make_parser, sg

optim = sg.nn.optim


def make_blobs(rng, n_per_class, n_classes, dim, spread=1.2):
    """One isotropic Gaussian blob per class around random centres; shuffled."""
    centres = spread * rng.standard_normal((n_classes, dim))
    X = np.concatenate([c + rng.standard_normal((n_per_class, dim)) for c in centres])
    y = np.repeat(np.arange(n_classes), n_per_class)
    order = rng.permutation(len(y))
    return X[order], y[order]


def main(argv=None):
    parser = make_parser(__doc__, quick_help="less data and fewer epochs")
    args = parser.parse_args(argv)
    kw = backend_kwargs(args.backend)
    rng = np.random.default_rng(args.seed)

    C, D = 5, 10
    n_per_class = 400 if args.quick else 2000
    epochs, decay_at = (6, (4,)) if args.quick else (15, (8, 12))
    lr, reg, batch = 0.5, 1e-4, 256

    X, y = make_blobs(rng, n_per_class, C, D)
    n_val = len(y) // 5
    X_val, y_val, X_train, y_train = X[:n_val], y[:n_val], X[n_val:], y[n_val:]
    mean, std = X_train.mean(axis=0), X_train.std(axis=0)
    X_train, X_val = (X_train - mean) / std, (X_val - mean) / std

    # the model and its loss, once; "N" is a named dim, so any batch size works
    Xs, ys = sg.tensor("X", ("N", D)), sg.tensor("y", ("N",), dtype="int64")
    Ws, bs = sg.tensor("W", (D, C)), sg.tensor("b", (C,))
    scores = Xs @ Ws + bs
    loss = sg.losses.softmax_cross_entropy(scores, ys) + reg * sg.losses.l2(Ws)
    started = time.perf_counter()
    step = sg.value_and_grad(loss, wrt=[Ws, bs], **kw)
    predict = sg.compile(scores, **kw)

    params = {"W": 0.01 * rng.standard_normal((D, C)), "b": np.zeros(C)}
    opt = optim.SGD(params, lr=lr, milestones=decay_at)  # updates params' arrays in place

    print(
        f"blobs: {len(y_train)} train / {n_val} validation rows, D={D}, C={C}; "
        f"batch {batch}, lr {lr} x0.1 after epochs {list(decay_at)}"
    )
    print(
        f"{'epoch':>5} {'lr':>8} {'batch loss':>11} {'train loss':>11} {'train acc':>10} "
        f"{'val acc':>8}"
    )
    for epoch in range(1, epochs + 1):
        batch_losses = []
        for rows in optim.minibatches(len(y_train), batch, rng):
            value, grads = step(X=X_train[rows], y=y_train[rows], **params)
            opt.step(grads)  # W -= lr * dW, b -= lr * db
            batch_losses.append(value)
        train_loss, _ = step(X=X_train, y=y_train, **params)
        print(
            f"{epoch:5d} {opt.lr:8.4f} {np.mean(batch_losses):11.4f} {train_loss:11.4f} "
            f"{accuracy(predict, X_train, y_train, **params):10.2%} "
            f"{accuracy(predict, X_val, y_val, **params):8.2%}"
        )
        opt.next_epoch()  # lr *= 0.1 once the epochs in decay_at are done
    val_acc = accuracy(predict, X_val, y_val, **params)
    print(
        f"final validation accuracy: {val_acc:.2%} ({time.perf_counter() - started:.1f} s "
        "including compilation)"
    )
    return 0 if val_acc >= 0.85 else 1


if __name__ == "__main__":
    raise SystemExit(main())
