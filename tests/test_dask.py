"""Data-parallel value and gradients on Dask (symgrad/dask.py, symgrad/batch.py) and
compiled functions that travel (ir/serialize.py, Compiled pickling).

The oracle is the one-process call of the same compiled function: chunked results must
equal it to 1e-12 relative.  Two clusters are shared by the module: one in this process
(threads) and one with 2 worker processes whose kernel cache starts empty.
"""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys

import numpy as np
import pytest

import symgrad as sg
from symgrad.batch import RULES, analyse
from symgrad.ir import serialize
from symgrad.ir.op import OPS

da = pytest.importorskip("dask.array", reason="needs the dask extra: pip install -e '.[dask]'")
distributed = pytest.importorskip(
    "distributed", reason="needs the dask extra: pip install -e '.[dask]'"
)

X = sg.tensor("X", ("N", "D"))
y = sg.tensor("y", ("N",), dtype="int64")
W = sg.tensor("W", ("D", "C"))
b = sg.tensor("b", ("C",))
SCORES = X @ W + b

LOSSES = {
    "mean": sg.losses.softmax_cross_entropy(SCORES, y) + 1e-3 * sg.losses.l2(W),
    "sum": sg.losses.multiclass_hinge(SCORES, y, reduction="sum"),
    "sum+param": sg.losses.multiclass_hinge(SCORES, y, reduction="sum") + 0.5 * sg.losses.l2(W),
}
VG = {k: sg.value_and_grad(f, [W, b]) for k, f in LOSSES.items()}

N, D, C = 240, 5, 4
RNG = np.random.default_rng(14)
DATA = {"X": RNG.normal(size=(N, D)), "y": RNG.integers(0, C, N)}
PARAMS = {"W": 0.3 * RNG.normal(size=(D, C)), "b": 0.1 * RNG.normal(size=C)}

CHUNKINGS = {"one": (N,), "uneven": (37, 100, 3, 60, 40), "many": (12,) * 20}


def dask_data(chunks):
    return {
        "X": da.from_array(DATA["X"], chunks=(chunks, D)),
        "y": da.from_array(DATA["y"], chunks=(chunks,)),
    }


def assert_close(got, want, rtol=1e-12):
    (v, gs), (v0, gs0) = got, want
    assert abs(v - v0) <= rtol * abs(v0), (v, v0)
    for g, g0 in zip(gs, gs0, strict=True):
        scale = np.max(np.abs(g0))
        assert np.max(np.abs(g - g0)) <= rtol * scale, np.max(np.abs(g - g0)) / scale


@pytest.fixture(scope="module")
def threads():
    with (
        distributed.LocalCluster(
            processes=False, n_workers=2, threads_per_worker=1, dashboard_address=":0"
        ) as cluster,
        distributed.Client(cluster, set_as_default=False) as client,
    ):
        yield client


@pytest.fixture(scope="module")
def processes(tmp_path_factory):
    cache = tmp_path_factory.mktemp("worker-cache")
    with (
        distributed.LocalCluster(
            processes=True,
            n_workers=2,
            threads_per_worker=1,
            dashboard_address=":0",
            env={"SYMGRAD_CACHE_DIR": str(cache), "PYTHONPATH": os.pathsep.join(sys.path)},
        ) as cluster,
        distributed.Client(cluster, set_as_default=False) as client,
    ):
        client.cache = cache
        yield client


# --- exact combination ---------------------------------------------------------------


@pytest.mark.parametrize("chunking", sorted(CHUNKINGS))
@pytest.mark.parametrize("kind", sorted(LOSSES))
def test_chunked_equals_one_process(threads, kind, chunking):
    vg = VG[kind]
    assert sg.dask.combination_of(vg, "N") == kind
    got = sg.dask.value_and_grad(vg, client=threads, **dask_data(CHUNKINGS[chunking]), **PARAMS)
    assert_close(got, vg(**DATA, **PARAMS))


