"""The ``numba`` backend: generated kernels, compiled by Numba and cached on disk.

The kernel source (``numba_codegen.py``) is written to ``<cache>/<key>.py`` and imported;
its decorator (``kernel_jit``: ``@njit(cache=True)`` with a leaner cache entry) carries the
argument types, so Numba compiles when the module is imported, or loads the machine code it
cached next to the file in an earlier process.  The key is a hash of the source, the options
and the Numba/NumPy versions: the same optimised graph with the same dtypes and options
finds the same file.

``vector_math`` (default True) makes kernels call the branch-free functions of ``vmath.py``
that LLVM vectorises; ``vector_math=False`` calls libm.

The cache folder is ``$SYMGRAD_CACHE_DIR`` or ``~/.cache/symgrad``, kept under a size cap
with least-recently-used eviction (``kernel_cache.py``; ``sg.cache.info()``).  Files are written to a
temporary name and renamed into place, so processes compiling the same kernel at once each
see a complete file.  A damaged module file is simply written again (its text is derived
from the graph); Numba's compiled code is checked against a checksum (``<key>.sum``) before
it is loaded, and code that fails the check or fails to load is deleted and recompiled with
a warning, never a crash.

Warm start: generating the source is itself work (SymPy prints every formula), so
:func:`build` first looks for a record (``kernel_cache.write_record``) keyed by the exact
:func:`~symgrad.ir.fingerprint.fingerprint` of the graph and the kernel's arguments, the
options, the versions and symgrad's own source digest.  It names the kernel module and holds
a digest of its text and the constant arrays the kernel takes; if the module is there with
that text, it is imported directly (Numba then loads its machine code), skipping code
generation.  A missing, damaged or stale record or module means the usual path.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

import numba
import numpy as np

from ..ir import Node
from ..ir.fingerprint import fingerprint, ops_digest
from . import kernel_jit, loopfuse, numba_codegen
from . import split as split_module
from .kernel_cache import (
    cache_dir,
    evict,
    exclusive,
    mark_used,
    read_record,
    source_digest,
    write_record,
)
from .numba_codegen import HELPERS, Kernel, helpers_used, prelude
from .split import outline, outline_rows, split

_lock = threading.Lock()
_key_locks: dict[str, threading.Lock] = {}
_loaded: dict[str, object] = {}  # key -> kernel function, per process
FORMAT = 2  # bump when the generated code changes meaning, to retire old cache entries

# parallel=True as Numba options: the prange loops only.  Numba's other parallel passes turn
# every array expression, allocation and fill (np.full, np.zeros, .astype) into a threaded
# loop, whatever its size: that made small kernels 40x slower (benchmarks/parallel.py).
PRANGE_ONLY = (
    '{"prange": True, "comprehension": False, "reduction": False, "inplace_binop": False, '
    '"setitem": False, "numpy": False, "stencil": False, "fusion": False}'
)

NUMBA_TYPES = {"float64": "float64", "float32": "float32", "int64": "int64", "bool": "boolean"}


def _arg_type(node: Node) -> str:
    # Arrays are typed read-only and C-contiguous: the kernel cannot write its inputs, and
    # writable arrays are accepted too.
    base = "nt." + NUMBA_TYPES[node.dtype]
    if node.shape == ():
        return base
    return f'nt.Array({base}, {node.ndim}, "C", readonly=True)'


def kernel_module(kernel: Kernel, options: dict) -> tuple[str, str]:
    """The full module source for ``kernel`` and its cache key."""
    source = kernel.source()
    if loopfuse.ENABLED:
        source = loopfuse.fuse_rows(source)
    rows, entry = outline_rows(source)
    loops, entry = outline(entry)
    parts, entry = split(entry)
    parts = rows + loops + parts
    arg_types = "".join(f"        {_arg_type(n)},\n" for n in kernel.args + kernel.consts)
    fastmath = bool(options.get("fastmath", False))

    def flags(code: str) -> str:
        # parallel only where codegen found a loop to run in parallel (else Numba warns);
        # nogil: a kernel touches no Python object, so threads (a Dask worker's) run kernels
        # at once; not parallel ones: Numba's workqueue layer aborts on concurrent launches
        parallel = PRANGE_ONLY if options.get("parallel") and "prange(" in code else False
        # no_cfunc_wrapper: the C-callable wrapper Numba otherwise adds to every function
        # (for first-class function values) is never used, and costs compile time in
        # proportion to the arguments (a 40-layer MLP's kernel takes 83 arrays)
        return (
            'error_model="numpy", boundscheck=False, no_cfunc_wrapper=True,\n'
            f"    fastmath={fastmath}, parallel={parallel}, nogil={not parallel},"
        )

    # The parts first: the kernel's explicit signature compiles it (and them) on import.
    # Not cache=True: Numba's cache entry of the kernel holds their machine code (linked
    # in), so a cache of their own would only store it twice.
    decorated = "".join(
        f"@njit(\n    no_cpython_wrapper=True, {flags(code)}\n)\n{code}\n\n"
        for _, code in parts
    )
    # kernel_jit: njit with the signature and cache=True, its cache entry the machine code
    decorated += f"@kernel_jit(\n    (\n{arg_types}    ),\n    {flags(entry)}\n)\n{entry}"
    body = "".join(code for _, code in parts) + entry
    versions = f"{FORMAT} {numba.__version__} {np.__version__} {sys.version_info[:2]}"
    versions += f" kernel_jit {kernel_jit.DIGEST}"  # the form of the kernel's cache entry
    for name in helpers_used(body):  # Numba's cache would not notice a change of theirs
        versions += f" {name} {HELPERS[name].DIGEST}"
    key = "k_" + hashlib.sha256((decorated + versions).encode()).hexdigest()[:24]
    return prelude(key, decorated) + decorated, key


def _write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.stem, suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(tmp, 0o644)  # mkstemp makes it private; a shared cache folder needs it readable
    os.replace(tmp, path)


def _import(path: Path, key: str, name: str):
    # registered under its own top-level name: Numba's cache looks the module up by name
    spec = importlib.util.spec_from_file_location(f"symgrad_kernel_{key}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[spec.name]
        raise
    return getattr(module, name)


def load(kernel: Kernel, options: dict):
    """Compile ``kernel`` (or load it from the cache); returns (function, source, cache_hit)."""
    text, key = kernel_module(kernel, options)
    return load_module(text, key, kernel.name)


def load_module(text: str, key: str, name: str):
    """Compile the kernel module ``text`` (or load it from the cache); returns
    (function, source, cache_hit)."""
    with _lock:  # one lock per kernel: a thread compiling one kernel does not block others
        key_lock = _key_locks.setdefault(key, threading.Lock())
    with key_lock:
        if key in _loaded:
            return _loaded[key], text, True
        with exclusive(key):
            path = cache_dir() / f"{key}.py"
            fresh = not path.exists() or path.read_bytes() != text.encode()
            if fresh:  # new, or damaged: the module text is derived, so just write it again
                _write_atomic(path, text)
            verified = _verify_machine_code(path)
            try:
                function = _import(path, key, name)
            except Exception as exc:  # a damaged cache entry: rebuild it once from scratch
                warnings.warn(
                    f"symgrad: kernel cache entry {path.name} was unusable ({exc!r}); recompiling",
                    stacklevel=2,
                )
                _purge(path)
                _write_atomic(path, text)
                function = _import(path, key, name)
                verified = False
            hit = sum(function.stats.cache_hits.values()) > 0
            if not (verified and hit):  # (a hit on checked files leaves them as they were)
                _record_machine_code(path)
            mark_used(path)
            if fresh:
                evict(keep=key)
            _loaded[key] = function
            return function, text, hit


def _entry_point(function, consts):
    """The compiled kernel's own CPython wrapper, or ``function`` (the dispatcher).

    A kernel has exactly one signature (given in its decorator), and a call that reaches
    it through ``compile.py``'s generated fast call has passed the signature's checks
    (exact classes and dtypes, ndim, C order), so the dispatcher's work per call -- typing
    every argument to choose an overload -- has one answer known in advance: calling the
    wrapper directly skips it (about 40% of a scalar kernel's call).  Only where the
    constant arguments are what the signature says too (C-contiguous arrays; they always
    are, ``ConstArray`` copies), and where Numba has the one overload.
    """
    overloads = getattr(function, "overloads", {})
    if len(overloads) != 1:
        return function
    entry = getattr(next(iter(overloads.values())), "entry_point", None)
    if not callable(entry):
        return function
    if not all(np.ndim(c) == 0 or c.flags.c_contiguous for c in consts):
        return function
    return entry


def _machine_code(path: Path) -> list[Path]:
    """Numba's cache files of the kernel module ``path``: its index and its entries."""
    folder, prefix = path.parent / "__pycache__", path.stem + "."
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return []
    # a prefix test, not a glob, which compiles a pattern for each kernel's name (0.5 ms)
    return sorted(
        folder / n for n in names if n.startswith(prefix) and n.endswith((".nbi", ".nbc"))
    )


def _digest(files: list[Path]) -> str:
    h = hashlib.sha256()
    for f in files:
        h.update(f.name.encode() + b"\0" + f.read_bytes())
    return h.hexdigest()


def _record_machine_code(path: Path) -> None:
    """Write a checksum of Numba's cache files for this kernel next to the module."""
    digest, checksum = _digest(_machine_code(path)), path.with_suffix(".sum")
    if not checksum.exists() or checksum.read_bytes() != digest.encode():
        _write_atomic(checksum, digest)


def _verify_machine_code(path: Path) -> bool:
    """Delete Numba's cache files for this kernel unless they match their checksum; True
    if there were files and they matched.

    Numba does not check its object files; a damaged one makes LLVM abort the whole
    process, which no ``except`` can catch.  So they are checked here, before loading.
    """
    files, checksum = _machine_code(path), path.with_suffix(".sum")
    if not files or not checksum.exists():  # nothing to check (written after the next load)
        return False
    try:
        ok = checksum.read_text() == _digest(files)
    except (OSError, UnicodeDecodeError):
        ok = False
    if not ok:
        warnings.warn(
            f"symgrad: kernel cache entry {path.stem}: compiled code failed its checksum; recompiling",
            stacklevel=3,
        )
        for f in files:
            f.unlink(missing_ok=True)
    return ok


def _purge(path: Path) -> None:
    for stale in list(path.parent.glob(f"__pycache__/{path.stem}*")) + [path]:
        try:
            stale.unlink()
        except OSError:
            pass


class NumbaProgram:
    """Calls one compiled kernel; ``source`` is the generated module, ``key`` its cache key
    and ``consts`` the constant arrays passed after the arguments."""

    def __init__(self, kernel: Kernel | None, options: dict, warm=None):
        stats = options.get("stats")
        started = time.perf_counter()
        if warm is None:
            # generated here (the module text: fused, shared loops), to time it on its own
            text, self.key = kernel_module(kernel, options)
            codegen = time.perf_counter() - started
            started = time.perf_counter()
            self.function, self.source, hit = load_module(text, self.key, kernel.name)
            consts = [c.attr("value").array for c in kernel.consts]
        else:  # from a warm-start record: the module text is already on disk
            codegen = 0.0
            self.key, name, text, consts = warm
            self.function, self.source, hit = load_module(text, self.key, name)
        if stats is not None:
            stats.codegen += codegen
            stats.numba += time.perf_counter() - started
            stats.cache_hit = hit
            stats.codegen_skipped = warm is not None
        self.raw_consts = consts
        self.consts = [c[()] if c.ndim == 0 else c for c in consts]
        # for compile.py's one-function call: program(values) is function(*values, *consts)
        self.direct = (_entry_point(self.function, self.consts), tuple(self.consts))

    def __call__(self, values: tuple, dims: dict, given: tuple = ()) -> tuple:
        """Run the kernel on bound input values (signature order); ``given`` holds the
        values of further args (the saved forward values of a backward kernel)."""
        return self.function(*values, *given, *self.consts)


def settings() -> tuple:
    """What the generated kernel depends on besides the graph and the options: the code
    generator's settings, which may be changed at run time (tests do), and the versions."""
    return (
        split_module.MAX_LINES,
        split_module.MIN_REPEATS,
        numba_codegen.PARALLEL_MIN_ELEMENTS,
        Kernel.ROW_BLOCK_BYTES,
        loopfuse.ENABLED,
        FORMAT,
        numba.__version__,
        np.__version__,
    )


def record_key(outputs: list[Node], args: list[Node], options: dict) -> str:
    """The key of the warm-start record of the kernel for ``outputs`` taking ``args``."""
    chosen = (
        options.get("name", "kernel"),
        bool(options.get("parallel", False)),
        bool(options.get("vector_math", True)),
        bool(options.get("fastmath", False)),
    )
    text = f"{fingerprint(outputs, args)} {chosen} {settings()} {source_digest()} {ops_digest()}"
    return "b_" + hashlib.sha256(text.encode()).hexdigest()[:24]


def _from_record(key: str):
    """(kernel key, function name, module text, constants) if the record and its module
    are intact."""
    record = read_record(key)
    try:
        kernel_key, name, text_digest, consts = record
        text = (cache_dir() / f"{kernel_key}.py").read_text()
    except (TypeError, ValueError, OSError, UnicodeDecodeError):
        return None
    if hashlib.sha256(text.encode()).hexdigest() != text_digest:
        return None
    if not all(isinstance(c, np.ndarray) for c in consts):
        return None
    return kernel_key, name, text, list(consts)


def build(outputs: list[Node], signature, options: dict, given=()) -> NumbaProgram:
    """A kernel for ``outputs`` taking the signature's inputs and the nodes ``given``.

    ``options["record_key"]``, if there, is :func:`record_key` of these arguments as a
    caller stored it (``compile.py``'s warm start, whose key covers :func:`settings`):
    the kernel is then found without reading ``outputs``.
    """
    args = signature.inputs + list(given)
    key = options.get("record_key") or record_key(outputs, args, options)
    warm = _from_record(key)
    if warm is not None:
        program = NumbaProgram(None, options, warm)
        program.cache_keys = (key, program.key)
        return program
    kernel = Kernel(
        list(outputs),
        args,
        options.get("name", "kernel"),
        parallel=bool(options.get("parallel", False)),
        vector_math=bool(options.get("vector_math", True)),
    )
    program = NumbaProgram(kernel, options)
    digest = hashlib.sha256(program.source.encode()).hexdigest()
    record = (program.key, kernel.name, digest, program.raw_consts)
    write_record(key, record, keep=[program.key])
    program.cache_keys = (key, program.key)
    return program
