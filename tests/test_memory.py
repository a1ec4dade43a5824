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
    allocator is put in that state explicitly, in a fresh interpreter: in this one, earlier
    tests' threads (TensorFlow's pools, the app's, with its arenas limited) can leave the main
    thread on a secondary malloc arena, whose heaps are unmapped as soon as they are all free
    (a CI run: nothing kept, -0.1 MB, so the trim had nothing to show)."""
    import subprocess

    if not sys.platform.startswith("linux"):
        assert release_free_memory() in (True, False)
        return
    from .conftest import PROJECT

    result = subprocess.run([sys.executable, "-c", "from tests.test_memory import heap_kept; print(*heap_kept())"],
                            cwd=PROJECT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    kept_by_free, kept_after_trim = map(int, result.stdout.split())
    assert kept_by_free > 200 * 2**20 and kept_after_trim < 20 * 2**20, (kept_by_free, kept_after_trim)


def heap_kept() -> tuple[int, int]:
    """(RSS kept after 480 MB of arrays are freed, and after ``release_free_memory``), with
    small live objects between them so the heap can't shrink from its top."""
    import gc

    release_free_memory()
    mallopt(M_MMAP_THRESHOLD, 32 * 2**20)   # arrays below 32 MB on the heap, as after glibc's dynamic raise
    mallopt(M_TRIM_THRESHOLD, 2**30)        # and free() never gives them back by itself
    before = rss_bytes()
    arrays, pins = [], []
    for _ in range(300):
        arrays.append(np.ones(200_000))
        pins.append(np.ones(10))
    del arrays
    gc.collect()
    kept_by_free = rss_bytes() - before
    assert release_free_memory() is True
    return kept_by_free, rss_bytes() - before


def test_janitor_runs_in_the_background_until_stopped(monkeypatch):
    import threading

    import nuclei_app.memory as memory

    calls = []
    monkeypatch.setattr(memory, "release_free_memory", lambda: calls.append(1))
    stop = threading.Event()
    chores = []
    thread = start_janitor(every_seconds=0.01, stop=stop, chores=(lambda: chores.append(1),))
    assert thread.daemon
    deadline = time.time() + 5
    while len(calls) < 3 and time.time() < deadline:
        time.sleep(0.01)
    stop.set()
    thread.join(timeout=5)
    assert len(calls) >= 3 and len(chores) >= 3 and not thread.is_alive()


def test_large_blocks_mapped_are_given_back_when_freed_without_a_trim():
    """map_large_blocks: a freed image-sized array leaves no heap pages behind, even with
    small live objects allocated after it and with free() never trimming by itself. In a
    fresh interpreter, as above: RSS is the process's, and in the full suite earlier tests'
    threads (a training's TensorFlow pools) kept allocating while it was measured (a CI run:
    26.6 MB "kept", with the fine-tuning tests' trainings before it)."""
    import subprocess

    from nuclei_app.memory import map_large_blocks

    if not sys.platform.startswith("linux"):
        assert map_large_blocks() in (True, False)
        return
    from .conftest import PROJECT

    result = subprocess.run([sys.executable, "-c", "from tests.test_memory import large_blocks_kept; "
                             "print(large_blocks_kept())"], cwd=PROJECT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    kept = int(result.stdout)
    assert kept < 20 * 2**20, kept


def large_blocks_kept() -> int:
    """RSS kept after 320 MB of arrays, each above ``map_large_blocks``'s threshold, are freed."""
    import gc

    from nuclei_app.memory import map_large_blocks

    mallopt(M_MMAP_THRESHOLD, 32 * 2**20)  # as after glibc's dynamic raise (TensorFlow's doing too)
    mallopt(M_TRIM_THRESHOLD, 2**30)
    assert map_large_blocks(1 << 20) is True
    before = rss_bytes()
    arrays, pins = [], []
    for _ in range(100):
        arrays.append(np.ones(400_000))  # 3.2 MB each: over the threshold
        pins.append(np.ones(10))
    del arrays
    gc.collect()
    return rss_bytes() - before


def test_closed_sessions_are_reaped_from_streamlits_storage():
    """Streamlit's own session storage: an expired session stays until the cache is written
    or asked its length; reap_closed_sessions frees it (its images with it)."""
    import gc
    import weakref
    from types import SimpleNamespace

    from streamlit.runtime.memory_session_storage import MemorySessionStorage

    from nuclei_app.memory import reap_closed_sessions

    class SessionState:  # stands for a closed tab's session_state with its images
        pass
    storage = MemorySessionStorage(ttl_seconds=0.05)
    state = SessionState()
    alive = weakref.ref(state)
    storage.save(SimpleNamespace(session=SimpleNamespace(id="closed-tab", state=state)))
    del state
    time.sleep(0.2)
    gc.collect()
    assert alive() is not None  # expired but still held: Streamlit reaps lazily
    assert reap_closed_sessions(storage) is True
    gc.collect()
    assert alive() is None
    assert reap_closed_sessions() is False  # no Streamlit server in this process
