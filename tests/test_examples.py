"""The demo and every example run end to end (as a user runs them) and say they succeeded.

Each script runs in a fresh interpreter (``sys.executable``) with small sizes (``--quick``),
on the library's default backend (no ``--backend`` flag), and those that draw nothing once
more on ``numpy``; the scripts that draw write their PNGs into a temporary folder
(``--out``), checked here.
The kernel cache folder set up in ``conftest.py`` is inherited through the environment.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"

# script arguments, and lines the output must contain
CASES = {
    "demo": (
        ["-m", "symgrad.demo"],
        ["f = -12", "df/dz = 3", "symbolic df/dz = x + y", "\nOK\n", "loss falls"],
    ),
    "backprop_slide": (
        [str(EXAMPLES / "backprop_slide.py")],
        ["df/dx = df/dq * dq/dx = -4 * 1 = -4", "matches sg.value_and_grad: OK"],
    ),
    "svm_vs_hand": (
        [str(EXAMPLES / "svm_vs_hand.py"), "--quick"],
        ["match the hand derivations: OK"],
    ),
    "train_softmax": (
        [str(EXAMPLES / "train_softmax.py"), "--quick"],
        ["final validation accuracy"],
    ),
    "two_layer_net": (
        [str(EXAMPLES / "two_layer_net.py"), "--quick"],
        ["first 50 steps: max relative difference", "-> OK"],
    ),
    "hinge_two_layer": (
        [str(EXAMPLES / "hinge_two_layer.py"), "--quick"],
        ["hinge    loss:", "softmax  loss:", "both losses trained: OK"],
    ),
    "digits_classifier": (
        [str(EXAMPLES / "digits_classifier.py"), "--quick"],
        ["test accuracy", "(target 97%) -> OK"],
    ),
    "regularization": (
        [str(EXAMPLES / "regularization.py"), "--quick"],
        ["lambda = 0.001", "lambda = 0.01", "lambda = 0.1", "all trained: OK"],
    ),
    "activations": (
        [str(EXAMPLES / "activations.py"), "--quick"],
        ["d/dx = 1 - tanh(x)**2", "derivatives match finite differences: OK"],
    ),
}

# the pictures each script writes into its --out folder
PICTURES = {
    "two_layer_net": ["two_layer_net.png"],
    "hinge_two_layer": ["hinge_two_layer.png"],
    "digits_classifier": ["digits_curves.png"],
    "regularization": ["regularization.png"],
    "activations": ["activations.png"],
}


def run(args):
    env = dict(os.environ)
    env.pop("SYMGRAD_BACKEND", None)  # the scripts' override: the default must be tested
    # small matrices: threaded BLAS only adds contention on a shared 2-core CI machine
    env.setdefault("OPENBLAS_NUM_THREADS", "1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


# Every script on the default backend; the non-drawing ones on numpy too (the drawing ones
# train for a while, and both backends are compared op by op elsewhere: CI time).
RUNS = [(name, None) for name in CASES] + [
    (name, "numpy") for name in CASES if name not in PICTURES
]


@pytest.mark.parametrize(
    "name, backend", RUNS, ids=[f"{n}-{b or 'default-backend'}" for n, b in RUNS]
)
def test_script_runs(name, backend, tmp_path):
    args, expected = CASES[name]
    if backend is not None:
        args = [*args, "--backend", backend]
    if name in PICTURES:
        args = [*args, "--out", str(tmp_path / "out")]
    result = run(args)
    output = result.stdout
    assert result.returncode == 0, f"{name} failed:\n{output}\n{result.stderr}"
    for line in expected:
        assert line in output, f"{name}: {line!r} not in output:\n{output}"
    for picture in PICTURES.get(name, []):
        check_png(tmp_path / "out" / picture)
    if name == "digits_classifier":
        accuracy = float(re.search(r"test accuracy ([\d.]+)%", output).group(1))
        assert accuracy >= 97.0, output


def check_png(path):
    """A PNG of sane size: a few KB to 1 MB, between 300 and 2000 pixels a side, not blank."""
    assert path.exists(), f"{path.name} was not written"
    size = path.stat().st_size
    assert 5_000 < size < 1_000_000, f"{path.name}: {size} bytes"
    image = pytest.importorskip("matplotlib.image").imread(path)
    height, width = image.shape[:2]
    assert 300 <= width <= 2000 and 200 <= height <= 2000, f"{path.name}: {width}x{height}"
    assert np.std(image[..., :3]) > 0.05, f"{path.name} looks blank"


def test_two_layer_trajectory_equals_the_slides():
    """The slide's NumPy program and symgrad (MLP + fit): the same losses to 1e-8 relative
    over the first 50 steps (the script's check, asserted here on its numbers)."""
    sys.path.insert(0, str(EXAMPLES))
    try:
        import two_layer_net
    finally:
        sys.path.remove(str(EXAMPLES))
    hand, ours = two_layer_net.trajectories(50, seed=0, kw={"backend": "numpy"})
    assert len(hand) == len(ours) == 50
    np.testing.assert_allclose(ours, hand, rtol=1e-8, atol=0)
    assert hand[-1] < 0.5 * hand[0]  # it trains


def test_demo_entry_point_returns_status(capsys):
    """``symgrad-demo`` is ``sys.exit(symgrad.demo:main())``: main takes argv and returns 0."""
    from symgrad import demo

    assert demo.main(["--backend", "numpy", "--seed", "3"]) == 0
    out = capsys.readouterr().out
    assert "backend=numpy, seed=3" in out
    assert "MISMATCH" not in out
