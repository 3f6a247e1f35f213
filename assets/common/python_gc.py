"""Python's cyclic garbage collector paused around work that builds many acyclic objects.

Each full collection rescans every live container; building ~1M dicts and lists (the fuzzy
matcher's references, ocdsmerge's flattened releases) triggers many of them for nothing.
No DuckDB or Dagster import here: the OCDS merge workers use it.
"""

import atexit
import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def gc_paused() -> Iterator[None]:
    """The collector off while the block runs (back on after, if it was on)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


_freeze_registered = False


def _freeze() -> None:
    gc.freeze()


def freeze_heap_at_exit() -> None:
    """Spare the interpreter its last full collection when the process exits (idempotent).

    After a run the heap holds millions of objects (Dagster, Great Expectations, the run's
    events), and Python's finalisation traverses all of them once more: ~1.5 s after every
    scale-1 run, after the run itself has finished. An exit handler moves them to the
    permanent generation (`gc.freeze`), which that collection skips; the process ends right
    after, so nothing lives longer. The build database is closed explicitly at the end of each
    run (`BuildDatabase`), so no checkpoint waits for the collector.
    """
    global _freeze_registered
    if not _freeze_registered:
        atexit.register(_freeze)
        _freeze_registered = True
