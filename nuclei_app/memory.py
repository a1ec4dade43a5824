"""Giving freed memory back to the operating system.

A finished session's arrays are freed by Python, but glibc's allocator keeps freed heap pages
for reuse, so the process's RSS stays at its peak long after the session ended: on a shared
Streamlit server that looks (and counts) like a leak. ``malloc_trim`` returns those pages.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import gc
import threading

_LIBC_NAME = ctypes.util.find_library("c")


def release_free_memory() -> bool:
    """Collects garbage and hands free heap pages back; False where there is no glibc."""
    gc.collect()
    try:
        libc = ctypes.CDLL(_LIBC_NAME)
        trim = libc.malloc_trim
    except (OSError, AttributeError, TypeError):  # macOS, musl, Windows: nothing to do
        return False
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    trim(0)
    return True


M_ARENA_MAX = -8  # glibc's mallopt parameter number


def limit_arenas(count: int = 2) -> bool:
    """At most ``count`` malloc arenas for the threads created from now on. glibc gives each
    thread that allocates concurrently its own arena (up to 8 per core), and memory freed in
    one stays there: every Streamlit session runs in its own thread, so each would keep its
    own peak. False where there is no glibc."""
    try:
        mallopt = ctypes.CDLL(_LIBC_NAME).mallopt
    except (OSError, AttributeError, TypeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_ARENA_MAX, count))


def start_janitor(every_seconds: float = 15.0, stop: threading.Event | None = None) -> threading.Thread:
    """A daemon thread that releases free memory periodically (sessions end without a hook),
    until ``stop`` is set."""
    stop = stop or threading.Event()

    def loop() -> None:
        while not stop.wait(every_seconds):
            release_free_memory()
    thread = threading.Thread(target=loop, name="memory-janitor", daemon=True)
    thread.start()
    return thread
