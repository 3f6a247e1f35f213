"""UK local-authority "spend over £500" CSVs, and the council payer mapping `councils.csv`.

Parsing copies what the council wrote into `raw.raw_council_spend` as text, with provenance;
typing, the payer and the recipient are the staging layer's job.

- Headers differ between councils and between quarters of one council. Each column title is
  normalised (case, spaces, punctuation, `£`/`GBP` dropped: `Amount £` = `amount`,
  `Body_Name ` = `bodyname`) and looked up in `HEADER_SYNONYMS`; a title one typing slip away
  from a known one (`Expenditure Catagory`) is accepted too and the manifest message says so.
  When several columns map to one field the earlier synonym in the list wins.
- A file needs a supplier, an amount and a date column; otherwise the file fails alone with a
  message naming the file, the fields it lacks and the columns it could not map.
- The header may follow a few title lines; it is the first of the first 20 records that maps.
- Encodings: UTF-8 with or without BOM, Windows-1252 (detected, transcoded first).
- Clean files are read by DuckDB; a file DuckDB cannot read exactly (title lines, rows with the
  wrong number of fields, mixed line ends) is re-read with Python's csv module so every record
  keeps its position and a shifted row is quarantined with its line number.
- `council_spend/councils.csv` is not a spend file: it maps body names or file-name globs to
  the paying council's org-id (see `read_councils`) and is loaded into
  `raw.raw_council_spend_councils` by its own asset.
"""

import csv
import fnmatch
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import duckdb
from dagster_duckdb import DuckDBResource

from assets.common.files import detect_encoding, sha256_file, transcode_to_utf8
from assets.common.fingerprint import skip_unchanged
from assets.common.tables import Column, TableSpec, create_table, materialize_result
from assets.raw.ingest import (
    PROVENANCE_COLUMNS,
    FileRejected,
    ParseResult,
    Reject,
    exact_csv_rows,
    read_csv_exactly,
    single_table_raw_asset,
)
from assets.raw.parallel_parse import RowSink, SpoolParser
from pipelines.resources import FundtraceSettings

SOURCE_SYSTEM = "council_spend"
FOLDER = "council_spend"
SUFFIXES = (".csv",)
PARSER_VERSION = "council_spend-1"
COUNCILS_FILE = "councils.csv"
HEADER_SCAN_RECORDS = 20
_CSV_DIALECT = "header = true, delim = ',', quote = '\"', escape = '\"', parallel = false"

