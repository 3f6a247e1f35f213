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


def test_every_asset_has_owners_tags_kinds_and_grain(defs: dg.Definitions) -> None:
    from pipelines.ui_metadata import REQUIRED_TAGS, table_specs

    tables = table_specs()
    for spec in _specs(defs):
        key = spec.key.to_user_string()
        assert spec.owners, f"{key} has no owners"
        assert all(o.startswith("team:") for o in spec.owners), key
        for tag in REQUIRED_TAGS:
            assert spec.tags.get(tag), f"{key} has no {tag} tag"
        assert spec.tags["layer"] == spec.group_name, key
        assert "duckdb" in spec.kinds, key
        assert "grain" in (spec.description or "").lower(), f"{key}: description states no grain"
        if spec.key in tables:
            # the UI shows the same column docs as the DuckDB COMMENTs
            assert spec.metadata["dagster/column_schema"] == tables[spec.key].column_schema()
    # raw assets say which file formats they read
    for spec in _specs(defs):
        if spec.group_name == "raw" and spec.tags["source_system"] != "reference":
            assert spec.kinds & {"json", "csv", "xlsx", "xml"}, spec.key.to_user_string()


def test_checked_assets_have_the_great_expectations_kind(defs: dg.Definitions) -> None:
    checked = {asset_key_for_suite(p) for p in suite_files(EXPECTATIONS_DIR)}
    for spec in _specs(defs):
        assert ("great_expectations" in spec.kinds) == (spec.key in checked), spec.key


def test_marts_are_stale_after_26_hours(defs: dg.Definitions) -> None:
    import datetime as dt

    expected = dg.FreshnessPolicy.time_window(fail_window=dt.timedelta(hours=26))
    for spec in _specs(defs):
        if spec.group_name == "marts":
            assert spec.freshness_policy == expected, spec.key
        else:
            assert spec.freshness_policy is None, spec.key


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


def _presentation(spec: dg.AssetSpec) -> str:
    """Owners, kinds, tags and freshness of an asset, as one reviewable line."""
    tags = ",".join(
        f"{k}={v}" for k, v in sorted(spec.tags.items()) if not k.startswith("dagster/")
    )
    window = getattr(spec.freshness_policy, "fail_window", None)
    fresh_text = f"{window.to_timedelta().total_seconds() / 3600:g}h" if window else "none"
    return (
        f"owners={','.join(sorted(spec.owners))} kinds={','.join(sorted(spec.kinds))} "
        f"tags={tags} freshness={fresh_text}"
    )


def test_asset_graph_snapshot(defs: dg.Definitions) -> None:
    """The lineage is reviewed like code: regenerate with FUNDTRACE_UPDATE_SNAPSHOTS=1."""
    import os

    lines = []
    for spec in sorted(_specs(defs), key=lambda s: s.key.to_user_string()):
        deps = sorted(d.asset_key.to_user_string() for d in spec.deps)
        lines.append(f"{spec.key.to_user_string()} <- {', '.join(deps) or '(source files)'}")
        lines.append("    " + _presentation(spec))
    text = "\n".join(lines) + "\n"
    if os.environ.get("FUNDTRACE_UPDATE_SNAPSHOTS") == "1":
        SNAPSHOT.parent.mkdir(exist_ok=True)
        SNAPSHOT.write_text(text)
    assert SNAPSHOT.read_text() == text


def test_schedule_tick_requests_a_full_run(defs: dg.Definitions) -> None:
    import datetime as dt

    schedule = defs.resolve_schedule_def("fundtrace_nightly")
    # the context enters an instance of its own when asked for one: closed with the block, so
    # the Dagster context it sets does not outlive the test (see conftest.py)
    with (
        dg.instance_for_test() as instance,
        dg.build_schedule_context(
            instance=instance, scheduled_execution_time=dt.datetime(2026, 11, 26, 2, 0)
        ) as context,
    ):
        data = schedule.evaluate_tick(context)
    assert data.run_requests and len(data.run_requests) == 1
