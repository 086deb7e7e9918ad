"""The kernel cache folder: where it is, what it holds, and keeping it under a size cap.

One cache *entry* is one compiled kernel: its module ``<key>.py``, the checksum
``<key>.sum`` and Numba's machine code ``__pycache__/<key>.*.nbi|nbc`` (keys ``k_...``), or
one warm-start *record* ``<key>.rec`` (:func:`write_record`): ``g_...`` holds the optimised
graph of an input graph (``compile.py``), ``b_...`` names the kernel generated for an
optimised graph (``numba_backend.py``), so a warm start neither derives, simplifies nor
generates code.  A record names what it refers to; if that was evicted, the warm start
falls back to doing the work.  Records are pickles behind a checksum, read only from this
folder (as Numba's own cache files are): a damaged one is removed and written again.

Loading an entry marks it used (its access time, set explicitly so it does not depend on
how the disk is mounted; the modification time is left alone).  After a new kernel is
written, entries are removed least recently used first until the folder is under its cap
again; the entry just written (and a record's kernel) always stays.  Records are small and
written by every compile, even the NumPy backend's, so after a record the folder is scanned
only once what this process wrote since its last scan could have taken it over the cap, or
amounts to a sixteenth of the cap (so a folder shared by several processes exceeds the cap
by at most a sixteenth of it per process between scans).

Removing an entry never breaks a kernel already loaded: a process holds its machine code
in memory, and a process that finds an entry gone compiles it again.

The folder is ``$SYMGRAD_CACHE_DIR`` (default ``~/.cache/symgrad``); the cap is
``$SYMGRAD_CACHE_MAX_MB`` megabytes (default :data:`DEFAULT_MAX_MB`; ``0`` keeps only the
newest entry).  This module does not import Numba.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ..errors import ArgumentError

DEFAULT_MAX_MB = 512
PREFIX = "k_"  # every kernel key starts with it (see numba_backend.kernel_module)
RECORD_PREFIXES = ("g_", "b_")  # warm-start records: graphs, kernel names


def cache_dir() -> Path:
    """The cache folder, created if missing."""
    path = Path(os.environ.get("SYMGRAD_CACHE_DIR") or Path.home() / ".cache" / "symgrad")
    path.mkdir(parents=True, exist_ok=True)
    return path


def max_bytes() -> int:
    """The size cap in bytes, from ``$SYMGRAD_CACHE_MAX_MB``."""
    text = os.environ.get("SYMGRAD_CACHE_MAX_MB", "").strip()
    if not text:
        return DEFAULT_MAX_MB * 2**20
    try:
        mb = float(text)
    except ValueError:
        mb = -1.0
    if not mb >= 0:  # also refuses nan
        raise ArgumentError(
            f"SYMGRAD_CACHE_MAX_MB must be a number of megabytes >= 0, got {text!r}"
        )
    return int(mb * 2**20)


@dataclass(frozen=True)
class Entry:
    """One cached kernel: its key, its files, their total size and when it was last used."""

    key: str
    files: tuple[Path, ...]
    size: int
    last_used: float


@dataclass(frozen=True)
class CacheInfo:
    """What ``sg.cache.info()`` reports."""

    path: Path
    entries: int
    bytes: int
    max_bytes: int
    records: int = 0  # warm-start records (their bytes are in ``bytes`` too)

    def __str__(self) -> str:
        return (
            f"{self.path}: {self.entries} kernels, {self.records} warm-start records, "
            f"{self.bytes / 2**20:.1f} MB (cap {self.max_bytes / 2**20:.0f} MB, "
            "$SYMGRAD_CACHE_MAX_MB)"
        )


def _key_of(path: Path, prefixes) -> str | None:
    name = path.name
    if not name.startswith(prefixes):
        return None
    return name.split(".", 1)[0]


def entries(folder: Path | None = None, records: bool = False) -> list[Entry]:
    """The kernels in the cache folder (with ``records``, the warm-start records too),
    least recently used first."""
    folder = cache_dir() if folder is None else folder
    prefixes = (PREFIX,) + (RECORD_PREFIXES if records else ())
    groups: dict[str, list[Path]] = {}
    found = [p for prefix in prefixes for p in folder.glob(prefix + "*")]
    found += list(folder.glob("__pycache__/" + PREFIX + "*"))
    for path in found:
        key = _key_of(path, prefixes)
        if key is not None and not path.name.endswith(".tmp"):
            groups.setdefault(key, []).append(path)
    found = []
    for key, files in groups.items():
        size, used = 0, 0.0
        for f in files:
            try:
                st = f.stat()
            except OSError:  # removed meanwhile by another process
                continue
            size += st.st_size
            if f.suffix in (".py", ".rec"):
                used = st.st_atime
        found.append(Entry(key, tuple(sorted(files)), size, used))
    return sorted(found, key=lambda e: (e.last_used, e.key))


@contextmanager
def exclusive(key: str):
    """Hold the cache folder's lock of entry ``key`` against other processes.

    Compiling a kernel and recording the checksum of Numba's files for it must be one
    process's doing: two processes compiling the same kernel at once (two Dask workers
    starting together) would each record the checksum of files the other then rewrites, and
    every later process would find a mismatch and compile again. The second process waits
    and loads what the first wrote. (No lock where ``fcntl`` is missing: Windows.)
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover
        yield
        return
    with open(cache_dir() / f"{key}.lock", "ab") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def mark_used(module: Path) -> None:
    """Record that the entry of ``module`` (its ``.py`` file) was just loaded."""
    try:
        st = module.stat()
        os.utime(module, ns=(time.time_ns(), st.st_mtime_ns))
    except OSError:
        pass


