"""The lecture's two-layer network: the slide's NumPy program, and the same with symgrad.

The slide (N, D_in, H, D_out = 64, 1000, 100, 10; sigmoid hidden layer; sum of squares;
gradients by hand; w -= 1e-4 * grad) runs as written.  symgrad trains the same net from
the same weights: ``sg.nn.MLP([1000, 100, 10], activation="sigmoid", bias=False)``, the
loss ``sg.losses.squared_error``, the gradient derived and compiled, ``sg.nn.fit`` with
``SGD(lr=1e-4)`` and one batch of all 64 rows per step.  The two loss trajectories agree to
1e-8 relative over the first 50 steps (exit status 1 if not); the picture shows both.

Run:  python examples/two_layer_net.py [--quick] [--steps N] [--out FOLDER]
                                       [--backend numba|numpy] [--seed N]
Writes FOLDER/two_layer_net.png (default folder examples/out/).
"""

import time

import numpy as np
from _common import backend_kwargs, make_parser, out_dir, pyplot, sg

N, D_in, H, D_out = 64, 1000, 100, 10
COMPARED, TOLERANCE = 50, 1e-8


def slide(x, y, w1, w2, steps):
    """The slide's program, verbatim (but for recording the loss instead of printing it)."""
    losses = []
    for t in range(steps):  # noqa: B007 - the slide's loop variable, as written
        h = 1 / (1 + np.exp(-x.dot(w1)))
        y_pred = h.dot(w2)
        loss = np.square(y_pred - y).sum()
        losses.append(loss)

        grad_y_pred = 2.0 * (y_pred - y)
        grad_w2 = h.T.dot(grad_y_pred)
        grad_h = grad_y_pred.dot(w2.T)
        grad_w1 = x.T.dot(grad_h * h * (1 - h))

        w1 -= 1e-4 * grad_w1
        w2 -= 1e-4 * grad_w2
    return np.array(losses)


def with_symgrad(x, y, params, steps, kw):
    """The same net with symgrad: layers, a derived gradient, and sg.nn.fit."""
    model = sg.nn.MLP([D_in, H, D_out], activation="sigmoid", bias=False, init="normal")
    X, Y = sg.tensor("x", ("N", D_in)), sg.tensor("y", ("N", D_out))
    loss = sg.losses.squared_error(model(X), Y)  # np.square(y_pred - y).sum()
    opt = sg.nn.optim.SGD(params, lr=1e-4)  # w -= 1e-4 * grad
    history = sg.nn.fit(loss, model.params, {"x": x, "y": y}, opt, epochs=steps, batch_size=N, **kw)
    return np.array(history.loss)


def trajectories(steps, seed=0, kw=None):
    """Both programs from the same data and weights: (slide losses, symgrad losses)."""
    rng = np.random.default_rng(seed)
    x, y = rng.standard_normal((N, D_in)), rng.standard_normal((N, D_out))  # randn(N, D_in), ...
    # w1, w2 = randn(D_in, H), randn(H, D_out): the MLP's "normal" initial values
    start = sg.nn.MLP([D_in, H, D_out], bias=False, init="normal").init(seed)
    w1, w2 = start["W1"].copy(), start["W2"].copy()
    return slide(x, y, w1, w2, steps), with_symgrad(x, y, start, steps, kw or {})


def main(argv=None):
    parser = make_parser(__doc__, quick_help=f"{COMPARED} steps instead of 2000", pictures=True)
    parser.add_argument("--steps", type=int, default=None, help="steps to run (default 2000)")
    args = parser.parse_args(argv)
    steps = args.steps or (COMPARED if args.quick else 2000)
    started = time.perf_counter()
    hand, ours = trajectories(steps, args.seed, backend_kwargs(args.backend))
    n = min(COMPARED, steps)
    rel = np.abs(ours[:n] - hand[:n]) / np.abs(hand[:n])
    ok = bool(np.all(rel <= TOLERANCE))
    print(f"N, D_in, H, D_out = {N}, {D_in}, {H}, {D_out}; {steps} steps of w -= 1e-4 * grad")
    print(f"{'t':>5} {'loss (slide, NumPy)':>22} {'loss (symgrad)':>22}")
    for t in sorted({0, 1, 2, n - 1, steps // 2, steps - 1}):
        print(f"{t:5d} {hand[t]:22.10f} {ours[t]:22.10f}")
    print(
        f"first {n} steps: max relative difference {rel.max():.1e} (tolerance {TOLERANCE:g}) "
        f"-> {'OK' if ok else 'MISMATCH'}   ({time.perf_counter() - started:.1f} s)"
    )

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.6))
    ax.plot(hand, label="the slide's NumPy program", lw=3, alpha=0.5)
    ax.plot(ours, "--", label="symgrad: MLP + sg.nn.fit", lw=1.5)
    ax.set(xlabel="step t", ylabel="loss  (sum of squares)", yscale="log")
    ax.set_title("Training a two-layer network (64, 1000, 100, 10; sigmoid; lr 1e-4)", fontsize=10)
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path = out_dir(args) / "two_layer_net.png"
    fig.savefig(path, dpi=100)
    print(f"wrote {path}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
