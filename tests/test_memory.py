import sys
import time

import numpy as np

from nuclei_app.memory import release_free_memory, start_janitor


def rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        import os

        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def mallopt(parameter: int, value: int) -> None:
    import ctypes
    import ctypes.util

    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    libc.mallopt.argtypes, libc.mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    assert libc.mallopt(parameter, value) == 1


M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
GLIBC_DEFAULT_THRESHOLD = 128 * 1024


def test_freed_arrays_go_back_to_the_system():
    """What a long-running app sees: freed arrays stay on the heap until trimmed. The
    allocator is put in that state explicitly (TensorFlow and earlier tests change it)."""
    import gc

    if not sys.platform.startswith("linux"):
        assert release_free_memory() in (True, False)
        return
    release_free_memory()
    mallopt(M_MMAP_THRESHOLD, 32 * 2**20)   # arrays below 32 MB on the heap, as after glibc's dynamic raise
    mallopt(M_TRIM_THRESHOLD, 2**30)        # and free() never gives them back by itself
    try:
        before = rss_bytes()
        arrays, pins = [], []
        for _ in range(300):
            arrays.append(np.ones(200_000))
            pins.append(np.ones(10))  # small live objects in between: the heap can't shrink from its top
        del arrays
        gc.collect()
        kept_by_free = rss_bytes() - before
        assert release_free_memory() is True
        kept_after_trim = rss_bytes() - before
    finally:
        mallopt(M_MMAP_THRESHOLD, GLIBC_DEFAULT_THRESHOLD)
        mallopt(M_TRIM_THRESHOLD, GLIBC_DEFAULT_THRESHOLD)
    assert kept_by_free > 200 * 2**20 and kept_after_trim < 20 * 2**20, (kept_by_free, kept_after_trim)


def test_janitor_runs_in_the_background_until_stopped(monkeypatch):
    import threading

    import nuclei_app.memory as memory

    calls = []
    monkeypatch.setattr(memory, "release_free_memory", lambda: calls.append(1))
    stop = threading.Event()
    thread = start_janitor(every_seconds=0.01, stop=stop)
    assert thread.daemon
    deadline = time.time() + 5
    while len(calls) < 3 and time.time() < deadline:
        time.sleep(0.01)
    stop.set()
    thread.join(timeout=5)
    assert len(calls) >= 3 and not thread.is_alive()
