"""Kohesio (EU cohesion policy) operations and beneficiaries, CSV or TSV.

Two layouts are recognised by their header and land in ONE raw table, `raw.raw_kohesio`, with a
`layout` column (the staging rules differ per layout, the provenance and reconciliation do not):

- `operations`: one row per operation, the list-of-operations columns of the Kohesio data
  specification (`Operation_Unique_Identifier, Beneficiary, Total_Eligible_Expenditure_amount,
  Project_EU_Budget, Cofinancing_Rate, Fund_Code, Programme_Code, ManagingAuthority`, plus
  optional names, dates, country, region and the Fundtrace extensions `Beneficiary_Id` and
  `ManagingAuthority_Id`). Other columns are accepted and named in the file's message.
- `beneficiaries`: one row per beneficiary x region, the Kohesio beneficiaries export
  (`Country, Region, Beneficiary Name, Total Budget, EU Contribution, Number of Projects,
  Transliterated Name`). No operation id, no managing authority, no dates.

Reading:
- the delimiter is sniffed from the first line (tab, comma, semicolon or pipe, most frequent);
  the encoding is detected (UTF-8 with or without BOM, else transcoded);
- titles are matched ignoring case, spaces, underscores and punctuation (`ManagingAuthority` =
  `Managing_Authority` = `Managing Authority`);
- a header glued to the first data row (the exporter forgot the newline:
  `...,Transliterated NameBulgaria,...`) is split when, after at least two known titles, the
  first unknown title starts with a known title followed directly by an upper-case letter,
  digit or quote, and the rest of the line holds at least a header's worth of fields; the
  glued row is data row 1, located at line 1;
- files with the exact beneficiaries-export header are read literally (the exporter never
  quotes: `"Zora-ES" EOOD` is a name with quotes, and names may contain the delimiter). Each
  line is re-split using the known column count and the three numeric columns (Total Budget,
  EU Contribution, Number of Projects) found from the right: the name is everything between
  Region and the numbers, the transliteration everything after them. When several positions
  fit, the one whose amounts are written as decimals (the exporter writes floats: `127024.68`,
  `4.729375062E7`) wins; a line with no fitting position or several equally fitting ones is
  quarantined with the reason;
- every other file is read as RFC 4180 CSV with the sniffed delimiter; a row with a different
  number of fields than the header (one trailing empty field is tolerated) is quarantined.
Nothing is typed here: amounts, rates and dates stay text for the staging layer.
"""

import csv
import itertools
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from assets.common.files import detect_encoding, transcode_to_utf8
from assets.common.tables import Column, TableSpec
from assets.raw.ingest import (
    PROVENANCE_COLUMNS,
    FileRejected,
    ParseResult,
    Reject,
    single_table_raw_asset,
)
from assets.raw.parallel_parse import RowSink, SpoolParser

SOURCE_SYSTEM = "eu_kohesio"
FOLDER = "eu_kohesio"
SUFFIXES = (".csv", ".tsv")
PARSER_VERSION = "eu_kohesio-1"

OPERATIONS = "operations"
BENEFICIARIES = "beneficiaries"
DELIMITERS = ("\t", ",", ";", "|")

# canonical column -> accepted titles, best first (when a file has two, the first one wins)
FIELDS: dict[str, tuple[str, ...]] = {
    "operation_id": ("Operation_Unique_Identifier", "Operation_Id", "Operation_Identifier"),
    "operation_name": (
        "Operation_Name_English",
        "Operation_Name",
        "Operation_Name_Programme_Language",
        "Project_Name",
    ),
    "beneficiary": ("Beneficiary", "Beneficiary_Name", "Beneficiary Name"),
    "beneficiary_latin": ("Transliterated Name", "Beneficiary_Name_English"),
    "beneficiary_id": ("Beneficiary_Id", "Beneficiary_Identifier"),
    "total_eligible": (
        "Total_Eligible_Expenditure_amount",
        "Total_Eligible_Expenditure",
        "Total Budget",
    ),
    "eu_budget": ("Project_EU_Budget", "EU_Budget", "EU Contribution"),
    "cofinancing_rate": ("Cofinancing_Rate", "EU_Cofinancing_Rate", "Union_Cofinancing_Rate"),
    "fund_code": ("Fund_Code", "Fund"),
    "programme_code": ("Programme_Code", "Programme_CCI", "CCI"),
    "programme_name": ("Programme_Name", "Programme_Title"),
    "managing_authority": ("ManagingAuthority", "Managing_Authority_Name"),
    "managing_authority_id": ("ManagingAuthority_Id", "Managing_Authority_Identifier"),
    "start_date": ("Operation_Start_Date", "Start_Date"),
    "end_date": ("Operation_End_Date", "End_Date"),
    "country": ("Country",),
    "region": ("Region",),
    "project_count": ("Number of Projects", "Number_of_Projects"),
}
FIELD_NAMES = list(FIELDS)

