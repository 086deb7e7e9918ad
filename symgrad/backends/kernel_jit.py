"""The decorator of a generated kernel: ``@njit`` with its one signature and a disk cache
whose entry holds the kernel's machine code, not its LLVM module.

Numba's cache entry of a function holds its object code and, as bitcode, its whole LLVM
module: other jitted functions that call it link that module in (and may inline it).
Loading an entry parses the bitcode and lists the symbols it defines.  A kernel's module
holds every split part and helper it calls, linked in (138 KB of bitcode for the README's
``mlp_act``), and those two steps were 8 of the 13 ms Numba took to load that kernel in a
process where it was already running.  Nothing links against a kernel: it is called from
Python only.  So its entry holds, in place of the module, a module that only *names* the
functions the kernel defines (Numba finds the kernel's entry point among them; their bodies
are ``unreachable``), and the loaded library then cannot be linked: Numba raises "library
unfit for linking" instead of linking those stubs.  A kernel compiled in this process (not
loaded) is Numba's own, unchanged.

This uses the cache classes of ``numba.core.caching`` and the library's ``_shared_module``,
which have kept their form since Numba 0.4x; ``tests/test_numba_backend.py`` checks a
kernel loaded this way.
"""

from __future__ import annotations

import llvmlite.binding as ll
from numba import njit
from numba.core import typeinfer
from numba.core.caching import CompileResultCacheImpl, FunctionCache


def _names_only(library) -> bytes:
    """Bitcode of a module defining the functions ``library`` defines, by name only."""
    names = [f.name for f in library._final_module.functions if not f.is_declaration]
    text = "".join(f'define void @"{name}"() {{\n  unreachable\n}}\n' for name in names)
    return ll.parse_assembly(text).as_bitcode()


class _MachineCode(CompileResultCacheImpl):
    def reduce(self, cres):
        libdata, *rest = super().reduce(cres)
        # (name, "object", (object code, module bitcode)): keep the object code; any other
        # form (another Numba's) is stored as Numba made it
        if isinstance(libdata, tuple) and len(libdata) == 3 and libdata[1] == "object":
            name, kind, (object_code, _module) = libdata
            libdata = (name, kind, (object_code, _names_only(cres.library)))
        return (libdata, *rest)

    def rebuild(self, target_context, payload):
        cres = super().rebuild(target_context, payload)
        cres.library._shared_module = None  # names, not code: never link them
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
