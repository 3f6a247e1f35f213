"""Python's cyclic garbage collector paused around work that builds many acyclic objects.

Each full collection rescans every live container; building ~1M dicts and lists (the fuzzy
matcher's references, ocdsmerge's flattened releases) triggers many of them for nothing.
No DuckDB or Dagster import here: the OCDS merge workers use it.
"""

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
