"""360Giving Data Standard grants: JSON packages, CSV and XLSX with the standard's titles.

Parsing only copies what the publisher wrote into `raw.raw_360giving_grants` as text, with
provenance. Typing, money and identifiers are the staging layer's job.

- JSON: `{"grants": [...]}` streamed with ijson (a file of any size is never held in memory).
- CSV: read by DuckDB (`read_csv`, all text); UTF-8 with or without BOM, other encodings are
  detected and transcoded first. When DuckDB rejects lines (wrong number of fields...) the
  file is re-read with Python's csv module so every record keeps its exact row number.
- XLSX: the first sheet with an `Identifier` column in one of its first 10 rows (title blocks and
  merged cells above the header are skipped), read with python-calamine.
Column titles are matched case- and whitespace-insensitively, ignoring `:0:`-style indexes.
"""

import csv
import datetime as dt
import re
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import ijson

from assets.common.files import detect_encoding, transcode_to_utf8
from assets.common.tables import Column, TableSpec
from assets.raw.ingest import (
    PROVENANCE_COLUMNS,
    FileRejected,
    ParseResult,
    Reject,
    exact_csv_rows,
    local_duckdb,
    read_csv_exactly,
    reads_cleanly,
    record_json,
    single_table_raw_asset,
)
from assets.raw.parallel_parse import RowSink, SpoolParser

SOURCE_SYSTEM = "360giving"
FOLDER = "360giving"
SUFFIXES = (".json", ".csv", ".xlsx")
PARSER_VERSION = "360giving-2"
HEADER_SEARCH_ROWS = 10  # spreadsheet header rows sit at most this far down
_SNIFF_DIALECT = "delim = ',', quote = '\"', escape = '\"'"
_CSV_DIALECT = f"header = true, {_SNIFF_DIALECT}, parallel = false"

# canonical column -> (flattened CSV/XLSX title, JSON path in a grant object)
FIELDS: dict[str, tuple[str, str]] = {
    "identifier": ("Identifier", "id"),
    "title": ("Title", "title"),
    "description": ("Description", "description"),
    "currency": ("Currency", "currency"),
    "amount_awarded": ("Amount Awarded", "amountAwarded"),
    "award_date": ("Award Date", "awardDate"),
    "recipient_org_identifier": ("Recipient Org:Identifier", "recipientOrganization.id"),
    "recipient_org_name": ("Recipient Org:Name", "recipientOrganization.name"),
    "recipient_org_company_number": (
        "Recipient Org:Company Number",
        "recipientOrganization.companyNumber",
    ),
    "recipient_org_charity_number": (
        "Recipient Org:Charity Number",
        "recipientOrganization.charityNumber",
    ),
    "recipient_org_country": ("Recipient Org:Country", "recipientOrganization.addressCountry"),
    "recipient_ind_identifier": ("Recipient Ind:Identifier", "recipientIndividual.id"),
    "funding_org_identifier": ("Funding Org:Identifier", "fundingOrganization.id"),
    "funding_org_name": ("Funding Org:Name", "fundingOrganization.name"),
    "grant_programme_code": ("Grant Programme:Code", "grantProgramme.code"),
    "grant_programme_title": ("Grant Programme:Title", "grantProgramme.title"),
    "beneficiary_location_name": ("Beneficiary Location:Name", "beneficiaryLocation.name"),
    "beneficiary_location_country_code": (
        "Beneficiary Location:Country Code",
        "beneficiaryLocation.countryCode",
    ),
    "data_source": ("Data Source", "dataSource"),
}
FIELD_NAMES = list(FIELDS)

RAW_GRANTS = TableSpec(
    schema="raw",
    name="raw_360giving_grants",
    grain="one grant record as published in one 360Giving file (JSON grant, CSV or sheet row)",
    description="360Giving grants copied as text from $FUNDTRACE_RAW_DIR/360giving/, one column per "
    "standard field (JSON camelCase and spreadsheet titles both map here). Multi-valued "
    "beneficiary locations are joined with '; '; where a grant lists several funding or "
    "recipient organisations, the first is kept and the count noted in org_counts.",
    columns=(
        *(
            Column(name, "VARCHAR", f"360Giving '{title}' (JSON `{path}`), as published.")
            for name, (title, path) in FIELDS.items()
        ),
        Column("org_counts", "VARCHAR", "JSON: how many funding/recipient organisations the grant listed, when more than one."),
        *PROVENANCE_COLUMNS,
    ),
)  # fmt: skip

REQUIRED_TITLES = ("identifier", "amount_awarded", "currency", "award_date")


def _title_key(title: str) -> str:
    t = re.sub(r":\d+:", ":", title.strip().lower())
    t = re.sub(r"\s+", " ", t)
    return re.sub(r"\s*:\s*", ":", t)