# canonical field -> (description, column titles in priority order: the first present wins)
HEADER_SYNONYMS: dict[str, tuple[str, tuple[str, ...]]] = {
    "body_name": ("Publishing body (council) as written in the file.", (
        "Body Name", "Body", "Organisation", "Organisation Name", "Organization",
        "Organization Name", "Client", "Council", "Council Name", "Authority",
        "Authority Name", "Local Authority", "Publisher", "Publisher Name",
        "Organisation Label", "Body Label",
    )),
    "supplier_name": ("Supplier (payee) name as published.", (
        "Supplier Name", "Supplier", "Vendor Name", "Vendor", "Payee Name", "Payee",
        "Beneficiary Name", "Beneficiary", "Creditor Name", "Creditor", "Merchant Name",
        "Merchant", "Recipient Name", "Recipient", "Name of Supplier", "Supplier Details",
    )),
    "supplier_id": ("The council's own supplier id (not a registered number).", (
        "Supplier ID", "Supplier Number", "Supplier No", "Supplier Code", "Supplier Ref",
        "Supplier Reference", "Vendor ID", "Vendor Number", "Vendor No", "Vendor Code",
        "Creditor ID", "Creditor Number", "Creditor No", "Payee ID",
    )),
    "supplier_company_number": ("Supplier's Companies House number, where published.", (
        "Company Number", "Company No", "Company Reg No", "Company Reg Number",
        "Company Registration Number", "Companies House Number", "Companies House No",
        "Companies House Reg No", "Supplier Company Number", "Supplier Company No",
        "Supplier Company Registration Number", "Registered Company Number",
        "Beneficiary Registration Number", "CRN",
    )),
    "supplier_charity_number": ("Supplier's registered charity number, where published.", (
        "Charity Number", "Charity No", "Registered Charity Number",
        "Charity Registration Number", "Supplier Charity Number",
    )),
    "amount": ("Amount paid (net of VAT where the council says so), as written.", (
        "Net Amount", "Amount", "Net Value", "Value", "Amount Excluding VAT",
        "Amount Excl VAT", "Amount Ex VAT", "Net", "Payment Amount", "Transaction Amount",
        "Line Amount", "Amount Paid", "Paid Amount", "Invoice Amount", "Total Amount",
        "Total", "Expenditure", "Spend", "Gross Amount", "Gross Value",
    )),
    "vat_amount": ("VAT amount, where published.", (
        "VAT", "VAT Amount", "VAT Value", "Irrecoverable VAT", "Recoverable VAT",
        "VAT Paid", "Tax", "Tax Amount",
    )),
    "payment_date": ("Payment date as written.", (
        "Payment Date", "Paid Date", "Date Paid", "Date of Payment", "Transaction Date",
        "Date of Transaction", "Date", "Pay Date", "Payment Run Date", "Invoice Paid Date",
        "Posting Date", "Posted Date", "Effective Date", "Cheque Date", "Processed Date",
    )),
    "department": ("Department / service area / organisational unit that spent the money.", (
        "Service Area", "Department", "Directorate", "Organisational Unit",
        "Organisatonal Unit", "Organizational Unit", "Service Area Categorisation",
        "Service Category Label", "Service Category", "Service Division Label",
        "Service Division", "Service", "Division", "Responsible Unit", "Department Name",
        "Service Area Name", "Service Label", "Expense Area", "Portfolio", "Business Unit",
        "Cost Centre Name", "Cost Centre Description", "Cost Centre",
    )),
    "expense_type": ("Expense type / expenditure category.", (
        "Expenditure Category", "Expenditure Catergory", "Expense Type", "Expenses Type",
        "Expenditure Type", "Expense Category", "Expenses Category", "Category",
        "Detailed Expenses Type", "Expense Description", "Expenditure Description",
        "Expenditure Unit", "Expenditure Group", "Account Description", "Account Name",
        "Subjective Description", "Subjective", "Spend Category", "Purchase Category",
        "Procurement Category", "Cost Type", "Nominal Description", "Ledger Description",
    )),
    "expense_code": ("Expenditure / account code.", (
        "Expenditure Code", "Expense Code", "Expenses Code", "Account Code",
        "Subjective Code", "Cost Code", "Ledger Code", "Nominal Code", "GL Code",
    )),
    "description": ("Narrative / purpose of the payment, where published.", (
        "Description", "Narrative", "Purpose", "Purpose of Expenditure",
        "Purpose of Spend", "Summary of Purpose", "Details", "Item Description",
        "Transaction Description", "Payment Description", "Line Description",
    )),
    "transaction_id": ("Transaction number as published (not unique: councils split lines).", (
        "Transaction Number", "Transaction No", "Trans No", "Transaction ID",
        "Transaction Reference", "Transaction Ref", "Trans Ref", "Trans ID",
        "Payment Reference", "Payment Ref", "Payment Number", "Payment ID",
        "Document Number", "Document No", "Voucher Number", "Voucher No",
        "Invoice Number", "Invoice No", "Invoice Reference", "Invoice Ref", "Reference",
        "Ref",
    )),
    "capital_or_revenue": ("Capital or revenue spend, as written.", (
        "Capital or Revenue", "Capital/Revenue", "Revenue/Capital", "Revenue or Capital",
        "Cap/Rev", "Rev/Cap", "caporrev", "Type of Expenditure", "Type",
    )),
}  # fmt: skip
FIELD_NAMES = list(HEADER_SYNONYMS)
REQUIRED_FIELDS = {
    "supplier_name": "supplier",
    "amount": "amount",
    "payment_date": "payment date",
}

RAW_SPEND = TableSpec(
    schema="raw",
    name="raw_council_spend",
    grain="one payment line as published in one council spend file (CSV data row)",
    description="Council 'spend over £500' lines copied as text from "
    "$FUNDTRACE_RAW_DIR/council_spend/, with each council's own column titles mapped to one "
    "canonical column by synonym (the mapping used is in raw.raw_file_manifest.message). "
    "Split lines sharing a transaction number are kept as published.",
    columns=(
        *(Column(name, "VARCHAR", desc) for name, (desc, _) in HEADER_SYNONYMS.items()),
        *PROVENANCE_COLUMNS,
    ),
)  # fmt: skip

