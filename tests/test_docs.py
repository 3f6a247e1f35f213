"""docs/marts.md is current and its examples answer; every published mart table and column is
documented in DuckDB; money columns are described and hold consistent EUR conversions."""

import datetime as dt
import re
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest
from currency_converter import CurrencyConverter

from assets.common.money import AMOUNT_TYPE
from assets.marts.publish import PUBLISHED_MARTS
from pipelines import docs


def test_docs_marts_md_is_current() -> None:
    assert docs.DOCS_PATH.read_text(encoding="utf-8") == docs.render(), (
        "docs/marts.md is stale: run `make docs` and commit it"
    )


def test_check_flag_reports_a_stale_file(tmp_path: Path) -> None:
    stale = tmp_path / "marts.md"
    stale.write_text("old\n")
    assert docs.main(["--check", "--output", str(stale)]) == 1
    assert docs.main(["--output", str(stale)]) == 0
    assert docs.main(["--check", "--output", str(stale)]) == 0


def test_docs_cover_every_column_of_every_published_mart() -> None:
    text = docs.render()
    for spec in PUBLISHED_MARTS:
        section = text.split(f"## marts.{spec.name}\n", 1)[1].split("\n## ", 1)[0]
        assert f"**Grain:** {spec.grain}." in section
        for column in spec.columns:
            assert column.description.strip(), f"{spec.name}.{column.name} has no description"
            assert f"| `{column.name}` |" in section, f"{spec.name}.{column.name} not in docs"
        assert "```sql" in section


def test_money_columns_say_which_currency() -> None:
    money = [(s.name, c) for s in PUBLISHED_MARTS for c in s.columns if docs.is_money_column(c)]
    assert {c.name for _, c in money} >= {"amount_eur", "amount_original", "currency_original"}
    for table, column in money:
        text = column.description.lower()
        if column.type == AMOUNT_TYPE:
            # an amount states whether it is EUR or the published currency
            assert "eur" in text or "as published" in text, f"{table}.{column.name}: {text}"
    assert "ECB" in docs.render().split("## Money and currency", 1)[1].split("\n## ", 1)[0]


@pytest.mark.e2e
def test_every_example_answers_on_the_demo(demo_build: dict[str, Path]) -> None:
    con = duckdb.connect(str(demo_build["marts"]), read_only=True)
    empty = [name for name, ex in docs.EXAMPLES.items() if not con.execute(ex.sql).fetchall()]
    con.close()
    assert empty == [], f"example queries without an answer on the demo: {empty}"
    assert set(docs.EXAMPLES) == {s.name for s in PUBLISHED_MARTS}


@pytest.mark.e2e
def test_published_marts_match_specs_and_carry_comments(demo_build: dict[str, Path]) -> None:
    con = duckdb.connect(str(demo_build["marts"]), read_only=True)
    tables = dict(
        con.execute(
            "SELECT table_name, comment FROM duckdb_tables() WHERE schema_name = 'marts'"
        ).fetchall()
    )
    assert set(tables) == {s.name for s in PUBLISHED_MARTS}
    for spec in PUBLISHED_MARTS:
        assert tables[spec.name] == spec.doc and spec.doc.startswith("Grain:")
        columns = con.execute(
            "SELECT column_name, comment FROM duckdb_columns() "
            "WHERE schema_name = 'marts' AND table_name = ? ORDER BY column_index",
            [spec.name],
        ).fetchall()
        assert [name for name, _ in columns] == spec.column_names
        for (name, comment), column in zip(columns, spec.columns, strict=True):
            assert comment and comment.strip(), f"marts.{spec.name}.{name} has no COMMENT"
            assert comment == column.description
    con.close()


@pytest.mark.e2e
def test_demo_amounts_keep_currency_and_convert_at_ecb_rates(demo_build: dict[str, Path]) -> None:
    con = duckdb.connect(str(demo_build["marts"]), read_only=True)
    flows = con.execute(
        "SELECT flow_id, flow_date, amount_original, currency_original, fx_rate, fx_date, "
        "amount_eur FROM marts.money_flows"
    ).fetchall()
    contracts = con.execute(
        "SELECT contract_award_id, award_date, value_original, currency_original, fx_rate, "
        "fx_date, value_eur FROM marts.procurement_contracts WHERE value_original IS NOT NULL"
    ).fetchall()
    streams_off = con.execute(
        "SELECT s.stream_id FROM marts.funding_streams s "
        "LEFT JOIN (SELECT stream_id, coalesce(sum(amount_eur), 0) AS eur "
        "           FROM marts.money_flows GROUP BY 1) f USING (stream_id) "
        "WHERE s.total_eur IS DISTINCT FROM f.eur"
    ).fetchall()
    con.close()
    assert streams_off == []
    # the demo pays in pounds, euros and dollars
    assert {r[3] for r in flows} >= {"GBP", "EUR", "USD"}
    ecb = CurrencyConverter(
        fallback_on_missing_rate=True, fallback_on_missing_rate_method="last_known"
    )
    for row_id, day, original, currency, rate, rate_day, eur in flows + contracts:
        assert re.fullmatch(r"[A-Z]{3}", currency), (row_id, currency)
        assert (eur is None) == (rate is None), row_id
        if eur is None:
            continue
        if currency == "EUR":
            assert rate == 1 and eur == original, row_id
            continue
        assert isinstance(rate_day, dt.date) and rate_day <= day, row_id
        assert eur == (original / rate).quantize(Decimal("0.0001")), row_id
        expected = Decimal(str(ecb.convert(float(original), currency, "EUR", date=day)))
        assert abs(eur - expected) <= Decimal("0.01"), (row_id, eur, expected)
