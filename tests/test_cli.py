"""The symgrad command: exit status, output and files of each subcommand."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from symgrad import cli
from symgrad.ir.op import OPS
from symgrad.ops.linalg import MATMUL

ROOT = Path(__file__).resolve().parent.parent


def run(capsys, *argv):
    code = cli.main(["--plain", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_check_passes_every_op_and_loss_on_the_interpreter(capsys):
    code, out, _ = run(capsys, "check", "--backend", "numpy")
    assert code == 0, out
    for name in [
        "ew:sigmoid",
        "ew:maximum",
        "matmul",
        "pick",
        "stop_gradient",
        "loss:multiclass_hinge(mean)",
        "loss:l2",
    ]:
        assert name in out
    assert " 0 failed" in out


def test_check_on_numba(capsys):
    code, out, _ = run(capsys, "check", "--backend", "numba", "--only", "relu", "--only", "sum")
    assert code == 0 and "ew:relu" in out and "numba" in out and "matmul" not in out


def test_check_fails_on_a_wrong_derivative(capsys, monkeypatch):
    right = MATMUL.vjp

    def wrong(node, g):  # the right rule, with the right operand's adjoint 1% too big
        ga, gb = right(node, g)
        return ga, gb * 1.01

    monkeypatch.setattr(MATMUL, "vjp", wrong)
    code, out, _ = run(capsys, "check", "--backend", "numpy", "--only", "matmul")
    assert code == 1 and "FAILED" in out and "1 failed" in out


def test_check_reports_an_op_without_a_case(capsys, monkeypatch):
    class NewOp(str):  # stands for an op someone adds to the registry without a case
        name, leaf, differentiable = "frobnicate", None, True

    monkeypatch.setitem(OPS, "frobnicate", NewOp("frobnicate"))
    code, out, _ = run(capsys, "check", "--backend", "numpy", "--only", "frobnicate")
    assert code == 1 and "UNCHECKED" in out


def test_show_a_user_function(capsys, tmp_path, monkeypatch):
    (tmp_path / "mymodel.py").write_text(
        textwrap.dedent("""
        import symgrad as sg

        def loss():
            X, W = sg.tensor("X", ("N", "D")), sg.tensor("W", ("D", "C"))
            y = sg.tensor("y", ("N",), dtype="int64")
            return sg.losses.softmax_cross_entropy(X @ W, y), W
    """)
    )
    monkeypatch.chdir(tmp_path)
    code, out, _ = run(capsys, "show", "mymodel:loss", "--backend", "numpy")
    assert code == 0
    for part in [
        "== forward graph",
        "matmul",
        "log_softmax(XW)",
        "== derived gradients",
        "dW = Xᵀ(softmax(XW) - Y)/N",
        "== optimised graph",
        "== generated kernel",
    ]:
        assert part in out, part


def test_show_needs_module_colon_function():
    with pytest.raises(SystemExit, match="MODULE:FUNCTION"):
        cli.main(["show", "nocolon"])


def test_bench_runs_the_checkouts_benchmarks(capsys, tmp_path, monkeypatch):
    # a stand-in benchmarks folder: the command must pass --quick (or not, with --full)
    fake = tmp_path / "benchmarks"
    fake.mkdir()
    (fake / "run.py").write_text(
        "import sys, pathlib\n"
        "pathlib.Path(sys.argv[0]).with_name('ran.txt').write_text(' '.join(sys.argv[1:]))\n"
        "print('| workload | sg numba |')\n"
    )
    monkeypatch.setenv(cli.BENCHMARKS_ENV, str(fake))
    assert cli.main(["bench"]) == 0
    assert (fake / "ran.txt").read_text() == "--quick"
    assert cli.main(["bench", "--full", "--only", "svm"]) == 0
    assert (fake / "ran.txt").read_text() == "--only svm"
    assert cli._benchmarks_dir() == fake
    monkeypatch.delenv(cli.BENCHMARKS_ENV)
    assert cli._benchmarks_dir() == ROOT / "benchmarks"  # a source checkout has them


def test_bench_says_when_there_are_no_benchmarks(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv(cli.BENCHMARKS_ENV, str(tmp_path / "nowhere"))
    code = cli.main(["bench"])
    assert code == 2 and "no benchmarks folder" in capsys.readouterr().err


def test_python_dash_m_symgrad_demo():
    # the real command, in a fresh process, as a user runs it
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run(
        [sys.executable, "-m", "symgrad", "--plain", "demo"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    for part in [
        "∂f/∂y = ∂f/∂q · ∂q/∂y = -4 · 1 = -4",
        "max relative difference vs hand",
        "M = [XW - pick(XW, y) + 1 > 0] ⊙ (1 - Y)",
        "jitted vs interpreted",
        "numba (jitted)",
        "OK in",
    ]:
        assert part in out, part


def test_usage_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["frobnicate"])
    assert info.value.code == 2


def test_cache_info_and_clear(capsys, tmp_path, monkeypatch):
    import symgrad as sg

    monkeypatch.setenv("SYMGRAD_CACHE_DIR", str(tmp_path / "kernels"))
    x = sg.tensor("x", (3,))
    sg.value_and_grad(sg.sum(sg.tanh(x) * 3.25), x)(x=[1.0, 2.0, 3.0])  # one kernel written
    code, out, _ = run(capsys, "cache", "info")
    assert code == 0 and str(tmp_path / "kernels") in out and "1 kernels" in out
    code, out, _ = run(capsys, "cache", "clear")
    assert code == 0 and "removed 1 kernels" in out
    assert sg.cache.info().entries == 0
