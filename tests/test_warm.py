"""The warm start: a graph compiled before (in this process or another) is not derived,
simplified or code-generated again.

Each test points ``$SYMGRAD_CACHE_DIR`` at its own folder and forgets the kernels this
process loaded, as a new process would.
"""

import ast
import importlib
import inspect
import json
import pickle
import textwrap

import llvmlite.binding as ll
import numba
import numpy as np
import pytest
import sympy
from numba.core.caching import Cache
from sympy.printing.pycode import PythonCodePrinter

import symgrad as sg
from symgrad.backends import kernel_cache, kernel_jit, numba_backend, numba_codegen

compile_module = importlib.import_module("symgrad.compile")  # sg.compile is the function

X = sg.tensor("X", ("N", "D"))
W = sg.tensor("W", ("D", "C"))
y = sg.tensor("y", ("N",), dtype="int64")
LOSS = sg.losses.softmax_cross_entropy(X @ W, y) + 0.25 * sg.losses.l2(W)


def inputs():
    rng = np.random.default_rng(5)
    return {"X": rng.normal(size=(6, 3)), "W": rng.normal(size=(3, 4)), "y": rng.integers(0, 4, 6)}


# The work a warm start must not do: derivation, simplification, code generation, and the
# SymPy calculus and printing behind them.  Each is replaced by a counting wrapper.
WORK = [
    (compile_module, "grad"),
    (compile_module, "optimize"),
    (numba_codegen.Kernel, "__init__"),
    (numba_codegen.Kernel, "source"),
    (sympy, "diff"),
    (sympy.Expr, "diff"),
    (sympy, "simplify"),
    (sympy, "cse"),
    (sympy, "nsimplify"),
    (PythonCodePrinter, "doprint"),
]


def count_work(monkeypatch) -> list:
    calls = []
    for owner, name in WORK:
        original = getattr(owner, name)

        def counted(*args, _original=original, _name=name, **kwargs):
            calls.append(_name)
            return _original(*args, **kwargs)

        monkeypatch.setattr(owner, name, counted)
    return calls


def forget_loaded(monkeypatch):
    monkeypatch.setattr(numba_backend, "_loaded", {})  # as in a new process


@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_warm_start_does_no_work_twice(empty_cache, monkeypatch, backend):
    cold = sg.value_and_grad(LOSS, W, backend=backend)
    v0, g0 = cold(**inputs())
    value, residuals = cold.forward(**inputs())  # the split kernels are recorded too
    cold.backward(residuals)
    assert not cold.stats.warm and cold.stats.derive > 0 and cold.stats.simplify > 0
    forget_loaded(monkeypatch)
    calls = count_work(monkeypatch)
    warm = sg.value_and_grad(LOSS, W, backend=backend)
    v1, g1 = warm(**inputs())
    value1, residuals1 = warm.forward(**inputs())
    grad1 = warm.backward(residuals1)
    assert calls == []
    assert warm.stats.warm and warm.stats.derive == 0 and warm.stats.simplify == 0
    if backend == "numba":
        assert warm.stats.codegen_skipped and warm.stats.codegen == 0
        assert warm.stats.cache_hit and warm.source == cold.source
        assert warm.split_source == cold.split_source
    assert warm.graph_text == cold.graph_text
    assert (warm.stats.nodes_before, warm.stats.nodes_after) == (
        cold.stats.nodes_before, cold.stats.nodes_after,
    )
    assert v1 == v0 and value1 == v0
    np.testing.assert_array_equal(g1, g0)
    np.testing.assert_array_equal(grad1, g0)


def test_warm_function_checks_its_inputs_as_the_cold_one(empty_cache, monkeypatch):
    # the signature is the one made from the graph before optimisation (which may drop an
    # input or a label read): the same inputs, the same checks in the same order
    x = sg.tensor("x", ("N",))
    f = sg.sum(x * 2.0) + LOSS
    cold = sg.value_and_grad(f, W)
    forget_loaded(monkeypatch)
    warm = sg.value_and_grad(f, W)
    assert warm.stats.warm and warm.input_names == cold.input_names == ["W", "X", "x", "y"]
    assert warm.signature.plan == cold.signature.plan
    good = dict(inputs(), x=np.zeros(6))
    assert warm(**good)[0] == cold(**good)[0]
    with pytest.raises(sg.ArgumentError, match="missing input 'x'"):
        warm(**inputs())
    with pytest.raises(sg.LabelError):
        warm(**dict(good, y=np.array([0, 1, 2, 3, 4, 0])))
    with pytest.raises(sg.ShapeError):
        warm(**dict(good, x=np.zeros(5)))
    with pytest.raises(sg.DTypeError):
        warm(**dict(good, y=np.zeros(6)))