# columns a file of each layout must have (canonical names; the first title is the one shown)
REQUIRED: dict[str, tuple[tuple[str, ...], ...]] = {
    OPERATIONS: (
        ("operation_id",),
        ("beneficiary", "beneficiary_id"),
        ("managing_authority", "managing_authority_id"),
        ("total_eligible",),
        ("eu_budget", "cofinancing_rate"),
    ),
    BENEFICIARIES: (
        ("country",),
        ("beneficiary",),
        ("total_eligible",),
        ("eu_budget",),
        ("project_count",),
    ),
}

# the Kohesio beneficiaries exporter's header, read literally (see module doc)
EXPORT_TITLES = (
    "Country",
    "Region",
    "Beneficiary Name",
    "Total Budget",
    "EU Contribution",
    "Number of Projects",
    "Transliterated Name",
)

RAW_KOHESIO = TableSpec(
    schema="raw",
    name="raw_kohesio",
    grain="one operation (operations layout) or one beneficiary x region aggregate "
    "(beneficiaries layout) as published in one Kohesio file",
    description="Kohesio cohesion-policy records copied as text from $FUNDTRACE_RAW_DIR/"
    "eu_kohesio/. Both layouts share this table; `layout` says which one a row came from and "
    "columns a layout lacks are NULL.",
    columns=(
        Column("layout", "VARCHAR", "operations | beneficiaries: the header layout of the file.", False),
        *(
            Column(name, "VARCHAR", f"'{' / '.join(titles)}' as published.")
            for name, titles in FIELDS.items()
        ),
        Column("parse_note", "VARCHAR", "How a malformed line was recovered (e.g. a name containing the delimiter re-joined), if it was."),
        *PROVENANCE_COLUMNS,
    ),
)  # fmt: skip


def title_key(title: str) -> str:
    """Titles compare without case, spaces, underscores or punctuation."""
    return re.sub(r"[^0-9a-z]", "", title.lstrip("\ufeff").strip().lower())


_KEY_TO_FIELD: dict[str, tuple[str, int]] = {
    title_key(t): (name, rank) for name, titles in FIELDS.items() for rank, t in enumerate(titles)
}
_KNOWN_TITLES = sorted(
    {t for titles in FIELDS.values() for t in titles}, key=lambda t: (-len(t), t)
)


def map_titles(titles: list[str]) -> dict[int, str]:
    """Column position -> canonical field; for a field named twice the best title wins."""
    best: dict[str, tuple[int, int]] = {}
    for i, title in enumerate(titles):
        hit = _KEY_TO_FIELD.get(title_key(title))
        if hit and (hit[0] not in best or hit[1] < best[hit[0]][1]):
            best[hit[0]] = (i, hit[1])
    return {pos: name for name, (pos, _) in best.items()}


def _shown(field_name: str) -> str:
    return FIELDS[field_name][0]


def detect_layout(titles: list[str], mapping: dict[int, str], source_file: str) -> str:
    """operations | beneficiaries, or FileRejected naming the file and what it could not map."""
    present = set(mapping.values())
    layout = OPERATIONS if "operation_id" in present else None
    if layout is None and "project_count" in present:
        layout = BENEFICIARIES
    unmapped = [t.strip() for i, t in enumerate(titles) if i not in mapping and t.strip()]
    if layout is None:
        raise FileRejected(
            f"{source_file}: unknown Kohesio layout: no Operation_Unique_Identifier (operations "
            "layout) and no 'Number of Projects' (beneficiaries layout); could not map "
            f"column(s): {', '.join(unmapped) or '(none)'}",
            locator="header row",
        )
    missing = [
        " or ".join(_shown(f) for f in group)
        for group in REQUIRED[layout]
        if not present.intersection(group)
    ]
    if missing:
        raise FileRejected(
            f"{source_file}: Kohesio {layout} layout without required column(s) "
            f"{'; '.join(missing)}; could not map column(s): {', '.join(unmapped) or '(none)'}",
            locator="header row",
        )
    return layout


def sniff_delimiter(line: str) -> str:
    counts = {d: line.count(d) for d in DELIMITERS}
    best = max(DELIMITERS, key=lambda d: (counts[d], d == ","))
    return best if counts[best] else ","


