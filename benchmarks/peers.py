"""symgrad against the tools a user would pick instead: JAX, PyTorch, PyTensor, autograd.

Usage (in a venv with the peers, see the README: ``pip install -e '.[peers]'``)::

    python benchmarks/peers.py                      # every workload, 1 thread, writes results/
    python benchmarks/peers.py --threads 1,2        # the same at 1 and at 2 threads
    python benchmarks/peers.py --only svm --quick   # one workload, fewer rounds
    python benchmarks/peers.py --tiny --check-only  # correctness of every peer, small sizes
    python benchmarks/peers.py --loss mymodule:my_loss   # your own loss (protocol below)

What it does, per workload (``benchmarks/reference.py``'s six, or a user's loss):

1. **One process per workload and thread count.**  A fresh child interpreter gets the thread
   settings in its environment before anything is imported (``OMP_NUM_THREADS``,
   ``OPENBLAS_NUM_THREADS``, ``MKL_NUM_THREADS``, ``NUMBA_NUM_THREADS``, ``XLA_FLAGS``), then
   pins every BLAS/OpenMP pool with threadpoolctl and ``torch.set_num_threads``: every
   library runs with the same number of threads (1 by default, ``--threads 2`` as an option).
2. **Build and check.**  Every implementation is built and called once (that build + first
   call is reported as its in-process warm-up, never mixed into the per-call figures), then
   its loss and every gradient are compared with symgrad's (normwise relative difference at
   most ``1e-9`` in float64).  An implementation that disagrees is not timed: the table says
   "wrong" and the run exits with status 1.  A peer that is not installed is skipped with a
   line saying so.
3. **Interleaved timing** (``run.time_interleaved``): each round times one batch of calls of
   every implementation in a shuffled order; reported are the median per-call time over the
   rounds, its inter-quartile range, and the median of the per-round ratios to symgrad
   (> 1: symgrad is faster).  A call computes the loss and all gradients from inputs already
   held in the library's own array type (a JAX user keeps ``jax.Array``s, a PyTorch user
   tensors), and waits for the results (``block_until_ready``).
4. **Compile cost**, each in a fresh process (``--compile-repeats``): *cold* = building the
   function and its first call with an empty cache folder; *warm* = the same in a new process
   whose cache folder was filled by the cold run (symgrad's kernel cache, JAX's persistent
   compilation cache, TorchInductor's cache, PyTensor's compiledir).  The ``import`` of the
   library itself is not included (it is reported separately).

Output: Markdown on stdout and in ``benchmarks/results/peers.md`` (date, machine, versions,
BLAS libraries, the load average before and after), a chart ``benchmarks/results/peers.png``
and every raw sample in ``benchmarks/results/peers.json`` (``--out DIR`` to write elsewhere).

Your own loss: ``--loss MODULE:FUNCTION`` imports ``MODULE`` (from the current directory or
``sys.path``) and calls ``FUNCTION()``, which returns a dict::

    {
        "loss": f,                     # a scalar symgrad graph
        "wrt": [w, b],                 # the symgrad input tensors to differentiate by
        "inputs": {"x": x, "w": w0, "b": b0},  # one value per input tensor, by name
        "peer_loss": loss_fn,          # optional: loss_fn(xp, **inputs) -> scalar
        "name": "my_loss",             # optional: the label in the tables
    }

``peer_loss`` is the same loss written once for every peer against the namespace ``xp``
(array operators ``+ - * / ** @``, ``.T``, ``.shape`` and indexing, and the functions
``xp.exp log log1p tanh sqrt erf sigmoid sum mean max maximum logsumexp one_hot``, see
:class:`NumpyLike`).  Without it only symgrad's Numba backend and its NumPy interpreter
are compared.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import json
import math
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
RTOL = 1e-9
SEED = 0
CHILD_MARK = "@@SYMGRAD_PEERS@@ "
ORDER = ["slide_mlp", "svm", "softmax", "mlp_act", "scalar_slide", "elementwise_chain"]
BLAS_BOUND = ["slide_mlp", "svm", "softmax", "mlp_act"]

# Every implementation, in table order: key -> (label, what must be importable)
IMPLS = {
    "sg_numba": ("symgrad (numba)", "symgrad"),
    "sg_parallel": ("symgrad parallel=True", "symgrad"),
    "sg_interp": ("symgrad interp", "symgrad"),
    "hand_numpy": ("hand NumPy", "numpy"),
    "hand_numba": ("hand Numba", "numba"),
    "jax": ("JAX jit", "jax"),
    "torch": ("PyTorch eager", "torch"),
    "torch_compile": ("torch.compile", "torch"),
    "pytensor_c": ("PyTensor (C)", "pytensor"),
    "pytensor_numba": ("PyTensor (Numba)", "pytensor"),
    "autograd": ("autograd", "autograd"),
}
PEERS = ["jax", "torch", "torch_compile", "pytensor_c", "pytensor_numba", "autograd"]
# the tools with something to compile and a cache on disk (compile-cost rows)
COMPILERS = ["sg_numba", "jax", "torch_compile", "pytensor_c", "pytensor_numba"]
INSTALL_HINT = "pip install -e '.[peers]' (in a venv of its own, see the README)"


def _import_run():
    """benchmarks/run.py, for its graphs, tolerances-free comparison and timing loop."""
    sys.path.insert(0, str(HERE))
    import run

    return run


# ---------------------------------------------------------------------------------------------
# The workloads once, for every peer: loss(xp, **inputs) with xp a NumPy-like namespace
# ---------------------------------------------------------------------------------------------


class NumpyLike:
    """The functions a peer loss may use, for modules with NumPy's API (JAX, autograd).

    ``sum``/``mean``/``max`` take ``axis`` and ``keepdims`` as in NumPy; ``maximum(a, b)``
    is elementwise; ``logsumexp(a, axis)`` is the library's stable one; ``one_hot(y, n)`` is
    a float64 ``(len(y), n)`` matrix with ones at ``[i, y[i]]``.
    """

    def __init__(self, np_module, erf, logsumexp, sigmoid=None):
        self.np = np_module
        self.erf = erf
        self._logsumexp = logsumexp
        self._sigmoid = sigmoid
        for name in ("exp", "log", "log1p", "tanh", "sqrt", "maximum"):
            setattr(self, name, getattr(np_module, name))

    def sigmoid(self, a):
        return self._sigmoid(a) if self._sigmoid else 1.0 / (1.0 + self.np.exp(-a))

    def sum(self, a, axis=None, keepdims=False):
        return self.np.sum(a, axis=axis, keepdims=keepdims)

    def mean(self, a, axis=None, keepdims=False):
        return self.np.mean(a, axis=axis, keepdims=keepdims)

    def max(self, a, axis=None, keepdims=False):
        return self.np.max(a, axis=axis, keepdims=keepdims)

    def logsumexp(self, a, axis):
        return self._logsumexp(a, axis=axis)

    def one_hot(self, y, n):
        return (self.np.arange(n)[None, :] == y[:, None]).astype(self.np.float64)


class TorchLike(NumpyLike):
    """:class:`NumpyLike` for PyTorch tensors."""

    def __init__(self, torch):
        self.torch = torch
        self.erf = torch.special.erf
        self.sigmoid = torch.sigmoid
        for name in ("exp", "log", "log1p", "tanh", "sqrt"):
            setattr(self, name, getattr(torch, name))

    def maximum(self, a, b):
        t = self.torch
        return t.maximum(a if t.is_tensor(a) else t.tensor(a, dtype=t.float64),
                         b if t.is_tensor(b) else t.tensor(b, dtype=t.float64))

    def sum(self, a, axis=None, keepdims=False):
        return a.sum() if axis is None else a.sum(dim=axis, keepdim=keepdims)

    def mean(self, a, axis=None, keepdims=False):
        return a.mean() if axis is None else a.mean(dim=axis, keepdim=keepdims)

    def max(self, a, axis=None, keepdims=False):
        return a.max() if axis is None else a.amax(dim=axis, keepdim=keepdims)

    def logsumexp(self, a, axis):
        return self.torch.logsumexp(a, dim=axis)

    def one_hot(self, y, n):
        t = self.torch
        return (t.arange(n)[None, :] == y[:, None]).to(t.float64)


class PyTensorLike(NumpyLike):
    """:class:`NumpyLike` for PyTensor's symbolic tensors."""

    def __init__(self, pt):
        self.pt = pt
        super().__init__(pt, pt.erf, pt.logsumexp, pt.sigmoid)

    def one_hot(self, y, n):
        pt = self.pt
        return pt.cast(pt.eq(pt.arange(n)[None, :], y[:, None]), "float64")