_TITLE_TO_FIELD = {_title_key(title): name for name, (title, _) in FIELDS.items()}


def map_titles(titles: list[str]) -> dict[int, str]:
    """Column position -> canonical field for the 360Giving titles we read."""
    mapping: dict[int, str] = {}
    for i, title in enumerate(titles):
        name = _TITLE_TO_FIELD.get(_title_key(title.lstrip("\ufeff")))
        if name and name not in mapping.values():
            mapping[i] = name
    return mapping


def _require(mapping: dict[int, str], titles: list[str]) -> None:
    missing = [FIELDS[f][0] for f in REQUIRED_TITLES if f not in mapping.values()]
    if missing:
        raise FileRejected(
            f"not a 360Giving grants table: no column titled {', '.join(missing)} "
            f"(columns found: {', '.join(t.strip() for t in titles[:30])})",
            locator="header row",
        )


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, (dict, list)):
        return record_json(value)
    text = str(value).strip()
    return text or None


def flatten_grant(grant: dict[str, Any]) -> dict[str, str | None]:
    """One 360Giving JSON grant -> canonical text fields (the first org of each list)."""
    out: dict[str, str | None] = {}
    counts: dict[str, int] = {}
    for name, (_, path) in FIELDS.items():
        head, _, tail = path.partition(".")
        value = grant.get(head)
        if tail:
            items = value if isinstance(value, list) else ([value] if value else [])
            items = [i for i in items if isinstance(i, dict)]
            if head == "beneficiaryLocation":
                vals = [_text(i.get(tail)) for i in items]
                value = "; ".join(v for v in vals if v) or None
            else:
                if len(items) > 1:
                    counts[head] = len(items)
                value = items[0].get(tail) if items else None
        out[name] = value if value is None or isinstance(value, str) else _text(value)
        if isinstance(out[name], str):
            out[name] = out[name].strip() or None  # type: ignore[union-attr]
    out["org_counts"] = record_json(counts) if counts else None
    return out


# ---------------------------------------------------------------- JSON


def _iter_json_grants(path: Path) -> Iterator[Any]:
    with path.open("rb") as fh:
        yield from ijson.items(fh, "grants.item")


def _has_grants_key(path: Path) -> bool:
    with path.open("rb") as fh:
        for prefix, event, _ in ijson.parse(fh):
            if prefix == "grants" and event == "start_array":
                return True
            if prefix == "" and event == "end_map":
                return False
    return False


RAW_COLUMNS = [*FIELD_NAMES, "org_counts"]


def parse_json_to(writer: RowSink, path: Path) -> ParseResult:
    """A JSON package's grants to `writer` (the raw table, or a worker's spool)."""
    rejects: list[Reject] = []
    index = -1
    try:
        for index, grant in enumerate(_iter_json_grants(path)):
            locator = f"$.grants[{index}]"
            if not isinstance(grant, dict):
                rejects.append(
                    Reject(index + 1, locator, "grant is not a JSON object", _text(grant))
                )
                continue
            writer.add(flatten_grant(grant), index + 1, locator)
    except (ijson.JSONError, ijson.IncompleteJSONError, UnicodeDecodeError) as exc:
        detail = " ".join(str(exc).split())
        raise FileRejected(
            f"invalid JSON in $.grants[{index + 1}] (after {index + 1} complete grants): "
            f"{detail}; the whole file is quarantined so no partial file is counted",
            locator=f"$.grants[{index + 1}]",
            rows_seen=index + 1,
        ) from exc
    writer.flush()
    if index < 0 and not _has_grants_key(path):
        raise FileRejected("no top-level 'grants' array: not a 360Giving JSON package", locator="$")
    return ParseResult(writer.written, "json", "utf-8", rejects)


# ---------------------------------------------------------------- CSV


def _csv_titles(path: Path) -> list[str]:
    with path.open(encoding="utf-8-sig", newline="") as fh:
        header = next(csv.reader(fh), None)
    if not header:
        raise FileRejected("no header row", locator="line 1")
    return header


def parse_csv_to(out: RowSink, path: Path) -> ParseResult:
    encoding = detect_encoding(path)
    readable = path if encoding == "utf-8" else transcode_to_utf8(path, encoding)
    try:
        titles = _csv_titles(readable)
        mapping = map_titles(titles)
        _require(mapping, titles)
        rejects = _csv_with_duckdb(out, readable, titles, mapping)
        if rejects is None:
            rejects = _csv_with_python(out, readable, titles, mapping)
    finally:
        if readable != path:
            readable.unlink(missing_ok=True)
    note = None if encoding == "utf-8" else f"transcoded from {encoding}"
    return ParseResult(out.written, "csv", encoding, rejects, note)


