"""EU Financial Transparency System (FTS) yearly exports, copied as text.

The Commission publishes one file per year (XLSX, sometimes CSV), one row per beneficiary of
a legal commitment. Column titles drift between years, so each field is mapped from any of
its known titles, compared ignoring case, spacing (`Commitment  total amount (EUR) (A+B)` has
a double space), punctuation and the apostrophe style (`Beneficiary's` is published with a
typographic apostrophe, U+2019):

- 2016-2019 style: `Reference of the Legal Commitment (LC)`, `Commitment position key`, `Year`,
  `Name of beneficiary`, `Coordinator`, `VAT Number of beneficiary`, `Country / Territory`,
  `Amount`, `Total amount`, `Subject of grant or contract`, `Responsible Department`,
  `Budget line name and number`, `Action Type`, `Funding Type`...;
- 2020-2023: `Year`, `Budget`, `Reference of the Legal Commitment (LC)`, `Reference (Budget)`,
  `Name of beneficiary`, `Recipient main registration number`, `Coordinator`, `Beneficiary
  country`, `Beneficiary's contracted amount (EUR)` (U+2019), `Commitment  total amount (EUR) (A+B)`,
  `Responsible department`, `Programme name`, `Call for proposals Reference`,
  `Project / Contract Reference`, `Project / Contract Acronym`...;
- 2024: `VAT number of beneficiary` replaces the registration number; `Geographical Zone`,
  `Action location`, `Funding type` appear; 2025: `Main registration number of beneficiary`.

The header row is searched in the first 30 rows (title rows above it are skipped). A file
whose header lacks a required field (year, LC reference or commitment position key, beneficiary
name, beneficiary amount, responsible department) fails alone with the list of what could not be
mapped.
XLSX/XLS: the first sheet with such a header (python-calamine, streamed). CSV: delimiter
`,` `;` tab or `|` detected from the header, read by DuckDB.
"""

import json
from collections.abc import Callable, Collection
from pathlib import Path

import duckdb

from assets.common.files import detect_encoding, transcode_to_utf8
from assets.common.tables import Column, TableSpec
from assets.common.tabular import (
    Header,
    describe_titles,
    find_csv_header,
    find_xlsx_header,
    load_csv,
    load_sheet,
    synonym_index,
)
from assets.raw.ingest import (
    PROVENANCE_COLUMNS,
    FileContext,
    FileRejected,
    IngestReport,
    ParseResult,
    ingest_folder,
    single_table_raw_asset,
)

SOURCE_SYSTEM = "eu_fts"
FOLDER = "eu_fts"
SUFFIXES = (".xlsx", ".xls", ".csv")
PARSER_VERSION = "eu_fts-1"