INV_SQRT2 = 1.0 / math.sqrt(2.0)


def _softmax_xent(xp, S, y):
    return xp.mean(xp.logsumexp(S, axis=1) - xp.sum(S * xp.one_hot(y, S.shape[1]), axis=1))


def slide_mlp_loss(xp, x, y, w1, w2):
    return xp.sum((xp.sigmoid(x @ w1) @ w2 - y) ** 2)


def svm_loss(xp, X, y, W):
    S = X @ W
    mask = xp.one_hot(y, W.shape[1])
    correct = xp.sum(S * mask, axis=1, keepdims=True)
    margins = xp.maximum(S - correct + 1.0, 0.0) * (1.0 - mask)
    return xp.sum(margins) / X.shape[0] + 0.5 * xp.sum(W * W)


def softmax_loss(xp, X, y, W):
    return _softmax_xent(xp, X @ W, y) + 0.5 * xp.sum(W * W)


def mlp_act_loss(xp, X, y, W1, b1, W2, b2, W3, b3):
    z1 = X @ W1 + b1
    h1 = z1 * (0.5 * (1.0 + xp.erf(z1 * INV_SQRT2)))  # exact GELU
    z2 = h1 @ W2 + b2
    h2 = z2 * xp.sigmoid(z2)  # SiLU
    l2 = xp.sum(W1 * W1) + xp.sum(W2 * W2) + xp.sum(W3 * W3)
    return _softmax_xent(xp, h2 @ W3 + b3, y) + 1e-4 * l2


def scalar_slide_loss(xp, x, y, z):
    return (x + y) * z


def elementwise_chain_loss(xp, x):
    return xp.sum(xp.tanh(xp.sigmoid(x) * x + xp.exp(-(x**2))) * xp.log1p(x**2))


PEER_LOSSES = {
    "slide_mlp": slide_mlp_loss,
    "svm": svm_loss,
    "softmax": softmax_loss,
    "mlp_act": mlp_act_loss,
    "scalar_slide": scalar_slide_loss,
    "elementwise_chain": elementwise_chain_loss,
}


@dataclass
class Problem:
    """One benchmark: the symgrad graph, its inputs, and the same loss for the peers."""

    name: str
    loss: object  # symgrad graph
    wrt: list  # symgrad input tensors
    inputs: dict  # name -> float or ndarray
    peer_loss: object = None  # loss(xp, **inputs), or None: symgrad only
    hand: dict = field(default_factory=dict)  # "hand_numpy"/"hand_numba" -> fn(**inputs)
    description: str = ""

    @property
    def wrt_names(self):
        return [w.name for w in self.wrt]


def builtin_problem(sg, name, tiny=False, inputs=None) -> Problem:
    """A workload of reference.py; ``inputs`` (else made with the fixed seed) by name."""
    run = _import_run()
    import reference

    w = reference.WORKLOADS[name]
    if inputs is None:
        inputs = make_builtin_inputs(name, tiny)
    loss, wrt = run.build_graph(sg, name)
    return Problem(name, loss, wrt, inputs, PEER_LOSSES[name],
                   {"hand_numpy": w.numpy, "hand_numba": w.numba}, w.description)


def make_builtin_inputs(name, tiny=False):
    import numpy as np

    sys.path.insert(0, str(HERE))
    import reference

    shapes = {}
    if tiny:
        from check_reference import SMALL_SHAPES

        shapes = SMALL_SHAPES[name]
    return reference.WORKLOADS[name].make_inputs(np.random.default_rng(SEED), **shapes)


