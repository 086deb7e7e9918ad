"""The kernel cache folder: where it is, what it holds, and keeping it under a size cap.

One cache *entry* is one compiled kernel: its module ``<key>.py``, the checksum
``<key>.sum`` and Numba's machine code ``__pycache__/<key>.*.nbi|nbc``.  Loading an entry
marks it used (its access time, set explicitly so it does not depend on how the disk is
mounted; the modification time is left alone).  After a new entry is written, entries are
removed least recently used first until the folder is under its cap again; the entry just
written always stays.

Removing an entry never breaks a kernel already loaded: a process holds its machine code
in memory, and a process that finds an entry gone compiles it again.

The folder is ``$SYMGRAD_CACHE_DIR`` (default ``~/.cache/symgrad``); the cap is
``$SYMGRAD_CACHE_MAX_MB`` megabytes (default :data:`DEFAULT_MAX_MB`; ``0`` keeps only the
newest entry).  This module does not import Numba.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import ArgumentError

DEFAULT_MAX_MB = 512
PREFIX = "k_"  # every kernel key starts with it (see numba_backend.kernel_module)


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

    def __str__(self) -> str:
        return (
            f"{self.path}: {self.entries} kernels, {self.bytes / 2**20:.1f} MB "
            f"(cap {self.max_bytes / 2**20:.0f} MB, $SYMGRAD_CACHE_MAX_MB)"
        )


def _key_of(path: Path) -> str | None:
    name = path.name
    if not name.startswith(PREFIX):
        return None
    return name.split(".", 1)[0]


def entries(folder: Path | None = None) -> list[Entry]:
    """The entries in the cache folder, least recently used first."""
    folder = cache_dir() if folder is None else folder
    groups: dict[str, list[Path]] = {}
    for path in list(folder.glob(PREFIX + "*")) + list(folder.glob("__pycache__/" + PREFIX + "*")):
        key = _key_of(path)
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
            if f.suffix == ".py":
                used = st.st_atime
        found.append(Entry(key, tuple(sorted(files)), size, used))
    return sorted(found, key=lambda e: (e.last_used, e.key))


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


def evict(keep: str, folder: Path | None = None) -> list[str]:
    """Remove least recently used entries until the folder is under the cap.

    ``keep`` (the key just written) is never removed.  Returns the removed keys.
    """
    cap = max_bytes()
    found = entries(folder)
    total = sum(e.size for e in found)
    removed = []
    for entry in found:
        if total <= cap:
            break
        if entry.key == keep:
            continue
        _remove(entry)
        total -= entry.size
        removed.append(entry.key)
    return removed


def info() -> CacheInfo:
    """The cache folder, its number of kernels, their size and the cap.

    >>> import symgrad as sg
    >>> sg.cache.info().entries >= 0
    True
    """
    found = entries()
    return CacheInfo(cache_dir(), len(found), sum(e.size for e in found), max_bytes())


def clear() -> int:
    """Remove every cached kernel; returns how many were removed.

    Kernels already loaded in a process keep working; the next compile of the same graph
    (in a new process) compiles again.
    """
    found = entries()
    for entry in found:
        _remove(entry)
    return len(found)
