"""The decorator of a generated kernel: ``@njit`` with its one signature and a disk cache
whose entry holds the kernel's machine code, not its LLVM module.

Numba's cache entry of a function holds its object code and, as bitcode, its whole LLVM
module: other jitted functions that call it link that module in (and may inline it).
Loading an entry parses the bitcode and lists the symbols it defines.  A kernel's module
holds every split part and helper it calls, linked in (138 KB of bitcode for the README's
``mlp_act``), and those two steps were 8 of the 13 ms Numba took to load that kernel in a
process where it was already running.  Nothing links against a kernel: it is called from
Python only.  So its entry holds, in place of the module, a module that only *names* the
functions the kernel defines (their bodies are ``unreachable``), and the loaded library then
cannot be linked: Numba raises "library unfit for linking" instead of linking those stubs.
The entry leaves out the kernel's annotated source too (what ``inspect_types()`` prints),
half of what was left.  A kernel compiled in this process (not loaded) links as Numba's
own.

What this relies on: Numba finds a loaded function's entry point (its CPython wrapper) by
looking its name up among the names the stored module defines, and links a library only
through its ``_shared_module``.  It uses the cache classes of ``numba.core.caching``,
``CompileResult._reduce`` (which reads the library's ``serialize_using_object_code()`` and
``_final_module``), the library's ``_get_compiled_object`` / ``_shared_module``, and the
``(name, "object", (object code, bitcode))`` form of a serialized library (Numba 0.59 to
0.68 at least); where the reduction fails, the entry is Numba's own and a warning says so.
``tests/test_warm.py::test_a_kernel_loaded_from_the_cache_is_its_machine_code_only`` loads a
kernel this way; a loaded kernel whose entry point is missing is refused here (an error, so
``numba_backend`` compiles it again) rather than called.  This module's digest is part of
every kernel's key, so a change to the entry's form never reads an old entry.
"""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path

import llvmlite.binding as ll
import numba
from llvmlite import ir
from numba import njit
from numba.core import typeinfer
from numba.core.caching import CompileResultCacheImpl, FunctionCache

DIGEST = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16]


def _names_only(library) -> bytes:
    """Bitcode of a module defining the functions ``library`` defines, by name only."""
    module = ir.Module()
    for f in library._final_module.functions:
        if not f.is_declaration:
            stub = ir.Function(module, ir.FunctionType(ir.VoidType(), []), name=f.name)
            ir.IRBuilder(stub.append_basic_block()).unreachable()
    return ll.parse_assembly(str(module)).as_bitcode()


class _Entry:
    """What ``CompileResult._reduce`` reads of a library, serialized as object code and
    names (Numba's ``serialize_using_object_code`` less the module, which it would clone
    and write as bitcode to be thrown away)."""

    def __init__(self, library):
        self.library = library
        self._final_module = library._final_module  # (its environments are looked up)

    def serialize_using_object_code(self):
        library = self.library
        code = library._get_compiled_object()
        return (library.name, "object", (code, _names_only(library)))


class _MachineCode(CompileResultCacheImpl):
    def reduce(self, cres):
        # Numba's reduction of the compile result, with the library as machine code and
        # names, and without the annotated source (only inspect_types() shows it: 108 KB
        # for mlp_act, half its entry, and most of the 22 ms the reduction took)
        try:
            return cres._replace(library=_Entry(cres.library), type_annotation="")._reduce()
        except Exception as exc:  # noqa: BLE001 - another Numba: its own entry, said once
            warnings.warn(
                f"symgrad: Numba {numba.__version__} reduced a kernel in a form symgrad does "
                f"not know ({exc!r}); its cache entry is Numba's own (slower to load)",
                stacklevel=2,
            )
            return super().reduce(cres)

    def rebuild(self, target_context, payload):
        cres = super().rebuild(target_context, payload)
        if not cres.library.get_pointer_to_function(cres.fndesc.llvm_cpython_wrapper_name):
            raise RuntimeError("the cached kernel's entry point is missing")
        cres.library._shared_module = None  # a kernel is never linked (its module: names)
        return cres


class _KernelCache(FunctionCache):
    _impl_class = _MachineCode


def kernel_jit(signature, **options):
    """``@njit(signature, cache=True, **options)``, with the cache entry described in the
    module docstring: compiles (or loads) when the module is imported, and takes no other
    signature."""

    def decorate(py_func):
        dispatcher = njit(**options)(py_func)  # no signature: nothing compiled yet
        dispatcher._cache = _KernelCache(py_func)  # what cache=True sets, with our entry
        with typeinfer.register_dispatcher(dispatcher):
            dispatcher.compile(signature)
        dispatcher.disable_compile()
        return dispatcher

    return decorate
