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

Loading skips Numba's start-up of its compiler: Numba's own ``load_overload`` first
refreshes the target context, which imports and registers the implementation of everything
Numba can compile (about 200 ms, once a process: most of Numba's first cached load).
Machine code needs none of it, only Numba's runtime (started here), its ``reload_init``
(a parallel kernel's starts the threading layer) and the symbols its code calls and reads,
which the entry lists by name (all but the libc functions LLVM itself calls, such as
``memset``, which the process has): where one is not defined, the context is refreshed as
Numba would, and a symbol still missing refuses the entry (code calling it would jump to
address 0).  Compiling refreshes it as before.  Numba extensions registered as entry points
are initialised by that refresh too, so a warm load leaves them to the first compile.

What this relies on: Numba finds a loaded function's entry point (its CPython wrapper) by
looking its name up among the names the stored module defines, and links a library only
through its ``_shared_module``.  It uses the cache classes of ``numba.core.caching``,
``CompileResult._reduce`` (which reads the library's ``serialize_using_object_code()`` and
``_final_module``), the library's ``_get_compiled_object`` / ``_shared_module``, and the
``(name, "object", (object code, bitcode))`` form of a serialized library (the entry adds
the symbols used as a third item, taken out before Numba reads it), the
``(library, ..., reload_init, environments)`` tuple of ``_reduce``, and
``FunctionCache.load_overload`` being ``target_context.refresh()`` then ``_load_overload``
(Numba 0.59 to 0.68 at least); where the reduction fails, the entry is Numba's own, a
warning says so, and it is loaded as Numba loads it (after the refresh).
``tests/test_warm.py`` loads kernels this way (``..._machine_code_only``,
``..._without_numbas_full_start_up``); a loaded kernel whose entry point or a symbol is
missing is refused here (an error, so ``numba_backend`` compiles it again) rather than
called.  This module's digest is part of every kernel's key, so a change to the entry's
form never reads an old entry.
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
from numba.core.runtime import rtsys

DIGEST = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16]


def _defined_names(library) -> bytes:
    """Bitcode of a module defining the functions ``library`` defines, by name only."""
    module = ir.Module()
    for f in library._final_module.functions:
        if not f.is_declaration:
            stub = ir.Function(module, ir.FunctionType(ir.VoidType(), []), name=f.name)
            ir.IRBuilder(stub.append_basic_block()).unreachable()
    return ll.parse_assembly(str(module)).as_bitcode()


def _used_symbols(library) -> tuple[str, ...]:
    """The names of the functions and globals ``library``'s code uses from outside (LLVM's
    intrinsics are compiled inline: not symbols)."""
    final = library._final_module
    functions = [f.name for f in final.functions if f.is_declaration]
    variables = [g.name for g in final.global_variables if g.is_declaration]
    return tuple(n for n in functions if not n.startswith("llvm.")) + tuple(variables)


# Symbols found defined in this process: a symbol stays defined once it is (LLVM's table
# and loaded libraries only grow), and kernels share most of theirs (Numba's runtime)
_found: set[str] = set()


def _unresolved(used) -> list[str]:
    """The names in ``used`` that this process's symbol table lacks."""
    missing = []
    for name in used:
        if name not in _found:
            if ll.address_of_symbol(name):
                _found.add(name)
            else:
                missing.append(name)
    return missing


class _Entry:
    """What ``CompileResult._reduce`` reads of a library, serialized as object code, the
    module of defined names and the symbols used (Numba's ``serialize_using_object_code``
    less the module, which it would clone and write as bitcode to be thrown away)."""

    def __init__(self, library):
        self.library = library
        self._final_module = library._final_module  # (its environments are looked up)

    def serialize_using_object_code(self):
        library = self.library
        code = library._get_compiled_object()
        return (library.name, "object", (code, _defined_names(library), _used_symbols(library)))


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
        (name, kind, data), *rest = payload  # CompileResult._reduce's tuple
        if kind != "object" or len(data) != 3:  # Numba's own entry (see reduce): its load
            target_context.refresh()
            return super().rebuild(target_context, payload)
        code, names, used = data
        *_, reload_init, _envs = rest
        for init in reload_init or ():  # (Numba runs them again in _rebuild: they run once)
            init()  # a parallel kernel's starts the threading layer, which defines symbols
        if _unresolved(used):  # perhaps one Numba's full start-up defines
            target_context.refresh()
            if missing := _unresolved(used):
                raise RuntimeError(f"the cached kernel uses undefined symbols {missing}")
        # Numba's form of a serialized library
        cres = super().rebuild(target_context, ((name, kind, (code, names)), *rest))
        if not cres.library.get_pointer_to_function(cres.fndesc.llvm_cpython_wrapper_name):
            raise RuntimeError("the cached kernel's entry point is missing")
        cres.library._shared_module = None  # a kernel is never linked (its module: names)
        return cres


class _KernelCache(FunctionCache):
    _impl_class = _MachineCode

    def load_overload(self, sig, target_context):
        # Numba's own, less target_context.refresh() (see the module docstring); its C
        # helpers and math functions are set up with the context, its runtime here
        rtsys.initialize(target_context)
        with self._guard_against_spurious_io_errors():
            return self._load_overload(sig, target_context)


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