def test_constants_and_dtypes_get_their_own_entries(empty_cache, monkeypatch):
    s = sg.symbols("s")
    a, b = 0.1, 0.10000000000000002
    assert a != b and str(sympy.Float(a)) == str(sympy.Float(b))  # alike when printed
    fa = sg.compile(s * a)
    fb = sg.compile(s * b)
    assert not fb.stats.warm  # not mistaken for the first
    assert fa(s=1.0) == a and fb(s=1.0) == b
    forget_loaded(monkeypatch)
    wa, wb = sg.compile(s * a), sg.compile(s * b)
    assert wa.stats.warm and wb.stats.warm
    assert wa(s=1.0) == a and wb(s=1.0) == b
    x64, x32 = sg.tensor("x", (3,)), sg.tensor("x", (3,), dtype="float32")
    f64 = sg.value_and_grad(sg.sum(x64 * 0.5), x64)
    f32 = sg.value_and_grad(sg.sum(x32 * 0.5), x32)
    assert not f32.stats.warm
    forget_loaded(monkeypatch)
    w64 = sg.value_and_grad(sg.sum(x64 * 0.5), x64)
    w32 = sg.value_and_grad(sg.sum(x32 * 0.5), x32)
    assert w64.stats.warm and w32.stats.warm
    assert w32(x=np.ones(3))[1].dtype == np.float32 == f32(x=np.ones(3))[1].dtype
    assert w64(x=np.ones(3))[1].dtype == np.float64 == f64(x=np.ones(3))[1].dtype
    # and so do options, backends and the way wrt is given
    assert not sg.value_and_grad(sg.sum(x64 * 0.5), x64, fastmath=True).stats.warm
    assert not sg.value_and_grad(sg.sum(x64 * 0.5), x64, backend="numpy").stats.warm
    assert not sg.value_and_grad(sg.sum(x64 * 0.5), [x64]).stats.warm
    assert not sg.value_and_grad(sg.sum(x64 * 0.5), {"x": x64}).stats.warm
    assert sg.value_and_grad(sg.sum(x64 * 0.5), {"x": x64})(x=np.ones(3))[0] == 1.5


def _records(empty_cache, prefix):
    return sorted(empty_cache.glob(f"{prefix}*.rec"))


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty", "wrong_content"])
@pytest.mark.parametrize("prefix", ["g_", "b_"])
def test_damaged_records_are_rebuilt(empty_cache, monkeypatch, damage, prefix):
    cold = sg.value_and_grad(LOSS, W)
    expected = cold(**inputs())
    (path,) = _records(empty_cache, prefix)
    data = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        path.write_bytes(b"not a record" * 20)
    elif damage == "empty":
        path.write_bytes(b"")
    else:  # an intact record holding something else: checksum fine, content wrong
        kernel_cache.write_record(path.stem, ("unexpected", 1))
    forget_loaded(monkeypatch)
    again = sg.value_and_grad(LOSS, W)
    value, grad = again(**inputs())
    assert value == expected[0]
    np.testing.assert_array_equal(grad, expected[1])
    assert again.stats.warm == (prefix == "b_")
    assert again.stats.codegen_skipped == (prefix == "g_")
    # and the record was written again: the next start is warm
    forget_loaded(monkeypatch)
    third = sg.value_and_grad(LOSS, W)
    assert third.stats.warm and third.stats.codegen_skipped


def test_a_kernel_module_changed_on_disk_is_not_trusted(empty_cache, monkeypatch):
    cold = sg.value_and_grad(LOSS, W)
    expected = cold(**inputs())
    (module,) = empty_cache.glob("k_*.py")
    module.write_text(module.read_text().replace("Generated by symgrad", "Edited"))
    forget_loaded(monkeypatch)
    again = sg.value_and_grad(LOSS, W)
    assert again.stats.warm and not again.stats.codegen_skipped  # the source was made again
    assert again.source == cold.source and again(**inputs())[0] == expected[0]


