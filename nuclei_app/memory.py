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
from typing import Callable

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
    return _mallopt(M_ARENA_MAX, count)


def _mallopt(parameter: int, value: int) -> bool:
    try:
        mallopt = ctypes.CDLL(_LIBC_NAME).mallopt
    except (OSError, AttributeError, TypeError):  # macOS, musl, Windows
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(parameter, value))


M_MMAP_THRESHOLD = -3


def map_large_blocks(threshold_bytes: int = 1 << 20) -> bool:
    """Allocations above ``threshold_bytes`` get their own memory mapping, given back to the
    system the moment they are freed. glibc's threshold is otherwise dynamic: it rises after a
    large block is freed, so later image-sized arrays land on the heap, where a small live
    object above them pins the freed pages (measured: 50 MB more kept after a 2048x2048
    segmentation). Fixing it also keeps TensorFlow from raising it. False where there is no glibc."""
    return _mallopt(M_MMAP_THRESHOLD, threshold_bytes)


def reap_closed_sessions(storage=None) -> bool:
    """Drops the Streamlit sessions whose tabs closed more than ``disconnectedSessionTTL``
    ago. Streamlit keeps them in a TTL cache that removes expired entries only on its next
    write or length query, so on a quiet server a closed session's images stayed in memory
    until the next visitor came (measured: 0.3 GB still held 4 minutes after 4 sessions).
    Asking the cache its length reaps them. ``storage``: a Streamlit session storage, reaped
    here and now (default: the running server's, reaped on the server's own event loop: the
    cache is not thread-safe and that loop writes it on every connect and disconnect); False
    where there is none or Streamlit's internals differ."""
    try:
        if storage is not None:
            len(storage._cache)  # the length query reaps expired entries (streamlit TTLCache's contract)
            return True
        from streamlit.runtime import Runtime

        if not Runtime.exists():
            return False
        runtime = Runtime.instance()  # no public way to reap: its session store and event loop
        storage = runtime._session_mgr._session_storage
        runtime._get_async_objs().eventloop.call_soon_threadsafe(lambda: len(storage._cache))
        return True
    except Exception:  # noqa: BLE001 - another Streamlit version: memory is then freed on the next write
        return False


def start_janitor(every_seconds: float = 15.0, stop: threading.Event | None = None,
                  chores: tuple[Callable[[], object], ...] = ()) -> threading.Thread:
    """A daemon thread that runs ``chores`` and releases free memory periodically (sessions
    end without a hook), until ``stop`` is set."""
    stop = stop or threading.Event()

    def loop() -> None:
        while not stop.wait(every_seconds):
            for chore in chores:
                chore()
            release_free_memory()
    thread = threading.Thread(target=loop, name="memory-janitor", daemon=True)
    thread.start()
    return thread