RAW_COUNCILS = TableSpec(
    schema="raw",
    name="raw_council_spend_councils",
    grain="one line of council_spend/councils.csv: a body name or file-name glob -> council",
    description="Who pays in the council spend files: maps a body name as written in the files "
    "(e.g. 'OCC') or a file-name glob (e.g. 'expenditure-over-500-*') to the council's org-id. "
    "Rebuilt from $FUNDTRACE_RAW_DIR/council_spend/councils.csv on every run; lines that "
    "cannot be used are in raw.raw_quarantine.",
    columns=(
        Column("match", "VARCHAR", "Body name or file-name glob as written in councils.csv.", False),
        Column("match_kind", "VARCHAR", "name (matched to the body column, case- and space-insensitive) | file (glob on the file name).", False),
        Column("council_org_id", "VARCHAR", "Org-id of the paying council, e.g. GB-LAE-OXF.", False),
        Column("council_name", "VARCHAR", "Council name to show (else the body name from the file)."),
        Column("source_file", "VARCHAR", "File path relative to FUNDTRACE_RAW_DIR.", False),
        Column("source_row", "BIGINT", "1-based data row in councils.csv; the first matching glob wins.", False),
        Column("file_sha256", "VARCHAR", "SHA-256 of councils.csv.", False),
    ),
    order_by=("source_row",),
)  # fmt: skip

COUNCILS_COLUMNS = ("match", "council_org_id", "council_name")
_ORG_ID_RE = re.compile(r"[A-Z]{2}-[A-Z0-9]+-[A-Z0-9][A-Z0-9./-]*")
_GLOB_CHARS = set("*?[")


# ---------------------------------------------------------------- header mapping


def header_key(title: str) -> str:
    """`Amount £` -> `amount`, ` Body_Name ` -> `bodyname`, `Organisatonal Unit` ->
    `organisatonalunit`: case, spacing, punctuation and a currency marker do not matter."""
    t = unicodedata.normalize("NFKC", title).lstrip("\ufeff").lower().replace("£", " gbp ")
    t = re.sub(r"[^a-z0-9]+", "", t)
    return re.sub(r"^(gbp)+|(gbp)+$", "", t)


def _synonym_index() -> dict[str, tuple[str, int]]:
    index: dict[str, tuple[str, int]] = {}
    for name, (_, titles) in HEADER_SYNONYMS.items():
        for rank, title in enumerate(titles):
            key = header_key(title)
            if key in index and index[key][0] != name:
                raise ValueError(f"header synonym {title!r} is listed for two fields")
            index.setdefault(key, (name, rank))
    return index


SYNONYM_INDEX = _synonym_index()


def _one_slip_apart(a: str, b: str) -> bool:
    """True when `a` and `b` differ by one inserted, deleted, replaced or swapped character."""
    if a == b or abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        diff = [i for i in range(len(a)) if a[i] != b[i]]
        if len(diff) == 1:
            return True
        if len(diff) != 2:
            return False
        i, j = diff
        return j == i + 1 and a[i] == b[j] and a[j] == b[i]
    short, long_ = (a, b) if len(a) < len(b) else (b, a)
    i = next((k for k in range(len(short)) if short[k] != long_[k]), len(short))
    return short[i:] == long_[i + 1 :]


@dataclass(frozen=True)
class HeaderMap:
    titles: list[str]
    fields: dict[str, int]  # canonical field -> column position
    ignored: list[str]  # recognised titles that lost to a better synonym
    unmapped: list[str]  # titles that map to nothing
    typos: dict[str, str]  # title accepted as a slip of a known title -> field

    @property
    def missing(self) -> list[str]:
        return [f for f in REQUIRED_FIELDS if f not in self.fields]

    def describe(self) -> str:
        mapped = ", ".join(
            f"{self.titles[i].strip()!r}->{f}"
            for f, i in sorted(self.fields.items(), key=lambda x: x[1])
        )
        parts = [f"mapped: {mapped}"]
        if self.typos:
            parts.append(
                "read as misspellings: "
                + ", ".join(f"{t.strip()!r}->{f}" for t, f in self.typos.items())
            )
        if self.ignored:
            parts.append(
                "not used (a better column exists): " + ", ".join(repr(t) for t in self.ignored)
            )
        if self.unmapped:
            parts.append("not recognised: " + ", ".join(repr(t) for t in self.unmapped))
        return "; ".join(parts)