def test_eviction_with_records_stays_under_the_cap(empty_cache, monkeypatch):
    x = sg.tensor("x", (3,))
    graphs = [sg.sum(sg.tanh(x) * c) for c in (2.0, 3.0, 5.0, 7.0)]
    fs = [sg.compile(graphs[0])]
    one = sg.cache.info().bytes  # a kernel and its two records
    assert sg.cache.info().records == 2
    monkeypatch.setenv("SYMGRAD_CACHE_MAX_MB", str(2.5 * one / 2**20))
    fs += [sg.compile(g) for g in graphs[1:]]
    info = sg.cache.info()
    assert info.bytes <= 2.5 * one and info.entries == 2
    value = np.array([0.1, -0.2, 0.3])
    expected = [float(np.sum(np.tanh(value) * c)) for c in (2.0, 3.0, 5.0, 7.0)]
    for f, e in zip(fs, expected):  # functions in use keep working
        assert f(x=value) == pytest.approx(e, rel=1e-14)
    # a new process: whatever was evicted is built again, never wrong
    forget_loaded(monkeypatch)
    for g, e in zip(graphs, expected):
        assert sg.compile(g)(x=value) == pytest.approx(e, rel=1e-14)
    assert sg.cache.info().bytes <= 2.5 * one
    assert sg.cache.clear() == 2 and sg.cache.info().records == 0
    assert not list(empty_cache.glob("*.rec"))


# A process compiling LOSS and reporting what work it did (counted as in count_work).
CHILD = r"""
import importlib, json, sys
import numpy as np
import sympy
from sympy.printing.pycode import PythonCodePrinter
import symgrad as sg
compile_module = importlib.import_module("symgrad.compile")
from symgrad.backends import numba_codegen

calls = []
for owner, name in [(compile_module, "grad"), (compile_module, "optimize"),
                    (numba_codegen.Kernel, "__init__"), (numba_codegen.Kernel, "source"),
                    (sympy, "diff"), (sympy.Expr, "diff"), (sympy, "simplify"), (sympy, "cse"),
                    (PythonCodePrinter, "doprint")]:
    def counted(*a, _f=getattr(owner, name), _n=name, **k):
        calls.append(_n)
        return _f(*a, **k)
    setattr(owner, name, counted)
import builtins
generated, python_compile = [], builtins.compile
def compile_counted(source, filename, *a, **k):  # the call's generated functions (pycode)
    if filename in ("<symgrad fast_bind>", "<symgrad finish>", "<symgrad __call__>"):
        generated.append(filename)
    return python_compile(source, filename, *a, **k)
builtins.compile = compile_counted
X = sg.tensor("X", ("N", "D"))
W = sg.tensor("W", ("D", "C"))
y = sg.tensor("y", ("N",), dtype="int64")
u = sg.tensor("u", ("D",))
loss = sg.losses.softmax_cross_entropy(X @ W, y) + 0.25 * sg.losses.l2(W)
loss = loss + sg.mean(X @ u) * (u @ u) + sg.sum(u @ W)  # gemv and dot too
vg = sg.value_and_grad(loss, W)
rng = np.random.default_rng(5)
value, grad = vg(X=rng.normal(size=(6, 3)), W=rng.normal(size=(3, 4)), y=rng.integers(0, 4, 6),
                 u=rng.normal(size=3))
print(json.dumps({"value": value, "grad": grad.tolist(), "calls": len(calls),
                  "generated": len(generated), "scipy": "scipy.linalg" in sys.modules,
                  "warm": vg.stats.warm, "skipped": vg.stats.codegen_skipped,
                  "hit": vg.stats.cache_hit}))
"""


def test_a_new_process_starts_warm(run_python):
    def run():
        return json.loads(run_python(CHILD).strip().splitlines()[-1])

    first, second = run(), run()
    assert first["calls"] > 0 and first["generated"] == 3 and not first["warm"]
    # and the binder, call and packing functions come compiled with the record (pycode);
    # the products call NumPy's gemm, gemv and dot: SciPy's linalg is not imported (blas.py;
    # a NumPy without a CBLAS of its own, such as NumPy 1, calls SciPy's)
    from symgrad.backends import blas

    scipy = blas.BLAS == "scipy"
    assert second == dict(
        first, calls=0, generated=0, warm=True, skipped=True, hit=True, scipy=scipy
    )


def test_a_kernel_loaded_from_the_cache_is_its_machine_code_only(empty_cache, monkeypatch):
    # kernel_jit.py: the entry keeps the object code and the names of the functions, not the
    # LLVM module; the loaded kernel gives the same bits and refuses to be linked into other
    # jitted code (whose stubs it would otherwise call)
    cold = sg.value_and_grad(LOSS, W)
    v0, g0 = cold(**inputs())
    forget_loaded(monkeypatch)
    warm = sg.value_and_grad(LOSS, W)
    v1, g1 = warm(**inputs())
    assert warm.stats.cache_hit and v1 == v0
    np.testing.assert_array_equal(g1, g0)
    kernel = warm.program.function
    (overload,) = kernel.overloads.values()
    assert overload.library._shared_module is None
    assert overload.type_annotation == ""  # the annotated source is not stored either

    @numba.njit
    def caller(args):
        return kernel(*args)

    given = inputs()
    args = tuple(given[node.name] for node in warm.signature.inputs) + tuple(warm.program.consts)
    with pytest.raises(Exception, match="unfit for linking"):
        caller(args)