@pytest.mark.parametrize("kind", ["mean", "sum+param"])
def test_chunked_on_two_worker_processes(processes, kind):
    vg = VG[kind]
    got = sg.dask.value_and_grad(vg, client=processes, **dask_data(CHUNKINGS["uneven"]), **PARAMS)
    assert_close(got, vg(**DATA, **PARAMS))


def test_minibatch_rows_across_chunks(threads):
    vg = VG["mean"]
    step = sg.dask.Step(vg, threads, **dask_data(CHUNKINGS["uneven"]))
    rows = np.random.default_rng(3).choice(N, 50, replace=False)
    got = step(PARAMS, rows=rows)
    assert_close(got, vg(X=DATA["X"][rows], y=DATA["y"][rows], **PARAMS))
    assert_close(step(PARAMS, rows=rows), got, rtol=0)  # the same numbers every time


def test_single_gradient_and_dict_packing_follow_vg(threads):
    vg = sg.value_and_grad(LOSSES["mean"], W)
    value, grad = sg.dask.value_and_grad(vg, client=threads, **dask_data((100, 140)), **PARAMS)
    v0, g0 = vg(**DATA, **PARAMS)
    assert isinstance(value, float) and isinstance(grad, np.ndarray)
    assert_close((value, [grad]), (v0, [g0]))


# --- refusal -------------------------------------------------------------------------