def user_problem(spec: str) -> Problem:
    """The problem a user's ``MODULE:FUNCTION`` returns (see the module docstring)."""
    module_name, sep, func_name = spec.partition(":")
    if not sep or not module_name or not func_name:
        raise SystemExit(f"--loss takes MODULE:FUNCTION, got {spec!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        fn = getattr(importlib.import_module(module_name), func_name)
    except (ImportError, AttributeError) as exc:
        raise SystemExit(
            f"--loss {spec}: cannot load {func_name!r} from {module_name!r}: {exc}") from exc
    spec_dict = fn()
    missing = [k for k in ("loss", "wrt", "inputs") if k not in dict(spec_dict)]
    if missing:
        raise SystemExit(f"--loss {spec}: the returned dict has no {', '.join(map(repr, missing))}"
                         " (it needs 'loss', 'wrt', 'inputs'; 'peer_loss' and 'name' optional)")
    inputs = dict(spec_dict["inputs"])
    return Problem(spec_dict.get("name", func_name), spec_dict["loss"], list(spec_dict["wrt"]),
                   inputs, spec_dict.get("peer_loss"), {}, spec_dict.get("description", spec))


# ---------------------------------------------------------------------------------------------
# Runners: each returns (call, to_numpy): call() computes loss and all gradients in the
# library's own types and waits for them; to_numpy(result) -> (float, [ndarray]) to check
# ---------------------------------------------------------------------------------------------


def _np_result(result):
    import numpy as np

    loss, grads = result
    return float(loss), [np.asarray(g, dtype=np.float64) for g in grads]


def build_symgrad(p: Problem, backend, **options):
    import symgrad as sg

    vg = sg.value_and_grad(p.loss, p.wrt, backend=backend, **options)
    inputs = p.inputs
    return (lambda: vg(**inputs)), _np_result


def build_hand(p: Problem, key):
    fn, inputs = p.hand[key], p.inputs
    return (lambda: fn(**inputs)), _np_result


def _split_inputs(p: Problem):
    data = {k: v for k, v in p.inputs.items() if k not in p.wrt_names}
    return data, [p.inputs[k] for k in p.wrt_names]


def build_jax(p: Problem):
    import jax
    import jax.numpy as jnp
    import jax.scipy.special

    jax.config.update("jax_enable_x64", True)
    xp = NumpyLike(jnp, jax.scipy.special.erf, jax.nn.logsumexp, jax.nn.sigmoid)
    names, loss = p.wrt_names, p.peer_loss

    def f(params, data):
        return loss(xp, **data, **dict(zip(names, params)))

    vg = jax.jit(jax.value_and_grad(f))
    data, params = _split_inputs(p)
    data = {k: jnp.asarray(v) for k, v in data.items()}
    params = tuple(jnp.asarray(v) for v in params)
    return (lambda: jax.block_until_ready(vg(params, data))), _np_result


def _torch_inputs(p: Problem):
    import torch

    tensors = {}
    for k, v in p.inputs.items():
        t = torch.tensor(v, dtype=torch.float64) if isinstance(v, float) else torch.from_numpy(v)
        tensors[k] = t.requires_grad_(True) if k in p.wrt_names else t
    return torch, tensors, [tensors[k] for k in p.wrt_names]


def _torch_to_numpy(result):
    loss, grads = result
    return float(loss), [g.detach().numpy().astype("float64") for g in grads]


def build_torch(p: Problem, compiled=False):
    torch, tensors, wrt = _torch_inputs(p)
    xp, loss = TorchLike(torch), p.peer_loss
    forward = lambda: loss(xp, **tensors)  # noqa: E731
    if compiled:
        fwd = torch.compile(lambda **kw: loss(xp, **kw), dynamic=False)
        forward = lambda: fwd(**tensors)  # noqa: E731

    def call():
        value = forward()
        grads = torch.autograd.grad(value, wrt)
        return value.detach(), grads

    return call, _torch_to_numpy


def build_pytensor(p: Problem, mode):
    import numpy as np
    import pytensor
    import pytensor.tensor as pt

    syms = {}
    for k, v in p.inputs.items():
        a = np.asarray(v)
        syms[k] = pt.tensor(name=k, dtype=str(a.dtype), shape=(None,) * a.ndim)
    value = p.peer_loss(PyTensorLike(pt), **syms)
    grads = pytensor.grad(value, [syms[k] for k in p.wrt_names])
    fn = pytensor.function(list(syms.values()), [value, *grads], mode=mode)
    args = [np.asarray(v) for v in p.inputs.values()]
    return (lambda: fn(*args)), (lambda r: _np_result((r[0], r[1:])))


def build_autograd(p: Problem):
    import autograd
    import autograd.numpy as anp
    import autograd.scipy.special as asp

    xp = NumpyLike(anp, asp.erf, asp.logsumexp)
    names, loss = p.wrt_names, p.peer_loss
    vg = autograd.value_and_grad(lambda params, data: loss(xp, **data, **dict(zip(names, params))))
    data, params = _split_inputs(p)
    params = tuple(params)
    return (lambda: vg(params, data)), _np_result


def build(key, p: Problem):
    if key == "sg_numba":
        return build_symgrad(p, "numba")
    if key == "sg_parallel":
        return build_symgrad(p, "numba", parallel=True)
    if key == "sg_interp":
        return build_symgrad(p, "numpy")
    if key in ("hand_numpy", "hand_numba"):
        return build_hand(p, key)
    if key == "jax":
        return build_jax(p)
    if key in ("torch", "torch_compile"):
        return build_torch(p, compiled=key == "torch_compile")
    if key == "pytensor_c":
        return build_pytensor(p, "CVM")  # PyTensor 3's C backend (its default mode is Numba)
    if key == "pytensor_numba":
        return build_pytensor(p, "NUMBA")
    if key == "autograd":
        return build_autograd(p)
    raise KeyError(key)


def unavailable(key, p: Problem) -> str | None:
    """Why ``key`` cannot run ``p`` (not installed, no peer loss, no hand version), or None."""
    if key in ("hand_numpy", "hand_numba"):
        return None if key in p.hand else "no hand-written version of this loss"
    if key in PEERS and p.peer_loss is None:
        return "the loss has no 'peer_loss' (symgrad only)"
    module = IMPLS[key][1]
    try:
        importlib.import_module(module)
    except ImportError:
        return f"{module} is not installed: {INSTALL_HINT}"
    return None


# ---------------------------------------------------------------------------------------------
# Threads: set in the environment before the libraries load, then pinned again at run time
# ---------------------------------------------------------------------------------------------


def thread_env(threads: int) -> dict:
    env = {v: str(threads) for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                     "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")}
    flags = [f for f in os.environ.get("XLA_FLAGS", "").split() if "eigen" not in f
             and "intra_op" not in f]
    flags += [f"--xla_cpu_multi_thread_eigen={'true' if threads > 1 else 'false'}",
              f"intra_op_parallelism_threads={threads}"]
    env["XLA_FLAGS"] = " ".join(flags)
    return env


