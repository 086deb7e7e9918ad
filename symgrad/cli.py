"""The ``symgrad`` command (also ``python -m symgrad``).

    symgrad demo                 the slide's chain rule, the hinge gradient against the hand
                                 derivation, a jitted-vs-interpreted table (under 30 s)
    symgrad check                the gradient check of every op and loss (exit 1 on a failure)
    symgrad bench [--full]       the benchmarks (quick by default), from a source checkout
    symgrad show MODULE:FUNCTION a user function's loss: forward graph, gradient formulas,
                                 optimised graph, generated kernel
    symgrad cache info|clear     the kernel cache's folder, size and cap; empty it

Tables go through rich when it is installed (``pip install symgrad[cli]``), plain text
otherwise (``--plain``).
"""

from __future__ import annotations

import argparse
import importlib
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from .tables import render

BENCHMARKS_ENV = "SYMGRAD_BENCHMARKS"  # a benchmarks folder to use instead of the checkout's


def _table(args, headers, rows, title=None):
    print(render(headers, rows, title=title, rich=False if args.plain else None))


# --- demo --------------------------------------------------------------------------------


def _time(fn, repeat=5, number=20) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        for _ in range(number):
            fn()
        best = min(best, (time.perf_counter() - started) / number)
    return best


def _seconds(s: float) -> str:
    for unit, scale in (("s", 1), ("ms", 1e-3), ("µs", 1e-6)):
        if s >= scale:
            return f"{s / scale:.3g} {unit}"
    return f"{s * 1e9:.3g} ns"


def demo(args) -> int:
    import symgrad as sg

    from . import demo as acts

    started = time.perf_counter()
    print(f"symgrad {sg.__version__}: the backprop slide, f = (x + y)·z at x=-2, y=5, z=-4\n")
    x, y, z = sg.symbols("x y z")
    e = sg.explain((x + y) * z, [x, y, z], x=-2.0, y=5.0, z=-4.0)
    print(e)
    slide_ok = e.grads == {"x": -4.0, "y": -4.0, "z": 3.0}

    rng = np.random.default_rng(args.seed)
    hinge_ok = acts.hinge(args.backend, rng)
    X, W = sg.tensor("X", ("N", "D")), sg.tensor("W", ("D", "C"))
    labels = sg.tensor("y", ("N",), dtype="int64")
    loss = sg.losses.multiclass_hinge(X @ W, labels) + 0.05 * sg.losses.l2(W)
    print("the derived gradient, written back as a formula:")
    print("    " + str(sg.formula({"dW": sg.grad(loss, W)})).replace("\n", "\n    "))

    print()
    rows = []
    N, D, C = 200, 500, 10
    Xv, yv = rng.standard_normal((N, D)), rng.integers(0, C, N)
    Wv = 0.01 * rng.standard_normal((D, C))
    work = {
        "slide (x + y)·z": ((x + y) * z, [x, y, z], dict(x=-2.0, y=5.0, z=-4.0)),
        f"hinge + L2, {N}×{D}×{C}": (loss, W, dict(X=Xv, y=yv, W=Wv)),
        f"softmax + L2, {N}×{D}×{C}": (
            sg.losses.softmax_cross_entropy(X @ W, labels) + 0.05 * sg.losses.l2(W),
            W,
            dict(X=Xv, y=yv, W=Wv),
        ),
    }
    for name, (f, wrt, values) in work.items():
        jit = sg.value_and_grad(f, wrt)
        interp = sg.value_and_grad(f, wrt, backend="numpy")
        same = np.allclose(np.asarray(jit(**values)[1]), np.asarray(interp(**values)[1]))
        t_jit = _time(lambda fn=jit, v=values: fn(**v))
        t_int = _time(lambda fn=interp, v=values: fn(**v))
        rows.append(
            [
                name,
                _seconds(t_jit),
                _seconds(t_int),
                f"{t_int / t_jit:.2f}×",
                "yes" if same else "NO",
            ]
        )
    _table(
        args,
        [
            "value and gradient",
            "numba (jitted)",
            "numpy (interpreted)",
            "interpreted / jitted",
            "same result",
        ],
        rows,
        title="jitted vs interpreted (best of 5 × 20 calls)",
    )
    ok = slide_ok and hinge_ok and all(r[-1] == "yes" for r in rows)
    print(f"\n{'OK' if ok else 'MISMATCH'} in {time.perf_counter() - started:.1f} s")
    return 0 if ok else 1


# --- check -------------------------------------------------------------------------------


