"""The declared mart column lineage names real columns of real upstream tables."""

import dagster as dg
import duckdb
import pytest

from assets.common.tables import create_table, materialize_result
from assets.marts.column_lineage import COLUMN_LINEAGE, column_lineage
from pipelines.ui_metadata import table_specs


@pytest.fixture(scope="module")
def defs() -> dg.Definitions:
    from pipelines.definitions import build_definitions

    return build_definitions()


def test_every_declared_column_exists_upstream(defs: dg.Definitions) -> None:
    tables = {spec.qualified: spec for spec in table_specs().values()}
    graph = defs.resolve_asset_graph()
    assert COLUMN_LINEAGE
    for mart, columns in COLUMN_LINEAGE.items():
        assert mart in tables, f"{mart} has no TableSpec"
        mart_key = tables[mart].asset_key
        parents = graph.get(mart_key).parent_keys
        for column, deps in columns.items():
            assert column in tables[mart].column_names, f"{mart}.{column} is not a column"
            assert deps, f"{mart}.{column} declares no upstream column"
            for upstream, name in deps:
                assert upstream in tables, f"{mart}.{column}: no TableSpec {upstream}"
                assert tables[upstream].asset_key in parents, (
                    f"{mart}.{column}: {upstream} is not an upstream asset of {mart}"
                )
                assert name in tables[upstream].column_names, (
                    f"{mart}.{column}: {upstream} has no column {name}"
                )


def test_core_marts_declare_lineage() -> None:
    for mart in ("marts.money_flows", "marts.funding_streams", "marts.organisations"):
        assert mart in COLUMN_LINEAGE
    assert column_lineage("marts.data_quality") is None


def test_materialize_result_attaches_the_lineage() -> None:
    from assets.marts.core import MONEY_FLOWS as spec

    con = duckdb.connect(":memory:")
    create_table(con, spec, replace=True)
    metadata = materialize_result(con, spec).metadata or {}
    lineage = metadata["dagster/column_lineage"]
    assert isinstance(lineage, dg.TableColumnLineage)
    assert lineage.deps_by_column["amount_eur"] == [
        dg.TableColumnDep(
            asset_key=dg.AssetKey(["intermediate", "int_money_flows"]), column_name="amount_eur"
        )
    ]
    assert metadata["dagster/row_count"] == 0
    assert "dagster/column_schema" in metadata
