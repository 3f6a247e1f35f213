"""Partnership governance register: who decides, who is accountable, who owns what.

Analysts curate the register by hand in a spreadsheet, so the folder `governance/` takes:

- CSV files named after the table they hold: `partnerships.csv`, `partnership_members.csv`,
  `projects.csv`, `assets.csv` (optional). The name is matched case-, space- and
  hyphen-insensitively (`Partnership Members.csv` works);
- XLSX workbooks whose sheets are named the same way (one workbook may hold all four tables;
  other sheets, e.g. `Notes`, are ignored and reported in the file's message). A sheet's
  header is the first row naming the required columns, so a title block above it is fine.

A CSV or workbook that holds no register table fails alone with a message listing the names
expected; the other files still load. A table missing a required column fails its file naming
the columns. Parsing only copies text into one raw table per table kind, with provenance;
typing and validation are `assets/staging/stg_governance.py`'s job.

Spreadsheet quirks handled here: header whitespace and case (`Partnership ID` ->
`partnership_id`), a UTF-8 BOM, Windows-1252 (detected), `;` or tab delimiters (chosen by
which one splits the header into the most known columns), empty (trailing) rows skipped,
trailing empty fields of a row ignored. XLSX cells: numbers as written (`999001`, not
`999001.0`), dates as ISO dates, and a percentage-formatted cell (Excel stores 51% as 0.51)
written `51%`, exactly as the analyst saw it. A bare `0.51` stays 0.51 percent points
(see staging). CSVs are read with Python's csv module rather than DuckDB: the register is
small and hand-edited, and every record keeps its exact line number for the quarantine.
"""

import csv
import datetime as dt
import re
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
from dagster_duckdb import DuckDBResource

from assets.common.files import detect_encoding
from assets.common.tables import Column, TableSpec
from assets.raw.ingest import (
    PROVENANCE_COLUMNS,
    FileContext,
    FileRejected,
    IngestReport,
    ParseResult,
    Reject,
    RowWriter,
    ingest_folder,
    partition_files,
    raw_result,
)
from pipelines.resources import FundtraceSettings

SOURCE_SYSTEM = "governance"
FOLDER = "governance"
SUFFIXES = (".csv", ".xlsx")
PARSER_VERSION = "governance-1"
BATCH_ROWS = 10_000
HEADER_SEARCH_ROWS = 20


@dataclass(frozen=True)
class TableKind:
    """One table of the register: its file stem / sheet name, columns and required columns."""

    kind: str
    spec: TableSpec
    columns: tuple[str, ...]
    required: tuple[str, ...]


def _raw_spec(name: str, grain: str, what: str, columns: Iterable[tuple[str, str]]) -> TableSpec:
    return TableSpec(
        schema="raw",
        name=name,
        grain=grain,
        description=f"{what} copied as text from $FUNDTRACE_RAW_DIR/governance/ (a CSV named "
        "after the table or a workbook sheet of that name), one column per template column, "
        "exactly as written. Typed and validated in staging.",
        columns=(*(Column(c, "VARCHAR", d) for c, d in columns), *PROVENANCE_COLUMNS),
    )


