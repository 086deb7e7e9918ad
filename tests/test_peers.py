"""benchmarks/peers.py: the comparison with JAX, PyTorch, PyTensor and autograd.

PyTorch and autograd are in the ``test`` extra, so the check that every installed peer
computes symgrad's loss and gradients always runs with them (JAX and PyTensor join where
they are installed: a venv of their own, see the README).  Also: the peer losses are the
reference workloads' maths (evaluated with NumPy itself), and ``--loss MODULE:FUNCTION``
times a user's own loss with symgrad alone.

The peer check leaves torch.compile out (it compiles for about 20 s per workload); set
``SYMGRAD_TEST_TORCH_COMPILE=1`` to include it.
"""

import importlib.util
import json
import os
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCH))

import peers  # noqa: E402
import reference  # noqa: E402
from check_reference import SMALL_SHAPES  # noqa: E402

PEER_MODULES = {"jax": ["jax"], "torch": ["torch"], "pytensor": ["pytensor_c", "pytensor_numba"],
                "autograd": ["autograd"]}


def _installed(module):
    return importlib.util.find_spec(module) is not None


@pytest.mark.parametrize("name", peers.ORDER)
def test_peer_losses_are_the_reference_workloads(name):
    """Each workload written once for the peers gives the hand-written NumPy loss."""
    from scipy.special import erf, logsumexp

    xp = peers.NumpyLike(np, erf, logsumexp)
    inputs = reference.WORKLOADS[name].make_inputs(np.random.default_rng(3), **SMALL_SHAPES[name])
    expected, _ = reference.WORKLOADS[name].numpy(**inputs)
    got = peers.PEER_LOSSES[name](xp, **inputs)
    assert abs(got - expected) <= 1e-12 * max(1.0, abs(expected)), (got, expected)


def test_installed_peers_agree_with_symgrad(tmp_path):
    """The harness's own check (loss and gradients to 1e-9) on small shapes, every workload."""
    missing = [m for m in ("torch", "autograd") if not _installed(m)]
    assert not missing, f"{missing} missing: the test extra installs them (pip install -e '.[test]')"
    installed = [m for m in PEER_MODULES if _installed(m)]
    impls = ["sg_numba"] + [k for m in installed for k in PEER_MODULES[m]]
    if "torch" in installed and os.environ.get("SYMGRAD_TEST_TORCH_COMPILE") == "1":
        impls.append("torch_compile")
    status = peers.main(["--tiny", "--check-only", "--impls", ",".join(impls),
                         "--out", str(tmp_path)])
    results = json.loads((tmp_path / "peers.json").read_text())["per_call"]["1"]
    assert set(results) == set(peers.ORDER)
    for name, res in results.items():
        assert not res.get("wrong"), (name, res["wrong"])
        assert not res.get("skipped"), (name, res["skipped"])
        for key in impls[1:]:
            assert res["check"][key] <= peers.RTOL, (name, key, res["check"][key])
    assert status == 0
    assert "Largest normwise relative difference" in (tmp_path / "peers.md").read_text()


USER_LOSS = '''
import numpy as np
import symgrad as sg


def tiny():
    x = sg.tensor("x", ("n",))
    w = sg.tensor("w", ("n",))
    loss = sg.sum(sg.tanh(w * x) ** 2) + 0.5 * sg.sum(w ** 2)
    rng = np.random.default_rng(0)
    return {
        "name": "tiny_user_loss",
        "loss": loss,
        "wrt": [w],
        "inputs": {"x": rng.standard_normal(7), "w": rng.standard_normal(7)},
    }


def broken():
    return {"loss": None}
'''


def test_user_loss_entry_point_symgrad_alone(tmp_path, monkeypatch):
    """``--loss MODULE:FUNCTION`` checks and times a user's loss; without a ``peer_loss``
    only symgrad runs (its Numba backend, serial and ``parallel=True``, and its
    interpreter), every peer says why it did not."""
    (tmp_path / "my_tiny_loss.py").write_text(textwrap.dedent(USER_LOSS))
    monkeypatch.chdir(tmp_path)  # the module is found from the current directory
    out = tmp_path / "out"
    status = peers.main(["--loss", "my_tiny_loss:tiny", "--rounds", "2", "--batch-ms", "2", "--no-compile", "--out", str(out)])
    assert status == 0
    res = json.loads((out / "peers.json").read_text())["per_call"]["1"]["tiny_user_loss"]
    assert set(res["stats"]) == {"sg_numba", "sg_parallel", "sg_interp"}
    assert res["check"]["sg_interp"] <= peers.RTOL
    assert res["stats"]["sg_numba"]["median"] > 0
    assert "no hand-written version" in res["skipped"]["hand_numpy"]
    for key in peers.PEERS:
        assert "no 'peer_loss'" in res["skipped"][key]
    text = (out / "peers.md").read_text()
    assert "`tiny_user_loss`" in text and "symgrad interp" in text


def test_user_loss_errors_name_what_is_wrong(tmp_path, monkeypatch):
    (tmp_path / "my_tiny_loss.py").write_text(textwrap.dedent(USER_LOSS))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit, match="MODULE:FUNCTION"):
        peers.main(["--loss", "my_tiny_loss"])
    with pytest.raises(SystemExit, match="cannot load 'nothing'"):
        peers.main(["--loss", "my_tiny_loss:nothing"])
    with pytest.raises(SystemExit, match="'wrt', 'inputs'"):
        peers.main(["--loss", "my_tiny_loss:broken"])
