"""Shared fixtures: a private copy of the demo raw folder and isolated output paths."""

import shutil
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
DEMO_RAW = REPO_ROOT / "data" / "raw"


@pytest.fixture
def demo_raw(tmp_path: Path) -> Path:
    """A copy of the shipped demo raw folder that a test may modify."""
    target = tmp_path / "raw"
    shutil.copytree(DEMO_RAW, target)
    return target


@pytest.fixture
def fundtrace_env(
    tmp_path: Path, demo_raw: Path, monkeypatch: pytest.MonkeyPatch
) -> dict[str, Path]:
    """Point every Fundtrace path at tmp_path (raw copy, marts file, build db, Dagster home)."""
    paths = {
        "raw": demo_raw,
        "marts": tmp_path / "out" / "fundtrace.duckdb",
        "build": tmp_path / "out" / ".build" / "fundtrace.duckdb",
        "home": tmp_path / "dagster_home",
    }
    paths["home"].mkdir()
    monkeypatch.setenv("FUNDTRACE_RAW_DIR", str(paths["raw"]))
    monkeypatch.setenv("FUNDTRACE_MARTS_DB", str(paths["marts"]))
    monkeypatch.delenv("FUNDTRACE_BUILD_DB", raising=False)
    monkeypatch.setenv("DAGSTER_HOME", str(paths["home"]))
    return paths