STUB_CHILD = """
import sys, warnings
import llvmlite.binding as ll
import numpy as np
import symgrad as sg
from symgrad.backends import kernel_jit
mode = sys.argv[1]
if mode == "damaged":  # an entry whose module names nothing: no entry point
    from llvmlite import ir
    kernel_jit._defined_names = lambda library: ll.parse_assembly(str(ir.Module())).as_bitcode()
elif mode.startswith("declares:"):  # an entry naming one more symbol its code uses
    used, symbol = kernel_jit._used_symbols, mode.split(":")[1]
    kernel_jit._used_symbols = lambda library: (*used(library), symbol)
elif mode.startswith("started-up-defines:"):  # a symbol only Numba's full start-up defines
    from numba.core import base
    refresh, symbol = base.BaseContext.refresh, mode.split(":")[1]
    def refresh_and_define(self):
        refresh(self)
        ll.add_symbol(symbol, ll.address_of_symbol("PyErr_Occurred"))
    base.BaseContext.refresh = refresh_and_define
elif mode == "numbas-own":  # a Numba whose library symgrad cannot reduce: its own entry
    def unknown(self):
        raise AttributeError("a library of another form")
    kernel_jit._Entry.serialize_using_object_code = unknown
elif mode == "parallel":  # a prange loop even at 4 elements: a threading layer to start
    from symgrad.backends import numba_codegen
    numba_codegen.PARALLEL_MIN_ELEMENTS = 1
y = sg.tensor("y", (4,))
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    vg = sg.value_and_grad(sg.sum(sg.exp(y) * y), y, parallel=mode == "parallel")
    value, grad = vg(y=np.arange(4.0))
assert ("prange(" in vg.source) == (mode == "parallel")
print(value, vg.stats.cache_hit, "unusable" in " ".join(str(w.message) for w in caught),
      "numba.np.arraymath" in sys.modules)  # imported by Numba's full start-up only
"""
EXPECTED = str(float(np.sum(np.exp(np.arange(4.0)) * np.arange(4.0))))


def test_a_cached_kernel_without_its_entry_point_is_compiled_again(run_python):
    # without the check in kernel_jit's rebuild, the second process would call a null
    # pointer (a segfault); with it, it warns and compiles the kernel again
    def run(mode):
        return run_python(STUB_CHILD, mode).split()

    assert run("damaged") == [EXPECTED, "False", "False", "True"]
    assert run("intact") == [EXPECTED, "False", "True", "True"]  # refused, compiled again
    assert run("intact") == [EXPECTED, "True", "False", "False"]


@pytest.mark.parametrize("mode", ["intact", "parallel"])
def test_a_cached_kernel_loads_without_numbas_full_start_up(run_python, mode):
    # kernel_jit's load_overload: Numba's runtime, the kernel's reload_init (a parallel
    # kernel's starts the threading layer, which defines the symbols its prange calls) and
    # the symbols the code uses; not every implementation Numba can compile (200 ms)
    assert run_python(STUB_CHILD, mode).split() == [EXPECTED, "False", "False", "True"]
    assert run_python(STUB_CHILD, mode).split() == [EXPECTED, "True", "False", "False"]


def test_a_kernel_whose_entry_is_numbas_own_is_loaded_as_numba_loads_it(run_python):
    # kernel_jit's reduce falls back to Numba's own entry; its rebuild then loads that entry
    # as Numba does (refreshing the context), instead of refusing it in every process
    assert run_python(STUB_CHILD, "numbas-own").split() == [EXPECTED, "False", "False", "True"]
    assert run_python(STUB_CHILD, "numbas-own").split() == [EXPECTED, "True", "False", "True"]


def test_numbas_load_is_still_a_refresh_then_the_load_kernel_jit_calls():
    # kernel_jit's load_overload is Numba's less the refresh: a Numba whose load does more
    # must be read again before kernel_jit can skip it
    (function,) = ast.parse(textwrap.dedent(inspect.getsource(Cache.load_overload))).body
    assert [ast.unparse(statement) for statement in function.body[1:]] == [  # [0]: docstring
        "target_context.refresh()",
        "with self._guard_against_spurious_io_errors():\n"
        "    return self._load_overload(sig, target_context)",
    ]


