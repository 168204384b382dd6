"""Process memory: give the C allocator's freed pages back to the OS, and keep it from
hoarding them per thread. A service holding a million households' index must not also hold
the scratch memory of building it."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import gc
from collections.abc import Callable
from typing import cast


def release_free_memory() -> None:
    """Collect garbage and return freed heap pages to the OS (glibc ``malloc_trim``; a no-op
    where there is no glibc)."""
    gc.collect()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


def limit_allocator_arenas(arenas: int = 2) -> None:
    """Cap glibc's per-thread heaps: the store's threads would each keep an arena of freed
    memory, which a long fan-out turns into resident memory nobody uses."""
    libc = _libc()
    mallopt = getattr(libc, "mallopt", None) if libc is not None else None
    if mallopt is not None:
        mallopt(-8, arenas)  # M_ARENA_MAX


@functools.cache
def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")  # runs ldconfig: once per process
    return ctypes.CDLL(name) if name else None


def _malloc_trim() -> Callable[[int], int] | None:
    libc = _libc()
    trim = getattr(libc, "malloc_trim", None) if libc is not None else None
    return cast("Callable[[int], int] | None", trim)