REFUSED = {
    "max over rows": (sg.max(sg.sum(SCORES, axis=1)), "max over the batch dim"),
    "variance": (sg.var(X @ sg.tensor("w", ("D",))), "normalisation by a batch statistic"),
    "product of sums": (sg.sum(SCORES) * sg.sum(X), "multiplies two reductions"),
    "square of a sum": (sg.sum(SCORES) ** 2, "power"),
    "mean plus sum": (sg.mean(SCORES) + sg.sum(SCORES), "adds a sum over the batch to a mean"),
    "log of a mean": (sg.log(sg.mean(sg.exp(SCORES))), "log() of a reduction"),
    "slice of rows": (sg.sum(X[1:] @ W), "slices the batch dim"),
    "normalised": (sg.sum(SCORES / sg.sum(SCORES)), "normalisation by a batch statistic"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_refuses_a_reduction_that_does_not_combine(threads, case):
    f, words = REFUSED[case]
    vg = sg.value_and_grad(f, W, backend="numpy")
    given = {**dask_data((100, 140)), **PARAMS, "w": np.ones(D)}
    given = {k: v for k, v in given.items() if k in vg.input_names}
    with pytest.raises(sg.GraphError, match="batch dim 'N'") as info:
        sg.dask.value_and_grad(vg, client=threads, **given)
    assert words in str(info.value)


def test_decomposable_forms_are_recognised():
    w = sg.tensor("w", ("D",))
    assert analyse(sg.losses.squared_error(X @ w, sg.tensor("t", ("N",)), "mean"), "N") == "mean"
    assert analyse(sg.sum((X.T @ X) * 2.0), "N") == "sum"  # a sum of per-row outer products
    assert analyse(2 * sg.mean(SCORES) + sg.mean(sg.exp(SCORES)), "N") == "mean"
    bias = sg.tensor("W1", ("D + 1", "C"))
    assert analyse(sg.losses.softmax_cross_entropy(sg.concatenate([X, 1.0], 1) @ bias, y), "N")
    assert analyse(sg.sum(W**2), "N") == "mean"  # no batch at all: any weighting holds


def test_the_rule_table_names_only_existing_ops():
    assert set(RULES) <= set(OPS), set(RULES) - set(OPS)


def test_bad_calls_are_named(threads):
    vg = VG["mean"]
    with pytest.raises(sg.ArgumentError, match="missing"):
        sg.dask.value_and_grad(vg, client=threads, **dask_data((N,)), W=PARAMS["W"])
    with pytest.raises(sg.ArgumentError, match="batch dim 'N'"):
        sg.dask.value_and_grad(vg, client=threads, X=dask_data((N,))["X"], y=DATA["y"], **PARAMS)
    with pytest.raises(sg.ArgumentError, match="with respect to batch data"):
        sg.dask.value_and_grad(
            sg.value_and_grad(LOSSES["mean"], [X, W]), client=threads, **dask_data((N,)), **PARAMS
        )


# --- compiled functions travel -------------------------------------------------------

CHILD = """
import pickle, sys
import numpy as np
vg, data, params = pickle.loads(sys.stdin.buffer.read())
value, grads = vg(**data, **params)
sys.stdout.buffer.write(pickle.dumps((value, grads, vg.stats.cache_hit)))
"""


def _in_fresh_process(payload, env=None):
    out = subprocess.run(
        [sys.executable, "-c", CHILD],
        input=pickle.dumps(payload),
        capture_output=True,
        check=True,
        env={**os.environ, **(env or {})},
    )
    return pickle.loads(out.stdout)


@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_compiled_unpickles_in_a_fresh_process(backend, tmp_path):
    vg = sg.value_and_grad(LOSSES["mean"], [W, b], backend=backend)
    value, grads, _ = _in_fresh_process((vg, DATA, PARAMS))
    assert_close((value, grads), vg(**DATA, **PARAMS), rtol=0)  # the same kernel: same bits


def test_a_pickled_compiled_is_its_graph_not_machine_code():
    vg = VG["mean"]
    data = pickle.dumps(vg)
    assert b"ELF" not in data and len(data) < 20_000
    assert pickle.loads(data) is pickle.loads(data)  # rebuilt once per process


def test_graph_round_trip_keeps_identity_and_digests_in_another_process():
    z = sg.tensor("z", (3,))
    f = sg.sum(sg.sin(z * np.array([0.1, 1 / 3, 2.5e-300])) ** 2) + sg.sum(W[:, 1:])
    for _ in range(10_000):  # a long chain: no recursion limit on either side
        f = f + 1.0
    assert serialize.loads(serialize.dumps([f]))[0] is f
    code = (
        "import pickle, sys; import symgrad; "
        "f = pickle.loads(sys.stdin.buffer.read()); print(f.digest)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], input=pickle.dumps(f), capture_output=True, check=True
    )
    assert out.stdout.decode().strip() == f.digest


def test_import_symgrad_does_not_import_dask():
    code = "import sys, symgrad; print('dask' in sys.modules, 'distributed' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, check=True)
    assert out.stdout.decode().split() == ["False", "False"]


def _worker_restores():
    import importlib

    c = importlib.import_module("symgrad.compile")  # the module, not the function sg.compile

    return dict(c.restore_counts), [v.stats.cache_hit for v in c._restored.values()]


def test_a_worker_compiles_once_then_loads(processes):
    # a graph no other test compiled: each worker process (with an empty kernel cache)
    # builds it once however many steps run; a fresh process then loads its kernels
    loss = sg.losses.softmax_cross_entropy(SCORES, y) + 0.0123 * sg.losses.l2(W)
    vg = sg.value_and_grad(loss, [W, b])
    before = processes.run(_worker_restores)
    step = sg.dask.Step(vg, processes, **dask_data((12,) * 20))
    for _ in range(3):
        assert_close(step(PARAMS), vg(**DATA, **PARAMS))
    after = processes.run(_worker_restores)
    for worker, (counts, _) in after.items():
        assert counts["built"] - before[worker][0]["built"] == 1, (worker, counts)
        assert counts["reused"] - before[worker][0]["reused"] >= 0
    value, grads, hit = _in_fresh_process(
        (vg, DATA, PARAMS), env={"SYMGRAD_CACHE_DIR": str(processes.cache)}
    )
    assert hit, "a process with the workers' cache folder loads the kernels"
    assert_close((value, grads), vg(**DATA, **PARAMS), rtol=0)


# --- faults --------------------------------------------------------------------------


def test_a_worker_killed_mid_step_gives_the_full_step_or_an_error(processes):
    vg = VG["mean"]
    want = vg(**DATA, **PARAMS)
    step = sg.dask.Step(vg, processes, **dask_data((4,) * 60))
    step(PARAMS)  # warm: the function is built on both workers
    pids = processes.run(os.getpid)
    pending = step.submit(PARAMS)
    victim = sorted(pids.values())[0]
    os.kill(victim, signal.SIGKILL)
    # (should the step finish before the kill lands, the full step is still the only
    # acceptable outcome, so the same checks apply)
    try:
        got = pending.result(timeout=60)
    except sg.dask.DistributedError as exc:
        assert "no result was returned" in str(exc)
    else:
        assert_close(got, want)
    # and the cluster goes on (the surviving worker, or the one the nanny brought back)
    assert_close(sg.dask.Step(vg, processes, **dask_data((60,) * 4))(PARAMS), want)


# --- training ------------------------------------------------------------------------


def _fit(data, client=None, resume=None, epochs=2, seed=5):
    weights = {"W": PARAMS["W"].copy(), "b": PARAMS["b"].copy()}
    opt = sg.nn.optim.SGD(weights, lr=0.1, momentum=0.9)
    history = sg.nn.fit(
        LOSSES["mean"],
        {"W": W, "b": b},
        data,
        opt,
        epochs=epochs,
        batch_size=50,
        seed=seed,
        scores=SCORES,
        labels="y",
        progress=False,
        client=client,
        resume=resume,
    )
    return weights, history


def test_fit_on_dask_data_is_the_one_process_run(threads):
    local, h_local = _fit(DATA)
    spread, h_spread = _fit(dask_data(CHUNKINGS["uneven"]), client=threads)
    for k in local:
        np.testing.assert_allclose(spread[k], local[k], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(h_spread.loss, h_local.loss, rtol=1e-10)
    assert h_spread.train_accuracy == h_local.train_accuracy
    assert h_spread.steps == h_local.steps == 2 * 5


def test_fit_is_the_same_whatever_the_number_of_workers(threads):
    with (
        distributed.LocalCluster(
            processes=False, n_workers=1, threads_per_worker=1, dashboard_address=":0"
        ) as cluster,
        distributed.Client(cluster, set_as_default=False) as one,
    ):
        alone, _ = _fit(dask_data(CHUNKINGS["uneven"]), client=one)
    two, _ = _fit(dask_data(CHUNKINGS["uneven"]), client=threads)
    for k in alone:
        np.testing.assert_array_equal(alone[k], two[k])  # bit for bit


def test_fit_resumes_from_the_last_completed_step(threads, monkeypatch):
    whole, h_whole = _fit(dask_data(CHUNKINGS["uneven"]), client=threads)
    calls = {"n": 0}
    real = sg.dask.Training.__call__

    def fails_at_step_7(self, rows):  # the cluster failing mid-run (a step that raises)
        calls["n"] += 1
        if calls["n"] == 7:
            raise sg.dask.DistributedError("sg.dask: the distributed step failed (simulated)")
        return real(self, rows)

    monkeypatch.setattr(sg.dask.Training, "__call__", fails_at_step_7)
    weights = {"W": PARAMS["W"].copy(), "b": PARAMS["b"].copy()}
    opt = sg.nn.optim.SGD(weights, lr=0.1, momentum=0.9)
    fit_args = dict(epochs=2, batch_size=50, seed=5, scores=SCORES, labels="y", progress=False)
    with pytest.raises(sg.nn.TrainingError, match="resume=error.history") as info:
        sg.nn.fit(
            LOSSES["mean"],
            {"W": W, "b": b},
            dask_data(CHUNKINGS["uneven"]),
            opt,
            client=threads,
            **fit_args,
        )
    assert info.value.history.steps == 6 and (info.value.epoch, info.value.step) == (1, 1)
    history = sg.nn.fit(
        LOSSES["mean"],
        {"W": W, "b": b},
        dask_data(CHUNKINGS["uneven"]),
        opt,
        client=threads,
        resume=info.value.history,
        **fit_args,
    )
    for k in whole:
        np.testing.assert_array_equal(weights[k], whole[k])
    assert history.steps == h_whole.steps and history.loss == h_whole.loss
