"""symgrad benchmarks: per-call speed, compile time and warm-load time, in one run.

Usage::

    python benchmarks/run.py                 # full run (~6-8 min on 2 shared cores)
    python benchmarks/run.py --quick         # fewer rounds and repeats (~1-2 min)
    python benchmarks/run.py --only svm --only softmax   # (or --only svm,softmax)
    python benchmarks/run.py --json benchmarks/results/latest.json
    python benchmarks/run.py --no-compile    # per-call timings only

For every workload of ``benchmarks/reference.py`` the symgrad graph is written as a user
would write it (named dims, ``sg.losses``), compiled with ``sg.value_and_grad`` for both
backends, and checked against the hand-written fused Numba version (loss and every
gradient to 1e-8 relative, normwise: ``max|a - b| <= 1e-8 * max|b|``) before anything is
timed.  A mismatch is printed loudly and the run exits with status 1.

1. **Per-call time** of four variants that return the same ``(loss, grads)``:
   ``sg numba`` (``backend="numba"``), ``sg interp`` (``backend="numpy"``), the hand-written
   NumPy version and the hand-written fused Numba version.  The machine is assumed to be
   small and shared, so the variants are *interleaved*: each round times one batch of each
   variant, in a shuffled order; a batch is as many back-to-back calls as fill
   ``--batch-ms``; the per-call time of a round is batch time / calls.  Reported: the median
   over rounds, the inter-quartile range and the minimum.  BLAS runs single-threaded for all
   variants (``--blas-threads``; a multi-threaded OpenBLAS on two busy cores spins and
   scatters timings by 10x), so the comparison is of the code around the matmuls.
2. **Ratios** from the same rounds, *paired*: within every round the ratio of two variants
   is taken, and the median of those per-round ratios is reported (drift of the machine's
   speed during the run cancels out).  ``interp/sg`` and ``NumPy/sg`` are speed-ups of the
   symgrad numba backend (> 1: symgrad is faster); ``sg/Numba`` is the overhead of symgrad
   over hand-written fused Numba (1.00 = as fast; > 1.10 is flagged with ``!``).
3. **Compile and load time**, each in a fresh Python subprocess (``--compile-repeats``
   times, median reported):
   - *cold*: new empty ``SYMGRAD_CACHE_DIR``; wall time of ``sg.value_and_grad(...)`` and its
     split from ``.stats`` (derive / simplify / codegen / numba);
   - *warm*: same graph, same cache folder, new process: ``sg.value_and_grad(...)`` + first
     call, loaded from the disk cache.  Measured twice: as the first kernel of the process
     (includes the one-off per-process start-up) and after a small cached kernel with arrays
     and a matrix product (``startup_graph``) was loaded and run first (the per-workload
     part only);
   - *start-up*: the time of that first kernel (value_and_grad + first call), i.e. the
     fixed per-process cost any symgrad user pays once (Numba, its array code, SciPy's
     BLAS), and ``import symgrad``.

Output: markdown tables on stdout (paste into the README), a PNG chart in
``benchmarks/results/`` (needs matplotlib; skipped with a message otherwise), and with
``--json PATH`` every raw sample.  Kernels are compiled into temporary cache folders that
are deleted at the end; your own ``~/.cache/symgrad`` is not touched.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
RTOL = 1e-8
SEED = 0
CHILD_MARK = "@@SYMGRAD_BENCH@@ "

VARIANTS = ["sg_numba", "sg_interp", "hand_numpy", "hand_numba"]
LABELS = {
    "sg_numba": "sg numba",
    "sg_interp": "sg interp",
    "hand_numpy": "hand NumPy",
    "hand_numba": "hand Numba",
}
ORDER = ["slide_mlp", "svm", "softmax", "mlp_act", "scalar_slide", "elementwise_chain"]
SLOW_FLAG = 1.10  # sg/hand-Numba above this is flagged


def _import_symgrad():
    try:
        import symgrad as sg
    except ImportError:  # a source checkout that is not installed
        sys.path.insert(0, str(ROOT))
        import symgrad as sg
    return sg


def _import_reference():
    sys.path.insert(0, str(HERE))
    import reference

    return reference


# ---------------------------------------------------------------------------------------------
# The workloads as a symgrad user writes them (same maths as reference.py)
# ---------------------------------------------------------------------------------------------


def build_graph(sg, name):
    """(loss graph, wrt list) for workload ``name``; inputs named as in reference.py."""
    if name == "slide_mlp":
        x = sg.tensor("x", ("N", "D_in"))
        y = sg.tensor("y", ("N", "D_out"))
        w1 = sg.tensor("w1", ("D_in", "H"))
        w2 = sg.tensor("w2", ("H", "D_out"))
        h = sg.sigmoid(x @ w1)
        loss = sg.sum((h @ w2 - y) ** 2)
        return loss, [w1, w2]
    if name in ("svm", "softmax"):
        X = sg.tensor("X", ("N", "D"))
        y = sg.tensor("y", ("N",), dtype="int64")
        W = sg.tensor("W", ("D", "C"))
        if name == "svm":
            data = sg.losses.multiclass_hinge(X @ W, y)
        else:
            data = sg.losses.softmax_cross_entropy(X @ W, y)
        return data + 0.5 * sg.sum(W**2), [W]
    if name == "mlp_act":
        X = sg.tensor("X", ("N", "D"))
        y = sg.tensor("y", ("N",), dtype="int64")
        W1, b1 = sg.tensor("W1", ("D", "H1")), sg.tensor("b1", ("H1",))
        W2, b2 = sg.tensor("W2", ("H1", "H2")), sg.tensor("b2", ("H2",))
        W3, b3 = sg.tensor("W3", ("H2", "C")), sg.tensor("b3", ("C",))
        h1 = sg.gelu(X @ W1 + b1)  # exact (erf) GELU, as in reference.py
        h2 = sg.silu(h1 @ W2 + b2)
        scores = h2 @ W3 + b3
        loss = sg.losses.softmax_cross_entropy(scores, y) + 1e-4 * sg.losses.l2(W1, W2, W3)
        return loss, [W1, b1, W2, b2, W3, b3]
    if name == "scalar_slide":
        x, y, z = sg.symbols("x y z")
        return (x + y) * z, [x, y, z]
    if name == "elementwise_chain":
        x = sg.tensor("x", ("n",))
        loss = sg.sum(sg.tanh(sg.sigmoid(x) * x + sg.exp(-(x**2))) * sg.log1p(x**2))
        return loss, [x]
    raise KeyError(name)


def trivial_graph(sg):
    """A tiny kernel of its own (names unlike any workload's, so its source and cache entry
    differ from scalar_slide's) that measures what the first kernel of a process costs."""
    a, b = sg.symbols("startup_a startup_b")
    return a * b, [a, b]


TRIVIAL_INPUTS = {"startup_a": 2.0, "startup_b": 3.0}


def startup_graph(sg):
    """A small kernel of its own that uses what the workloads' kernels use once a process
    (Numba's runtime and its array code, the BLAS of a matrix product, SymPy's
    first ``Add``): run first, it leaves the process as a user's is once any such kernel
    has run, so a workload's load after it is its own cost only."""
    x, w = sg.tensor("startup_x", (2, 3)), sg.tensor("startup_w", (3, 2))
    return sg.sum(sg.tanh(x @ w)) + sg.sum(w * w), [w]


def startup_inputs() -> dict:
    import numpy as np

    return {"startup_x": np.ones((2, 3)), "startup_w": np.ones((3, 2))}


# ---------------------------------------------------------------------------------------------
# Verification
# ---------------------------------------------------------------------------------------------


def rel_diff(a, b) -> float:
    """Normwise relative difference max|a - b| / max|b| (absolute if b is all zero)."""
    import numpy as np

    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        return float("inf")
    if a.size == 0:
        return 0.0
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        return float("inf")
    scale = float(np.max(np.abs(b)))
    err = float(np.max(np.abs(a - b)))
    return err / scale if scale > 0 else err


def compare(result, expected, n_grads) -> tuple[float, list[str]]:
    """Worst relative difference of (loss, grads) vs expected, and a list of problems."""
    problems = []
    if not (isinstance(result, tuple) and len(result) == 2):
        return float("inf"), [f"returned {type(result).__name__}, expected (loss, [grads])"]
    loss, grads = result
    exp_loss, exp_grads = expected
    if not isinstance(grads, list) or len(grads) != n_grads:
        return float("inf"), [f"grads is {type(grads).__name__} of length {len(grads)}, expected list of {n_grads}"]
    worst = rel_diff(loss, exp_loss)
    if worst > RTOL:
        problems.append(f"loss {loss!r} vs {exp_loss!r} (rel {worst:.2e})")
    for k, (g, e) in enumerate(zip(grads, exp_grads)):
        d = rel_diff(g, e)
        if d > RTOL:
            import numpy as np

            problems.append(f"grad[{k}] shape {np.shape(g)} vs {np.shape(e)}, rel diff {d:.2e}")
        worst = max(worst, d)
    return worst, problems


# ---------------------------------------------------------------------------------------------
# Per-call timing
# ---------------------------------------------------------------------------------------------


def _calls_for(fn, kwargs, batch_s: float) -> int:
    """How many back-to-back calls fill about ``batch_s`` seconds (at least one)."""
    n = 1
    while True:
        started = time.perf_counter()
        for _ in range(n):
            fn(**kwargs)
        elapsed = time.perf_counter() - started
        if elapsed >= batch_s / 4 or n >= 1 << 22:
            return max(1, int(round(n * batch_s / max(elapsed, 1e-9))))
        n *= 4


def time_interleaved(fns: dict, kwargs: dict, rounds: int, batch_s: float, rng: random.Random):
    """Per-call seconds of every variant, one batch per variant per round, shuffled order."""
    import gc

    for fn in fns.values():  # warm up: first calls, caches, allocator
        for _ in range(3):
            fn(**kwargs)
    calls = {k: _calls_for(fn, kwargs, batch_s) for k, fn in fns.items()}
    samples = {k: [] for k in fns}
    keys = list(fns)
    gc_was_enabled = gc.isenabled()
    try:
        for _ in range(rounds):
            rng.shuffle(keys)
            for k in keys:
                fn, n = fns[k], calls[k]
                gc.collect()
                gc.disable()
                started = time.perf_counter()
                for _ in range(n):
                    fn(**kwargs)
                elapsed = time.perf_counter() - started
                gc.enable()
                samples[k].append(elapsed / n)
    finally:
        if gc_was_enabled:
            gc.enable()
    return samples, calls


def summarize(xs):
    xs = sorted(xs)
    q = statistics.quantiles(xs, n=4, method="inclusive") if len(xs) > 1 else [xs[0]] * 3
    return {"median": statistics.median(xs), "q1": q[0], "q3": q[2], "min": xs[0], "n": len(xs)}


def paired_ratio(num, den):
    return summarize([a / b for a, b in zip(num, den)])


# ---------------------------------------------------------------------------------------------
# Compile / load timing in subprocesses
# ---------------------------------------------------------------------------------------------


def child_main(mode: str, name: str, inputs_path: str) -> None:
    """Runs in a fresh interpreter; prints one JSON line prefixed with CHILD_MARK.

    Imports only symgrad and NumPy (not reference.py, which would pull in SciPy and
    hide part of what a user's process pays when it first loads a kernel)."""
    out = {"mode": mode, "workload": name, "cache_dir": os.environ.get("SYMGRAD_CACHE_DIR")}
    started = time.perf_counter()
    sg = _import_symgrad()
    out["import_s"] = time.perf_counter() - started
    import numpy as np

    with np.load(inputs_path) as data:
        inputs = {k: (float(data[k]) if data[k].ndim == 0 else data[k]) for k in data.files}

    def timed_build(f, wrt, inputs):
        t0 = time.perf_counter()
        vg = sg.value_and_grad(f, wrt, backend="numba")
        t1 = time.perf_counter()
        vg(**inputs)
        t2 = time.perf_counter()
        s = vg.stats
        return {
            "construct_s": t1 - t0,
            "first_call_s": t2 - t1,
            "total_s": t2 - t0,
            "stats": {
                "derive": s.derive,
                "simplify": s.simplify,
                "codegen": s.codegen,
                "numba": s.numba,
                "cache_hit": bool(s.cache_hit),
                "nodes_before": s.nodes_before,
                "nodes_after": s.nodes_after,
            },
        }

    f, wrt = build_graph(sg, name)
    if mode == "cold":
        out["workload_load"] = timed_build(f, wrt, inputs)
        # leave a cached start-up kernel next to the workload's for the "after start-up" run
        tf, twrt = startup_graph(sg)
        sg.value_and_grad(tf, twrt, backend="numba")(**startup_inputs())
    elif mode == "warm":
        out["workload_load"] = timed_build(f, wrt, inputs)
    elif mode == "warm_after_startup":
        tf, twrt = startup_graph(sg)
        out["startup_load"] = timed_build(tf, twrt, startup_inputs())
        out["workload_load"] = timed_build(f, wrt, inputs)
    else:
        raise SystemExit(f"unknown child mode {mode!r}")
    print(CHILD_MARK + json.dumps(out), flush=True)


def child_env(cache: str, checkout: Path | None = None) -> dict:
    """The environment of a timed child process of the benchmarks: the kernel cache folder
    ``cache``, BLAS on one thread, bytecode cached as Python does by default, symgrad
    imported from ``checkout`` (before any installed copy) if given, and glibc's default
    malloc settings (a ``MALLOC_`` variable fixes the
    thresholds that ``arrays.reserve`` adapts)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    # Python's default: modules' bytecode is cached (a shell that turns it off would time
    # compiling symgrad's source and each kernel module's in every process, which no user pays)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["SYMGRAD_CACHE_DIR"] = str(cache)
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = "1"
    if checkout is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(checkout), env.get("PYTHONPATH", "")])
    return env


def marked_json(proc, mark: str, what: str) -> dict:
    """The JSON a child process printed after ``mark``; exits with its output if none."""
    for line in proc.stdout.splitlines():
        if line.startswith(mark):
            return json.loads(line[len(mark):])
    raise SystemExit(f"{what} failed:\n{proc.stdout}\n{proc.stderr}")


def run_child(mode: str, name: str, cache_dir: Path, inputs_path: Path) -> dict:
    env = dict(os.environ, SYMGRAD_CACHE_DIR=str(cache_dir))
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", mode, "--only", name,
           "--child-inputs", str(inputs_path)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(CHILD_MARK):
            return json.loads(line[len(CHILD_MARK):])
    raise RuntimeError(
        f"benchmark subprocess {mode} {name} failed (exit {proc.returncode}):\n"
        f"{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    )


def compile_benchmarks(names, inputs, repeats, tmp_root: Path, log) -> dict:
    import numpy as np

    results = {}
    for name in names:
        inputs_path = tmp_root / f"inputs_{name}.npz"
        np.savez(inputs_path, **inputs[name])
        runs = []
        for r in range(repeats):
            cache = Path(tempfile.mkdtemp(prefix=f"cold_{name}_{r}_", dir=tmp_root))
            cold = run_child("cold", name, cache, inputs_path)
            # alternate which warm measurement goes first, so neither always sees a colder OS cache
            warm_modes = ["warm", "warm_after_startup"] if r % 2 == 0 else ["warm_after_startup", "warm"]
            warm = {m: run_child(m, name, cache, inputs_path) for m in warm_modes}
            runs.append({"cold": cold, **warm})
            log(
                f"  {name:18s} repeat {r + 1}/{repeats}: cold {cold['workload_load']['construct_s']:.2f}s, "
                f"warm {warm['warm']['workload_load']['total_s']:.3f}s, "
                f"warm after start-up {warm['warm_after_startup']['workload_load']['total_s']:.3f}s"
            )
        results[name] = summarize_compile(runs)
    return results


def summarize_compile(runs) -> dict:
    med = lambda xs: statistics.median(xs)  # noqa: E731
    cold = [r["cold"]["workload_load"] for r in runs]
    warm = [r["warm"]["workload_load"] for r in runs]
    after = [r["warm_after_startup"]["workload_load"] for r in runs]
    startup = [r["warm_after_startup"]["startup_load"] for r in runs]
    imports = [r[m]["import_s"] for r in runs for m in ("cold", "warm", "warm_after_startup")]
    hits = {
        "cold_hit": any(c["stats"]["cache_hit"] for c in cold),  # must be False
        "warm_miss": any(not w["stats"]["cache_hit"] for w in warm + after),  # must be False
        "startup_miss": any(not s["stats"]["cache_hit"] for s in startup),
    }
    return {
        "cold_construct_s": med([c["construct_s"] for c in cold]),
        "cold_first_call_s": med([c["first_call_s"] for c in cold]),
        "cold_split": {k: med([c["stats"][k] for c in cold]) for k in ("derive", "simplify", "codegen", "numba")},
        "nodes": [cold[0]["stats"]["nodes_before"], cold[0]["stats"]["nodes_after"]],
        "warm_total_s": med([w["total_s"] for w in warm]),
        "warm_construct_s": med([w["construct_s"] for w in warm]),
        "warm_numba_s": med([w["stats"]["numba"] for w in warm]),
        "warm_after_startup_total_s": med([w["total_s"] for w in after]),
        "warm_after_startup_numba_s": med([w["stats"]["numba"] for w in after]),
        "warm_after_startup_front_s": med([w["stats"]["derive"] + w["stats"]["simplify"] + w["stats"]["codegen"]
                                           for w in after]),
        "warm_after_startup_first_call_s": med([w["first_call_s"] for w in after]),
        "startup_s": med([s["total_s"] for s in startup]),
        "import_s": med(imports),
        "cache": hits,
        "runs": runs,
    }


# ---------------------------------------------------------------------------------------------
# Reporting
# ---------------------------------------------------------------------------------------------


def fmt_time(s: float) -> str:
    if s >= 1.0:
        return f"{s:.2f} s"
    if s >= 1e-3:
        return f"{s * 1e3:.3g} ms" if s < 0.1 else f"{s * 1e3:.0f} ms"
    if s >= 1e-6:
        return f"{s * 1e6:.3g} µs"
    return f"{s * 1e9:.3g} ns"


def fmt_ratio(r: float) -> str:
    return f"{r:.2f}×" if r < 10 else f"{r:.1f}×" if r < 100 else f"{r:.0f}×"


def markdown_table(header, rows) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def shape_text(reference, name) -> str:
    shapes = reference.WORKLOADS[name].shapes
    return ", ".join(f"{k}={v:,}" for k, v in shapes.items()) or "scalars"


def percall_tables(results, reference) -> str:
    main_rows, detail_rows = [], []
    for name, res in results.items():
        s, r = res["stats"], res["ratios"]
        slow = r["sg_over_hand_numba"]["median"] > SLOW_FLAG
        main_rows.append(
            [f"`{name}`"]
            + [fmt_time(s[v]["median"]) for v in VARIANTS]
            + [
                fmt_ratio(r["interp_over_sg"]["median"]),
                fmt_ratio(r["hand_numpy_over_sg"]["median"]),
                f"{r['sg_over_hand_numba']['median']:.2f}" + (" !" if slow else ""),
            ]
        )
        for v in VARIANTS:
            detail_rows.append(
                [f"`{name}`", LABELS[v], fmt_time(s[v]["median"]),
                 f"{fmt_time(s[v]['q1'])} – {fmt_time(s[v]['q3'])}", fmt_time(s[v]["min"]),
                 f"{s[v]['n']} × {res['calls'][v]}"]
            )
    main = markdown_table(
        ["workload"] + [LABELS[v] for v in VARIANTS] + ["interp / sg", "NumPy / sg", "sg / Numba"],
        main_rows,
    )
    shapes = "\n".join(f"- `{n}`: {reference.WORKLOADS[n].description} ({shape_text(reference, n)})" for n in results)
    detail = markdown_table(["workload", "variant", "median", "IQR", "min", "rounds × calls"], detail_rows)
    ratio_rows = []
    for name, res in results.items():
        r, s = res["ratios"], res["stats"]
        cell = lambda q: f"{q['median']:.2f} ({q['q1']:.2f} – {q['q3']:.2f})"  # noqa: E731
        ratio_rows.append(
            [f"`{name}`", cell(r["interp_over_sg"]), cell(r["hand_numpy_over_sg"]), cell(r["sg_over_hand_numba"]),
             f"{s['sg_numba']['min'] / s['hand_numba']['min']:.2f}"]
        )
    ratios = markdown_table(
        ["workload", "interp / sg", "NumPy / sg", "sg / Numba", "sg / Numba (of minima)"], ratio_rows
    )
    return (
        "Per-call time (median over interleaved rounds; value and all gradients, input checks included):\n\n"
        + main
        + "\n\n`interp / sg`, `NumPy / sg`: speed-up of the symgrad numba backend over the symgrad NumPy "
        "interpreter and over hand-written NumPy (> 1: symgrad numba is faster). `sg / Numba`: time of "
        "the symgrad numba backend relative to hand-written fused Numba (1.00 = as fast; `!` marks > "
        f"{SLOW_FLAG:.2f}). Ratios are medians of per-round paired ratios.\n\nWorkloads:\n{shapes}\n\n"
        "Spread of the per-call times:\n\n" + detail
        + "\n\nRatios: median (IQR) of the per-round paired ratios, and the ratio of the two minima:\n\n"
        + ratios
    )


def compile_table(comp) -> str:
    rows = []
    for name, c in comp.items():
        sp = c["cold_split"]
        other = c["cold_construct_s"] - sum(sp.values())
        rows.append(
            [f"`{name}`", fmt_time(c["cold_construct_s"]), fmt_time(sp["derive"]), fmt_time(sp["simplify"]),
             fmt_time(sp["codegen"]), fmt_time(sp["numba"]), fmt_time(max(other, 0.0)),
             f"{c['nodes'][0]} → {c['nodes'][1]}",
             fmt_time(c["warm_total_s"]), fmt_time(c["warm_after_startup_total_s"]),
             f"{fmt_time(c['warm_after_startup_front_s'])} / {fmt_time(c['warm_after_startup_numba_s'])} / "
             f"{fmt_time(c['warm_after_startup_first_call_s'])}"]
        )
    table = markdown_table(
        ["workload", "cold compile", "derive", "simplify", "codegen", "numba", "other", "nodes",
         "warm load", "warm load − start-up", "of which derive+simplify+codegen / numba load / 1st call"],
        rows,
    )
    startup = statistics.median(c["startup_s"] for c in comp.values())
    imports = statistics.median(c["import_s"] for c in comp.values())
    problems = []
    for name, c in comp.items():
        if c["cache"]["cold_hit"]:
            problems.append(f"- **{name}: a cold compile in an empty cache folder reported cache_hit=True**")
        if c["cache"]["warm_miss"] or c["cache"]["startup_miss"]:
            problems.append(f"- **{name}: a warm load in a new process did not hit the disk cache (cache_hit=False)**")
    return (
        "Compile and load time (fresh subprocess each; median of repeats):\n\n"
        + table
        + "\n\n`cold compile`: wall time of `sg.value_and_grad(...)` with an empty `SYMGRAD_CACHE_DIR`; "
        "derive / simplify / codegen / numba: its split from `.stats` (the numba part includes Numba's "
        "own first-compile initialisation in the process); `other`: the wall time `.stats` does not "
        "account for (mostly the lazy `import numba` of the first numba-backend compile in a process). "
        "`nodes`: graph size before → after simplification. `warm load`: `sg.value_and_grad(...)` + first "
        "call in a new process with the cache filled, as the first kernel of the process; `warm load − "
        "start-up`: the same after a small cached kernel with a matrix product ran first, and its split (0 for "
        "derive+simplify+codegen when the warm-start record is found: the cache is keyed by the input "
        "graph, and the optimised graph and kernel are loaded).\n\n"
        f"Fixed per-process cost: start-up (the first cached kernel of a process, `startup_graph`: "
        f"value_and_grad + first call, including the `import numba` symgrad does lazily and finding BLAS) "
        f"**{fmt_time(startup)}**; `import symgrad` {fmt_time(imports)} (in no figure above)."
        + ("\n\n" + "\n".join(problems) if problems else "")
    )


def environment() -> dict:
    import numba
    import numpy

    env = {
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "numba": numba.__version__,
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
    }
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        if var in os.environ:
            env[var] = os.environ[var]
    try:
        import sympy

        env["sympy"] = sympy.__version__
    except ImportError:
        pass
    return env


def plot(results, comp, path: Path) -> str:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed: no chart (pip install matplotlib)"
    import numpy as np

    names = list(results)
    panels = 3 if comp else 2
    fig, axes = plt.subplots(1, panels, figsize=(6.5 * panels, 4.8), squeeze=False)
    for a in axes[0]:
        a.set_axisbelow(True)
    ax = axes[0][0]
    width = 0.8 / len(VARIANTS)
    xs = np.arange(len(names))
    colors = {"sg_numba": "#1f77b4", "sg_interp": "#aec7e8", "hand_numpy": "#ff7f0e", "hand_numba": "#2ca02c"}
    for k, v in enumerate(VARIANTS):
        med = np.array([results[n]["stats"][v]["median"] for n in names])
        lo = med - np.array([results[n]["stats"][v]["q1"] for n in names])
        hi = np.array([results[n]["stats"][v]["q3"] for n in names]) - med
        ax.bar(xs + (k - 1.5) * width, med, width, yerr=[lo, hi], label=LABELS[v], color=colors[v], capsize=2)
    ax.set_yscale("log")
    ax.set_xticks(xs)
    ax.set_xticklabels(names, rotation=25, ha="right")
    ax.set_ylabel("seconds per call (median, IQR)")
    ax.set_title("value + gradient, per call (lower is better)")
    ax.legend(fontsize=8)
    ax.grid(axis="y", which="both", alpha=0.3)

    ax = axes[0][1]  # every variant relative to hand-written Numba, paired per round
    for k, v in enumerate(VARIANTS):
        rel = []
        for n in names:
            smp = results[n]["samples"]
            rel.append(summarize([a / b for a, b in zip(smp[v], smp["hand_numba"])]))
        med = np.array([r["median"] for r in rel])
        err = [med - np.array([r["q1"] for r in rel]), np.array([r["q3"] for r in rel]) - med]
        ax.bar(xs + (k - 1.5) * width, med, width, yerr=err, label=LABELS[v], color=colors[v], capsize=2)
    ax.axhline(1.0, color="k", lw=0.8)
    ax.axhline(SLOW_FLAG, color="r", lw=0.8, ls="--")
    ax.set_yscale("log")
    ax.set_xticks(xs)
    ax.set_xticklabels(names, rotation=25, ha="right")
    ax.set_ylabel("time / hand Numba time (paired median, IQR)")
    ax.set_title(f"relative to hand-written Numba (red: {SLOW_FLAG}×)")
    ax.grid(axis="y", which="both", alpha=0.3)
    if comp:
        ax = axes[0][2]
        cnames = list(comp)
        xs = np.arange(len(cnames))
        bottom = np.zeros(len(cnames))
        for part, color in zip(("derive", "simplify", "codegen", "numba"), ("#9467bd", "#8c564b", "#e377c2", "#7f7f7f")):
            vals = np.array([comp[n]["cold_split"][part] for n in cnames])
            ax.bar(xs - 0.2, vals, 0.4, bottom=bottom, color=color, label=f"cold: {part}")
            bottom += vals
        other = np.array([max(comp[n]["cold_construct_s"] - sum(comp[n]["cold_split"].values()), 0.0) for n in cnames])
        ax.bar(xs - 0.2, other, 0.4, bottom=bottom, color="#c7c7c7", label="cold: other (import numba)")
        ax.bar(xs + 0.2, [comp[n]["warm_total_s"] for n in cnames], 0.4, color="#bcbd22", label="warm load")
        ax.bar(xs + 0.2, [comp[n]["warm_after_startup_total_s"] for n in cnames], 0.4, color="#17becf",
               label="warm load − start-up")
        ax.set_xticks(xs)
        ax.set_xticklabels(cnames, rotation=25, ha="right")
        ax.set_ylabel("seconds")
        ax.set_title("compile (cold) and load from disk cache (warm)")
        ax.legend(fontsize=8)
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return f"chart written to {path}"


# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------


def parse_args(argv):
    p = argparse.ArgumentParser(description="symgrad benchmarks: per-call speed vs hand-written code, compile and load time.")
    p.add_argument("--quick", action="store_true", help="fewer rounds, shorter batches, one compile repeat")
    p.add_argument("--only", action="append", metavar="NAME", help=f"run only these workloads (repeatable or comma-separated): {', '.join(ORDER)}")
    p.add_argument("--json", metavar="PATH", help="save all results (raw samples included) as JSON")
    p.add_argument("--rounds", type=int, help="interleaved timing rounds per workload (default 41, quick 15)")
    p.add_argument("--batch-ms", type=float, help="target duration of one batch of calls (default 25, quick 10)")
    p.add_argument("--compile-repeats", type=int, help="fresh-process repeats of cold/warm timing (default 3, quick 1)")
    p.add_argument("--blas-threads", type=int, default=1,
                   help="BLAS threads for every variant (default 1: on a small shared machine a "
                        "multi-threaded BLAS spins against other load and its timings scatter by 10x); "
                        "0 leaves the environment as it is")
    p.add_argument("--no-compile", action="store_true", help="skip the compile/load subprocess measurements")
    p.add_argument("--no-plot", action="store_true", help="do not write the PNG chart")
    p.add_argument("--keep-going", action="store_true", help="time even if verification fails (still exits 1)")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--child-inputs", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    names = []
    for item in args.only or []:
        names += [n.strip() for n in item.split(",") if n.strip()]
    unknown = [n for n in names if n not in ORDER]
    if unknown:
        p.error(f"unknown workload(s) {unknown}; choose from {ORDER}")
    args.names = names or list(ORDER)
    args.rounds = args.rounds or (15 if args.quick else 41)
    args.batch_s = (args.batch_ms or (10.0 if args.quick else 25.0)) / 1e3
    args.compile_repeats = args.compile_repeats or (1 if args.quick else 3)
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.child:
        child_main(args.child, args.names[0], args.child_inputs)
        return 0

    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    if args.blas_threads:  # before NumPy (and the BLAS it loads) is imported; children inherit it
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = str(args.blas_threads)
    tmp_root = Path(tempfile.mkdtemp(prefix="symgrad_bench_"))
    os.environ["SYMGRAD_CACHE_DIR"] = str(tmp_root / "main")  # before symgrad compiles anything
    try:
        return _main(args, tmp_root, log)
    finally:
        shutil.rmtree(tmp_root, ignore_errors=True)


def _main(args, tmp_root: Path, log) -> int:
    import numpy as np

    sg = _import_symgrad()
    reference = _import_reference()
    started = time.perf_counter()

    # ---- build and verify everything before timing anything -------------------------------
    log(f"building and verifying {len(args.names)} workload(s) ...")
    prepared, failures = {}, []
    for name in args.names:
        w = reference.WORKLOADS[name]
        inputs = w.make_inputs(np.random.default_rng(SEED))
        f, wrt = build_graph(sg, name)
        assert [n.name for n in wrt] == w.wrt, (name, [n.name for n in wrt], w.wrt)
        fns = {
            "sg_numba": sg.value_and_grad(f, wrt, backend="numba"),
            "sg_interp": sg.value_and_grad(f, wrt, backend="numpy"),
            "hand_numpy": w.numpy,
            "hand_numba": w.numba,
        }
        expected = w.numba(**inputs)
        snapshot = {k: np.copy(v) for k, v in inputs.items()}
        checks = {}
        for v in ("sg_numba", "sg_interp", "hand_numpy"):
            try:
                worst, problems = compare(fns[v](**inputs), expected, len(w.wrt))
            except Exception as exc:  # noqa: BLE001 - a crash is a failed check
                worst, problems = float("inf"), [f"raised {type(exc).__name__}: {exc}"]
            checks[v] = worst
            for p in problems:
                failures.append(f"{name}: {LABELS[v]} vs hand Numba: {p}")
        for k, v in inputs.items():
            if not np.array_equal(np.asarray(v), snapshot[k]):
                failures.append(f"{name}: input {k!r} was modified by a call")
        log(f"  {name:18s} max rel diff vs hand Numba: "
            + ", ".join(f"{LABELS[v]} {d:.1e}" for v, d in checks.items()))
        prepared[name] = (fns, inputs, checks)

    if failures:
        bar = "!" * 78
        print(f"\n{bar}\nVERIFICATION FAILED (tolerance {RTOL:g} relative, normwise):", file=sys.stderr)
        for line in failures:
            print(f"  MISMATCH  {line}", file=sys.stderr)
        print(bar + "\n", file=sys.stderr, flush=True)
        if not args.keep_going:
            return 1

    # ---- per-call timing ---------------------------------------------------------------------
    rng = random.Random(SEED)
    results = {}
    log(f"timing: {args.rounds} interleaved rounds, batches of ~{args.batch_s * 1e3:.0f} ms ...")
    for name in args.names:
        fns, inputs, checks = prepared[name]
        samples, calls = time_interleaved(fns, inputs, args.rounds, args.batch_s, rng)
        stats = {v: summarize(samples[v]) for v in VARIANTS}
        ratios = {
            "interp_over_sg": paired_ratio(samples["sg_interp"], samples["sg_numba"]),
            "hand_numpy_over_sg": paired_ratio(samples["hand_numpy"], samples["sg_numba"]),
            "sg_over_hand_numba": paired_ratio(samples["sg_numba"], samples["hand_numba"]),
        }
        results[name] = {
            "stats": stats, "ratios": ratios, "calls": calls, "samples": samples,
            "verify_max_rel_diff": checks, "shapes": reference.WORKLOADS[name].shapes,
            "sg_numba_stats_in_process": vars(fns["sg_numba"].stats),
        }
        log(f"  {name:18s} " + "  ".join(f"{LABELS[v]} {fmt_time(stats[v]['median'])}" for v in VARIANTS)
            + f"  sg/Numba {ratios['sg_over_hand_numba']['median']:.2f}")

    # ---- compile and load time in fresh processes ------------------------------------------------
    comp = {}
    if not args.no_compile:
        log(f"compile/load timing: {args.compile_repeats} repeat(s), fresh subprocess each ...")
        comp = compile_benchmarks(args.names, {n: prepared[n][1] for n in args.names},
                                  args.compile_repeats, tmp_root, log)

    # ---- report ------------------------------------------------------------------------------------
    env = environment()
    print(f"\n## symgrad benchmarks\n\n{env['platform']}, {env['cpu_count']} CPUs; Python {env['python']}, "
          f"NumPy {env['numpy']}, Numba {env['numba']}, BLAS threads: "
          f"{args.blas_threads or 'default'}. `python benchmarks/run.py"
          + (" --quick" if args.quick else "") + f"` ({args.rounds} rounds).\n")
    print(percall_tables(results, reference))
    if comp:
        print()
        print(compile_table(comp))
    slow = [n for n, r in results.items() if r["ratios"]["sg_over_hand_numba"]["median"] > SLOW_FLAG]
    if slow:
        print(f"\nslower than hand-written Numba by more than {SLOW_FLAG}×: {', '.join(slow)} "
              "(see `.source` of the compiled object)")
    print()

    if not args.no_plot:
        RESULTS.mkdir(parents=True, exist_ok=True)
        log(plot(results, comp, RESULTS / "benchmark.png"))
    if args.json:
        payload = {
            "environment": env,
            "settings": {"rounds": args.rounds, "batch_s": args.batch_s, "compile_repeats": args.compile_repeats,
                         "quick": args.quick, "rtol": RTOL, "seed": SEED},
            "per_call": results,
            "compile": comp,
            "verification_failures": failures,
        }
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(payload, indent=1, default=float))
        log(f"results written to {path}")
    log(f"done in {time.perf_counter() - started:.0f} s")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
