"""How compile time scales with the size of a graph.

A chain of elementwise nodes, ``x = x*0.999 + 0.001*tanh(x)`` repeated (four elementwise
nodes a step, so 25 / 250 / 2500 steps give 100 / 1,000 / 10,000 nodes), reduced by
``sum`` and differentiated with respect to ``x``.  For each size, in a fresh Python process
(so that no SymPy or node cache of a smaller size helps a larger one) and with an empty
kernel cache folder, the seconds spent in each stage:

* ``build``    -- building the forward graph with the public API;
* ``grad``     -- ``sg.grad`` (the symbolic backward graph);
* ``optimise`` -- ``symgrad.passes.optimize`` on the value and the gradient;
* ``numpy``    -- lowering the optimised graph for the numpy backend (the interpreter);
* ``call``     -- one call of the numpy program on 3 elements (checks the result too);
* ``codegen`` and ``numba`` -- generating the Numba kernel source, and Numba compiling it
  (``--no-numba`` skips them; at 10,000 nodes the Numba compile takes a minute or more).

Usage::

    python benchmarks/compile_scaling.py                       # 100, 1000, 10000 nodes
    python benchmarks/compile_scaling.py --sizes 100 1000 --no-numba
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

NODES_PER_STEP = 4


def measure(n_nodes: int, numba: bool) -> dict:
    """Time every stage for one size, in this process."""
    import numpy as np

    import symgrad as sg
    from symgrad import backends
    from symgrad.backends.inputs import Signature
    from symgrad.compile import Stats
    from symgrad.ir import toposort
    from symgrad.passes import optimize

    steps = max(1, n_nodes // NODES_PER_STEP)
    row: dict = {"nodes": n_nodes}

    started = time.perf_counter()
    x0 = sg.tensor("x", (3,))
    x = x0
    for _ in range(steps):
        x = x * 0.999 + 0.001 * sg.tanh(x)
    loss = sg.sum(x)
    row["build"] = time.perf_counter() - started
    row["ew_nodes"] = sum(1 for n in toposort([loss]) if n.op == "ew")

    started = time.perf_counter()
    g = sg.grad(loss, x0)
    row["grad"] = time.perf_counter() - started
    row["graph_nodes"] = len(toposort([loss, g]))

    started = time.perf_counter()
    optimised = optimize([loss, g])
    row["optimise"] = time.perf_counter() - started
    row["optimised_nodes"] = len(toposort(optimised))

    signature = Signature([loss, g], [x0])
    started = time.perf_counter()
    program = backends.get("numpy")(optimised, signature, {})
    row["numpy"] = time.perf_counter() - started

    values = np.array([0.5, -1.0, 2.0])
    bound = signature.bind({"x": values})
    started = time.perf_counter()
    value, grad = program(*bound)
    row["call"] = time.perf_counter() - started
    ref = values.copy()
    for _ in range(steps):
        ref = ref * 0.999 + 0.001 * np.tanh(ref)
    assert abs(float(value) - ref.sum()) <= 1e-12 * abs(ref.sum()), (value, ref.sum())

    if numba:
        stats = Stats()
        started = time.perf_counter()
        backends.get("numba")(optimised, signature, {"stats": stats})
        row["numba_total"] = time.perf_counter() - started
        row["codegen"], row["numba"] = stats.codegen, stats.numba
    return row


def run_isolated(n_nodes: int, numba: bool) -> dict:
    """``measure`` in a fresh process with an empty kernel cache folder."""
    env = dict(os.environ)
    with tempfile.TemporaryDirectory(prefix="symgrad-scaling-") as cache:
        env["SYMGRAD_CACHE_DIR"] = cache
        args = [sys.executable, __file__, "--one", str(n_nodes)] + ([] if numba else ["--no-numba"])
        out = subprocess.run(args, env=env, capture_output=True, text=True, check=False)
    if out.returncode:
        raise SystemExit(f"size {n_nodes} failed:\n{out.stdout}\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def numba_backend_exists() -> bool:
    import importlib.util

    return importlib.util.find_spec("symgrad.backends.numba_backend") is not None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 10000])
    parser.add_argument(
        "--no-numba", action="store_true", help="skip Numba code generation and compile"
    )
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # internal: one size, JSON out
    args = parser.parse_args()
    numba = not args.no_numba and numba_backend_exists()

    if args.one is not None:
        print(json.dumps(measure(args.one, numba)))
        return

    columns = ["build", "grad", "optimise", "numpy", "call"] + (
        ["codegen", "numba"] if numba else []
    )
    print("chain x = x*0.999 + 0.001*tanh(x); seconds per stage, one fresh process per size\n")
    print("| ew nodes | graph nodes (fwd+bwd) | after optimise | " + " | ".join(columns) + " |")
    print("|---:|---:|---:|" + "---:|" * len(columns))
    for n in args.sizes:
        row = run_isolated(n, numba)
        cells = " | ".join(f"{row[c]:.3f}" for c in columns)
        print(
            f"| {row['ew_nodes']:,} | {row['graph_nodes']:,} | {row['optimised_nodes']:,} | {cells} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
