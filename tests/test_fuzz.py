"""Differential fuzzing: random graphs on random shapes, valid or not (issue 4).

Each example builds a random graph step by step.  A step is either a valid operation (the
generator of ``test_properties.py``) or a deliberately careless one: operands of mismatched
shapes (including a named dim against an int), bad axes (out of range, repeated, floats,
strings), bad reshape targets, integer and bool tensors where a float is needed, junk
constants and static parameters, labels of the wrong dtype or shape, labels derived in the
graph (``cast``, ``transpose``, ``sum``).  Then it differentiates a loss that may not be a
scalar with respect to tensors that may be integer, compiles, and calls the result with
valid inputs and with corrupted ones (missing or unknown keywords, wrong ndim, wrong sizes,
inconsistent named dims, out-of-range labels, wrong dtypes, junk values), with named dims
that may be 0 (an empty batch).

The contract checked (docs/design.md, "Errors"):

* whatever is passed, the library raises only ``sg.SymgradError`` subclasses -- never a
  ``TypeError`` from SymPy, a ``ValueError`` from NumPy, a ``RecursionError`` ...;
* a corrupted call that is invalid for sure raises ``SymgradError`` (it does not compute);
* what succeeds is right: outputs have the declared shapes and dtypes, inputs are left
  unchanged, the numpy and numba backends agree (when the numba backend exists), and
  gradients match central finite differences where the function is smooth, float64 and
  finite.

Budget: the profiles of ``test_properties.py`` (``ci`` by default, ``long`` for a long run)::

    SYMGRAD_HYPOTHESIS_PROFILE=long python -m pytest tests/test_fuzz.py tests/test_properties.py

A failing example prints a script that rebuilds its graph (``note``); operations that
raised ``SymgradError`` appear in it as comments.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import event, given, note, settings
from hypothesis import strategies as st
from test_properties import (
    NUMBA_EXAMPLES,
    PROFILE,
    STEPS,
    Builder,
    Case,
    as_list,
    check_finite_differences,
    close_normwise,
    finite_and_moderate,
    numba_available,
    resolve,
)

import symgrad as sg
from symgrad.ir import toposort

DIMS = [1, 2, 3, "N", "M", 0]
DTYPES = ["float64", "float64", "float64", "float32", "int64", "bool"]
CHAOS = [
    "mismatch",
    "axes",
    "reshape_any",
    "int_use",
    "labels_any",
    "param",
    "cast",
    "index",
    "matmul_any",
    "junk_const",
    "slice_any",
    "concat_any",
    "argmax_any",
    "clip_any",
]
JUNK = [
    None,
    "a",
    1j,
    float("nan"),
    float("inf"),
    True,
    (0, 0),
    [0],
    [[1.0, 2.0], [3.0]],
    np.array(["x"]),
    np.array([1 + 2j]),
    -1,
    2.5,
    (),
]
JUNK_AXES = [None, True, 1.0, "a", [0], (0, 0), (), (-1, 1), 5, -5, (0, 7)]


def junk_repr(value) -> str:
    if isinstance(value, np.ndarray):
        return f"np.array({value.tolist()!r})"
    if isinstance(value, float) and not np.isfinite(value):
        return f"float({str(value)!r})"
    return repr(value)


class FuzzBuilder(Builder):
    """The valid steps of :class:`Builder` plus careless ones; remembers what it declared."""

    def __init__(self, draw, dims):
        super().__init__(draw, dims, stop_gradient=True, steps=STEPS + CHAOS)
        self.declared: dict = {}  # name -> input node, every dtype
        self.classes: dict = {}  # int input name -> class counts it is used with as labels
        self.failed = 0  # steps that raised SymgradError
        self.attempt = ""  # the code of the careless call being made (for failure reports)

    # -- leaves of any shape and dtype
    def random_shape(self):
        return tuple(self.draw(st.lists(st.sampled_from(DIMS), max_size=3)))

    def any_input(self, shape=None, dtype=None):
        shape = self.random_shape() if shape is None else shape
        dtype = dtype or self.choose(DTYPES)
        prefix = {"float64": "a", "float32": "f", "int64": "i", "bool": "b"}[dtype]
        name = self.fresh(prefix)
        node = sg.tensor(name, shape, dtype=dtype)
        self.names[node] = name
        self.declared[name] = node
        if dtype == "float64":
            self.floats[name] = node
        self.code.append(f"{name} = sg.tensor({name!r}, {shape!r}, dtype={dtype!r})")
        return node

    def float_input(self, shape, prefix="a"):
        node = super().float_input(shape, prefix)
        self.declared[node.name] = node
        return node

    def label_input(self, shape, classes):
        node = super().label_input(shape, classes)
        self.declared[node.name] = node
        self.classes.setdefault(node.name, []).append(classes)
        return node

    def run(self, code, build):
        """``(build(), code)``, remembering ``code`` while ``build`` runs (for reports)."""
        self.attempt = code
        return build(), code

    def any_node(self):
        if self.pool and self.draw(st.integers(0, 2)):
            return self.choose_node(self.pool)
        return self.any_input()

    # -- one step: a SymgradError is a legitimate answer to a careless step
    def step(self):
        kind = self.choose(self.steps)
        self.attempt = f"op_{kind}(...)"  # careless steps replace it by their exact call
        try:
            node, code = getattr(self, "op_" + kind)()
        except sg.SymgradError as exc:
            self.failed += 1
            self.code.append(f"# {self.attempt} raised {type(exc).__name__}: {exc}"[:200])
            return
        except BaseException:
            note("\n".join(self.header() + self.code + [f"# op_{kind} failed: {self.attempt}"]))
            raise
        if isinstance(node, sg.Tensor):
            self.pool.append(self.emit(node, code))

    @staticmethod
    def header():
        return ["import numpy as np, symgrad as sg"]

    # -- careless steps
    def op_mismatch(self):
        a, b = self.any_node(), self.any_node()
        f = self.choose(["+", "-", "*", "/", "**", "maximum", "minimum", "less", "equal", "where"])
        ra, rb = self.ref(a), self.ref(b)
        if f == "where":
            c = self.any_node()
            return self.run(
                f"sg.where(sg.less({ra}, {rb}), {self.ref(c)}, {ra})",
                lambda: sg.where(sg.less(a, b), c, a),
            )
        if f in ("maximum", "minimum", "less", "equal"):
            return self.run(f"sg.{f}({ra}, {rb})", lambda: getattr(sg, f)(a, b))
        method = {
            "+": a.__add__,
            "-": a.__sub__,
            "*": a.__mul__,
            "/": a.__truediv__,
            "**": a.__pow__,
        }[f]
        return self.run(f"{ra} {f} {rb}", lambda: method(b))

    def op_axes(self):
        x = self.any_node()
        f = self.choose(["sum", "mean", "max", "logsumexp", "softmax", "log_softmax", "transpose"])
        axis = self.draw(st.one_of(st.integers(-4, 4), st.sampled_from(JUNK_AXES)))
        r = self.ref(x)
        if f == "transpose":
            return self.run(f"sg.transpose({r}, {axis!r})", lambda: sg.transpose(x, axis))
        if f in ("softmax", "log_softmax"):
            return self.run(f"sg.{f}({r}, axis={axis!r})", lambda: getattr(sg, f)(x, axis=axis))
        keepdims = self.draw(st.booleans())
        return self.run(
            f"sg.{f}({r}, axis={axis!r}, keepdims={keepdims})",
            lambda: getattr(sg, f)(x, axis=axis, keepdims=keepdims),
        )

    def op_reshape_any(self):
        x = self.any_node()
        target = self.draw(
            st.one_of(
                st.lists(
                    st.one_of(st.integers(-2, 7), st.sampled_from(["N", "M"])), max_size=3
                ).map(tuple),
                st.sampled_from([None, "N", 6, 6.0, ((2,),)]),
            )
        )
        return self.run(f"sg.reshape({self.ref(x)}, {target!r})", lambda: sg.reshape(x, target))

    def op_int_use(self):
        i = self.any_input(dtype=self.choose(["int64", "bool"]))
        other = self.any_node()
        f = self.choose(
            ["matmul", "log", "softmax", "sum", "mean", "max", "exp", "add", "pick", "where"]
        )
        ri, ro = self.ref(i), self.ref(other)
        if f == "matmul":
            return self.run(f"{ri} @ {ro}", lambda: i @ other)
        if f == "add":
            return self.run(f"{ri} + {ro}", lambda: i + other)
        if f == "pick":
            return self.run(f"sg.pick({ri}, {ro})", lambda: sg.pick(i, other))
        if f == "where":
            return self.run(f"sg.where({ri}, {ro}, 0.0)", lambda: sg.where(i, other, 0.0))
        return self.run(f"sg.{f}({ri})", lambda: getattr(sg, f)(i))

    def op_labels_any(self):
        scores = self.any_node()
        kind = self.draw(st.integers(0, 4))
        if kind == 0:  # an int input of any shape
            labels = self.any_input(dtype="int64")
        elif kind == 1:  # a float or bool tensor
            labels = self.any_input(dtype=self.choose(["float64", "bool"]))
        else:  # labels computed in the graph: the kernel must not trust them
            base = self.any_input(dtype="int64")
            how = self.choose(["cast", "transpose", "reshape", "sum", "max"])
            rb = self.ref(base)
            if how == "cast":
                src = self.any_node()
                code, build = f"sg.cast({self.ref(src)}, 'int64')", lambda: sg.cast(src, "int64")
            elif how == "transpose":
                code, build = f"{rb}.T", lambda: base.T
            elif how == "reshape":
                code, build = f"{rb}[None]", lambda: base[None]
            else:
                code, build = f"sg.{how}({rb}, axis=-1)", lambda: getattr(sg, how)(base, axis=-1)
            labels = self.emit(*self.run(code, build), prefix="lab")
        f = self.choose(["pick", "one_hot", "softmax_cross_entropy", "multiclass_hinge"])
        rs, rl = self.ref(scores), self.ref(labels)
        source = label_source(labels)
        direct = source is not None and source.op == "input" and source.dtype == "int64"
        if f == "one_hot":
            classes = self.draw(
                st.one_of(st.integers(-1, 4), st.sampled_from(["N", "M", 2.0, None]))
            )
            node = self.run(f"sg.one_hot({rl}, {classes!r})", lambda: sg.one_hot(labels, classes))
        elif f == "pick":
            classes = scores.shape[-1] if scores.ndim else None
            node = self.run(f"sg.pick({rs}, {rl})", lambda: sg.pick(scores, labels))
        else:
            classes = scores.shape[-1] if scores.ndim else None
            node = self.run(
                f"sg.losses.{f}({rs}, {rl})", lambda: getattr(sg.losses, f)(scores, labels)
            )
        if direct:
            self.classes.setdefault(source.name, []).append(classes)
        return node

    def op_param(self):
        x = self.any_node()
        f = self.choose(["leaky_relu", "elu", "gelu"])
        value = self.choose(JUNK + [0.3])
        r = self.ref(x)
        if f == "gelu":
            return self.run(
                f"sg.gelu({r}, approximate={junk_repr(value)})",
                lambda: sg.gelu(x, approximate=value),
            )
        return self.run(
            f"sg.{f}({r}, alpha={junk_repr(value)})", lambda: getattr(sg, f)(x, alpha=value)
        )

    def op_junk_const(self):
        x = self.any_node()
        value = self.choose(JUNK + [np.ones(3), np.arange(6).reshape(2, 3), [1, 2, 3]])
        return self.run(f"{self.ref(x)} * {junk_repr(value)}", lambda: x * value)

    def op_cast(self):
        x = self.any_node()
        dtype = self.choose(["float32", "float64", "int64", "bool", "int32", "complex128"])
        return self.run(f"sg.cast({self.ref(x)}, {dtype!r})", lambda: sg.cast(x, dtype))

    def op_index(self):
        x = self.any_node()
        index, text = self.choose(
            [
                ((None,), "None"),
                ((Ellipsis, None), "..., None"),
                ((slice(None), None), ":, None"),
                ((0,), "0"),
                ((Ellipsis, Ellipsis), "..., ..."),
                ((None, None, slice(None)), "None, None, :"),
                ((slice(None), slice(None), slice(None), slice(None)), ":, :, :, :"),
            ]
        )
        return self.run(f"{self.ref(x)}[{text}]", lambda: x[index])

    def op_slice_any(self):
        x = self.any_node()
        index, text = self.choose(
            [
                ((5,), "5"), ((-4,), "-4"), ((slice(None, None, 0),), "::0"),
                ((1.5,), "1.5"), ((slice(0.5, None),), "0.5:"), (([0, 1],), "[0, 1]"),
                ((slice(None, None, -2), 0), "::-2, 0"), ((slice(-1, None), slice(1, None)), "-1:, 1:"),
                ((slice(3, 1),), "3:1"), ((0, 0, 0), "0, 0, 0"), ((True,), "True"),
            ]
        )
        return self.run(f"{self.ref(x)}[{text}]", lambda: x[index])

    def op_concat_any(self):
        a, b = self.any_node(), self.any_node()
        axis = self.choose([0, 1, -1, 2, -3, 1.0, None])
        how = self.choose(["concatenate", "stack"])
        return self.run(f"sg.{how}([{self.ref(a)}, {self.ref(b)}], axis={axis!r})",
                        lambda: getattr(sg, how)([a, b], axis=axis))

    def op_argmax_any(self):
        x = self.any_node()
        axis = self.choose([None, 0, -1, 1, 3, 1.5, (0, 1)])
        return self.run(f"sg.argmax({self.ref(x)}, axis={axis!r})", lambda: sg.argmax(x, axis=axis))

    def op_clip_any(self):
        x, lo = self.any_node(), self.any_node()
        hi = self.choose([1.0, "a", None, np.ones(7)])
        return self.run(f"sg.clip({self.ref(x)}, {self.ref(lo)}, {junk_repr(hi)})",
                        lambda: sg.clip(x, lo, hi))

    def op_matmul_any(self):
        a, b = self.any_node(), self.any_node()
        return self.run(f"sg.matmul({self.ref(a)}, {self.ref(b)})", lambda: sg.matmul(a, b))


# --- inputs ----------------------------------------------------------------------------------


def valid_inputs(b: FuzzBuilder, names, dims, rng) -> dict | None:
    """Values for ``names`` that respect their declarations; labels in range where known.
    None if there are none: a declared dim is negative for these sizes (a tensor of shape
    ``(N - 1,)`` at N = 0)."""
    out = {}
    for name in names:
        node = b.declared[name]
        shape = resolve(node.shape, dims)
        if any(d < 0 for d in shape):
            return None
        if node.dtype in ("float64", "float32"):
            out[name] = rng.standard_normal(shape).astype(node.dtype)
        elif node.dtype == "bool":
            out[name] = rng.random(shape) < 0.5
        else:
            counts = [
                resolve((c,), dims)[0] for c in b.classes.get(name, []) if isinstance(c, (int, str))
            ]
            counts = [c for c in counts if isinstance(c, int) and not isinstance(c, bool)]
            high = min(counts, default=3)
            out[name] = rng.integers(0, max(high, 1), size=shape)
    return out


def label_source(labels):
    """The input whose values ``labels`` are (through reshapes and transposes), or None."""
    while isinstance(labels, sg.Tensor) and labels.op in ("reshape", "transpose", "broadcast_to",
                                                            "slice"):
        labels = labels.inputs[0]
    return labels if isinstance(labels, sg.Tensor) and labels.op == "input" else None


def direct_label_inputs(outputs) -> dict:
    """Input tensors read as labels by a pick/one_hot of the graph -> their class-count dim."""
    found = {}
    for node in toposort(outputs):
        if node.op in ("pick", "one_hot"):
            source = label_source(node.inputs[1] if node.op == "pick" else node.inputs[0])
            classes = node.inputs[0].shape[-1] if node.op == "pick" else node.attr("num_classes")
            if source is not None:
                found.setdefault(source.name, classes)
    return found


def corruptions(compiled, b: FuzzBuilder, kwargs: dict, dims: dict, outputs):
    """(description, kwargs, surely_invalid) for calls that differ from a valid one."""
    names = list(compiled.input_names)
    out = [("unknown keyword", dict(kwargs, not_an_input=1.0), True)]
    labels = direct_label_inputs(outputs)
    for name in names:
        node, value = b.declared[name], np.asarray(kwargs[name])
        rest = {k: v for k, v in kwargs.items() if k != name}
        out.append((f"missing {name}", rest, True))
        out.append((f"{name} with an extra axis", dict(kwargs, **{name: value[None]}), True))
        if value.ndim:
            out.append(
                (
                    f"{name} with one axis less",
                    dict(kwargs, **{name: value[..., 0] if value.shape[-1] else value.sum(-1)}),
                    True,
                )
            )
        for axis, d in enumerate(node.shape):
            if isinstance(d, int):
                shape = list(value.shape)
                shape[axis] += 1
                out.append(
                    (
                        f"{name} axis {axis} of size {shape[axis]}",
                        dict(kwargs, **{name: np.zeros(shape, value.dtype)}),
                        True,
                    )
                )
        named = [d for d in node.shape if isinstance(d, str)]
        for d in named:
            uses = sum(dd == d for n in names for dd in b.declared[n].shape)
            if uses > 1:
                shape = [
                    s + 1 if dd == d and i == node.shape.index(d) else s
                    for i, (dd, s) in enumerate(zip(node.shape, value.shape))
                ]
                out.append(
                    (
                        f"{name} with a different size of {d}",
                        dict(kwargs, **{name: np.zeros(shape, value.dtype)}),
                        True,
                    )
                )
        if node.dtype == "int64":
            out.append((f"float labels {name}", dict(kwargs, **{name: value.astype(float)}), True))
            out.append((f"bool labels {name}", dict(kwargs, **{name: value > 0}), True))
            if name in labels and value.size:
                (classes,) = resolve((labels[name],), dims)
                for bad in (-1, classes, 2**40):
                    worse = value.copy()
                    worse.flat[value.size // 2] = bad
                    out.append(
                        (
                            f"label {bad} in {name} for {classes} classes",
                            dict(kwargs, **{name: worse}),
                            True,
                        )
                    )
        if node.dtype in ("float64", "float32"):
            out.append((f"complex {name}", dict(kwargs, **{name: value.astype(complex)}), True))
            out.append((f"string {name}", dict(kwargs, **{name: np.full(value.shape, "x")}), True))
            out.append((f"None for {name}", dict(kwargs, **{name: None}), True))
            out.append(
                (f"int list for {name}", dict(kwargs, **{name: value.astype(int).tolist()}), False)
            )
            out.append((f"NaN in {name}", dict(kwargs, **{name: value * np.nan}), False))
    return out


# --- the harness -----------------------------------------------------------------------------


def flatten(result, how):
    """The values a call returned, as a list: outputs, or the value then the gradients."""
    if how == "forward":
        return list(result) if isinstance(result, tuple) else [result]
    return [result[0]] + as_list(result[1])


def check_outputs(outputs, values, dims, what, forward=True):
    """A float (int for int64) per scalar output, a fresh array of the declared shape else.

    ``outputs`` are the graphs compiled, or for value_and_grad the loss then the tensors
    differentiated against (their gradients have their shapes).
    """
    assert len(values) == len(outputs), f"{what}: {len(values)} values for {len(outputs)} outputs"
    for k, (node, value) in enumerate(zip(outputs, values)):
        grad = not forward and k > 0
        if node.shape == ():
            assert isinstance(value, (float, int)), f"{what}: scalar output is {type(value)}"
        else:
            assert isinstance(value, np.ndarray), f"{what}: output is {type(value)}"
            want = resolve(node.shape, dims)
            assert value.shape == want, (
                f"{what}: shape {value.shape}, declared {node.shape} = {want}"
            )
            if grad:  # the gradient of a float32 input in a float64 graph may be float64
                assert value.dtype.kind == "f", f"{what}: gradient of dtype {value.dtype}"
            else:
                assert value.dtype == np.dtype(node.dtype), (
                    f"{what}: dtype {value.dtype}, declared {node.dtype}"
                )


def call(compiled, kwargs):
    """Call and return ``(results, error)``: an error must be a ``SymgradError``."""
    try:
        out = compiled(**kwargs)
    except sg.SymgradError as exc:
        return None, exc
    return out, None


def fuzz_once(data, backends):
    draw = data.draw
    dims = {"N": draw(st.sampled_from([0, 1, 2, 3, 4])), "M": draw(st.integers(1, 3))}
    b = FuzzBuilder(draw, dims)
    for _ in range(draw(st.integers(0, 2))):
        b.pool.append(b.any_input())
    for _ in range(draw(st.integers(1, 7))):
        b.step()
    if not b.pool:
        b.pool.append(b.any_input())

    # The function: a loss that may be non-scalar or integer, w.r.t. anything declared.
    out = b.pool[-1]
    # (rare choices are drawn as a middle value of a range: Hypothesis favours the ends)
    # mostly a scalar float loss; sometimes the raw node (maybe not a scalar: GraphError),
    # sometimes a forward-only compile of several outputs
    how = draw(
        st.sampled_from(["cotangent", "cotangent", "cotangent", "sum", "raw", "forward", "forward"])
    )
    code = b.header() + b.code
    try:
        if how == "cotangent" and out.ndim:
            c = b.float_input(out.shape, prefix="c")
            f, fcode = sg.sum(out * c), f"sg.sum({b.ref(out)} * {b.ref(c)})"
        elif how == "sum":
            f, fcode = sg.sum(out), f"sg.sum({b.ref(out)})"
        else:
            f, fcode = out, b.ref(out)
        names = sorted(b.declared)
        floats = [n for n in names if b.declared[n].dtype == "float64"]
        wrt = [b.declared[n] for n in floats if draw(st.booleans())]
        if not wrt or draw(st.integers(1, 8)) == 5:  # any dtype: int64 and bool are refused
            wrt.append(b.declared[draw(st.sampled_from(names))])
        if draw(st.integers(1, 8)) == 5:  # not a tensor, or not an input tensor
            junk = draw(st.sampled_from(["3.0", "'x'", "None", "out"]))
            wrt.append(out if junk == "out" else eval(junk))
        code = b.header() + b.code + [f"f = {fcode}", f"wrt = [{', '.join(b.ref(w) for w in wrt)}]"]
        if how == "forward":  # several outputs of any dtype, forward only
            outputs = [f] + [p for p in b.pool[:-1] if draw(st.booleans())]
            code.append(
                f"fn = sg.compile([{', '.join(b.ref(o) for o in outputs)}], backend='numpy')"
            )
            compiled = {be: sg.compile(outputs, backend=be) for be in backends}
        else:
            outputs = [f] + list(wrt)  # the value, then one gradient per wrt, of its shape
            code.append("fn = sg.value_and_grad(f, wrt, backend='numpy')")
            compiled = {be: sg.value_and_grad(f, wrt, backend=be) for be in backends}
    except sg.SymgradError as exc:
        code.append(f"# raised {type(exc).__name__}: {exc}")
        event(f"compile refused: {type(exc).__name__}: {str(exc)[:30]}")
        return
    finally:
        note("\n".join(code))
    first = compiled[backends[0]]
    for be, fn in compiled.items():
        assert fn.input_names == first.input_names, (
            f"{be}: inputs {fn.input_names} vs {first.input_names}"
        )

    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    kwargs = valid_inputs(b, first.input_names, dims, rng)
    if kwargs is None:
        event("no valid call: a declared dim is negative for the drawn sizes")
        return
    note(f"inputs = {kwargs!r}  # dims {dims}")
    copies = {k: np.array(v, copy=True) for k, v in kwargs.items()}

    results = {}
    for be, fn in compiled.items():
        value, error = call(fn, kwargs)
        for k, v in kwargs.items():
            assert np.array_equal(np.asarray(v), copies[k], equal_nan=True), (
                f"{be} modified input {k}"
            )
        results[be] = (value, error)
    errors = {be: type(e) for be, (_, e) in results.items()}
    assert len(set(errors.values())) == 1, f"backends disagree on raising: {errors}"

    value, error = results[backends[0]]
    event(f"valid call: {'raised ' + type(error).__name__ if error else 'computed'}")
    if error is None:
        flat = {be: flatten(results[be][0], how) for be in backends}
        check_outputs(outputs, flat[backends[0]], dims, backends[0], forward=how == "forward")
        low = any(n.dtype == "float32" for n in toposort(outputs))
        for be in backends[1:]:
            for i, (x, y) in enumerate(zip(flat[be], flat[backends[0]])):
                close_normwise(
                    x, y, 1e-5 if low else 1e-12, what=f"{be} vs {backends[0]}, output {i}"
                )

        # gradients against finite differences where that is an oracle
        smooth = how != "forward" and all(
            n.dtype != "float32" and n.op != "stop_gradient" for n in toposort([f])
        )
        if smooth and all(w.op == "input" and w.dtype == "float64" for w in wrt):
            grads = as_list(value[1])
            if (
                finite_and_moderate(value[0], grads)
                and min((np.size(v) for v in kwargs.values()), default=1) > 0
            ):
                body = [
                    line for line in code if not line.startswith(("import ", "wrt = ", "fn = "))
                ]
                case = Case(f, wrt, kwargs, dims, body)
                checked = check_finite_differences(case, first, grads, unstable=lambda ok: None)
                event(f"finite differences: {'compared' if checked else 'unstable, skipped'}")

    # corrupted calls: surely-invalid ones must raise SymgradError, none may raise anything else
    bad = corruptions(first, b, kwargs, dims, outputs)
    for what, bad_kwargs, surely in (
        draw(st.lists(st.sampled_from(bad), max_size=4, unique_by=lambda t: t[0])) if bad else []
    ):
        for be, fn in compiled.items():
            got, error = call(fn, bad_kwargs)
            if surely:
                assert error is not None, f"{be}: a call with {what} did not raise: {got!r}"


@settings(PROFILE)
@given(data=st.data())
def test_fuzz_numpy_backend(data):
    fuzz_once(data, ("numpy",))


@pytest.mark.skipif(
    not numba_available(), reason="symgrad.backends.numba_backend is not written yet"
)
@settings(PROFILE, max_examples=NUMBA_EXAMPLES)
@given(data=st.data())
def test_fuzz_numpy_and_numba_backends(data):
    fuzz_once(data, ("numpy", "numba"))


# --- minimal repros of what the fuzzers found ---------------------------------------------------
# Each is the contract on one small case, so that a failure names the bug without a search.


def test_sum_over_a_unit_axis_times_a_vector_differentiates(backend):
    """Found as a RecursionError in ``structural.broadcast_to``: a reshape to () of a (1,)
    tensor looks like "all dims are 1", and broadcast_to recursed on itself."""
    a, c = sg.tensor("ra", (1, 3)), sg.tensor("rc", (1,))
    value, g = sg.value_and_grad(sg.sum(sg.sum(a, axis=1) * c), a, backend=backend)(
        ra=[[1.0, 2.0, 3.0]], rc=[2.0]
    )
    assert value == 12.0
    np.testing.assert_array_equal(g, [[2.0, 2.0, 2.0]])


def test_broadcast_of_a_reshape_to_scalar(backend):
    y = sg.tensor("ry", (1,))
    out = sg.compile(sg.broadcast_to(sg.reshape(y, ()), (3,)), backend=backend)(ry=[5.0])
    np.testing.assert_array_equal(out, [5.0, 5.0, 5.0])


_x3 = sg.tensor("jx", (3,))
_m23 = sg.tensor("jm", (2, 3))
JUNK_CALLS = {
    "leaky_relu alpha='a'": lambda: sg.leaky_relu(_x3, alpha="a"),
    "elu alpha=None": lambda: sg.elu(_x3, alpha=None),
    "leaky_relu alpha=tensor": lambda: sg.leaky_relu(_x3, alpha=_x3),
    "x + 1j": lambda: _x3 + 1j,
    "x * ragged list": lambda: _x3 * [[1.0, 2.0], [3.0]],
    "transpose(x, 1)": lambda: sg.transpose(_m23, 1),
    "symbols(3)": lambda: sg.symbols(3),
    "value_and_grad wrt an intermediate": lambda: sg.value_and_grad(
        sg.sum(_x3 * _x3), 2 * _x3, backend="numpy"
    ),
    "value_and_grad wrt two intermediates": lambda: sg.value_and_grad(
        sg.sum(_x3), [2 * _x3, 3 * _x3], backend="numpy"
    ),
}


@pytest.mark.parametrize("name", list(JUNK_CALLS))
def test_bad_arguments_raise_symgrad_errors(name):
    """Whatever the user passes, only SymgradError (or a result) comes back."""
    try:
        JUNK_CALLS[name]()
    except sg.SymgradError:
        pass


def test_scalar_labels(backend):
    """A 0-d int64 label tensor, given as a Python int or a 0-d array."""
    x, lab = sg.tensor("sx", (3,)), sg.tensor("slab", (), dtype="int64")
    vg = sg.value_and_grad(sg.pick(x, lab), x, backend=backend)
    for label in (1, np.array(1), np.int64(1)):
        value, g = vg(sx=np.array([5.0, 6.0, 7.0]), slab=label)
        assert value == 6.0
        np.testing.assert_array_equal(g, [0.0, 1.0, 0.0])
    for bad in (3, np.array(-1)):
        with pytest.raises(sg.LabelError):
            vg(sx=np.zeros(3), slab=bad)


def test_cast_to_int64_truncates_or_is_refused(backend):
    """Fusion inlined the cast's formula into its user, dropping the conversion."""
    a = sg.tensor("ca", (2,))
    try:
        f = sg.sum(sg.cast(a, "int64") * 1.5)
    except sg.SymgradError:
        return
    assert sg.compile(f, backend=backend)(ca=np.array([0.7, 2.9])) == 3.0  # (0 + 2) * 1.5


