"""How the build starts worker processes (the OCDS, BODS, 360Giving, council spend and
Kohesio parsers, the OCDS merge).

Never by forking the build process: it holds a DuckDB connection. A spawned worker starts a
fresh interpreter and imports what its task needs (~0.6 s of CPU for the raw parsers, which
import Dagster through their modules, and ~0.3 s more for pandas, which pyarrow loads on
its first array), and every pool of every step paid that again: six workers per full build.

Where the platform has one (Linux, macOS) the workers are forked from a `forkserver`
instead: one clean process, started from scratch at the first pool of a run, imports the
worker modules once (`PRELOAD`) and forks each worker from that state in milliseconds. It
holds no DuckDB connection and runs no thread, so forking it is safe. It lives as long as
the build process (~230 MB resident at scale 1, part of the run's measured peak). Elsewhere
workers are spawned as before.
"""

from __future__ import annotations

import multiprocessing
from multiprocessing.context import BaseContext

# what the workers run: imported once in the fork server, shared by every worker it forks
PRELOAD = (
    "pandas",
    "pyarrow",
    "assets.raw.ocds",
    "assets.raw.bods",
    "assets.raw.threesixty_giving",
    "assets.raw.council_spend",
    "assets.raw.eu_kohesio",
    "assets.staging.ocds_compile",
)


def worker_context() -> BaseContext:
    """The multiprocessing context for worker pools: forkserver with PRELOAD where the
    platform has it, else spawn."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        # takes effect when the server starts (the first pool of the process)
        context.set_forkserver_preload(list(PRELOAD))
        return context
    return multiprocessing.get_context("spawn")
