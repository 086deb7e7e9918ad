"""The lecture's activation functions and their derivatives, derived by symgrad.

ReLU max(0, x), Leaky ReLU max(0.1 x, x), ELU, sigmoid, tanh, GELU x Phi(x) and SiLU
x sigma(x): for each, ``sg.grad`` derives the derivative symbolically (printed as SymPy),
the compiled function and derivative are evaluated on a grid and checked against central
differences (away from the kinks), and both are plotted, one panel per activation.

Run:  python examples/activations.py [--out FOLDER] [--backend numba|numpy]
Writes FOLDER/activations.png (default folder examples/out/); exit status 1 if a derivative
disagrees with the finite differences.
"""

import numpy as np
from _common import backend_kwargs, make_parser, out_dir, pyplot, sg

ACTIVATIONS = {
    "ReLU": sg.relu,
    "Leaky ReLU (0.1)": lambda x: sg.leaky_relu(x, 0.1),
    "ELU": sg.elu,
    "sigmoid": sg.sigmoid,
    "tanh": sg.tanh,
    "GELU": sg.gelu,
    "SiLU": sg.silu,
}


def main(argv=None):
    parser = make_parser(__doc__, quick_help="a coarser grid", pictures=True)
    args = parser.parse_args(argv)
    kw = backend_kwargs(args.backend)
    grid = np.linspace(-4, 4, 201 if args.quick else 801)
    h = 1e-6
    x = sg.symbols("x")
    xs = sg.tensor("x", ("N",))

    plt = pyplot()
    fig, axes = plt.subplots(2, 4, figsize=(13, 6), sharex=True)
    ok = True
    for ax, (name, act) in zip(axes.flat, ACTIVATIONS.items()):
        derivative = sg.to_sympy(sg.grad(act(x), x))  # symbolic, from SymPy's diff
        f = act(xs)
        fn = sg.compile([f, sg.grad(sg.sum(f), xs)], **kw)  # elementwise f and f'
        values, slopes = fn(x=grid)
        smooth = np.abs(grid) > 1e-3  # central differences are meaningless at a kink
        fd = (fn(x=grid + h)[0] - fn(x=grid - h)[0]) / (2 * h)
        err = float(np.max(np.abs(fd - slopes)[smooth]))
        ok &= err < 1e-6
        print(f"{name:17s} d/dx = {derivative}    (max |f' - central difference| {err:.1e})")
        ax.plot(grid, values, lw=2, label="f(x)")
        ax.plot(grid, slopes, lw=2, ls="--", label="f'(x), derived")
        ax.axhline(0, color="grey", lw=0.5)
        ax.axvline(0, color="grey", lw=0.5)
        ax.set_title(name, fontsize=11)
        ax.set_ylim(-1.5, 4.2)
        ax.grid(alpha=0.3)
    axes.flat[0].legend(loc="upper left", fontsize=9)
    last = axes.flat[-1]
    for name, act in ACTIVATIONS.items():
        last.plot(grid, sg.compile(act(xs), **kw)(x=grid), label=name)
    last.set_title("all of them", fontsize=11)
    last.set_ylim(-1.5, 4.2)
    last.legend(fontsize=7)
    last.grid(alpha=0.3)
    fig.suptitle("The lecture's activations and their derivatives, derived by symgrad", fontsize=12)
    fig.tight_layout()
    path = out_dir(args) / "activations.png"
    fig.savefig(path, dpi=80)
    print(f"wrote {path}")
    print("derivatives match finite differences:", "OK" if ok else "MISMATCH")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