def test_a_kernels_entry_declares_the_symbols_its_code_uses(empty_cache):
    # what kernel_jit's rebuild checks before it loads machine code
    vg = sg.value_and_grad(LOSS, W)
    assert not vg.stats.cache_hit  # compiled here: the library has its whole module
    (overload,) = vg.program.function.overloads.values()
    declared = set(kernel_jit._used_symbols(overload.library))
    # BLAS by the name blas.py binds, Numba's runtime, the boxing of the result
    uses = {"symgrad_dgemm", "NRT_MemInfo_alloc_aligned", "NRT_adapt_ndarray_to_python_acqref"}
    assert uses <= declared
    assert not any(name.startswith("llvm.") for name in declared)  # intrinsics: not symbols
    names = ll.parse_bitcode(kernel_jit._defined_names(overload.library))
    assert overload.fndesc.llvm_cpython_wrapper_name in {f.name for f in names.functions}
    assert not any(f.is_declaration for f in names.functions)


@pytest.mark.parametrize(
    ("loading", "second"),
    [
        # defined as Numba starts up in full: started up, then loaded
        ("started-up-defines:symgrad_test_symbol", ["True", "False", "True"]),
        # defined nowhere: refused (a call would jump to address 0), compiled again
        ("intact", ["False", "True", "True"]),
    ],
)
def test_a_cached_kernel_using_a_symbol_numba_has_not_defined(run_python, loading, second):
    first = run_python(STUB_CHILD, "declares:symgrad_test_symbol").split()
    assert first == [EXPECTED, "False", "False", "True"]
    assert run_python(STUB_CHILD, loading).split() == [EXPECTED, *second]


def test_a_record_is_plain_data_behind_a_checksum(empty_cache):
    kernel_cache.write_record("g_test", {"a": 1})
    assert kernel_cache.read_record("g_test") == {"a": 1}
    path = empty_cache / "g_test.rec"
    head, digest, payload = path.read_bytes().split(b"\n", 2)
    assert pickle.loads(payload) == {"a": 1}
    path.write_bytes(head + b"\n" + digest + b"\n" + payload[:-1] + b"\x00")
    assert kernel_cache.read_record("g_test") is None and not path.exists()


def test_a_rule_replaced_at_run_time_is_not_answered_from_the_cache(empty_cache, monkeypatch):
    from symgrad.ops import layout, linalg

    right = sg.value_and_grad(LOSS, W)(**inputs())[1]

    def wrong_matmul(node, g):  # 1% too big for b
        a, b = node.inputs
        return linalg.matmul(g, layout.transpose(b)), 1.01 * linalg.matmul(layout.transpose(a), g)

    with monkeypatch.context() as patch:
        patch.setattr(linalg.MATMUL, "vjp", wrong_matmul)
        patched = sg.value_and_grad(LOSS, W)
        assert not patched.stats.warm
        wrong = patched(**inputs())[1]
        assert np.max(np.abs(wrong - right)) > 1e-3
        np.testing.assert_allclose(  # what the interpreter makes of the same (wrong) rule
            wrong, sg.value_and_grad(LOSS, W, backend="numpy")(**inputs())[1], rtol=1e-12
        )
    again = sg.value_and_grad(LOSS, W)
    assert again.stats.warm
    np.testing.assert_array_equal(again(**inputs())[1], right)


def test_a_warm_kernel_is_found_without_reading_the_graph(empty_cache, monkeypatch):
    cold = sg.value_and_grad(LOSS, W)
    expected = cold(**inputs())
    forget_loaded(monkeypatch)
    warm = sg.value_and_grad(LOSS, W)
    value, grad = warm(**inputs())
    # rebuilding the graph's formulas is a warm start's largest cost after Numba's load
    assert warm.stats.warm and warm._outputs._nodes is None
    assert value == expected[0]
    np.testing.assert_array_equal(grad, expected[1])
    assert warm.graph_text == cold.graph_text  # read when asked, a list as a cold one's
    assert type(warm.outputs) is list and warm.outputs == cold.outputs  # the same nodes


def test_a_changed_code_generator_setting_is_not_answered_by_an_old_kernel(
    empty_cache, monkeypatch
):
    from symgrad.backends import split as split_module

    cold = sg.value_and_grad(LOSS, W)
    forget_loaded(monkeypatch)
    monkeypatch.setattr(split_module, "MAX_LINES", 7)  # kernels split into small functions
    again = sg.value_and_grad(LOSS, W)
    assert not again.stats.warm and not again.stats.codegen_skipped
    assert again.source != cold.source
    np.testing.assert_allclose(again(**inputs())[1], cold(**inputs())[1], rtol=1e-13)