def pin_threads(threads: int, loaded: set) -> list:
    """Limit every thread pool of the loaded libraries; threadpoolctl's view of them after."""
    if "torch" in loaded:
        import torch

        torch.set_num_threads(threads)
        try:
            torch.set_num_interop_threads(1)
        except RuntimeError:  # already set (or parallel work started)
            pass
    try:
        import threadpoolctl
    except ImportError:
        return [{"note": "threadpoolctl is not installed: BLAS threads set by env vars only"}]
    threadpoolctl.threadpool_limits(threads)
    keep = ("user_api", "internal_api", "prefix", "version", "num_threads", "threading_layer",
            "architecture")
    return [{k: i.get(k) for k in keep} for i in threadpoolctl.threadpool_info()]


def versions(loaded) -> dict:
    out = {"python": platform.python_version()}
    for module in ["numpy", "scipy", "numba", "sympy", "symgrad", "jax", "jaxlib", "torch",
                   "pytensor", "autograd", "threadpoolctl"]:
        if module in sys.modules or module in loaded:
            try:
                out[module] = importlib.import_module(module).__version__
            except (ImportError, AttributeError):
                pass
    return out


def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cpu_count": os.cpu_count(), "platform": platform.platform()}


# ---------------------------------------------------------------------------------------------
# Child 1: build, check and time every implementation of one problem in this process
# ---------------------------------------------------------------------------------------------


def load_problem(sg, args):
    if args.loss:
        return user_problem(args.loss)
    return builtin_problem(sg, args.names[0], tiny=args.tiny)


def compare(result, expected, n_grads):
    """Worst normwise relative difference of (loss, grads) vs symgrad's; problems found."""
    run = _import_run()
    loss, grads = result
    if len(grads) != n_grads:
        return float("inf"), [f"{len(grads)} gradients, expected {n_grads}"]
    worst, problems = run.rel_diff(loss, expected[0]), []
    if worst > RTOL:
        problems.append(f"loss {loss!r} vs symgrad {expected[0]!r} (rel {worst:.1e})")
    for k, (g, e) in enumerate(zip(grads, expected[1])):
        d = run.rel_diff(g, e)
        if d > RTOL:
            problems.append(f"gradient {k} differs from symgrad's by {d:.1e} (relative)")
        worst = max(worst, d)
    return worst, problems


def child_timing(args) -> dict:
    import numpy as np

    import symgrad as sg

    run = _import_run()
    problem = load_problem(sg, args)
    keys = [k for k in IMPLS if not args.impls or k in args.impls]
    out = {"workload": problem.name, "threads": args.threads, "skipped": {}, "warmup_s": {},
           "check": {}, "wrong": {}, "description": problem.description,
           "shapes": {k: list(np.shape(v)) for k, v in problem.inputs.items()}}
    for key in keys:  # imports every library that is there, so its threads can be pinned
        reason = unavailable(key, problem)
        if reason:
            out["skipped"][key] = reason
    keys = [k for k in keys if k not in out["skipped"]]
    pin_threads(args.threads, {IMPLS[k][1] for k in keys})
    calls = {}
    for key in keys:
        snapshot = {k: np.copy(v) for k, v in problem.inputs.items()}
        started = time.perf_counter()
        try:
            call, to_numpy = build(key, problem)
            result = to_numpy(call())
        except Exception as exc:  # noqa: BLE001 - a peer that cannot run it is reported
            out["skipped"][key] = f"failed: {type(exc).__name__}: {str(exc)[:300]}"
            continue
        out["warmup_s"][key] = time.perf_counter() - started
        for k, v in problem.inputs.items():
            if not np.array_equal(np.asarray(v), snapshot[k]):
                out["wrong"].setdefault(key, []).append(f"modified input {k!r}")
        if key == "sg_numba":
            expected = result
        elif "sg_numba" not in calls:
            raise SystemExit("symgrad (numba) must come first: it is the reference")
        else:
            worst, problems = compare(result, expected, len(problem.wrt))
            out["check"][key] = worst
            if problems:
                out["wrong"].setdefault(key, []).extend(problems)
        if key not in out["wrong"]:
            calls[key] = call
    out["loaded"] = sorted({IMPLS[k][1] for k in calls})
    # again: building may have loaded more pools (PyTensor's, Inductor's OpenMP)
    out["threadpools"] = pin_threads(args.threads, set(out["loaded"]))
    out["versions"] = versions(out["loaded"])
    if "pytensor" in out["loaded"]:
        import pytensor

        if not pytensor.config.blas__ldflags:
            out["notes"] = ["PyTensor's C backend found no BLAS library to link "
                            "(`blas__ldflags` is empty, as after a pip install) and warns that "
                            "operations that might benefit from BLAS will be severely degraded"]
    if args.check_only:
        return out
    samples, batch_calls = run.time_interleaved(
        {k: c for k, c in calls.items()}, {}, args.rounds, args.batch_s, random.Random(SEED))
    out["stats"] = {k: run.summarize(s) for k, s in samples.items()}
    out["ratio_to_sg"] = {k: run.paired_ratio(s, samples["sg_numba"]) for k, s in samples.items()}
    out["calls"] = batch_calls
    out["samples"] = samples
    return out


# ---------------------------------------------------------------------------------------------
# Child 2: compile cost of one tool on one problem in a fresh process
# ---------------------------------------------------------------------------------------------


def cache_env(key, cache_dir: Path) -> dict:
    """Where each tool keeps what it compiled, pointed at ``cache_dir``."""
    return {
        "SYMGRAD_CACHE_DIR": str(cache_dir / "symgrad"),
        "PYTENSOR_FLAGS": f"base_compiledir={cache_dir / 'pytensor'}",  # C and Numba caches
        "TORCHINDUCTOR_CACHE_DIR": str(cache_dir / "inductor"),
        "TRITON_CACHE_DIR": str(cache_dir / "triton"),
        "NUMBA_CACHE_DIR": str(cache_dir / "numba"),
    }