def _unquote(text: str) -> str:
    t = text.strip()
    return t[1:-1] if len(t) >= 2 and t[0] == t[-1] == '"' else t


def split_glued_header(line: str, delim: str) -> tuple[list[str], str | None]:
    """(titles, start of data row 1) when the header has no newline before the first data row,
    else (titles of the line, None). See the module doc for the rule."""
    fields = line.split(delim)
    for i, raw in enumerate(fields):
        title = _unquote(raw)
        if title_key(title) in _KEY_TO_FIELD:
            continue
        # only the first unknown title, after a run of known ones, can be a glued one
        lower = title.lower()
        glued = next((t for t in _KNOWN_TITLES if lower.startswith(t.lower())), None)
        if i < 2 or glued is None:
            break
        text = raw.lstrip()
        rest = text[len(glued) :]
        if (
            text.lower().startswith(glued.lower())
            and rest
            and (rest[0].isupper() or rest[0].isdigit() or rest[0] == '"')
            and len(fields) - i >= i + 1
        ):
            titles = [_unquote(f) for f in fields[:i]] + [glued]
            # the data row keeps its own text exactly (quotes included)
            return titles, delim.join([rest, *fields[i + 1 :]])
        break
    return [_unquote(f) for f in fields], None


# ---------------------------------------------------------------- beneficiaries export lines

_AMOUNT_RE = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
_COUNT_RE = re.compile(r"\d+")


def _amount_or_empty(text: str) -> bool:
    return text == "" or _AMOUNT_RE.fullmatch(text) is not None


def _float_written(text: str) -> bool:
    return text == "" or "." in text or "e" in text.lower()


@dataclass
class ExportRow:
    values: dict[str, str | None]
    note: str | None


def split_export_line(line: str, delim: str) -> ExportRow | str:
    """One beneficiaries-export line -> its 7 values, or the reason it cannot be split.

    Country and Region are the first two fields, then the name (which may contain the
    delimiter), Total Budget, EU Contribution (possibly empty), Number of Projects, the
    transliterated name (may contain the delimiter) and an optional trailing empty field.
    """
    fields = line.split(delim)
    body = fields[:-1] if len(fields) > len(EXPORT_TITLES) and fields[-1] == "" else fields
    if len(body) < len(EXPORT_TITLES):
        return f"{len(body)} fields where the beneficiaries export has {len(EXPORT_TITLES)}"
    fits = [
        i
        for i in range(3, len(body) - 2)
        if _amount_or_empty(body[i])
        and _amount_or_empty(body[i + 1])
        and _COUNT_RE.fullmatch(body[i + 2])
    ]
    if len(fits) > 1:
        decimals = [i for i in fits if _float_written(body[i]) and _float_written(body[i + 1])]
        fits = decimals if decimals else fits
    if not fits:
        return (
            "no Total Budget, EU Contribution, Number of Projects found after the name "
            "(expected two amounts and a whole number)"
        )
    if len(fits) > 1:
        return (
            f"ambiguous line: the amounts could start at field {', '.join(str(i + 1) for i in fits)}"
            " (the name contains the delimiter and numbers)"
        )
    i = fits[0]
    name, latin = delim.join(body[2:i]), delim.join(body[i + 3 :])
    values = [body[0], body[1], name, body[i], body[i + 1], body[i + 2], latin]
    rejoined = (i - 3) + max(0, len(body) - i - 4)
    note = (
        f"{rejoined} delimiter character(s) inside the names re-joined using the numeric columns"
        if rejoined
        else None
    )
    names = ("country", "region", "beneficiary", "total_eligible", "eu_budget", "project_count")
    out: dict[str, str | None] = {
        n: (v.strip() or None) for n, v in zip(names, values, strict=False)
    }
    out["beneficiary_latin"] = latin.strip() or None
    return ExportRow(out, note)


# ---------------------------------------------------------------- writer


# ---------------------------------------------------------------- parsing


def _lines(fh: Iterable[str]) -> Iterator[str]:
    for line in fh:
        yield line.rstrip("\r\n")


def _read_export(
    lines: Iterator[tuple[int, str]],
    delim: str,
    writer: RowSink,
    rejects: list[Reject],
    layout: str,
) -> None:
    n = 0
    for lineno, line in lines:
        if not line.strip():
            continue
        n += 1
        locator = f"data row {n} (line {lineno}{', glued to the header' if lineno == 1 else ''})"
        row = split_export_line(line, delim)
        if isinstance(row, str):
            rejects.append(Reject(n, locator, row, line))
            continue
        row.values["parse_note"] = row.note
        row.values["layout"] = layout
        writer.add(row.values, n, locator)


