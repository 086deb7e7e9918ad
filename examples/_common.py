"""Pieces the example scripts share: the symgrad import, the command line, small helpers.

The scripts run as ``python examples/NAME.py``, which puts this folder on ``sys.path``, so
they import from here with ``from _common import ...``.
"""

import argparse
import os
import sys
from pathlib import Path

import numpy as np

try:
    import symgrad as sg
except ImportError:  # run from a source checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import symgrad as sg

__all__ = [
    "accuracy",
    "backend_kwargs",
    "decision_map",
    "draw_classes",
    "make_parser",
    "out_dir",
    "pyplot",
    "sg",
    "spiral",
]

DEFAULT_OUT = Path(__file__).resolve().parent / "out"  # git-ignored


def backend_kwargs(name):
    """Pass ``backend=`` only when one was asked for, so the default is symgrad's own."""
    name = name or os.environ.get("SYMGRAD_BACKEND")
    return {"backend": name} if name else {}


def make_parser(doc, quick_help=None, pictures=False):
    """The examples' command line: ``--backend``, ``--quick`` / ``--seed`` if
    ``quick_help`` (the help text of ``--quick``) is given, and ``--out FOLDER`` for the
    pictures if the script draws ``pictures``.  The description is the first
    line of ``doc``, the script's docstring."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--backend", choices=["numba", "numpy"], default=None)
    if quick_help is not None:
        parser.add_argument("--quick", action="store_true", help=quick_help)
        parser.add_argument("--seed", type=int, default=0)
    if pictures:
        parser.add_argument(
            "--out",
            default=str(DEFAULT_OUT),
            metavar="FOLDER",
            help=f"folder for the pictures (default {DEFAULT_OUT}, created if missing)",
        )
    return parser


def out_dir(args):
    """The output folder of ``args.out``, created if missing."""
    path = Path(args.out)
    path.mkdir(parents=True, exist_ok=True)
    return path


def pyplot():
    """matplotlib's pyplot on the file-only Agg backend (``pip install 'symgrad[examples]'``)."""
    try:
        import matplotlib
    except ImportError:
        raise SystemExit("this example draws pictures: pip install 'symgrad[examples]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def spiral(rng, n_per_class, n_classes=3, noise=0.2):
    """The classic 2-D spiral: arm j sweeps angle 4j..4(j+1) as the radius goes 0..1."""
    X, y = [], []
    for j in range(n_classes):
        r = np.linspace(0.0, 1.0, n_per_class)
        t = np.linspace(j * 4, (j + 1) * 4, n_per_class) + noise * rng.standard_normal(n_per_class)
        X.append(np.c_[r * np.sin(t), r * np.cos(t)])
        y.append(np.full(n_per_class, j))
    return np.concatenate(X), np.concatenate(y)


def decision_map(predict, params, X, steps=200, margin=0.1):
    """The predicted class on a ``steps`` x ``steps`` grid over the points ``X``' box."""
    low, high = X.min(axis=0) - margin, X.max(axis=0) + margin
    xx, yy = np.meshgrid(np.linspace(low[0], high[0], steps), np.linspace(low[1], high[1], steps))
    scores = predict(X=np.c_[xx.ravel(), yy.ravel()], **params)
    return xx, yy, np.argmax(scores, axis=1).reshape(xx.shape)


CLASS_COLOURS = ("#d62728", "#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd")


def draw_classes(ax, xx, yy, label, X, y):
    """Decision regions (light) under the points (dark), in the same colour per class."""
    from matplotlib.colors import ListedColormap, to_rgb

    n = int(max(label.max(), y.max())) + 1
    dark = [to_rgb(c) for c in CLASS_COLOURS[:n]]
    light = ListedColormap([tuple(0.3 * v + 0.7 for v in c) for c in dark])
    ax.contourf(xx, yy, label, levels=np.arange(n + 1) - 0.5, cmap=light)
    ax.scatter(X[:, 0], X[:, 1], c=[dark[k] for k in y], s=6, linewidths=0)
    ax.set(xticks=[], yticks=[], aspect="equal")


def accuracy(predict, X, y, **params):
    """Share of rows of ``X`` whose highest score from ``predict`` is at the label ``y``."""
    return float(np.mean(np.argmax(predict(X=X, **params), axis=1) == y))