def child_compile(args) -> dict:
    """Import the tool (timed apart), then build + first call (the compile cost)."""
    import numpy as np

    key, cache_dir = args.child_compile, Path(os.environ["SYMGRAD_CACHE_DIR"]).parent
    started = time.perf_counter()
    module = importlib.import_module(IMPLS[key][1])
    if key == "jax":
        module.config.update("jax_compilation_cache_dir", str(cache_dir / "jax"))
        module.config.update("jax_persistent_cache_min_compile_time_secs", 0)
        module.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    import_s = time.perf_counter() - started
    import symgrad as sg  # the graph is needed to describe the problem; not timed

    run = _import_run()
    if args.child_seed:  # a trivial function of its own: fills the cache with the one-off parts
        loss, wrt = run.trivial_graph(sg)
        problem = Problem("trivial", loss, wrt, dict(run.TRIVIAL_INPUTS),
                          lambda xp, startup_a, startup_b: startup_a * startup_b)
    elif args.loss:
        problem = user_problem(args.loss)
    else:
        with np.load(args.child_inputs) as data:
            inputs = {k: (float(data[k]) if data[k].ndim == 0 else data[k]) for k in data.files}
        loss, wrt = run.build_graph(sg, args.names[0])
        problem = Problem(args.names[0], loss, wrt, inputs, PEER_LOSSES[args.names[0]])
    pin_threads(args.threads, {IMPLS[key][1]})
    started = time.perf_counter()
    call, to_numpy = build(key, problem)
    to_numpy(call())
    return {"tool": key, "import_s": import_s, "first_s": time.perf_counter() - started}