RAW_PARTNERSHIPS = _raw_spec(
    "raw_governance_partnerships",
    "one row of partnerships.csv (or sheet 'partnerships') in one file",
    "Partnerships of the governance register",
    (
        ("partnership_id", "Register id of the partnership."),
        ("name", "Name of the partnership."),
        ("legal_form", "company | mou | consortium | programme | contract, as written."),
        ("city", "City the partnership serves."),
        ("country", "Country, as written."),
        ("start_date", "Start date, as written (ISO or dd/mm/yyyy)."),
        ("end_date", "End date, as written."),
        ("accountable_to_id", "Org-id of the body the partnership is accountable to."),
        ("accountable_to_name", "Name of that body (e.g. a council's cabinet)."),
        ("decision_body", "Body that takes the partnership's decisions (e.g. its board)."),
        ("source_url", "Where the analyst found this."),
    ),
)
RAW_MEMBERS = _raw_spec(
    "raw_governance_members",
    "one row of partnership_members.csv (or sheet 'partnership_members') in one file",
    "Members of the register's partnerships (owners, board, panels, signatories...)",
    (
        ("partnership_id", "Partnership the member belongs to."),
        ("member_id", "Org-id of the member, or a person's register id (e.g. HBT-PERSON-0001)."),
        ("member_name", "Name of the member."),
        ("member_type", "public_body | university | company | ngo | person | community."),
        ("role", "owner | board_member | advisory_panel | signatory | lead | partner | funder | "
         "operator | supplier | managing_authority."),
        ("share_pct", "Ownership share in percent points, as written (51, 51%, 12.5)."),
        ("voting_pct", "Voting rights in percent points, as written."),
        ("start_date", "Membership start date, as written."),
        ("end_date", "Membership end date, as written."),
        ("source_url", "Where the analyst found this."),
    ),
)  # fmt: skip
RAW_PROJECTS = _raw_spec(
    "raw_governance_projects",
    "one row of projects.csv (or sheet 'projects') in one file",
    "Projects of the register's partnerships, with the external ids that link them to funding",
    (
        ("project_id", "Register id of the project."),
        ("partnership_id", "Partnership that runs the project."),
        ("title", "Project title."),
        ("city", "City."),
        ("start_date", "Start date, as written."),
        ("end_date", "End date, as written."),
        ("budget", "Planned budget, as written."),
        ("currency", "ISO 4217 currency of the budget, as written."),
        ("cordis_id", "CORDIS project id (EU research grants)."),
        ("ocids", "OCDS ocids of the project's tenders, separated by ';', '|', ',' or spaces."),
        ("kohesio_id", "Kohesio operation id (EU cohesion funds)."),
        ("source_url", "Where the analyst found this."),
    ),
)
RAW_ASSETS = _raw_spec(
    "raw_governance_assets",
    "one row of assets.csv (or sheet 'assets') in one file",
    "Assets produced by the register's projects and who owns them",
    (
        ("asset_id", "Register id of the asset."),
        ("project_id", "Project that produced the asset."),
        ("description", "What the asset is."),
        ("asset_type", "infrastructure | data | ip | software."),
        ("owner_id", "Org-id (or person register id) of the owner."),
        ("owner_name", "Name of the owner."),
        ("licence", "Licence the asset is available under, if any."),
    ),
)


def _kind(kind: str, spec: TableSpec, required: tuple[str, ...]) -> TableKind:
    columns = tuple(c.name for c in spec.columns[: -len(PROVENANCE_COLUMNS)])
    return TableKind(kind, spec, columns, required)


KINDS: dict[str, TableKind] = {
    k.kind: k
    for k in (
        _kind("partnerships", RAW_PARTNERSHIPS, ("partnership_id", "name", "legal_form")),
        _kind(
            "partnership_members",
            RAW_MEMBERS,
            ("partnership_id", "member_name", "member_type", "role"),
        ),
        _kind("projects", RAW_PROJECTS, ("project_id", "partnership_id", "title")),
        _kind("assets", RAW_ASSETS, ("asset_id", "project_id", "asset_type")),
    )
}
RAW_SPECS: tuple[TableSpec, ...] = tuple(k.spec for k in KINDS.values())

# Other spellings analysts use for a file/sheet or a column (keys after _key()).
KIND_ALIASES = {"members": "partnership_members", "partnership_member": "partnership_members"}
COLUMN_ALIASES = {
    "share": "share_pct",
    "share_percent": "share_pct",
    "shareholding_pct": "share_pct",
    "voting": "voting_pct",
    "voting_percent": "voting_pct",
    "voting_rights_pct": "voting_pct",
    "ocid": "ocids",
    "cordis_project_id": "cordis_id",
    "kohesio_operation_id": "kohesio_id",
    "license": "licence",
}


def _key(text: str) -> str:
    """`' Partnership ID '` -> `partnership_id`; BOM, case, spaces and punctuation ignored."""
    return re.sub(r"[^a-z0-9]+", "_", text.replace("\ufeff", "").strip().lower()).strip("_")


def kind_of(name: str) -> TableKind | None:
    """The register table a file stem or sheet name holds, if any."""
    key = _key(name)
    return KINDS.get(KIND_ALIASES.get(key, key))


def map_header(kind: TableKind, titles: list[str], where: str) -> dict[int, str]:
    """Column position -> template column; fails the file on missing required columns."""
    mapping: dict[int, str] = {}
    for i, title in enumerate(titles):
        key = _key(title)
        name = COLUMN_ALIASES.get(key, key)
        if name in kind.columns:
            if name in mapping.values():
                raise FileRejected(
                    f"{where}: column {name} appears twice in the header", locator="header row"
                )
            mapping[i] = name
    missing = [c for c in kind.required if c not in mapping.values()]
    if missing:
        found = ", ".join(t.strip() for t in titles if t and t.strip()) or "(none)"
        raise FileRejected(
            f"{where}: not a governance '{kind.kind}' table: missing required column(s) "
            f"{', '.join(missing)} (columns found: {found})",
            locator="header row",
        )
    return mapping


def _has_required(kind: TableKind, titles: list[str]) -> bool:
    keys = {COLUMN_ALIASES.get(_key(t), _key(t)) for t in titles if t}
    return all(c in keys for c in kind.required)