def map_headers(titles: list[str]) -> HeaderMap:
    """Column titles -> canonical fields (see the module docstring for the rules)."""
    best: dict[str, tuple[int, int]] = {}  # field -> (rank, position)
    recognised: set[int] = set()
    for pos, title in enumerate(titles):
        hit = SYNONYM_INDEX.get(header_key(title))
        if hit is None:
            continue
        recognised.add(pos)
        name, rank = hit
        if name not in best or rank < best[name][0]:
            best[name] = (rank, pos)
    typos: dict[str, str] = {}
    for pos, title in enumerate(titles):
        key = header_key(title)
        if pos in recognised or len(key) < 8:
            continue
        near = {f for k, (f, _) in SYNONYM_INDEX.items() if len(k) >= 8 and _one_slip_apart(key, k)}
        if len(near) == 1 and (name := near.pop()) not in best:
            best[name] = (999, pos)
            typos[title] = name
            recognised.add(pos)
    fields = {name: pos for name, (_, pos) in best.items()}
    used = set(fields.values())
    return HeaderMap(
        titles=titles,
        fields=fields,
        ignored=[titles[p].strip() for p in sorted(recognised - used)],
        unmapped=[t.strip() for p, t in enumerate(titles) if p not in recognised and t.strip()],
        typos=typos,
    )


def layout_error(source_file: str, hm: HeaderMap, header_line: int | None) -> str:
    need = "; ".join(
        f"{REQUIRED_FIELDS[f]} (e.g. {', '.join(repr(t) for t in HEADER_SYNONYMS[f][1][:4])})"
        for f in hm.missing
    )
    where = f"header line {header_line}" if header_line else "the first lines"
    found = ", ".join(repr(t.strip()) for t in hm.titles) or "(none)"
    unmapped = ", ".join(repr(t) for t in hm.unmapped) or "(none)"
    return (
        f"{source_file}: unknown spend-file layout: no column for {need}. "
        f"Columns it could not map: {unmapped} (all columns in {where}: {found}). "
        "Rename the columns or add the titles to HEADER_SYNONYMS in assets/raw/council_spend.py"
    )


# ---------------------------------------------------------------- reading


def _records(path: Path) -> Iterator[tuple[list[str], int]]:
    with path.open(encoding="utf-8-sig", newline="") as fh:
        reader = csv.reader(fh)
        for rec in reader:
            yield rec, reader.line_num


def _blank(rec: list[str]) -> bool:
    return not any(v.strip() for v in rec)


def find_header(path: Path, source_file: str) -> tuple[HeaderMap, int, int]:
    """(mapping, header line number, records before it) from the first records of `path`."""
    first: tuple[HeaderMap, int] | None = None
    for n, (rec, line) in enumerate(_records(path)):
        if n >= HEADER_SCAN_RECORDS:
            break
        if _blank(rec):
            continue
        hm = map_headers(rec)
        if not hm.missing:
            return hm, line, n
        first = first or (hm, line)
    if first is None:
        raise FileRejected(f"{source_file}: no header row (the file has no text)", "line 1")
    raise FileRejected(layout_error(source_file, first[0], first[1]), f"line {first[1]}")


def _read_with_duckdb(out: RowSink, path: Path, hm: HeaderMap) -> bool:
    """Fast path for a file whose header is its first line, read by this process's in-memory
    DuckDB. False when DuckDB cannot read it exactly (rejected lines, dialect trouble): the
    Python reader then takes over."""
    width = len(hm.titles)
    try:
        if not read_csv_exactly(path, width, _CSV_DIALECT):
            return False
    except duckdb.Error:
        return False
    # numbered as _read_with_python numbers them: blank records not counted
    fields = [(f, hm.fields.get(f)) for f in out.columns]
    with exact_csv_rows(width, fields, number_blank_records=False) as rows:
        out.add_arrow(rows.read_all())
    return True