def run_child(argv, env, log) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), *argv]
    # the children import this checkout's symgrad, installed or not (as this process does)
    path = os.pathsep.join(p for p in (str(HERE.parent), os.environ.get("PYTHONPATH")) if p)
    proc = subprocess.run(
        cmd, env={**os.environ, "PYTHONPATH": path, **env}, capture_output=True, text=True
    )
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(CHILD_MARK):
            return json.loads(line[len(CHILD_MARK):])
    log(f"child {' '.join(argv)} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return {"error": f"exit {proc.returncode}: {proc.stderr.strip().splitlines()[-1:]}"}


# ---------------------------------------------------------------------------------------------
# Reporting
# ---------------------------------------------------------------------------------------------


def fmt_time(s):
    return _import_run().fmt_time(s)


def cell(res, key):
    if "error" in res:
        return "error"
    if key in res.get("wrong", {}):
        return "**wrong**"
    if key in res.get("skipped", {}):
        return "n/a"
    st = res.get("stats", {}).get(key)
    if st is None:
        return "—"
    text = fmt_time(st["median"])
    if key != "sg_numba":
        text += f" ({res['ratio_to_sg'][key]['median']:.2f}×)"
    return text


def percall_table(results, threads):
    run = _import_run()
    keys = [k for k in IMPLS if any(k in r.get("stats", {}) or k in r.get("wrong", {})
                                    for r in results.values())]
    rows = [[f"`{n}`"] + [cell(r, k) for k in keys] for n, r in results.items()]
    table = run.markdown_table(["workload"] + [IMPLS[k][0] for k in keys], rows)
    spread = []
    for n, r in results.items():
        for k, st in r.get("stats", {}).items():
            spread.append([f"`{n}`", IMPLS[k][0], fmt_time(st["median"]),
                           f"{fmt_time(st['q1'])} – {fmt_time(st['q3'])}", fmt_time(st["min"]),
                           f"{st['n']} × {r['calls'][k]}",
                           "—" if k == "sg_numba" else f"{r['check'].get(k, 0):.0e}",
                           fmt_time(r["warmup_s"][k])])
    detail = run.markdown_table(["workload", "implementation", "median", "IQR", "min",
                                 "rounds × calls", "max rel diff vs symgrad", "build + 1st call"],
                                spread)
    return (f"### {threads} thread{'s' if threads > 1 else ''} per library\n\n"
            "Per call of loss and all gradients, median over interleaved rounds; in brackets "
            "the median of the per-round ratios to symgrad (> 1: symgrad is faster).\n\n"
            + table + "\n\n<details><summary>spread, check and warm-up</summary>\n\n" + detail
            + "\n\n</details>")


def summary_table(per_thread, comp):
    """One row per workload, one column per implementation: the median per call at each
    thread count ("1 thread / 2 threads"), and the compile cost rows (cold / warm)."""
    run = _import_run()
    all_results = list(per_thread.values())
    keys = [k for k in IMPLS if any(k in r.get("stats", {}) for res in all_results
                                    for r in res.values())]
    rows = []
    for name in all_results[0]:
        row = [f"`{name}`"]
        for k in keys:
            cells = [cell(res.get(name, {"error": 1}), k).split(" (")[0] for res in all_results]
            row.append(" / ".join(cells))
        rows.append(row)
    for name, c in comp.items():
        row = [f"compile `{name}`, cold / warm"]
        for k in keys:
            v = c.get(k)
            row.append(f"{fmt_time(v['cold'])} / {fmt_time(v['warm'])}" if v and "cold" in v
                       else "—")
        rows.append(row)
    threads = " / ".join(f"{t} thread{'s' if t > 1 else ''}" for t in per_thread)
    return (f"Median per call of loss and all gradients ({threads} per library):\n\n"
            + run.markdown_table(["workload"] + [IMPLS[k][0] for k in keys], rows))


def compile_table(comp):
    run = _import_run()
    keys = [k for k in COMPILERS if any(k in c for c in comp.values())]
    rows = []
    for name, c in comp.items():
        row = [f"`{name}`"]
        for k in keys:
            v = c.get(k)
            if v is None:
                row.append("n/a")
            elif "error" in v:
                row.append("error")
            else:
                row.append(f"{fmt_time(v['cold'])} / {fmt_time(v['warm'])}")
        rows.append(row)
    imports = {}
    for c in comp.values():
        for k, v in c.items():
            if v and "import_s" in v:
                imports.setdefault(k, []).append(v["import_s"])
    note = ", ".join(f"{IMPLS[k][0]} {fmt_time(statistics.median(v))}" for k, v in imports.items())
    seeds = {k: v["seed_s"] for c in comp.values() for k, v in c.items() if v and "seed_s" in v}
    seed_note = ", ".join(f"{IMPLS[k][0]} {fmt_time(v)}" for k, v in seeds.items())
    return ("Compile cost, cold / warm: build + first call in a fresh process. Cold: the cache "
            "folder holds only a trivial function compiled before (so the once-per-installation "
            "work is not counted per workload); warm: the cache filled by the cold run. Not "
            f"included: importing the library ({note}); the trivial function itself, the first "
            f"ever in an empty cache, took {seed_note}.\n\n"
            + run.markdown_table(["workload"] + [IMPLS[k][0] for k in keys], rows))


def check_table(results):
    """Max relative difference of every implementation from symgrad, per workload."""
    run = _import_run()
    keys = [k for k in IMPLS if k != "sg_numba"]
    rows = []
    for n, r in results.items():
        row = [f"`{n}`"]
        for k in keys:
            if k in r.get("wrong", {}):
                row.append("**wrong**")
            elif k in r.get("check", {}):
                row.append(f"{r['check'][k]:.0e}")
            else:
                row.append("n/a")
        rows.append(row)
    return ("Largest normwise relative difference from symgrad (loss and every gradient; at most "
            f"{RTOL:g} passes):\n\n" + run.markdown_table(["workload"] + [IMPLS[k][0] for k in keys],
                                                          rows))


def targets(per_thread, comp):
    """The issue's targets, met or missed, with the figures."""
    lines = []
    for threads, results in per_thread.items():
        behind = []
        for n, r in results.items():
            st = r.get("stats", {})
            if "sg_numba" not in st:
                continue
            for k in PEERS:  # by the paired per-round ratio, robust to a drifting machine
                ratio = r["ratio_to_sg"].get(k, {}).get("median")
                if ratio is not None and ratio < 1.0:
                    behind.append(f"{n}: {IMPLS[k][0]} {ratio:.2f}×")
        lines.append(f"- ahead of every peer at {threads} thread(s) (peer time / symgrad time "
                     "below 1 is a miss): "
                     + ("**met**" if not behind else "**missed** (" + "; ".join(behind) + ")"))
        close = []
        for n in BLAS_BOUND:
            r = results.get(n, {})
            if "hand_numba" in r.get("ratio_to_sg", {}):
                ratio = 1.0 / r["ratio_to_sg"]["hand_numba"]["median"]
                close.append((n, ratio))
        if close:
            ok = all(x <= 1.05 for _, x in close)
            lines.append(f"- within 1.05× of hand Numba where BLAS dominates ({threads} thread(s)): "
                         + ("**met**" if ok else "**missed**") + " ("
                         + ", ".join(f"{n} {x:.2f}×" for n, x in close) + ")")
        chain = results.get("elementwise_chain", {}).get("samples", {})
        if threads > 1 and "sg_parallel" in chain and "jax" in chain:
            ratio = _import_run().paired_ratio(chain["jax"], chain["sg_parallel"])["median"]
            lines.append("- elementwise_chain with parallel=True ahead of JAX "
                         f"({threads} threads): " + ("**met**" if ratio > 1.0 else "**missed**")
                         + f" (JAX time / symgrad parallel time {ratio:.2f})")
        s = results.get("scalar_slide", {}).get("stats", {}).get("sg_numba")
        if s:
            lines.append(f"- scalar_slide at most 1 µs per call ({threads} thread(s)): "
                         + ("**met**" if s["median"] <= 1e-6 else "**missed**")
                         + f" ({fmt_time(s['median'])})")
    sgc = {n: c["sg_numba"] for n, c in comp.items() if c.get("sg_numba") and "cold" in c["sg_numba"]}
    if sgc:
        cold_ok = all(v["cold"] <= 2.0 for v in sgc.values())
        warm_ok = all(v["warm"] <= 0.1 for v in sgc.values())
        lines.append("- cold compile at most 2 s: " + ("**met**" if cold_ok else "**missed**") + " ("
                     + ", ".join(f"{n} {fmt_time(v['cold'])}" for n, v in sgc.items()) + ")")
        lines.append("- warm start at most 0.1 s: " + ("**met**" if warm_ok else "**missed**") + " ("
                     + ", ".join(f"{n} {fmt_time(v['warm'])}" for n, v in sgc.items()) + ")")
    return "Targets (issue 13):\n\n" + "\n".join(lines)


def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return "load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def report(per_thread, comp, meta) -> str:
    some = next((r for res in per_thread.values() for r in res.values() if "versions" in r), {})
    vers = ", ".join(f"{k} {v}" for k, v in some.get("versions", {}).items())
    blas = "; ".join(f"{p.get('internal_api')} {p.get('version')} ({p.get('prefix')}, "
                     f"{p.get('num_threads')} threads)"
                     for p in some.get("threadpools", []) if p.get("user_api") == "blas")
    skipped = {}
    for res in per_thread.values():
        for r in res.values():
            for k, why in r.get("skipped", {}).items():
                skipped.setdefault((k, why), []).append(r["workload"])
    wrong = [f"- **{IMPLS[k][0]} on `{r['workload']}` disagrees with symgrad**: {'; '.join(p)}"
             for res in per_thread.values() for r in res.values()
             for k, p in r.get("wrong", {}).items()]
    parts = [
        f"## symgrad vs JAX, PyTorch, PyTensor, autograd ({meta['date']})",
        f"Machine: {meta['machine']['cpu']}, {meta['machine']['cpu_count']} CPUs, "
        f"{meta['machine']['platform']}. Versions: {vers}. BLAS: {blas or 'unknown'}.",
        f"Command: `{meta['command']}` ({meta['rounds']} rounds, batches of "
        f"{meta['batch_ms']:.0f} ms). Every result was checked against symgrad's first "
        f"(loss and gradients, normwise relative difference at most {RTOL:g}).",
        f"What else was running (`uptime`): before `{meta['uptime_before']}`; "
        f"after `{meta['uptime_after']}`.",
    ]
    if meta.get("check_only"):
        parts += [check_table(res) for res in per_thread.values()]
    else:
        parts.append(summary_table(per_thread, comp))
        parts += [percall_table(res, t) for t, res in per_thread.items()]
    if comp:
        parts.append(compile_table(comp))
    if not (meta.get("check_only") or meta.get("user_loss")):
        parts.append(targets(per_thread, comp))
    notes = sorted({n for res in per_thread.values() for r in res.values()
                    for n in r.get("notes", [])})
    if notes:
        parts.append("\n".join(f"- {n}." for n in notes))
    if skipped:
        parts.append("Not run:\n\n" + "\n".join(
            f"- {IMPLS[k][0]} ({', '.join(sorted(set(ns)))}): {why}"
            for (k, why), ns in skipped.items()))
    if wrong:
        parts.append("\n".join(wrong))
    return "\n\n".join(parts) + "\n"


def plot(per_thread, comp, path: Path) -> str:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed: no chart"
    import numpy as np

    panels = len(per_thread) + (1 if comp else 0)
    fig, axes = plt.subplots(1, panels, figsize=(7.5 * panels, 5.2), squeeze=False)
    colors = dict(zip(IMPLS, plt.get_cmap("tab20").colors))  # (more implementations than tab10)
    for ax, (threads, results) in zip(axes[0], per_thread.items()):
        names = [n for n, r in results.items() if "ratio_to_sg" in r]
        keys = [k for k in IMPLS if k != "sg_numba" and any(k in results[n]["ratio_to_sg"]
                                                            for n in names)]
        width = 0.85 / max(len(keys), 1)
        xs = np.arange(len(names))
        for i, k in enumerate(keys):
            rs = [results[n]["ratio_to_sg"].get(k) for n in names]
            med = np.array([r["median"] if r else np.nan for r in rs])
            lo = med - np.array([r["q1"] if r else np.nan for r in rs])
            hi = np.array([r["q3"] if r else np.nan for r in rs]) - med
            ax.bar(xs + (i - (len(keys) - 1) / 2) * width, med, width, yerr=[lo, hi],
                   label=IMPLS[k][0], color=colors[k], capsize=1.5)
        ax.axhline(1.0, color="k", lw=1)
        ax.set_yscale("log")
        ax.set_xticks(xs)
        ax.set_xticklabels(names, rotation=20, ha="right")
        ax.set_ylabel("time / symgrad time, paired median and IQR")
        ax.set_title(f"per call, {threads} thread{'s' if threads > 1 else ''}: above 1 = symgrad faster")
        ax.grid(axis="y", which="both", alpha=0.3)
        ax.legend(fontsize=7, ncol=2)
    if comp:
        ax = axes[0][-1]
        names = list(comp)
        keys = [k for k in COMPILERS if any(k in c and "cold" in c[k] for c in comp.values())]
        width = 0.85 / max(len(keys), 1)
        xs = np.arange(len(names))
        for i, k in enumerate(keys):
            cold = [comp[n].get(k, {}).get("cold", np.nan) for n in names]
            warm = [comp[n].get(k, {}).get("warm", np.nan) for n in names]
            off = xs + (i - (len(keys) - 1) / 2) * width
            ax.bar(off, cold, width, color=colors[k], alpha=0.45)
            ax.bar(off, warm, width, color=colors[k], label=IMPLS[k][0])
        ax.set_yscale("log")
        ax.set_xticks(xs)
        ax.set_xticklabels(names, rotation=20, ha="right")
        ax.set_ylabel("seconds: pale = cold compile, solid = warm start")
        ax.set_title("compile cost (lower is better)")
        ax.grid(axis="y", which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return f"chart written to {path}"


# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------


def parse_args(argv):
    p = argparse.ArgumentParser(
        prog="benchmarks/peers.py",
        description="symgrad vs JAX, PyTorch, PyTensor and autograd: checked, then timed.")
    p.add_argument("--only", action="append", metavar="NAME",
                   help=f"workloads (repeatable or comma-separated): {', '.join(ORDER)}")
    p.add_argument("--loss", metavar="MODULE:FUNCTION",
                   help="time your own loss instead (protocol: see the module docstring)")
    p.add_argument("--impls", help="comma-separated implementations to run (default all): "
                   + ", ".join(IMPLS))
    p.add_argument("--threads", default="1",
                   help="threads per library, or a comma list such as 1,2 (default 1)")
    p.add_argument("--quick", action="store_true", help="fewer rounds and shorter batches")
    p.add_argument("--tiny", action="store_true", help="small shapes (for tests)")
    p.add_argument("--rounds", type=int, help="interleaved rounds (default 21, quick 7)")
    p.add_argument("--batch-ms", type=float, help="one batch of calls (default 25, quick 10)")
    p.add_argument("--check-only", action="store_true", help="check every peer, time nothing")
    p.add_argument("--no-compile", action="store_true", help="skip the compile-cost children")
    p.add_argument("--compile-workloads", metavar="NAMES",
                   help="measure compile cost on these workloads only (comma-separated; "
                        "default: every workload run)")
    p.add_argument("--compile-repeats", type=int, default=1,
                   help="fresh-process repeats of cold and warm (median; default 1)")
    p.add_argument("--cache-dir", metavar="DIR",
                   help="keep the timing processes' compiled code here between runs (default: a "
                        "temporary folder); the compile-cost processes always start empty")
    p.add_argument("--out", help=f"folder for peers.md/.png/.json (default {RESULTS})")
    p.add_argument("--report-from", metavar="JSON",
                   help="only render peers.md and peers.png again from a saved peers.json")
    p.add_argument("--no-write", action="store_true", help="print only, write no files")
    p.add_argument("--child", choices=["timing"], help=argparse.SUPPRESS)
    p.add_argument("--child-compile", help=argparse.SUPPRESS)
    p.add_argument("--child-inputs", help=argparse.SUPPRESS)
    p.add_argument("--child-seed", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.raw_argv = list(argv)
    names = [n.strip() for item in args.only or [] for n in item.split(",") if n.strip()]
    unknown = [n for n in names if n not in ORDER]
    if unknown:
        p.error(f"unknown workload(s) {unknown}; choose from {ORDER}")
    if args.loss and names:
        p.error("--loss and --only exclude each other")
    args.names = names or list(ORDER)
    args.impls = [k.strip() for k in args.impls.split(",")] if args.impls else []
    bad = [k for k in args.impls if k not in IMPLS]
    if bad:
        p.error(f"unknown implementation(s) {bad}; choose from {list(IMPLS)}")
    if args.impls and "sg_numba" not in args.impls:
        args.impls.insert(0, "sg_numba")  # the reference every other result is checked against
    try:
        args.thread_list = [int(t) for t in str(args.threads).split(",")]
    except ValueError:
        p.error(f"--threads takes numbers such as 1 or 1,2, got {args.threads!r}")
    if any(t < 1 for t in args.thread_list):
        p.error("--threads must be at least 1")
    args.threads = args.thread_list[0]
    args.rounds = args.rounds or (7 if args.quick or args.tiny else 21)
    args.batch_s = (args.batch_ms or (10.0 if args.quick or args.tiny else 25.0)) / 1e3
    return args


def main(argv=None) -> int:
    """Run the comparison (``argv`` as on the command line); 0 if every check passed."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.child == "timing":
        print(CHILD_MARK + json.dumps(child_timing(args), default=float), flush=True)
        return 0
    if args.child_compile:
        print(CHILD_MARK + json.dumps(child_compile(args), default=float), flush=True)
        return 0
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    if args.report_from:  # render the Markdown and the chart again from a saved run
        saved = json.loads(Path(args.report_from).read_text())
        per_thread = {int(t): r for t, r in saved["per_call"].items()}
        text = report(per_thread, saved["compile"], saved["meta"])
        print(text)
        if not args.no_write:
            out = Path(args.out) if args.out else RESULTS
            (out / "peers.md").write_text(text)
            log(plot(per_thread, saved["compile"], out / "peers.png"))
        return 0
    tmp = Path(tempfile.mkdtemp(prefix="symgrad_peers_"))
    try:
        return _main(args, tmp, log)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _child_argv(args, name):
    argv = ["--loss", args.loss] if args.loss else ["--only", name]
    if args.tiny:
        argv.append("--tiny")
    if args.impls:
        argv += ["--impls", ",".join(args.impls)]
    return argv


def _main(args, tmp: Path, log) -> int:
    started = time.perf_counter()
    names = [args.loss] if args.loss else args.names
    if args.loss:
        _probe_problem(args, args.loss)  # a wrong spec or dict fails here, with its reason
    meta = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": machine(), "uptime_before": uptime(), "rounds": args.rounds,
            "batch_ms": args.batch_s * 1e3, "check_only": args.check_only,
            "user_loss": args.loss,
            "command": "python benchmarks/peers.py " + " ".join(args.raw_argv)}
    per_thread, failed = {}, False
    for threads in args.thread_list:
        # one cache folder for every timing child: compile cost is measured apart (below)
        env = {**thread_env(threads), **cache_env("all", Path(args.cache_dir or tmp / "cache"))}
        results = {}
        for name in names:
            log(f"[{threads} thread(s)] {name}: building, checking"
                + ("" if args.check_only else " and timing") + " ...")
            argv = ["--child", "timing", "--threads", str(threads), "--rounds", str(args.rounds),
                    "--batch-ms", str(args.batch_s * 1e3), *_child_argv(args, name)]
            if args.check_only:
                argv.append("--check-only")
            res = run_child(argv, env, log)
            label = res.get("workload", name)
            results[label] = res
            failed |= "error" in res or bool(res.get("wrong"))
            for k, why in res.get("skipped", {}).items():
                log(f"  skipped {IMPLS[k][0]}: {why}")
            for k, problems in res.get("wrong", {}).items():
                log(f"  WRONG {IMPLS[k][0]}: {'; '.join(problems)}")
            if "stats" in res:
                log("  " + ", ".join(f"{IMPLS[k][0]} {fmt_time(s['median'])}"
                                     for k, s in res["stats"].items()))
        per_thread[threads] = results

    comp = {}
    if not (args.no_compile or args.check_only):
        chosen = args.compile_workloads.split(",") if args.compile_workloads else names
        comp = compile_costs(args, [n for n in names if n in chosen], tmp, log)
    meta["uptime_after"] = uptime()
    text = report(per_thread, comp, meta)
    print(text)
    if not args.no_write:
        out = Path(args.out) if args.out else RESULTS
        out.mkdir(parents=True, exist_ok=True)
        (out / "peers.md").write_text(text)
        (out / "peers.json").write_text(json.dumps(
            {"meta": meta, "per_call": {str(t): r for t, r in per_thread.items()},
             "compile": comp}, indent=1, default=float))
        if not args.check_only:
            log(plot(per_thread, comp, out / "peers.png"))
        log(f"results written to {out}")
    log(f"done in {time.perf_counter() - started:.0f} s")
    return 1 if failed else 0


def compile_costs(args, names, tmp: Path, log) -> dict:
    """Cold and warm build + first call of every compiling tool, fresh process each.

    Every cold run starts from a cache folder in which a trivial function of its own was
    compiled (copied from one seed folder per tool), so what a tool does once per
    installation (PyTensor compiling its C support modules, Inductor its headers) is not
    counted against each workload; the seed's own time is kept as ``seed_s``.
    """
    import numpy as np

    comp, seeds = {}, {}
    threads = args.thread_list[0]
    env_threads = thread_env(threads)
    for name in names:
        argv_inputs = []
        if not args.loss:
            path = tmp / f"inputs_{name}.npz"
            np.savez(path, **make_builtin_inputs(name, args.tiny))
            argv_inputs = ["--child-inputs", str(path)]
        label = _probe_problem(args, name).name if args.loss else name
        row = {}
        for key in COMPILERS:
            if args.impls and key not in args.impls:
                continue
            if key != "sg_numba" and unavailable(key, _probe_problem(args, name)):
                continue
            base = ["--child-compile", key, "--threads", str(threads)]
            if key not in seeds:
                seed = tmp / f"seed_{key}"
                seeds[key] = (seed, run_child(base + ["--child-seed"], cache_env(key, seed) |
                                              env_threads, log))
            seed, seeded = seeds[key]
            if "error" in seeded:
                row[key] = {"error": "the seed child failed (see the log)"}
                continue
            cold, warm, imports = [], [], []
            for r in range(args.compile_repeats):
                cache = tmp / f"compile_{name}_{key}_{r}"
                shutil.copytree(seed, cache)
                env = {**env_threads, **cache_env(key, cache)}
                argv = base + [*_child_argv(args, name), *argv_inputs]
                c = run_child(argv, env, log)
                w = run_child(argv, env, log) if "error" not in c else c
                shutil.rmtree(cache, ignore_errors=True)
                if "error" in c or "error" in w:
                    break
                cold.append(c["first_s"])
                warm.append(w["first_s"])
                imports += [c["import_s"], w["import_s"]]
            if len(cold) < args.compile_repeats:
                row[key] = {"error": "a compile child failed (see the log)"}
                continue
            row[key] = {"cold": statistics.median(cold), "warm": statistics.median(warm),
                        "import_s": statistics.median(imports), "cold_all": cold,
                        "warm_all": warm, "seed_s": seeded["first_s"]}
            log(f"  compile {label:18s} {IMPLS[key][0]:18s} cold {fmt_time(row[key]['cold'])}, "
                f"warm {fmt_time(row[key]['warm'])}")
        comp[label] = row
    return comp


_PROBE = {}


def _probe_problem(args, name):
    """A stand-in problem that only says whether a peer loss exists (for unavailable())."""
    if not args.loss:
        return Problem(name, None, [], {}, PEER_LOSSES[name])
    if name not in _PROBE:
        _PROBE[name] = user_problem(args.loss)
    return _PROBE[name]


if __name__ == "__main__":
    sys.exit(main())