# field -> (FTS titles across years, description)
FIELDS: dict[str, tuple[tuple[str, ...], str]] = {
    "year": (("Year",), "Year of the commitment."),
    "budget": (("Budget",), "Budget the commitment is charged to (e.g. EU budget, EDF)."),
    "lc_reference": (("Reference of the Legal Commitment (LC)", "Reference of the Legal Commitment"), "Reference of the legal commitment (LC)."),
    "position_key": (("Commitment position key",), "2016-2019 exports: commitment position key."),
    "budget_reference": (("Reference (Budget)",), "Budget reference of the commitment."),
    "beneficiary_name": (("Name of beneficiary", "Beneficiary name"), "Name of beneficiary (natural persons are anonymised by the publisher)."),
    "vat_number": (("VAT number of beneficiary",), "VAT number of beneficiary."),
    "registration_number": (("Recipient main registration number", "Main registration number of beneficiary", "Registration number of beneficiary"), "Main registration number (2020-2023 `Recipient main registration number`, 2025 `Main registration number of beneficiary`)."),
    "nfpo": (("Not-for-profit organisation (NFPO)",), "Not-for-profit organisation flag."),
    "ngo": (("Non-governmental organisation (NGO)",), "Non-governmental organisation flag."),
    "coordinator": (("Coordinator",), "Whether the beneficiary coordinates the commitment (yes/no)."),
    "address": (("Address",), "Address of beneficiary."),
    "city": (("City",), "City of beneficiary."),
    "postal_code": (("Postal code",), "Postal code of beneficiary."),
    "beneficiary_country": (("Beneficiary country", "Country / Territory", "Country"), "Country of beneficiary (English name)."),
    "nuts2": (("NUTS2",), "NUTS2 region."),
    "geographical_zone": (("Geographical Zone",), "Geographical zone."),
    "action_location": (("Action location",), "Where the action takes place."),
    "beneficiary_amount": (("Beneficiary\u2019s contracted amount (EUR)", "Amount"), "Beneficiary's contracted amount in EUR (2016-2019: `Amount`)."),
    "beneficiary_estimated_amount": (("Beneficiary\u2019s estimated contracted amount (EUR)",), "Beneficiary's estimated contracted amount in EUR."),
    "beneficiary_estimated_consumed": (("Beneficiary\u2019s estimated consumed amount (EUR)",), "Beneficiary's estimated consumed amount in EUR."),
    "commitment_contracted_amount": (("Commitment contracted amount (EUR) (A)",), "Commitment contracted amount (A) in EUR."),
    "additional_reduced_amount": (("Additional/Reduced amount (EUR) (B)",), "Additional or reduced amount (B) in EUR."),
    "commitment_total_amount": (("Commitment  total amount (EUR) (A+B)", "Total amount"), "Commitment total amount (A+B) in EUR, all beneficiaries (2016-2019: `Total amount`)."),
    "commitment_consumed_amount": (("Commitment consumed amount (EUR)",), "Commitment consumed amount in EUR."),
    "amount_source": (("Source of (estimated) detailed amount",), "How the beneficiary's amount was derived."),
    "expense_type": (("Expense type",), "Expense type (operational, administrative)."),
    "subject": (("Subject of grant or contract",), "Subject of grant or contract."),
    "responsible_department": (("Responsible department",), "Commission department (DG or executive agency) responsible."),
    "budget_line_number": (("Budget line number",), "Budget line number."),
    "budget_line_name": (("Budget line name", "Budget line name and number"), "Budget line name."),
    "programme_name": (("Programme name", "Action Type"), "Programme name (2016-2019: `Action Type`)."),
    "funding_type": (("Funding type",), "Funding type (grants, procurement, budget support...)."),
    "beneficiary_group_code": (("Beneficiary Group Code", "LE Acct Group Code"), "Beneficiary group code."),
    "beneficiary_type": (("Beneficiary type", "LE Acct Group Desc"), "Beneficiary type."),
    "project_start_date": (("Project start date",), "Project start date."),
    "project_end_date": (("Project end date",), "Project end date."),
    "contract_type": (("Type of contract", "Type of contract*"), "Type of contract."),
    "management_type": (("Management type",), "Management type (direct, indirect)."),
    "benefiting_country": (("Benefiting country",), "Benefiting country."),
    "call_reference": (("Call for proposals Reference",), "2020-2023: call for proposals reference."),
    "project_reference": (("Project / Contract Reference", "Project ID"), "2020-2023: project or contract reference (grant agreement number for research grants)."),
    "project_acronym": (("Project / Contract Acronym", "Project Acronym", "Acronym"), "2020-2023: project or contract acronym."),
    "commitment_date": (("Date of the commitment", "Commitment date", "Date of commitment"), "Date of the commitment, if a file ever publishes one (no verified layout does)."),
}  # fmt: skip

INDEX = synonym_index({k: v[0] for k, v in FIELDS.items()})
# Each required field, with the fields that can stand in for it (older exports identify a
# commitment line by its position key).
REQUIRED: dict[str, tuple[str, ...]] = {
    "year": ("year",),
    "lc_reference": ("lc_reference", "position_key"),
    "beneficiary_name": ("beneficiary_name",),
    "beneficiary_amount": ("beneficiary_amount",),
    "responsible_department": ("responsible_department",),
}

RAW_COMMITMENTS = TableSpec(
    schema="raw",
    name="raw_eu_fts_commitments",
    grain="one beneficiary line of a legal commitment as published in one FTS file",
    description="EU Financial Transparency System yearly exports from $FUNDTRACE_RAW_DIR/eu_fts/ "
    "copied as text, one column per FTS field whatever that year's column title.",
    columns=(
        *(Column(name, "VARCHAR", desc) for name, (_, desc) in FIELDS.items()),
        Column("source_columns", "VARCHAR", "JSON: the published column title each field was read from (per file).", False),
        *PROVENANCE_COLUMNS,
    ),
)  # fmt: skip