def test_cast_to_bool_is_usable_or_refused(backend):
    a = sg.tensor("cb", (2,))
    try:
        f = sg.sum(sg.cast(a, "bool"))
    except sg.SymgradError:
        return
    assert sg.compile(f, backend=backend)(cb=np.array([0.5, 0.0])) == 1.0


def test_division_by_a_zero_constant_gives_inf_as_numpy(backend):
    """SymPy folds x/0 into zoo*x (ComplexInfinity), which the printers do not know."""
    x = sg.tensor("dz", (2,))
    with np.errstate(all="ignore"):
        got = sg.compile(x / 0, backend=backend)(dz=np.array([1.0, -1.0]))
        mean_of_nothing = sg.compile(sg.mean(sg.tensor("d0", (0,))), backend=backend)(
            d0=np.zeros(0)
        )
    np.testing.assert_array_equal(got, [np.inf, -np.inf])
    assert np.isnan(mean_of_nothing)


def test_nan_constant_in_a_formula_builds():
    y = sg.tensor("nz", ())
    sg.relu(y * 0 / 0)  # 0/0 folds to nan; the Piecewise of relu compared nan > 0 in SymPy


def test_scalar_power_of_a_negative_base_is_nan(backend):
    """Scalar inputs computed with Python float semantics gave a complex number."""
    x, y = sg.tensor("px", ()), sg.tensor("py", ())
    with np.errstate(all="ignore"):
        value = sg.compile(sg.exp(x**y), backend=backend)(px=-0.132, py=0.64)
    assert np.isnan(value)


