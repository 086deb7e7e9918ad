"""How compile time scales with the size of a graph.

A chain of elementwise steps on an (8,) tensor, reduced by ``sum`` and differentiated
with respect to its start.  ``--shape`` picks the step: ``tanh`` (default,
``x*0.999 + 0.001*tanh(x)``, four elementwise nodes a step), ``alternating`` (the issue's
chain: ``tanh(h)*0.5 + 0.1`` and ``h*0.99 + 0.01`` in turn), ``branching`` (each step reads
the previous value in two branches) or ``shared`` (a subexpression read twice by the next
step).  ``--sizes`` counts elementwise nodes (steps = nodes / 4), or steps with
``--steps``.  For each size, in a fresh Python process (so that no SymPy or node cache of
a smaller size helps a larger one) and with an empty kernel cache folder, the seconds
spent in each stage:

* ``build``    -- building the forward graph with the public API;
* ``grad``     -- ``sg.grad`` (the symbolic backward graph);
* ``optimise`` -- ``symgrad.passes.optimize`` on the value and the gradient;
* ``numpy``    -- lowering the optimised graph for the numpy backend (the interpreter);
* ``call``     -- one call of the numpy program (checked against NumPy on the same chain);
* ``total``    -- grad + optimise + numpy + call: from the graph to the NumPy-backend result
  (``total cpu``: the process's CPU time over the same span, less disturbed by other load);
* ``codegen`` and ``numba`` -- generating the Numba kernel source, and Numba compiling it
  (``--no-numba`` skips them; at 10,000 nodes the Numba compile takes a minute or more).

Usage::

    python benchmarks/compile_scaling.py                       # 100, 1000, 10000 nodes
    python benchmarks/compile_scaling.py --sizes 100 1000 --no-numba
    python benchmarks/compile_scaling.py --no-numba --steps --sizes 1000 2000 5000 10000 \
        --shape alternating --shape branching --shape shared --shape tanh
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


def _tanh_chain(sg, x, steps):
    for _ in range(steps):
        x = x * 0.999 + 0.001 * sg.tanh(x)
    return x


def _alternating(sg, x, steps):  # the chain: tanh(h)*0.5 + 0.1, then h*0.99 + 0.01
    for k in range(steps):
        x = sg.tanh(x) * 0.5 + 0.1 if k % 2 == 0 else x * 0.99 + 0.01
    return x


def _branching(sg, x, steps):  # each step reads the previous value twice, in two branches
    for _ in range(steps):
        x = 0.5 * sg.tanh(x) + 0.5 * sg.sin(x)
    return x


def _shared(sg, x, steps):  # a subexpression shared by the next two steps
    for _ in range(steps):
        t = sg.tanh(x)
        x = t * t * 0.5 + t * 0.25
    return x


SHAPES = {"tanh": _tanh_chain, "alternating": _alternating, "branching": _branching,
          "shared": _shared}


class NumpyAsSg:  # the same chains on NumPy values, for the reference result
    tanh, sin = staticmethod(__import__("numpy").tanh), staticmethod(__import__("numpy").sin)


def measure(n_nodes: int, numba: bool, shape: str = "tanh", by_steps: bool = False) -> dict:
    """Time every stage for one size, in this process."""
    import numpy as np

    import symgrad as sg
    from symgrad import backends
    from symgrad.backends.inputs import Signature
    from symgrad.compile import Stats
    from symgrad.ir import toposort
    from symgrad.passes import optimize

    steps = n_nodes if by_steps else max(1, n_nodes // NODES_PER_STEP)
    row: dict = {"nodes": n_nodes, "steps": steps}

    started = time.perf_counter()
    x0 = sg.tensor("x", (8,))
    loss = sg.sum(SHAPES[shape](sg, x0, steps))
    row["build"] = time.perf_counter() - started
    row["ew_nodes"] = sum(1 for n in toposort([loss]) if n.op == "ew")

    started = first = time.perf_counter()
    first_cpu = time.process_time()
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

    values = np.linspace(-1.0, 2.0, 8)
    bound = signature.bind({"x": values})
    started = time.perf_counter()
    value, grad = program(*bound)
    row["call"] = time.perf_counter() - started
    row["total"] = time.perf_counter() - first
    row["total cpu"] = time.process_time() - first_cpu
    ref = SHAPES[shape](NumpyAsSg, values.copy(), steps)
    assert abs(float(value) - ref.sum()) <= 1e-12 * abs(ref.sum()), (value, ref.sum())

    if numba:
        stats = Stats()
        started = time.perf_counter()
        backends.get("numba")(optimised, signature, {"stats": stats})
        row["numba_total"] = time.perf_counter() - started
        row["codegen"], row["numba"] = stats.codegen, stats.numba
    return row


def run_isolated(n_nodes: int, numba: bool, shape: str = "tanh", by_steps=False) -> dict:
    """``measure`` in a fresh process with an empty kernel cache folder."""
    env = dict(os.environ)
    # the children import this checkout's symgrad, installed in the venv or not (as peers.py)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)
    with tempfile.TemporaryDirectory(prefix="symgrad-scaling-") as cache:
        env["SYMGRAD_CACHE_DIR"] = cache
        args = [sys.executable, __file__, "--one", str(n_nodes), "--shape", shape]
        args += ([] if numba else ["--no-numba"]) + (["--steps"] if by_steps else [])
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
    parser.add_argument("--shape", choices=sorted(SHAPES), action="append",
                        help="chain shape(s): tanh (default), alternating, branching, shared")
    parser.add_argument("--steps", action="store_true",
                        help="--sizes count steps of the chain, not elementwise nodes")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # internal: one size, JSON out
    args = parser.parse_args()
    numba = not args.no_numba and numba_backend_exists()

    shapes = args.shape or ["tanh"]
    if args.one is not None:
        print(json.dumps(measure(args.one, numba, shapes[0], args.steps)))
        return

    columns = ["build", "grad", "optimise", "numpy", "call", "total", "total cpu"] + (
        ["codegen", "numba"] if numba else []
    )
    print("chains (see --shape); seconds per stage, one fresh process per size\n")
    print("| shape | steps | ew nodes | graph nodes (fwd+bwd) | after optimise | "
          + " | ".join(columns) + " |")
    print("|---|---:|---:|---:|---:|" + "---:|" * len(columns))
    for shape in shapes:
        for n in args.sizes:
            row = run_isolated(n, numba, shape, args.steps)
            cells = " | ".join(f"{row[c]:.3f}" for c in columns)
            print(
                f"| {shape} | {row['steps']:,} | {row['ew_nodes']:,} | {row['graph_nodes']:,} "
                f"| {row['optimised_nodes']:,} | {cells} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