def _ignored_columns(titles: list[str], mapping: dict[int, str]) -> list[str]:
    return [t.strip() for i, t in enumerate(titles) if i not in mapping and t and t.strip()]


def _clear_file(con: duckdb.DuckDBPyConnection, source_file: str) -> None:
    # the shared ingest only clears one raw table; a file may feed all four
    for spec in RAW_SPECS:
        con.execute(f"DELETE FROM {spec.qualified} WHERE source_file = ?", [source_file])


def _expected_names() -> str:
    return ", ".join(KINDS)


# ---------------------------------------------------------------- CSV


def _pick_delimiter(header_line: str) -> str:
    """The delimiter that splits the header into the most template column names."""
    known = {c for k in KINDS.values() for c in k.columns} | set(COLUMN_ALIASES)

    def score(delim: str) -> int:
        titles = next(csv.reader([header_line], delimiter=delim), [])
        return sum(1 for t in titles if _key(t) in known)

    return max((",", ";", "\t"), key=score)  # ties keep ',' (listed first)


def _csv_records(path: Path, encoding: str) -> Iterator[tuple[int, list[str]]]:
    """(first line number, fields) for the header and every record, streamed."""
    with path.open(encoding="utf-8-sig" if encoding == "utf-8" else encoding, newline="") as fh:
        first = fh.readline()
        delim = _pick_delimiter(first)
        fh.seek(0)
        reader = csv.reader(fh, delimiter=delim)
        line = 1
        for rec in reader:
            yield line, rec
            line = reader.line_num + 1


def parse_csv(con: duckdb.DuckDBPyConnection, path: Path, ctx: FileContext) -> ParseResult:
    kind = kind_of(path.stem)
    if kind is None and _key(path.stem) == "overrides":
        # analyst entity-resolution decisions: read by intermediate.int_org_matches
        return ParseResult(
            0,
            "csv",
            message=f"{ctx.source_file}: entity-resolution overrides, read by "
            "intermediate.int_org_matches (not a register table)",
        )
    if kind is None:
        raise FileRejected(
            f"{ctx.source_file} is not a governance register table: a CSV must be named "
            f"after its table ({_expected_names()}), e.g. partnerships.csv"
        )
    encoding = detect_encoding(path)
    records = _csv_records(path, encoding)
    _, titles = next(records, (1, []))
    if not any(t.strip() for t in titles):
        raise FileRejected(f"{ctx.source_file}: no header row", locator="line 1")
    mapping = map_header(kind, titles, ctx.source_file)
    writer = RowWriter(con, ctx, kind.spec.qualified, kind.columns, batch_rows=BATCH_ROWS)
    rejects: list[Reject] = []
    n = 0
    for n, (line, rec) in enumerate(records, start=1):
        if not any(v.strip() for v in rec):
            continue  # empty (trailing) spreadsheet rows are not records
        locator = f"data row {n} (line {line})"
        extra = rec[len(titles) :]
        if len(rec) < len(titles) or any(v.strip() for v in extra):
            rejects.append(
                Reject(
                    n,
                    locator,
                    f"{kind.kind}: {len(rec)} fields where the header has {len(titles)}: "
                    "shifted or unquoted column",
                    ",".join(rec),
                )
            )
            continue
        writer.add({name: (rec[i].strip() or None) for i, name in mapping.items()}, n, locator)
    writer.flush()
    notes = []
    if encoding != "utf-8":
        notes.append(f"decoded from {encoding}")
    if ignored := _ignored_columns(titles, mapping):
        notes.append(f"columns ignored: {', '.join(ignored)}")
    return ParseResult(writer.written, "csv", encoding, rejects, "; ".join(notes) or None)


# ---------------------------------------------------------------- XLSX