def _csv_with_duckdb(
    out: RowSink, path: Path, titles: list[str], mapping: dict[int, str]
) -> list[Reject] | None:
    """Fast path. Returns [] or None when DuckDB cannot read the file exactly (rejected
    lines, or a dialect its sniffer refuses): the Python reader takes over."""
    con = local_duckdb()
    # DuckDB's sniffer refuses some real files (mixed CRLF/LF)
    sniff = f"SELECT * FROM sniff_csv(?, {_SNIFF_DIALECT}, header = true)"
    if not reads_cleanly(con, sniff, [str(path)]):
        return None
    if not read_csv_exactly(path, len(titles), _CSV_DIALECT):
        return None
    by_name = {name: i for i, name in mapping.items()}
    fields = [(c, by_name.get(c)) for c in out.columns]
    with exact_csv_rows(len(titles), fields, number_blank_records=True) as rows:
        out.add_arrow(rows.read_all())
    return []


def _csv_with_python(
    writer: RowSink, path: Path, titles: list[str], mapping: dict[int, str]
) -> list[Reject]:
    rejects: list[Reject] = []
    with path.open(encoding="utf-8-sig", newline="") as fh:
        reader = csv.reader(fh)
        next(reader, None)
        for n, rec in enumerate(reader, start=1):
            if not any(v.strip() for v in rec):
                continue
            locator = f"data row {n} (line {reader.line_num})"
            if len(rec) != len(titles):
                rejects.append(
                    Reject(
                        n,
                        locator,
                        f"{len(rec)} fields where the header has {len(titles)}: "
                        "shifted or unquoted column",
                        ",".join(rec),
                    )
                )
                continue
            row = {name: (rec[i].strip() or None) for i, name in mapping.items()}
            writer.add(row, n, locator)
    writer.flush()
    return rejects


# ---------------------------------------------------------------- XLSX


def parse_xlsx_to(writer: RowSink, path: Path) -> ParseResult:
    from python_calamine import CalamineWorkbook

    try:
        book = CalamineWorkbook.from_path(str(path))
    except Exception as exc:
        raise FileRejected(f"not a readable XLSX workbook: {exc}") from exc
    for sheet_name in book.sheet_names:
        rows = book.get_sheet_by_name(sheet_name).to_python(skip_empty_area=False)
        if not rows:
            continue
        # the header may sit below a (merged) title block: take the first row that maps
        header_at = next(
            (
                i
                for i, rec in enumerate(rows[:HEADER_SEARCH_ROWS])
                if "identifier" in map_titles([_text(v) or "" for v in rec]).values()
            ),
            None,
        )
        if header_at is None:
            continue
        titles = [_text(v) or "" for v in rows[header_at]]
        mapping = map_titles(titles)
        _require(mapping, titles)
        for n, rec in enumerate(rows[header_at + 1 :], start=1):
            values = [_text(v) for v in rec]
            if not any(values):
                continue
            row = {name: (values[i] if i < len(values) else None) for i, name in mapping.items()}
            writer.add(row, n, f"sheet '{sheet_name}' row {header_at + 1 + n}")
        writer.flush()
        others = [s for s in book.sheet_names if s != sheet_name]
        note = f"read sheet '{sheet_name}'" + (
            f"; other sheets ignored: {', '.join(others)}" if others else ""
        )
        return ParseResult(writer.written, "xlsx", None, [], note)
    raise FileRejected(
        f"no sheet has an 'Identifier' column (sheets: {', '.join(book.sheet_names)})"
    )


def parse_to(out: RowSink, path: Path) -> ParseResult:
    """One file's grants to `out`: the raw table, or the spool of a worker process."""
    suffix = path.suffix.lower()
    if suffix == ".json":
        return parse_json_to(out, path)
    if suffix == ".csv":
        return parse_csv_to(out, path)
    if suffix == ".xlsx":
        return parse_xlsx_to(out, path)
    raise FileRejected(f"unsupported file type {suffix}")


# The files of a folder are parsed a few ahead in worker processes (JSON with ijson, CSV with
# an in-memory DuckDB or Python's csv reader, XLSX with calamine); the build process inserts
# their rows (assets/raw/parallel_parse.py)
PARSER = SpoolParser(parse_to, RAW_GRANTS, RAW_COLUMNS)


# one file into the raw table, in this process (the tests' and real-data checks' entry)
parse_file = PARSER.parse_file


raw_360giving_grants = single_table_raw_asset(
    RAW_GRANTS,
    source_system=SOURCE_SYSTEM,
    folder=FOLDER,
    suffixes=SUFFIXES,
    parser_version=PARSER_VERSION,
    kinds={"duckdb", "json", "csv", "python"},
    ingest=PARSER.ingest,
)
