"""The on-disk kernel cache: ``sg.cache.info()`` and ``sg.cache.clear()``.

Compiled Numba kernels are kept in ``$SYMGRAD_CACHE_DIR`` (default ``~/.cache/symgrad``) so
that another process loads them instead of compiling again, with warm-start records (the
optimised graph of an input graph, the kernel generated for it) so that it does not derive,
simplify or generate code again either.  The folder is kept under ``$SYMGRAD_CACHE_MAX_MB``
megabytes (default 512) by removing the least recently used entries after each new one is
written.  Details: ``symgrad/backends/kernel_cache.py``.
"""

from .backends.kernel_cache import DEFAULT_MAX_MB, CacheInfo, cache_dir, clear, info

__all__ = ["info", "clear", "cache_dir", "CacheInfo", "DEFAULT_MAX_MB"]