def cell_text(value: Any, number_format: str | None = None) -> str | None:
    """A spreadsheet cell as the text the analyst saw (see module docstring)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)) and number_format and "%" in number_format:
        pct = (Decimal(repr(value)) * 100).normalize()
        return f"{pct:f}%"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, dt.datetime):
        return value.date().isoformat() if value.time() == dt.time() else value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    text = str(value).strip()
    return text or None


def parse_xlsx(con: duckdb.DuckDBPyConnection, path: Path, ctx: FileContext) -> ParseResult:
    from openpyxl import load_workbook  # openpyxl: cell number formats (calamine has none)

    try:
        book = load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:
        raise FileRejected(f"{ctx.source_file}: not a readable XLSX workbook: {exc}") from exc
    try:
        sheets = [(name, kind_of(name)) for name in book.sheetnames]
        seen: dict[str, str] = {}
        for name, kind in sheets:
            if kind is not None and kind.kind in seen:
                raise FileRejected(
                    f"{ctx.source_file}: sheets '{seen[kind.kind]}' and '{name}' both hold "
                    f"{kind.kind}"
                )
            if kind is not None:
                seen[kind.kind] = name
        if not seen:
            raise FileRejected(
                f"{ctx.source_file}: no sheet holds a governance register table (sheets: "
                f"{', '.join(book.sheetnames)}; expected sheet names: {_expected_names()})"
            )
        loaded, notes = 0, []
        for name, kind in sheets:
            if kind is None:
                continue
            written, ignored = _read_sheet(con, ctx, book[name], name, kind)
            loaded += written
            notes.append(f"sheet '{name}': {written} {kind.kind} rows")
            if ignored:
                notes.append(f"sheet '{name}' columns ignored: {', '.join(ignored)}")
        others = [n for n, k in sheets if k is None]
        if others:
            notes.append(f"other sheets ignored: {', '.join(others)}")
        return ParseResult(loaded, "xlsx", None, [], "; ".join(notes))
    finally:
        book.close()


def _read_sheet(
    con: duckdb.DuckDBPyConnection, ctx: FileContext, sheet: Any, name: str, kind: TableKind
) -> tuple[int, list[str]]:
    rows = sheet.iter_rows()
    # the header is the first row naming every required column, within the first
    # HEADER_SEARCH_ROWS rows (a title block may sit above it); else the first non-empty row
    first: tuple[int, list[str]] | None = None
    titles: list[str] = []
    header_row = 0
    for cells in rows:
        header_row += 1
        titles = [cell_text(c.value) or "" for c in cells]
        if any(titles) and first is None:
            first = (header_row, titles)
        if _has_required(kind, titles) or header_row >= HEADER_SEARCH_ROWS:
            break
    if not _has_required(kind, titles):
        if first is None:
            return 0, []
        map_header(kind, first[1], f"{ctx.source_file} sheet '{name}'")  # raises, naming columns
    mapping = map_header(kind, titles, f"{ctx.source_file} sheet '{name}'")
    writer = RowWriter(con, ctx, kind.spec.qualified, kind.columns, batch_rows=BATCH_ROWS)
    for excel_row, cells in enumerate(rows, start=header_row + 1):
        values = [cell_text(c.value, getattr(c, "number_format", None)) for c in cells]
        if not any(values):
            continue
        row = {col: (values[i] if i < len(values) else None) for i, col in mapping.items()}
        writer.add(row, excel_row - header_row, f"sheet '{name}' row {excel_row}")
    writer.flush()
    return writer.written, _ignored_columns(titles, mapping)


def parse_file(con: duckdb.DuckDBPyConnection, path: Path, ctx: FileContext) -> ParseResult:
    _clear_file(con, ctx.source_file)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return parse_csv(con, path, ctx)
    if suffix == ".xlsx":
        return parse_xlsx(con, path, ctx)
    raise FileRejected(f"unsupported file type {suffix}")


def ingest_governance(
    con: duckdb.DuckDBPyConnection,
    raw_dir: Path,
    log: Any = print,
    force: bool = False,
    files: Collection[str] | None = None,
) -> IngestReport:
    """Ingest every register file under `raw_dir/governance` into the four raw tables."""
    return ingest_folder(
        con,
        source_system=SOURCE_SYSTEM,
        raw_dir=raw_dir,
        folder=FOLDER,
        suffixes=SUFFIXES,
        raw_table=RAW_PARTNERSHIPS,
        parser=parse_file,
        parser_version=PARSER_VERSION,
        log=log,
        force=force,
        files=files,
        also_tables=[spec for spec in RAW_SPECS if spec is not RAW_PARTNERSHIPS],
    )


@dg.multi_asset(
    name="raw_governance",
    group_name="raw",
    specs=[
        dg.AssetSpec(
            spec.asset_key,
            description=spec.doc,
            kinds={"duckdb", "csv", "xlsx", "python"},
            tags={"source_system": SOURCE_SYSTEM},
        )
        for spec in RAW_SPECS
    ],
)
def raw_governance(
    context: dg.AssetExecutionContext, duckdb: DuckDBResource, fundtrace: FundtraceSettings
) -> Iterator[dg.MaterializeResult]:
    with duckdb.get_connection() as con:
        report = ingest_governance(
            con, fundtrace.raw_path, log=context.log.info, files=partition_files(context)
        )
        context.log.info(report.summary())
        for spec in RAW_SPECS:
            result = raw_result(con, spec, report)
            yield dg.MaterializeResult(asset_key=spec.asset_key, metadata=result.metadata)
