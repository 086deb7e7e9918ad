"""The ``auto`` backend: the NumPy interpreter at once, the Numba kernel once it is compiled.

``build`` returns at once with a :class:`TieredProgram`.  Its first call (or ``wait``)
starts compiling the Numba kernel in a background thread (importing Numba there too, so
the caller never waits for it); calls are answered by the NumPy interpreter
(``numpy_backend.py``) until the kernel is ready, and from then on by the kernel.  The two
tiers compute the same graph and agree to rounding (normwise relative 1e-12 on the test
suite's random graphs, ``tests/test_properties.py``), so a loop that switches tiers
half-way sees no jump beyond that.

A failure of the background compile is kept and raised as a :class:`CompileError` by the
next call and every call after it (and by ``wait``): it is never lost, and a function whose
kernel cannot be built does not quietly stay slow.

The thread is a daemon: a process that exits while a kernel is still compiling does not
wait for it (the next process compiles it again; the cache files are written atomically).
"""

from __future__ import annotations

import threading

import numpy as np

from ..errors import CompileError
from . import numpy_backend


def _as_kernel_args(given: tuple) -> tuple:
    # the interpreter gives 0-d arrays for scalars; the kernel's typed signature takes scalars
    return tuple(g[()] if type(g) is np.ndarray and g.ndim == 0 else g for g in given)


class TieredProgram:
    """Calls the interpreter until the background Numba compile is done, then the kernel.

    ``ready()`` says whether calls run the kernel; ``wait(timeout)`` blocks until the compile
    finished (raising its error if it failed).  If ``options`` holds a ``stats`` object
    (``compile.Stats``), the Numba compile adds its times there and every call records its
    tier (``stats.tier``, ``stats.numpy_calls``, ``stats.numba_calls``).
    """

    def __init__(self, outputs, signature, options: dict, given=()):
        self.interpreter = numpy_backend.build(outputs, signature, options, given)
        self.stats = options.get("stats")
        self.kernel = None  # the Numba program, once compiled
        self.error: BaseException | None = None
        self._done = threading.Event()
        if self.stats is not None:
            self.stats.tier = "numpy"
        self._thread = threading.Thread(
            target=self._compile,
            args=(outputs, signature, dict(options), tuple(given)),
            name=f"symgrad-compile-{options.get('name', 'kernel')}",
            daemon=True,
        )
        self._start_lock = threading.Lock()
        self._started = False

    def start(self):
        """Start the background compile (once).  The first call starts it after answering:
        compiling holds the GIL most of the time, and the first result should not wait."""
        with self._start_lock:
            if not self._started:
                self._started = True
                self._thread.start()

    def _compile(self, outputs, signature, options, given):
        try:
            from . import numba_backend  # the first use imports Numba: here, off the caller

            self.kernel = numba_backend.build(outputs, signature, options, given)
        except BaseException as exc:  # noqa: BLE001 - kept for the next call to raise
            self.error = exc
        finally:
            self._done.set()

    def _failed(self) -> CompileError:
        error = CompileError(
            f"the background Numba compile of this function failed: "
            f"{type(self.error).__name__}: {self.error}. backend='numpy' runs the graph "
            f"without Numba."
        )
        error.__cause__ = self.error
        return error

    @property
    def source(self) -> str:
        """The kernel's source once compiled, until then the interpreted graph's text."""
        return (self.kernel or self.interpreter).source

    def ready(self) -> bool:
        """True when calls run the compiled kernel."""
        return self.kernel is not None

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the compile is done (or ``timeout`` seconds); True if the kernel runs.

        Raises :class:`CompileError` if the compile failed."""
        self.start()
        self._done.wait(timeout)
        if self.error is not None:
            raise self._failed()
        return self.kernel is not None

    def __call__(self, values: tuple, dims: dict, given: tuple = ()):
        kernel, stats = self.kernel, self.stats
        if kernel is not None:
            if stats is not None:
                stats.tier = "numba"
                stats.numba_calls += 1
            return kernel(values, dims, _as_kernel_args(given) if given else given)
        if self.error is not None:
            raise self._failed()
        if stats is not None:
            stats.numpy_calls += 1
        try:
            return self.interpreter(values, dims, given)
        finally:
            if not self._started:
                self.start()


def build(outputs, signature, options: dict, given=()) -> TieredProgram:
    return TieredProgram(outputs, signature, options, given)
