"""Python code run in a fresh interpreter from the repository root, for what only a new
process shows: what an import pulls in, a thread started at first use."""

import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def run_fresh(code: str, *args: str, timeout: float = 120) -> str:
    """The standard output of `python -c code args...` run from the repository root; the test
    fails, with the end of the standard error, when the code does."""
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout
