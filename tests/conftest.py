"""Shared fixtures: a private copy of the demo raw folder and isolated output paths."""

import shutil
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
DEMO_RAW = REPO_ROOT / "data" / "raw"

# The files that take longest (a daemon and its runs, end-to-end builds, the memory tests of
# large OCDS packages, the randomised matching runs), longest first. pytest-xdist (`make test`)
# hands out whole files in collection order, so these start first and no worker is left
# running one alone at the end.
LONGEST_FILES = (
    "test_ui_daemon.py",
    "test_end_to_end.py",
    "test_bench.py",
    "test_ocds.py",
    "test_org_resolution_incremental.py",
    "test_org_identity.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(LONGEST_FILES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the rest keep order


@pytest.fixture
def demo_raw(tmp_path: Path) -> Path:
    """A copy of the shipped demo raw folder that a test may modify."""
    target = tmp_path / "raw"
    shutil.copytree(DEMO_RAW, target)
    return target


@pytest.fixture(scope="session")
def template_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A build database holding only the ECB rates, made once; tests copy it. A module that
    needs more reference tables defines its own `template_db`."""
    import duckdb

    from assets.common.money import load_ecb_rates
    from assets.common.tables import create_table, ensure_schemas
    from assets.raw.reference import ECB_RATES

    path = tmp_path_factory.mktemp("ecb_template") / "template.duckdb"
    con = duckdb.connect(str(path))
    ensure_schemas(con)
    create_table(con, ECB_RATES, replace=True)
    load_ecb_rates(con, ECB_RATES.qualified)
    con.close()
    return path


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


@pytest.fixture(scope="session")
def demo_build(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The demo built and published once per test session (~30 s), shared read-only.

    Paths as in `fundtrace_env`, plus `export` (the Parquet/CSV exports). Tests must not modify
    anything under them; a test that needs its own build uses `fundtrace_env`.
    """
    import dagster as dg

    from pipelines.definitions import build_definitions
    from pipelines.jobs import ALL_ASSETS_JOB_NAME

    root = tmp_path_factory.mktemp("demo_build")
    paths = {
        "raw": root / "raw",
        "marts": root / "out" / "fundtrace.duckdb",
        "build": root / "out" / ".build" / "fundtrace.duckdb",
        "export": root / "out" / "export",
        "home": root / "dagster_home",
    }
    shutil.copytree(DEMO_RAW, paths["raw"])
    paths["home"].mkdir()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FUNDTRACE_RAW_DIR", str(paths["raw"]))
        mp.setenv("FUNDTRACE_MARTS_DB", str(paths["marts"]))
        mp.delenv("FUNDTRACE_BUILD_DB", raising=False)
        mp.setenv("DAGSTER_HOME", str(paths["home"]))
        job = build_definitions().resolve_job_def(ALL_ASSETS_JOB_NAME)
        with dg.instance_for_test() as instance:
            result = job.execute_in_process(instance=instance, raise_on_error=False)
    assert result.success, "the demo build failed"
    return paths


@pytest.fixture(autouse=True)
def _no_dagster_instance_left_entered() -> None:
    """A test starts with no Dagster instance entered. One left entered by an earlier test
    (`build_schedule_context` without `with`, which enters an instance of its own) is put back
    in Dagster's context when the garbage collector finalises it, during some later test, and
    from then on every `get_repository_def()` failed with "Attempted to resolve undefined
    DagsterInstance weakref". This names the cause where it shows instead."""
    import dagster as dg

    storage = dg.UPathDefsStateStorage.get()  # the entered instance's state storage
    if storage is not None:
        raise RuntimeError(
            "a Dagster instance entered by an earlier test was never exited (its state storage "
            f"{storage!r} is still Dagster's current one): enter instances and evaluation "
            "contexts with `with`"
        )