def _remove(entry: Entry) -> None:
    for f in entry.files:
        try:
            f.unlink()
        except OSError:
            pass


# What this process knows of each folder's size: the total its last scan left (``evict``)
# and the bytes of records it has written since.  A scan lists and stats every file, so
# scanning after every record made a run of thousands of small compiles quadratic.
_scanned: dict[Path, int] = {}
_since_scan: dict[Path, int] = {}


def evict(keep, folder: Path | None = None) -> list[str]:
    """Remove least recently used entries (kernels and records) until the folder is under
    the cap.

    ``keep`` (the key just written, or a collection of keys: a record and the kernel it
    names) is never removed.  Returns the removed keys.
    """
    folder = cache_dir() if folder is None else folder
    keep = {keep} if isinstance(keep, str) else set(keep)
    cap = max_bytes()
    found = entries(folder, records=True)
    total = sum(e.size for e in found)
    removed = []
    for entry in found:
        if total <= cap:
            break
        if entry.key in keep:
            continue
        _remove(entry)
        total -= entry.size
        removed.append(entry.key)
    _scanned[folder], _since_scan[folder] = total, 0
    return removed


def _evict_after_writing(nbytes: int, keep, folder: Path) -> None:
    """``evict`` once the bytes written since the last scan could have taken the folder over
    the cap, or amount to a sixteenth of it (other processes write to the folder too: their
    writes are seen at the next scan, so the cap is exceeded by at most that much each)."""
    written = _since_scan.get(folder, 0) + nbytes
    _since_scan[folder] = written
    cap = max_bytes()
    if folder not in _scanned or _scanned[folder] + written > cap or written > cap // 16:
        evict(keep, folder)


def info() -> CacheInfo:
    """The cache folder, its number of kernels, their size and the cap.

    >>> import symgrad as sg
    >>> sg.cache.info().entries >= 0
    True
    """
    found = entries(records=True)
    kernels = sum(e.key.startswith(PREFIX) for e in found)
    return CacheInfo(
        cache_dir(), kernels, sum(e.size for e in found), max_bytes(), len(found) - kernels
    )


def clear() -> int:
    """Remove every cached kernel and warm-start record; returns how many kernels were
    removed.

    Kernels already loaded in a process keep working; the next compile of the same graph
    (in a new process) compiles again.
    """
    found = entries(records=True)
    for entry in found:
        _remove(entry)
    _scanned.pop(cache_dir(), None)
    return sum(e.key.startswith(PREFIX) for e in found)


# --- warm-start records --------------------------------------------------------------------

_MAGIC = b"symgrad-record-1\n"


def write_record(key: str, value, keep=()) -> None:
    """Store ``value`` (picklable) as the record ``<key>.rec``, written atomically, with a
    checksum; then evict down to the cap, keeping ``key`` and the keys in ``keep``."""
    payload = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    data = _MAGIC + hashlib.sha256(payload).hexdigest().encode() + b"\n" + payload
    folder = cache_dir()
    path = folder / f"{key}.rec"
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=key, suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except OSError:  # a read-only or full cache folder: the next start does the work again
        return
    mark_used(path)
    _evict_after_writing(len(data), [key, *keep], folder)


def read_record(key: str):
    """The value stored under ``key``, or None if there is none or it is damaged (a damaged
    record is removed; the caller then does the work and writes it again)."""
    path = cache_dir() / f"{key}.rec"
    try:
        data = path.read_bytes()
    except OSError:
        return None
    head, _, rest = data.partition(b"\n")
    digest, _, payload = rest.partition(b"\n")
    try:
        if head + b"\n" != _MAGIC or hashlib.sha256(payload).hexdigest().encode() != digest:
            raise ValueError("checksum")
        value = pickle.loads(payload)
    except Exception:  # noqa: BLE001 - any damage means: no record
        path.unlink(missing_ok=True)
        return None
    mark_used(path)
    return value


_source_digest: str | None = None


def source_digest() -> str:
    """A digest of symgrad's own source files and of the versions of Python, NumPy and
    SymPy: part of every warm-start key, so that a change of the compiler (or of what it
    builds on) retires the records made by the old one."""
    global _source_digest
    if _source_digest is None:
        import numpy
        import sympy

        root = Path(__file__).resolve().parent.parent
        h = hashlib.sha256(f"{sys.version} {numpy.__version__} {sympy.__version__}".encode())
        for path in sorted(root.rglob("*.py")):
            h.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
        _source_digest = h.hexdigest()
    return _source_digest
