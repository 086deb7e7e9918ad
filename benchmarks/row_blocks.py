"""Row-blocked kernels against plain ones, per call: where the schedule of ``rowblock.py`` pays.

Each model is compiled twice with ``backend="numba"``: with the row-blocked schedule forced
(``rowblock.plan`` as if every model had no hidden layer) and with it off (``plan``
returning None), each in a cache folder of its own; the two results are checked against each
other (1e-9 relative: blocks add a product's shares in another order), then timed
interleaved in rounds (median of per-round ratios ``blocked / plain``: below 1, blocks pay).
BLAS runs on one thread, as in ``run.py``.  Models:

* ``svm``, ``softmax``, ``mlp_act`` of ``run.py`` (its sizes);
* GELU MLPs (``cold_compile.gelu_mlp``) of ``layers`` hidden layers of ``width``, with a
  batch of ``N`` rows, given as ``gelu:LAYERS:WIDTH:N``.

The outcome decides ``rowblock.plan``'s rule (models with a hidden layer get no blocks):
see the README, "Losses over a batch".

Usage::

    python benchmarks/row_blocks.py
    python benchmarks/row_blocks.py --models svm gelu:20:64:256 --rounds 9
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT = ["svm", "softmax", "mlp_act", "gelu:1:64:256", "gelu:1:64:4096", "gelu:1:256:256",
           "gelu:1:784:256", "gelu:5:64:256", "gelu:20:64:16", "gelu:20:64:256",
           "gelu:20:64:2048"]


def _model(sg, np, name: str):
    """(loss, wrt, inputs) of a model named as in the module docstring."""
    sys.path.insert(0, str(HERE))
    if name.startswith("gelu:"):
        from cold_compile import gelu_inputs, gelu_mlp

        layers, width, n = (int(v) for v in name.split(":")[1:])
        f, wrt = gelu_mlp(sg, layers, width)
        return f, wrt, gelu_inputs(np, layers, width, n=n)
    import reference
    from run import build_graph

    f, wrt = build_graph(sg, name)
    return f, wrt, reference.WORKLOADS[name].make_inputs(np.random.default_rng(0))


def _compiled(sg, f, wrt, blocked: bool, folder: str):
    """``value_and_grad`` with the row-blocked schedule forced on or off."""
    from symgrad.backends import rowblock

    plan, hidden = rowblock.plan, rowblock._hidden_layer
    os.environ["SYMGRAD_CACHE_DIR"] = os.path.join(folder, "blocked" if blocked else "plain")
    if blocked:
        rowblock._hidden_layer = lambda *args: False
    else:
        rowblock.plan = lambda *args: None
    try:
        vg = sg.value_and_grad(f, wrt)
    finally:
        rowblock.plan, rowblock._hidden_layer = plan, hidden
    return vg, "for r0 in range(" in vg.source


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="*", default=DEFAULT)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--calls", type=int, default=5, help="calls per timing")
    args = parser.parse_args()
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    os.environ.setdefault("MKL_NUM_THREADS", "1")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import numpy as np

    sys.path.insert(0, str(HERE))
    from run import _import_symgrad

    sg = _import_symgrad()
    print(f"{'model':18s} {'blocked':>10s} {'plain':>10s} {'blocked/plain':>14s}  (median of "
          f"{args.rounds} rounds of {args.calls} calls each)")
    with tempfile.TemporaryDirectory() as folder:
        for name in args.models:
            f, wrt, inputs = _model(sg, np, name)
            blocked, has_blocks = _compiled(sg, f, wrt, True, folder)
            plain, _ = _compiled(sg, f, wrt, False, folder)
            if not has_blocks:
                print(f"{name:18s} no row-blocked schedule applies")
                continue
            (v1, g1), (v2, g2) = blocked(**inputs), plain(**inputs)
            np.testing.assert_allclose(v1, v2, rtol=1e-9)
            for a, b in zip(g1, g2):
                np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
            rounds = []
            for _ in range(args.rounds):
                times = []
                for fn in (blocked, plain):
                    t0 = time.perf_counter()
                    for _ in range(args.calls):
                        fn(**inputs)
                    times.append((time.perf_counter() - t0) / args.calls)
                rounds.append(times)
            t_b = statistics.median(r[0] for r in rounds)
            t_p = statistics.median(r[1] for r in rounds)
            ratio = statistics.median(r[0] / r[1] for r in rounds)
            print(f"{name:18s} {t_b * 1e3:8.3f} ms {t_p * 1e3:8.3f} ms {ratio:14.3f}", flush=True)


if __name__ == "__main__":
    main()
