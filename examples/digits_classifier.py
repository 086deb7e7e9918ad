"""Handwritten digits (scikit-learn's bundled 8x8 set): an MLP with the lecture's recipe.

1797 images of 8x8 pixels, shipped with scikit-learn (no download): 20 % held out for the
test, 15 % of the rest for validation, each pixel standardised.  The model is ``sg.nn.MLP([64, 256, 10])`` (ReLU,
He initial values), the loss softmax cross-entropy + 1e-3 R(W), the optimiser SGD with
momentum 0.9 (or ``--optimizer adam``) in minibatches of 64 and the lecture's step decay
(x0.1 after epochs 30, 60 and 90; 20 and 30 with --quick), all run by ``sg.nn.fit``.
Prints the test accuracy (exit status 1 below 97 %) and draws the loss and accuracy curves.

Run:  python examples/digits_classifier.py [--quick] [--optimizer sgd|adam] [--out FOLDER]
                                           [--backend numba|numpy] [--seed N]
Writes FOLDER/digits_curves.png (default folder examples/out/).
Needs scikit-learn for the data: pip install 'symgrad[examples]'.
"""

import time

import numpy as np
from _common import backend_kwargs, make_parser, out_dir, pyplot, sg

TARGET = 0.97


def load(seed):
    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError:
        raise SystemExit(
            "this example needs scikit-learn: pip install 'symgrad[examples]'"
        ) from None
    digits = load_digits()
    X, y = digits.data / 16.0, digits.target  # pixels 0..16 -> 0..1
    X_rest, X_test, y_rest, y_test = train_test_split(
        X, y, test_size=0.2, stratify=y, random_state=seed
    )
    X_train, X_val, y_train, y_val = train_test_split(
        X_rest, y_rest, test_size=0.15, stratify=y_rest, random_state=seed
    )
    # standardise each pixel with the training images' statistics only (+0.1: border
    # pixels are almost always 0)
    mean, std = X_train.mean(axis=0), X_train.std(axis=0) + 0.1
    parts = ((X_train, y_train), (X_val, y_val), (X_test, y_test))
    return [((X_ - mean) / std, y_) for X_, y_ in parts]


def main(argv=None):
    parser = make_parser(__doc__, quick_help="40 epochs instead of 100", pictures=True)
    parser.add_argument("--optimizer", choices=["sgd", "adam"], default="sgd")
    args = parser.parse_args(argv)
    kw = backend_kwargs(args.backend)
    (X_train, y_train), (X_val, y_val), (X_test, y_test) = load(args.seed)
    epochs, milestones = (40, (20, 30)) if args.quick else (100, (30, 60, 90))

    X, y = sg.tensor("X", ("N", 64)), sg.tensor("y", ("N",), dtype="int64")
    model = sg.nn.MLP([64, 256, 10], activation="relu")
    scores = model(X)
    loss = sg.losses.softmax_cross_entropy(scores, y) + 1e-3 * sg.losses.l2(
        model.params["W1"], model.params["W2"]
    )
    weights = model.init(args.seed)
    decay = sg.nn.schedules.step(milestones, 0.1)
    if args.optimizer == "sgd":
        opt = sg.nn.optim.SGD(weights, lr=0.05, momentum=0.9, schedule=decay)
    else:
        opt = sg.nn.optim.Adam(weights, lr=2e-3, schedule=decay)
    print(
        f"digits: {len(y_train)} train / {len(y_val)} validation / {len(y_test)} test images; "
        f"MLP 64-256-10; {opt!r}"
    )
    started = time.perf_counter()
    history = sg.nn.fit(
        loss,
        model.params,
        {"X": X_train, "y": y_train},
        opt,
        epochs,
        batch_size=64,
        seed=args.seed,
        scores=scores,
        labels=y,
        val_data={"X": X_val, "y": y_val},
        **kw,
    )
    for e in sorted({0, *range(9, epochs, 10), epochs - 1}):
        print(
            f"epoch {e:3d}  lr {history.lr[e]:.0e}  loss {history.loss[e]:.4f}  "
            f"train {history.train_accuracy[e]:.2%}  validation {history.val_accuracy[e]:.2%}"
        )
    predict = sg.compile(scores, **kw)
    test_acc = float(np.mean(np.argmax(predict(X=X_test, **weights), axis=1) == y_test))
    ok = test_acc >= TARGET
    print(
        f"test accuracy {test_acc:.2%} (target {TARGET:.0%}) -> {'OK' if ok else 'MISSED'}   "
        f"({time.perf_counter() - started:.1f} s including compilation)"
    )

    pyplot()
    path = out_dir(args) / "digits_curves.png"
    history.plot(
        path, title=f"digits, MLP 64-256-10, {args.optimizer}: test accuracy {test_acc:.1%}"
    )
    print(f"wrote {path}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