def check(args) -> int:
    from .catalog import cases
    from .check import check_grad

    backends = ["numpy", "numba"] if args.backend == "both" else [args.backend]
    rows, failed, details = [], 0, []
    for case in cases():
        if args.only and not any(o in case.name for o in args.only):
            continue
        if case.problem is None:
            rows.append([case.name, "-", "-", "-", "no derivative (nothing to check)"])
            continue
        if case.problem:
            rows.append([case.name, "-", "-", "-", "UNCHECKED: " + case.problem])
            failed += 1
            continue
        try:
            report = check_grad(
                case.f, case.wrt, backends=backends, raise_on_failure=False, **case.values
            )
        except Exception as exc:  # an op that does not even compile is a failure, named
            rows.append([case.name, ", ".join(backends), "-", "-", f"ERROR: {exc}"])
            failed += 1
            continue
        for backend in backends:
            mine = [r for r in report.rows if r.backend == backend]
            worst = max(mine, key=lambda r: r.ratio)
            ok = all(r.ok for r in mine)
            failed += not ok
            rows.append(
                [
                    case.name,
                    backend,
                    f"{max(r.abs_error for r in mine):.1e}",
                    f"{max(r.rel_error for r in mine):.1e}",
                    "ok" if ok else f"FAILED ({worst.input})",
                ]
            )
            if not ok:
                details.append(f"{case.name} on {backend}, input {worst.input!r}: {worst.problem}")
    _table(
        args,
        ["op / loss", "backend", "max abs error", "max rel error", "result"],
        rows,
        title="gradient check: central differences in random directions",
    )
    for line in details:
        print("FAILED " + line)
    print(f"{len(rows) - failed} passed, {failed} failed")
    return 1 if failed else 0


# --- bench -------------------------------------------------------------------------------


def _benchmarks_dir() -> Path | None:
    if os.environ.get(BENCHMARKS_ENV):
        return Path(os.environ[BENCHMARKS_ENV])
    here = Path(__file__).resolve().parent.parent / "benchmarks"
    return here if (here / "run.py").exists() else None


def bench(args, extra) -> int:
    folder = _benchmarks_dir()
    if folder is None or not (folder / "run.py").exists():
        print(
            "symgrad bench runs benchmarks/run.py from a source checkout, and this installation "
            "has no benchmarks folder next to the package. Clone the repository and run "
            "`symgrad bench` there (or set SYMGRAD_BENCHMARKS to the benchmarks folder).",
            file=sys.stderr,
        )
        return 2
    command = [sys.executable, str(folder / "run.py")] + ([] if args.full else ["--quick"]) + extra
    print("running " + " ".join(command), flush=True)
    return subprocess.call(command, cwd=folder.parent)


# --- show --------------------------------------------------------------------------------


def _load(target: str):
    module_name, _, function_name = target.partition(":")
    if not module_name or not function_name:
        raise SystemExit(f"symgrad show: expected MODULE:FUNCTION, got {target!r}")
    sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    finally:
        sys.path.pop(0)
    fn = getattr(module, function_name, None)
    if fn is None:
        raise SystemExit(f"symgrad show: {module_name!r} has no function {function_name!r}")
    return fn()


def show(args) -> int:
    import symgrad as sg

    from .ir import dtypes as dt
    from .ir import inputs_of

    made = _load(args.target)
    loss, wrt = (made if isinstance(made, tuple) else (made, None))[:2]
    if wrt is None:
        wrt = [n for n in inputs_of([loss]) if dt.is_float(n.dtype)]
    wrt = [wrt] if isinstance(wrt, sg.Tensor) else list(wrt)

    def section(title):
        print(f"\n== {title} " + "=" * max(3, 70 - len(title)))

    section("forward graph")
    print(sg.to_text([loss]))
    print("\nas a formula:\n    " + str(sg.formula(loss)).replace("\n", "\n    "))
    section("derived gradients")
    grads = sg.grad(loss, wrt)
    print(sg.formula({f"d{w.name}": g for w, g in zip(wrt, grads)}))
    vg = sg.value_and_grad(loss, wrt, backend=args.backend)
    section("optimised graph")
    print(vg.graph_text)
    section(f"generated kernel ({args.backend} backend)")
    print(vg.source)
    return 0


# --- cache -------------------------------------------------------------------------------


def cache(args) -> int:
    from . import cache as kernel_cache

    if args.action == "info":
        print(kernel_cache.info())
    else:
        print(f"removed {kernel_cache.clear()} kernels from {kernel_cache.cache_dir()}")
    return 0


# --- entry point -------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="symgrad", description=__doc__.splitlines()[0])
    p.add_argument("--plain", action="store_true", help="plain text tables (no rich)")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    d = sub.add_parser("demo", help="the main job on built-in defaults")
    d.add_argument("--backend", choices=["numba", "numpy"], default="numba")
    d.add_argument("--seed", type=int, default=0)
    c = sub.add_parser("check", help="gradient check of every op and loss")
    c.add_argument("--backend", choices=["numpy", "numba", "both"], default="both")
    c.add_argument(
        "--only",
        action="append",
        metavar="NAME",
        help="check only cases whose name contains NAME (repeatable)",
    )
    b = sub.add_parser("bench", help="the benchmarks (quick by default)")
    b.add_argument("--full", action="store_true", help="reference sizes and rounds")
    s = sub.add_parser("show", help="a user's loss: graph, gradient formulas, kernel")
    s.add_argument(
        "target",
        metavar="MODULE:FUNCTION",
        help="a function returning a loss graph, or (loss, wrt)",
    )
    s.add_argument("--backend", choices=["numba", "numpy"], default="numba")
    k = sub.add_parser("cache", help="the on-disk kernel cache (sg.cache)")
    k.add_argument("action", choices=["info", "clear"])
    return p


def main(argv=None) -> int:
    args, extra = parser().parse_known_args(argv)
    if extra and args.command != "bench":  # only bench passes options through
        parser().parse_args(argv)
    if args.command == "bench":
        return bench(args, extra)
    return {"demo": demo, "check": check, "show": show, "cache": cache}[args.command](args)


if __name__ == "__main__":
    raise SystemExit(main())
