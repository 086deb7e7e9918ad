"""symgrad: a symbolic-to-numeric differentiation compiler.

Write a model and its loss as an expression graph; symgrad derives the backward graph
symbolically, simplifies it, and compiles forward and backward kernels (Numba by default,
or a NumPy interpreter).

>>> import symgrad as sg
>>> x, y, z = sg.symbols("x y z")
>>> vg = sg.value_and_grad((x + y) * z, wrt=[x, y, z])
>>> vg(x=-2.0, y=5.0, z=-4.0)
(-12.0, [-4.0, -4.0, 3.0])
"""

from . import cache
from .autodiff import grad
from .check import check_grad
from .compile import Compiled, compile, value_and_grad
from .draw import draw
from .errors import (
    ArgumentError,
    CompileError,
    DTypeError,
    GradientCheckError,
    GraphError,
    LabelError,
    ShapeError,
    SymgradError,
)
from .explain import explain
from .formula import formula, pretty  # also gives nodes their readable repr
from .ir import Node, to_text
from .nn import losses
from .ops.api import (
    abs,
    add,
    argmax,
    broadcast_to,
    cast,
    clip,
    concatenate,
    cos,
    divide,
    elu,
    equal,
    exp,
    gelu,
    greater,
    greater_equal,
    leaky_relu,
    less,
    less_equal,
    log,
    log1p,
    log_sigmoid,
    log_softmax,
    logsumexp,
    matmul,
    max,
    maximum,
    mean,
    minimum,
    multiply,
    negative,
    not_equal,
    one_hot,
    pick,
    power,
    relu,
    reshape,
    sigmoid,
    silu,
    sin,
    softmax,
    softplus,
    sqrt,
    square,
    stack,
    std,
    stop_gradient,
    subtract,
    sum,
    symbols,
    tanh,
    tensor,
    transpose,
    var,
    where,
)
from .ops.convert import to_sympy

Tensor = Node  # the type of every graph value, under the name users expect


def __getattr__(name):
    # sg.dask is loaded on first use, so that `import symgrad` never imports Dask (an
    # optional extra: pip install 'symgrad[dask]')
    if name == "dask":
        import importlib

        return importlib.import_module(".dask", __name__)
    raise AttributeError(f"module 'symgrad' has no attribute {name!r}")

__version__ = "0.1.0"
