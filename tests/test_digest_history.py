"""A graph's digest (and so its kernel's cache key) must not depend on what the process
built before: ``_text``'s cache once shared one entry between equal keys of different types
(``keepdims=True`` and an attribute ``1``), so the first one printed decided the other's text."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SCRIPT = """
import sys, numpy as np, symgrad as sg
if sys.argv[1] == "warm":  # something else first: a sum over axis 0 and a numpy-backend run
    x = sg.tensor("x", (4,))
    sg.value_and_grad(sg.sum(sg.exp(x)), x, backend="numpy")(x=np.ones(4))
X, W = sg.tensor("X", ("N", "D")), sg.tensor("W", ("D", "C"))
y = sg.tensor("y", ("N",), dtype="int64")
loss = sg.losses.softmax_cross_entropy(X @ W, y) + 6.125e-3 * sg.losses.l2(W)
print(loss.digest, sg.grad(loss, W).digest)
"""


def test_digests_do_not_depend_on_the_process_history():
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = [
        subprocess.run(
            [sys.executable, "-c", SCRIPT, mode],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for mode in ("cold", "warm")
    ]
    assert out[0] == out[1]


DEEP = """
import sys, symgrad as sg
from symgrad.ir import toposort
from symgrad.passes import optimize
x = sg.tensor("x", (8,))
h = x
for k in range(300):  # the alternating chain of issue 9: fused formulas 100 levels deep
    h = sg.tanh(h) * 0.5 + 0.1 if k % 2 == 0 else h * 0.99 + 0.01
loss = sg.sum(h)
outputs = optimize([loss, sg.grad(loss, x)])
if sys.argv[1] == "printed":  # print every formula first: the digest must not care
    [str(n.attr("expr")) for n in toposort(outputs) if n.op == "ew"]
print([o.digest for o in outputs], sorted(n.digest for n in toposort(outputs)))
"""


def test_digests_of_deep_fused_formulas_are_the_same_in_every_process():
    """Fused formulas nest ``Paren`` a hundred deep; their digests must not depend on the
    string hash seed (set iteration orders), nor on what the process printed before."""
    runs = []
    for seed, mode in (("0", "cold"), ("1", "cold"), ("2", "printed")):
        env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONHASHSEED=seed)
        runs.append(
            subprocess.run(
                [sys.executable, "-c", DEEP, mode], env=env, capture_output=True, text=True,
                check=True,
            ).stdout
        )
    assert runs[0] == runs[1] == runs[2]
