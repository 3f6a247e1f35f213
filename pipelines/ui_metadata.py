"""How every asset is presented and watched in the Dagster UI, applied in one place.

Asset modules declare what an asset computes; this module adds the conventions that must hold
for every asset, including ones added later, without touching each module: owners, the `layer`
and `source_system` tags, the `great_expectations` kind on assets a suite validates, the column
schema before the first materialization, and the freshness policy of the marts.
"""

import sys
from collections.abc import Iterable, Sequence
from datetime import timedelta
from pathlib import Path

import dagster as dg

from assets.common.tables import TableSpec
from pipelines.quality import asset_key_for_suite, suite_files

ENGINEERING = "team:data-engineering"
ANALYSTS = "team:analysts"
OWNERS_BY_LAYER: dict[str, tuple[str, ...]] = {
    "raw": (ENGINEERING,),
    "staging": (ENGINEERING,),
    "intermediate": (ENGINEERING,),
    # analysts own the questions the marts answer; engineering keeps them running
    "marts": (ENGINEERING, ANALYSTS),
}

# tag value for assets that combine several sources (intermediate and marts)
MULTI_SOURCE = "multi"
REQUIRED_TAGS = ("layer", "source_system")

# the nightly run fires at 02:00; 26 h leaves two hours of slack before a mart counts as stale
MARTS_FRESHNESS = dg.FreshnessPolicy.time_window(fail_window=timedelta(hours=26))


def table_specs() -> dict[dg.AssetKey, TableSpec]:
    """Every TableSpec declared at module level in the loaded asset modules, by asset key."""
    found: dict[dg.AssetKey, TableSpec] = {}
    for name, module in list(sys.modules.items()):
        if not name.startswith("assets.") or module is None:
            continue
        for value in vars(module).values():
            members: Iterable[object] = (
                value
                if isinstance(value, list | tuple)
                else value.values()
                if isinstance(value, dict)
                else (value,)
            )
            for item in members:
                if isinstance(item, TableSpec):
                    found[item.asset_key] = item
    return found


def _apply(
    spec: dg.AssetSpec, checked: set[dg.AssetKey], tables: dict[dg.AssetKey, TableSpec]
) -> dg.AssetSpec:
    layer = spec.group_name or spec.key.path[0]
    tags = {k: v for k, v in spec.tags.items() if not k.startswith("dagster/kind/")}
    tags.setdefault("source_system", MULTI_SOURCE)
    tags["layer"] = layer
    kinds = set(spec.kinds)
    if spec.key in checked:
        kinds.add("great_expectations")
    metadata = dict(spec.metadata)
    table = tables.get(spec.key)
    if table is not None:
        # shown before the first run; each materialization repeats them with the row count
        metadata.setdefault("dagster/column_schema", table.column_schema())
        metadata.setdefault("dagster/table_name", table.qualified)
    return spec.replace_attributes(
        owners=sorted({*spec.owners, *OWNERS_BY_LAYER.get(layer, (ENGINEERING,))}),
        tags=tags,
        kinds=kinds,
        metadata=metadata,
        freshness_policy=MARTS_FRESHNESS if layer == "marts" else spec.freshness_policy,
    )


def with_ui_metadata(
    assets: Sequence[dg.AssetsDefinition], expectations_dir: Path
) -> Sequence[dg.AssetsDefinition]:
    """`assets` with owners, tags, kinds, column schemas and freshness applied."""
    checked = {asset_key_for_suite(p) for p in suite_files(expectations_dir)}
    tables = table_specs()
    return dg.map_asset_specs(lambda spec: _apply(spec, checked, tables), assets)