def _read_with_python(out: RowSink, path: Path, hm: HeaderMap, skip: int) -> list[Reject]:
    rejects: list[Reject] = []
    width = len(hm.titles)
    n = 0
    for k, (rec, line) in enumerate(_records(path)):
        if k <= skip or _blank(rec):
            continue
        n += 1
        locator = f"data row {n} (line {line})"
        # a trailing empty field (stray comma) is harmless; anything else shifted the row
        if len(rec) > width and _blank(rec[width:]):
            rec = rec[:width]
        if len(rec) != width:
            rejects.append(
                Reject(
                    n,
                    locator,
                    f"{out.source_file} {locator}: {len(rec)} fields where the header has "
                    f"{width}: shifted or unquoted column",
                    ",".join(rec),
                )
            )
            continue
        out.add({f: (rec[i].strip() or None) for f, i in hm.fields.items()}, n, locator)
    out.flush()
    return rejects


def parse_spend_csv(out: RowSink, path: Path) -> ParseResult:
    encoding = detect_encoding(path)
    readable = path if encoding == "utf-8" else transcode_to_utf8(path, encoding)
    try:
        hm, header_line, skip = find_header(readable, out.source_file)
        rejects: list[Reject] = []
        if not (skip == 0 and header_line == 1 and _read_with_duckdb(out, readable, hm)):
            rejects = _read_with_python(out, readable, hm, skip)
    finally:
        if readable != path:
            readable.unlink(missing_ok=True)
    notes = [f"header line {header_line}: {','.join(hm.titles)}", hm.describe()]
    if skip:
        notes.append(f"{skip} line(s) above the header skipped")
    if encoding != "utf-8":
        notes.append(f"transcoded from {encoding}")
    return ParseResult(out.written, "csv", encoding, rejects, " | ".join(notes))


# ---------------------------------------------------------------- councils.csv


@dataclass(frozen=True)
class CouncilMapping:
    match: str
    match_kind: str  # name | file
    council_org_id: str
    council_name: str | None
    source_row: int


def name_key(text: str) -> str:
    """How body names are compared (mirrored in SQL by `BODY_KEY_SQL`)."""
    return " ".join(text.split()).lower()


BODY_KEY_SQL = "lower(regexp_replace(trim({col}), '\\s+', ' ', 'g'))"


def is_file_pattern(match: str) -> bool:
    return bool(_GLOB_CHARS & set(match)) or match.lower().endswith(".csv")


def read_councils(path: Path, source_file: str) -> tuple[list[CouncilMapping], list[Reject]]:
    """Usable mapping lines of councils.csv and the rejected ones (with the reason).

    Raises FileRejected when the header lacks `match` or `council_org_id`."""
    encoding = detect_encoding(path)
    text = path.read_bytes().decode("utf-8-sig" if encoding == "utf-8" else encoding, "replace")
    reader = csv.reader(text.splitlines())
    header = [h.strip().lower() for h in next(reader, [])]
    missing = [c for c in COUNCILS_COLUMNS[:2] if c not in header]
    if missing:
        raise FileRejected(
            f"{source_file}: the council mapping file needs the columns "
            f"{', '.join(COUNCILS_COLUMNS)}; missing {', '.join(missing)} "
            f"(found: {', '.join(header) or 'nothing'})",
            "line 1",
        )
    pos = {c: header.index(c) for c in COUNCILS_COLUMNS if c in header}
    out: list[CouncilMapping] = []
    rejects: list[Reject] = []
    seen: dict[tuple[str, str], CouncilMapping] = {}
    n = 0
    for rec in reader:
        if _blank(rec):
            continue
        n += 1
        line = f"data row {n}"

        def cell(col: str, rec: list[str] = rec) -> str:
            i = pos.get(col)
            return rec[i].strip() if i is not None and i < len(rec) else ""

        match, org, name = cell("match"), cell("council_org_id"), cell("council_name")
        org_id = re.sub(r"\s+", "", org).upper()
        problem = None
        if not match:
            problem = "empty match"
        elif not _ORG_ID_RE.fullmatch(org_id):
            problem = f"council_org_id {org!r} is not an org-id such as GB-LAE-OXF"
        kind = "file" if is_file_pattern(match) else "name"
        key = (kind, match.lower() if kind == "file" else name_key(match))
        if problem is None and key in seen and seen[key].council_org_id != org_id:
            problem = (
                f"{match!r} is already mapped to {seen[key].council_org_id} in data row "
                f"{seen[key].source_row}"
            )
        if problem:
            rejects.append(Reject(n, line, f"{source_file} {line}: {problem}", ",".join(rec)))
            continue
        if key in seen:  # the same mapping twice: harmless
            continue
        m = CouncilMapping(match, kind, org_id, name or None, n)
        seen[key] = m
        out.append(m)
    return out, rejects