def test_abs_of_exp_of_log1p_compiles(backend):
    """Fusion lets SymPy rewrite Abs(exp(log1p(x))) with re() and im() (log1p is not known to
    be real), which the Numba printer cannot print."""
    a = sg.tensor("la", ())
    assert sg.compile(sg.abs(sg.exp(sg.log1p(a))), backend=backend)(la=0.5) == pytest.approx(
        1.5, rel=1e-15
    )


def test_nested_piecewise_over_a_scalar_and_an_array(backend):
    """numpy.select got choices of different shapes (a scalar and an array)."""
    a, s = sg.tensor("na", (3,)), sg.tensor("ns", ())
    got = sg.compile(sg.relu(sg.minimum(a, s)), backend=backend)(
        na=np.array([0.1, -0.2, 0.6]), ns=0.3
    )
    np.testing.assert_allclose(got, [0.1, 0.0, 0.3])


def test_max_gradient_with_an_empty_kept_axis(backend):
    a = sg.tensor("ea", (1, "N"))
    value, g = sg.value_and_grad(sg.sum(sg.max(a, axis=0)), a, backend=backend)(ea=np.zeros((1, 0)))
    assert value == 0.0 and g.shape == (1, 0)


def test_softmax_over_an_empty_axis_is_consistent(backend):
    """numpy raised a ValueError from np.max, numba returned a value."""
    X = sg.tensor("sm", ("N",))
    try:
        value, g = sg.value_and_grad(sg.sum(sg.softmax(X)), X, backend=backend)(sm=np.zeros(0))
    except sg.SymgradError:
        return
    assert value == 0.0 and g.shape == (0,)


def test_max_of_an_int64_tensor(backend):
    """Found by the numba fuzzer: the int64 max reduction returned 0 and uninitialised memory."""
    i, j = sg.tensor("mi", (2,), dtype="int64"), sg.tensor("mj", (2, 3), dtype="int64")
    assert sg.compile(sg.max(i), backend=backend)(mi=np.array([-5, -7])) == -5
    rows = sg.compile(sg.max(j, axis=1), backend=backend)(mj=np.array([[1, 5, 2], [3, 0, 1]]))
    np.testing.assert_array_equal(rows, [5, 3])
