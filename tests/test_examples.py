"""The demo and every example run end to end (as a user runs them) and say they succeeded.

Each script runs in a fresh interpreter (``sys.executable``) with small sizes (``--quick``),
once on the library's default backend (no ``--backend`` flag) and once on ``numpy``.
The kernel cache folder set up in ``conftest.py`` is inherited through the environment.
"""

import os
import subprocess
import sys
from pathlib import Path

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
    "train_two_layer": (
        [str(EXAMPLES / "train_two_layer.py"), "--quick"],
        ["identical to rounding", "relu: test accuracy", "gelu: test accuracy", "all done: OK"],
    ),
}


def run(args):
    env = dict(os.environ)
    env.pop("SYMGRAD_BACKEND", None)  # the scripts' override: the default must be tested
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


@pytest.mark.parametrize("backend", [None, "numpy"], ids=["default-backend", "numpy"])
@pytest.mark.parametrize("name", list(CASES))
def test_script_runs(name, backend):
    args, expected = CASES[name]
    if backend is not None:
        args = [*args, "--backend", backend]
    result = run(args)
    output = result.stdout
    assert result.returncode == 0, f"{name} failed:\n{output}\n{result.stderr}"
    for line in expected:
        assert line in output, f"{name}: {line!r} not in output:\n{output}"


def test_demo_entry_point_returns_status(capsys):
    """``symgrad-demo`` is ``sys.exit(symgrad.demo:main())``: main takes argv and returns 0."""
    from symgrad import demo

    assert demo.main(["--backend", "numpy", "--seed", "3"]) == 0
    out = capsys.readouterr().out
    assert "backend=numpy, seed=3" in out
    assert "MISMATCH" not in out
