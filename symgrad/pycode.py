"""Python functions generated at run time, each text compiled once.

A compiled function's input binder, its call wrapper and the packing of its results are
Python source generated from its signature (``backends/inputs.py``, ``compile.py``).
Compiling a few kilobytes of it costs about a millisecond, a large part of a warm start in
a process where Numba is loaded.  So each text's code object is kept for the process, and a
warm-start record carries the code of the functions it needs (:func:`saved`, read back by
:func:`remember`): a new process compiles none of them either.  Code objects are kept in
``marshal``'s format, which belongs to one Python version; the records' keys hold that
version.
"""

from __future__ import annotations

import hashlib
import marshal
import threading
import weakref
from collections import OrderedDict
from types import CodeType

CAPACITY = 1024  # texts whose code the process keeps (a few kilobytes each)
_codes: OrderedDict[str, tuple] = OrderedDict()  # text -> (digest, code), oldest first
_remembered: OrderedDict[str, CodeType] = OrderedDict()  # digest of a text -> code, from records
_made: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # function -> (digest, code)
_lock = threading.Lock()


def _digest(source: str) -> str:
    return hashlib.sha256(source.encode()).hexdigest()[:32]


def _keep(table: OrderedDict, key, value) -> None:
    with _lock:
        table[key] = value
        table.move_to_end(key)
        while len(table) > CAPACITY:
            table.popitem(last=False)


def function(source: str, filename: str, name: str, namespace: dict):
    """The function ``name`` that ``source`` defines, run in ``namespace`` (which it
    fills); ``filename`` is what tracebacks show."""
    known = _codes.get(source)
    if known is None:
        digest = _digest(source)
        code = _remembered.get(digest)
        if code is None or code.co_filename != filename:
            code = compile(source, filename, "exec")
        known = (digest, code)
        _keep(_codes, source, known)
    exec(known[1], namespace)
    made = namespace[name]
    _made[made] = known
    return made


def saved(functions) -> bytes:
    """The code of ``functions`` (made by :func:`function`; others are left out), as bytes
    to store."""
    return marshal.dumps(dict(_made[f] for f in functions if f in _made))


def remember(data: bytes) -> None:
    """Make the code in ``data`` (from :func:`saved`) available to :func:`function`;
    anything but such bytes is ignored (a record written by something else)."""
    try:
        codes = marshal.loads(data)
    except (EOFError, ValueError, TypeError):
        return
    if isinstance(codes, dict):
        for digest, code in codes.items():
            if isinstance(digest, str) and type(code) is CodeType:
                _keep(_remembered, digest, code)