def _missing(fields: set[str]) -> list[str]:
    return [
        " or ".join(FIELDS[f][0][0] for f in alternatives)
        for alternatives in REQUIRED.values()
        if not fields & set(alternatives)
    ]


def accepts(mapping: dict[int, str]) -> bool:
    return not _missing(set(mapping.values()))


def unknown_layout_message(source_file: str, best: Header | None) -> str:
    """Names the file and the required columns no title could be mapped to."""
    fields = best.fields if best is not None else set()
    missing = _missing(fields)
    where = ""
    if best is not None:
        sheet = f" of sheet '{best.sheet}'" if best.sheet else ""
        where = f" (closest header: row {best.index + 1}{sheet})"
    return (
        f"{source_file}: unknown layout, not an EU FTS export: could not map required "
        f"column(s) {', '.join(missing)}{where}; columns found: "
        f"{describe_titles(best.titles if best else [])}"
    )


def _constants(header: Header) -> dict[str, str | None]:
    used = {header.mapping[i]: header.titles[i] for i in sorted(header.mapping)}
    return {"source_columns": json.dumps(used, ensure_ascii=False)}


def _note(header: Header) -> str:
    where = f"sheet '{header.sheet}', " if header.sheet else ""
    skipped = f"; {header.index} row(s) above the header skipped" if header.index else ""
    return f"{where}header at row {header.index + 1}{skipped}"


def parse_csv(con: duckdb.DuckDBPyConnection, path: Path, ctx: FileContext) -> ParseResult:
    encoding = detect_encoding(path)
    readable = path if encoding == "utf-8" else transcode_to_utf8(path, encoding)
    try:
        header, best = find_csv_header(readable, INDEX, accepts)
        if header is None:
            raise FileRejected(unknown_layout_message(ctx.source_file, best), locator="header row")
        loaded, rejects = load_csv(
            con,
            readable,
            ctx,
            table=RAW_COMMITMENTS.qualified,
            header=header,
            constants=_constants(header),
        )
    finally:
        if readable != path:
            readable.unlink(missing_ok=True)
    note = _note(header) + ("" if encoding == "utf-8" else f"; transcoded from {encoding}")
    return ParseResult(loaded, "csv", encoding, rejects, note)


def parse_xlsx(con: duckdb.DuckDBPyConnection, path: Path, ctx: FileContext) -> ParseResult:
    try:
        scan, best, sheets = find_xlsx_header(path, INDEX, accepts)
    except Exception as exc:
        raise FileRejected(f"{ctx.source_file}: not a readable workbook: {exc}") from exc
    if scan is None:
        raise FileRejected(
            unknown_layout_message(ctx.source_file, best) + f" (sheets: {', '.join(sheets)})",
            locator="header row",
        )
    loaded = load_sheet(
        con, ctx, scan, table=RAW_COMMITMENTS.qualified, constants=_constants(scan.header)
    )
    others = [s for s in sheets if s != scan.header.sheet]
    note = _note(scan.header) + (f"; other sheets ignored: {', '.join(others)}" if others else "")
    return ParseResult(loaded, path.suffix.lower().lstrip("."), None, [], note)


def parse_file(con: duckdb.DuckDBPyConnection, path: Path, ctx: FileContext) -> ParseResult:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return parse_csv(con, path, ctx)
    if suffix in (".xlsx", ".xls"):
        return parse_xlsx(con, path, ctx)
    raise FileRejected(f"{ctx.source_file}: unsupported file type {suffix}")


def ingest_fts(
    con: duckdb.DuckDBPyConnection,
    raw_dir: Path,
    log: Callable[[str], None] = print,
    force: bool = False,
    files: Collection[str] | None = None,
) -> IngestReport:
    """The folder ingested in this process as the asset ingests it (the tests' entry)."""
    return ingest_folder(
        con,
        source_system=SOURCE_SYSTEM,
        raw_dir=raw_dir,
        folder=FOLDER,
        suffixes=SUFFIXES,
        raw_table=RAW_COMMITMENTS,
        parser=parse_file,
        parser_version=PARSER_VERSION,
        log=log,
        force=force,
        files=files,
    )


raw_eu_fts_commitments = single_table_raw_asset(
    RAW_COMMITMENTS,
    source_system=SOURCE_SYSTEM,
    folder=FOLDER,
    suffixes=SUFFIXES,
    parser_version=PARSER_VERSION,
    kinds={"duckdb", "xlsx", "csv", "python"},
    parser=parse_file,
)
