"""Contract of the Dagster definitions: layers, metadata, checks, schedule, graph snapshot."""

from pathlib import Path

import dagster as dg
import pytest

from assets.common.tables import LAYERS
from pipelines.jobs import ALL_ASSETS_JOB_NAME
from pipelines.quality import EXPECTATIONS_DIR, asset_key_for_suite, suite_files

SNAPSHOT = Path(__file__).parent / "snapshots" / "asset_graph.txt"


@pytest.fixture(scope="module")
def defs() -> dg.Definitions:
    from pipelines.definitions import build_definitions

    return build_definitions()


def _specs(defs: dg.Definitions) -> list[dg.AssetSpec]:
    return [spec for a in defs.resolve_all_asset_specs() for spec in [a]]


def test_every_asset_has_description_group_and_kinds(defs: dg.Definitions) -> None:
    specs = _specs(defs)
    assert specs
    for spec in specs:
        key = spec.key.to_user_string()
        assert spec.description, f"{key} has no description"
        assert spec.group_name in LAYERS, f"{key} is in group {spec.group_name}"
        # group = layer = DuckDB schema = first part of the key
        assert spec.key.path[0] == spec.group_name, key
        assert spec.kinds, f"{key} has no kinds"


def test_every_expectation_suite_maps_to_an_asset(defs: dg.Definitions) -> None:
    keys = {spec.key for spec in _specs(defs)}
    files = suite_files(EXPECTATIONS_DIR)
    assert files
    for path in files:
        assert asset_key_for_suite(path) in keys, f"{path.name} names no asset"
    check_keys = {key.asset_key for key in defs.resolve_asset_graph().asset_check_keys}
    assert check_keys == {asset_key_for_suite(p) for p in files}


def test_nightly_schedule_materializes_everything(defs: dg.Definitions) -> None:
    schedule = defs.resolve_schedule_def("fundtrace_nightly")
    assert schedule.cron_schedule == "0 2 * * *"
    assert schedule.execution_timezone == "Europe/London"
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    assert schedule.job_name == ALL_ASSETS_JOB_NAME
    job = defs.resolve_job_def(ALL_ASSETS_JOB_NAME)
    assert job.executor_def is dg.in_process_executor
    all_keys = {spec.key for spec in _specs(defs)}
    assert set(job.asset_layer.selected_asset_keys) == all_keys


def test_asset_graph_snapshot(defs: dg.Definitions) -> None:
    """The lineage is reviewed like code: regenerate with FUNDTRACE_UPDATE_SNAPSHOTS=1."""
    import os

    lines = []
    for spec in sorted(_specs(defs), key=lambda s: s.key.to_user_string()):
        deps = sorted(d.asset_key.to_user_string() for d in spec.deps)
        lines.append(f"{spec.key.to_user_string()} <- {', '.join(deps) or '(source files)'}")
    text = "\n".join(lines) + "\n"
    if os.environ.get("FUNDTRACE_UPDATE_SNAPSHOTS") == "1":
        SNAPSHOT.parent.mkdir(exist_ok=True)
        SNAPSHOT.write_text(text)
    assert SNAPSHOT.read_text() == text


def test_schedule_tick_requests_a_full_run(defs: dg.Definitions) -> None:
    import datetime as dt

    schedule = defs.resolve_schedule_def("fundtrace_nightly")
    with dg.instance_for_test() as instance:
        context = dg.build_schedule_context(
            instance=instance,
            scheduled_execution_time=dt.datetime(2026, 11, 26, 2, 0),
        )
        data = schedule.evaluate_tick(context)
    assert data.run_requests and len(data.run_requests) == 1