def council_for_file(mappings: list[CouncilMapping], file_name: str) -> CouncilMapping | None:
    """The first file-glob line matching `file_name` (Python mirror of the staging join)."""
    for m in mappings:
        if m.match_kind == "file" and fnmatch.fnmatchcase(file_name.lower(), m.match.lower()):
            return m
    return None


def councils_file_hash(raw_dir: Path) -> str:
    """SHA-256 of councils.csv, or 'absent'."""
    path = raw_dir / FOLDER / COUNCILS_FILE
    return sha256_file(path) if path.is_file() else "absent"


def load_councils(con: duckdb.DuckDBPyConnection, raw_dir: Path) -> tuple[int, list[str]]:
    """Rebuild raw.raw_council_spend_councils from councils.csv. Returns (lines, problems);
    never raises for a bad file (its rows are then simply unknown payers in staging)."""
    create_table(con, RAW_COUNCILS, replace=True)
    path = raw_dir / FOLDER / COUNCILS_FILE
    rel = f"{FOLDER}/{COUNCILS_FILE}"
    if not path.is_file():
        return 0, [f"{rel} not found: every payment needs a body name or file glob mapped there"]
    try:
        mappings, rejects = read_councils(path, rel)
    except FileRejected as exc:
        return 0, [exc.reason]
    sha = sha256_file(path)
    con.executemany(
        f"INSERT INTO {RAW_COUNCILS.qualified} VALUES (?, ?, ?, ?, ?, ?, ?)",
        [
            [m.match, m.match_kind, m.council_org_id, m.council_name, rel, m.source_row, sha]
            for m in mappings
        ],
    )
    return len(mappings), [r.reason for r in rejects]


# ---------------------------------------------------------------- dispatch and assets


def parse_to(out: RowSink, path: Path) -> ParseResult:
    """One file of the folder to `out`: the raw table, or the spool of a worker process."""
    if out.source_file.lower() == f"{FOLDER}/{COUNCILS_FILE}":
        # validated here so a broken mapping file shows in raw_file_manifest/data_quality;
        # its rows are loaded by the raw_council_spend_councils asset
        mappings, rejects = read_councils(path, out.source_file)
        return ParseResult(
            0,
            "councils mapping",
            None,
            rejects,
            f"payer mapping file, not a spend file: {len(mappings)} mapping(s) read into "
            f"{RAW_COUNCILS.qualified}",
        )
    if path.suffix.lower() == ".csv":
        return parse_spend_csv(out, path)
    raise FileRejected(f"unsupported file type {path.suffix}")


# 77 files of ~0.7 MB at scale 1, each read by DuckDB or Python's csv reader: a few ahead in
# worker processes (assets/raw/parallel_parse.py); the build process inserts their rows
PARSER = SpoolParser(parse_to, RAW_SPEND, FIELD_NAMES)


# one file into the raw table, in this process (the tests' and real-data checks' entry)
parse_file = PARSER.parse_file


raw_council_spend = single_table_raw_asset(
    RAW_SPEND,
    source_system=SOURCE_SYSTEM,
    folder=FOLDER,
    suffixes=SUFFIXES,
    parser_version=PARSER_VERSION,
    kinds={"duckdb", "csv", "python"},
    ingest=PARSER.ingest,
)


@dg.asset(
    key=RAW_COUNCILS.asset_key,
    group_name="raw",
    kinds={"duckdb", "csv"},
    description=RAW_COUNCILS.doc,
    tags={"source_system": SOURCE_SYSTEM},
)
# read again only when councils.csv changed (~0.3 s of Python parsing on every run otherwise)
@skip_unchanged(extra=lambda fundtrace, **_: councils_file_hash(fundtrace.raw_path))
def raw_council_spend_councils(
    context: dg.AssetExecutionContext, duckdb: DuckDBResource, fundtrace: FundtraceSettings
) -> dg.MaterializeResult:
    with duckdb.get_connection() as con:
        n, problems = load_councils(con, fundtrace.raw_path)
        for p in problems:
            context.log.warning(p)
        return materialize_result(
            con,
            RAW_COUNCILS,
            {
                "mappings": n,
                "problems": dg.MetadataValue.md("\n".join(f"- {p}" for p in problems) or "none"),
            },
        )