def _read_csv(
    lines: Iterator[tuple[int, str]],
    delim: str,
    titles: list[str],
    mapping: dict[int, str],
    writer: RowSink,
    rejects: list[Reject],
    layout: str,
) -> None:
    consumed: list[int] = []  # line numbers handed to the csv reader, in order

    def feed() -> Iterator[str]:
        for lineno, line in lines:
            consumed.append(lineno)
            yield line + "\n"

    reader = iter(csv.reader(feed(), delimiter=delim))
    n = 0
    while True:
        start = len(consumed)
        rec = next(reader, None)
        if rec is None:
            break
        if not any(v.strip() for v in rec):
            continue
        n += 1
        lineno = consumed[start] if start < len(consumed) else consumed[-1]
        locator = f"data row {n} (line {lineno}{', glued to the header' if lineno == 1 else ''})"
        fields = rec[:-1] if len(rec) == len(titles) + 1 and not rec[-1].strip() else rec
        if len(fields) != len(titles):
            rejects.append(
                Reject(
                    n,
                    locator,
                    f"{len(rec)} fields where the header has {len(titles)}: shifted or "
                    "unquoted column",
                    delim.join(rec),
                )
            )
            continue
        row = {name: (fields[i].strip() or None) for i, name in mapping.items()}
        writer.add({**row, "layout": layout}, n, locator)


def parse_to(writer: RowSink, path: Path) -> ParseResult:
    """One file's operations or beneficiaries to `writer`: the raw table, or the spool of a
    worker process (the layout is a column of each row)."""
    if path.suffix.lower() not in SUFFIXES:
        raise FileRejected(f"unsupported file type {path.suffix}")
    encoding = detect_encoding(path)
    readable = path if encoding == "utf-8" else transcode_to_utf8(path, encoding)
    try:
        return _parse_utf8(writer, readable, encoding)
    finally:
        if readable != path:
            readable.unlink(missing_ok=True)


def _parse_utf8(writer: RowSink, path: Path, encoding: str) -> ParseResult:
    with path.open(encoding="utf-8-sig", newline="") as fh:
        numbered = enumerate(_lines(fh), start=1)
        first = next(numbered, None)
        while first is not None and not first[1].strip():
            first = next(numbered, None)
        if first is None:
            raise FileRejected(f"{writer.source_file}: no header row", locator="line 1")
        header_line = first[1]
        delim = sniff_delimiter(header_line)
        titles, glued = split_glued_header(header_line, delim)
        if glued is None:  # a plain header: titles may be quoted and contain the delimiter
            titles = next(csv.reader([header_line], delimiter=delim))
        while titles and not titles[-1].strip():  # trailing delimiter after the last title
            titles.pop()
        mapping = map_titles(titles)
        layout = detect_layout(titles, mapping, writer.source_file)
        data: Iterator[tuple[int, str]] = (
            itertools.chain([(first[0], glued)], numbered) if glued is not None else numbered
        )
        rejects: list[Reject] = []
        literal = [t.strip() for t in titles] == list(EXPORT_TITLES)
        if literal:
            _read_export(data, delim, writer, rejects, layout)
        else:
            _read_csv(data, delim, titles, mapping, writer, rejects, layout)
        writer.flush()
    notes = [f"{layout} layout", f"delimiter {delim!r}"]
    if glued is not None:
        notes.append("header had no line break: split from data row 1")
    if literal:
        notes.append("read literally (beneficiaries export: unquoted)")
    ignored = [t.strip() for i, t in enumerate(titles) if i not in mapping and t.strip()]
    if ignored:
        notes.append(f"columns ignored: {', '.join(ignored)}")
    if encoding != "utf-8":
        notes.append(f"transcoded from {encoding}")
    fmt = "tsv" if delim == "\t" else "csv"
    return ParseResult(writer.written, fmt, encoding, rejects, "; ".join(notes))


# each file parsed in Python (its layout, glued headers, unquoted exports): a few ahead in
# worker processes (assets/raw/parallel_parse.py); the build process inserts their rows
PARSER = SpoolParser(parse_to, RAW_KOHESIO, [*FIELD_NAMES, "parse_note", "layout"])


# one file into the raw table, in this process (the tests' and real-data checks' entry)
parse_file = PARSER.parse_file


raw_kohesio = single_table_raw_asset(
    RAW_KOHESIO,
    source_system=SOURCE_SYSTEM,
    folder=FOLDER,
    suffixes=SUFFIXES,
    parser_version=PARSER_VERSION,
    kinds={"duckdb", "csv", "python"},
    ingest=PARSER.ingest,
)
