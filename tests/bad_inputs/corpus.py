"""Generate the bad-input corpus into a raw folder.

Each `Case` says which file it writes and what the pipeline must do with it: fail the whole
file (`file_failed`), quarantine some records (`rows_quarantined`, with the record ids), or load
it (`loaded`) — always with a reason that names the file and the record.
"""

import json
from dataclasses import dataclass, field
from pathlib import Path

HEADER = (
    "Identifier,Title,Currency,Amount Awarded,Award Date,Recipient Org:Identifier,"
    "Recipient Org:Name,Funding Org:Identifier,Funding Org:Name\n"
)


def _row(gid: str, amount: str = "1000", currency: str = "GBP", date: str = "2024-03-01") -> str:
    return (
        f"{gid},Bad input test,{currency},{amount},{date},GB-COH-09990101,Test Recipient Ltd,"
        "GB-CHC-1199001,Harbourton Community Foundation\n"
    )


@dataclass
class Case:
    name: str
    file: str  # relative to the raw folder
    outcome: str  # file_failed | rows_quarantined | loaded
    reason: str = ""  # substring of the quarantine reason
    record_ids: list[str] = field(default_factory=list)  # quarantined (or loaded) grant ids
    stage: str = "raw"  # raw | staging: where the quarantine happens
    problem: str = ""  # README: input problem
    kept: str = ""  # README: what is kept
    first_copy_kept: bool = False  # duplicates: the quarantined id also stays staged once
    special: str = ""  # checked by a dedicated assertion in test_bad_inputs.py


def _grant(gid: str, **over: object) -> dict:
    g: dict = {
        "id": gid,
        "title": "Bad input test",
        "currency": "GBP",
        "amountAwarded": 1000,
        "awardDate": "2024-03-01",
        "recipientOrganization": [{"id": "GB-COH-09990101", "name": "Test Recipient Ltd"}],
        "fundingOrganization": [
            {"id": "GB-CHC-1199001", "name": "Harbourton Community Foundation"}
        ],
    }
    g.update(over)
    return g


def write_corpus(raw: Path) -> list[Case]:
    d = raw / "360giving"
    d.mkdir(parents=True, exist_ok=True)
    cases: list[Case] = []

    text = json.dumps({"grants": [_grant("360G-BAD-TRUNC-1"), _grant("360G-BAD-TRUNC-2")]})
    (d / "bad-truncated.json").write_text(text[: len(text) // 2 + 7])
    cases.append(Case("truncated JSON", "360giving/bad-truncated.json", "file_failed",
                      "invalid JSON", problem="truncated JSON file",
                      kept="nothing from that file (a partial file would misstate totals); other files load"))  # fmt: skip

    good = json.dumps(
        {"grants": [_grant("360G-BAD-UTF8-0"), _grant("360G-BAD-UTF8-1", title="caf\u00e9")]},
        ensure_ascii=False,
    ).encode()
    (d / "bad-invalid-utf8.json").write_bytes(good.replace("caf\u00e9".encode(), b"caf\xe9\xff"))
    cases.append(Case("invalid UTF-8 in JSON", "360giving/bad-invalid-utf8.json", "file_failed",
                      "invalid bytes in UTF8", problem="JSON with bytes that are not UTF-8",
                      kept="nothing from that file; other files load"))  # fmt: skip

    (d / "bad-cp1252.csv").write_bytes(
        (HEADER + _row("360G-BAD-CP1252-1").replace("Bad input test", "Caf\u00e9 \u00a3 grant")).encode("cp1252")
    )  # fmt: skip
    cases.append(Case("Windows-1252 CSV", "360giving/bad-cp1252.csv", "loaded",
                      record_ids=["360G-BAD-CP1252-1"], problem="CSV in Windows-1252, not UTF-8",
                      kept="all rows, transcoded (encoding shown in the manifest)"))  # fmt: skip

    (d / "bad-mixed-newlines.csv").write_bytes(
        (HEADER.replace("\n", "\r\n") + _row("360G-BAD-CRLF-1") + _row("360G-BAD-CRLF-2").replace("\n", "\r\n")).encode()
    )  # fmt: skip
    cases.append(Case("mixed line endings", "360giving/bad-mixed-newlines.csv", "loaded",
                      record_ids=["360G-BAD-CRLF-1", "360G-BAD-CRLF-2"],
                      problem="CSV mixing CRLF and LF line endings (DuckDB's sniffer refuses it)",
                      kept="all rows (read by the Python csv reader instead)"))  # fmt: skip

    (d / "bad-shifted.csv").write_text(
        HEADER + _row("360G-BAD-SHIFT-1") + _row("360G-BAD-SHIFT-2").replace(",Bad input test,", ",Bad, input test,") + _row("360G-BAD-SHIFT-3")
    )  # fmt: skip
    cases.append(Case("shifted column", "360giving/bad-shifted.csv", "rows_quarantined",
                      "fields where the header has", ["data row 2"],
                      problem="a row with an extra, unquoted comma (shifted columns)",
                      kept="every other row of the file"))  # fmt: skip

    (d / "bad-duplicates.csv").write_text(HEADER + _row("360G-BAD-DUP-1") + _row("360G-BAD-DUP-1"))
    cases.append(Case("duplicate ids", "360giving/bad-duplicates.csv", "rows_quarantined",
                      "duplicate Identifier", ["360G-BAD-DUP-1"], stage="staging", first_copy_kept=True,
                      problem="the same grant id twice", kept="the first copy"))  # fmt: skip

    (d / "bad-amounts.csv").write_text(
        HEADER + _row("360G-BAD-NEG-1", amount="-500") + _row("360G-BAD-HUGE-1", amount="1e20")
    )
    cases.append(Case("absurd amount", "360giving/bad-amounts.csv", "rows_quarantined",
                      "out-of-range Amount Awarded", ["360G-BAD-HUGE-1"], stage="staging",
                      problem="amount beyond 10^14 (absurd) / negative amount",
                      kept="negative amounts are kept (credits) and flagged by a warning check"))  # fmt: skip

    (d / "bad-currency.csv").write_text(
        HEADER + _row("360G-BAD-CUR-1", currency="XYZ") + _row("360G-BAD-CUR-2", currency="pounds")
    )
    cases.append(Case("unknown currency", "360giving/bad-currency.csv", "rows_quarantined",
                      "", ["360G-BAD-CUR-1", "360G-BAD-CUR-2"], stage="staging",
                      problem="unknown or malformed currency code",
                      kept="nothing of those rows: quarantined with the code, never guessed"))  # fmt: skip

    (d / "bad-dates.csv").write_text(
        HEADER
        + _row("360G-BAD-DATE-OLD", date="1985-06-01")
        + _row("360G-BAD-DATE-FUT", date="2031-01-01", currency="EUR")
        + _row("360G-BAD-DATE-NONE", date="someday")
    )
    cases.append(Case("dates out of range", "360giving/bad-dates.csv", "rows_quarantined",
                      "", ["360G-BAD-DATE-OLD", "360G-BAD-DATE-NONE"], stage="staging",
                      problem="date before 1990 (no ECB rate) / unparseable date / far future",
                      kept="future-dated rows are kept and flagged by a warning check"))  # fmt: skip

    from openpyxl import Workbook

    wb = Workbook()
    notes = wb.active
    assert notes is not None
    notes.title = "notes"
    notes["A1"] = "Invented test workbook"
    sheet = wb.create_sheet("grants")
    sheet["A1"] = "Grants awarded (merged title block)"
    sheet.merge_cells("A1:I2")
    titles = HEADER.strip().split(",")
    for col, title in enumerate(titles, start=1):
        sheet.cell(row=3, column=col, value=title)
    for r, gid in enumerate(["360G-BAD-XLSX-1", "360G-BAD-XLSX-2"], start=4):
        for col, value in enumerate(_row(gid).strip().split(","), start=1):
            sheet.cell(row=r, column=col, value=value)
    wb.save(d / "bad-merged-header.xlsx")
    cases.append(Case("XLSX merged header + extra sheet", "360giving/bad-merged-header.xlsx",
                      "loaded", record_ids=["360G-BAD-XLSX-1", "360G-BAD-XLSX-2"],
                      problem="XLSX with a merged title block above the header and a notes sheet first",
                      kept="all rows (header found below the title block, other sheets ignored)"))  # fmt: skip

    (d / "bad-empty.json").write_bytes(b"")
    cases.append(Case("0-byte file", "360giving/bad-empty.json", "file_failed", "empty",
                      problem="0-byte file", kept="nothing to keep; reported as failed"))  # fmt: skip

    (d / "bad-no-grants.json").write_text(json.dumps({"releases": []}))
    cases.append(Case("JSON without grants", "360giving/bad-no-grants.json", "file_failed",
                      "no top-level 'grants' array",
                      problem="JSON that is not a 360Giving package (e.g. an OCDS file in the wrong folder)",
                      kept="nothing from that file; other files load"))  # fmt: skip

    (d / "bad-no-columns.csv").write_text("Name,Value\nA,1\n")
    cases.append(Case("unmappable CSV header", "360giving/bad-no-columns.csv", "file_failed",
                      "no column titled", problem="CSV whose header is not 360Giving",
                      kept="nothing from that file; the message lists the missing and the found columns"))  # fmt: skip
    t = raw / "ted"
    t.mkdir(parents=True, exist_ok=True)
    (t / "bad-unknown-schema.xml").write_text(
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<TED_EXPORT xmlns="http://publications.europa.eu/resource/schema/ted/R2.0.8/publication"'
        ' VERSION="R2.0.8.S02.E01" DOC_ID="999999-2019"><CODED_DATA_SECTION/></TED_EXPORT>\n'
    )
    cases.append(Case("XML notice with an unknown schema version", "ted/bad-unknown-schema.xml",
                      "file_failed", "unsupported TED schema version",
                      problem="TED XML in a schema version Fundtrace does not read (R2.0.8)",
                      kept="nothing from that file; the message names the namespace and version"))  # fmt: skip

    o = raw / "ocds"
    o.mkdir(parents=True, exist_ok=True)
    (o / "bad-releases-not-array.json").write_text(json.dumps({
        "uri": "https://harbourton.example/ocds/bad", "publishedDate": "2024-01-01T00:00:00Z",
        "publisher": {"name": "Invented test publisher"}, "version": "1.1",
        "releases": {"ocid": "ocds-hbt999-BAD-1", "id": "1", "date": "2024-01-01T00:00:00Z"},
    }))  # fmt: skip
    cases.append(Case("OCDS releases not an array", "ocds/bad-releases-not-array.json",
                      "file_failed", "not an array",
                      problem="OCDS release package whose `releases` is an object, not an array",
                      kept="nothing from that file; the message names the JSON path"))  # fmt: skip

    b = raw / "bods"
    b.mkdir(parents=True, exist_ok=True)

    def entity(rid: str, name: str, number: str) -> dict:
        return {
            "statementId": f"st-{rid}", "declarationSubject": rid, "statementDate": "2024-01-01",
            "recordId": rid, "recordStatus": "new", "recordType": "entity",
            "publicationDetails": {"publicationDate": "2024-01-02", "bodsVersion": "0.4",
                                   "publisher": {"name": "Invented test register"}},
            "recordDetails": {"isComponent": False, "entityType": {"type": "registeredEntity"},
                              "name": name, "jurisdiction": {"name": "United Kingdom", "code": "GB"},
                              "identifiers": [{"scheme": "GB-COH", "id": number}]},
        }  # fmt: skip

    def owns(rid: str, owner: str, owned: str, pct: int) -> dict:
        return {
            "statementId": f"st-{rid}", "declarationSubject": owned, "statementDate": "2024-01-01",
            "recordId": rid, "recordStatus": "new", "recordType": "relationship",
            "publicationDetails": {"publicationDate": "2024-01-02", "bodsVersion": "0.4",
                                   "publisher": {"name": "Invented test register"}},
            "recordDetails": {"isComponent": False, "subject": owned, "interestedParty": owner,
                              "interests": [{"type": "shareholding", "directOrIndirect": "direct",
                                             "beneficialOwnershipOrControl": False,
                                             "share": {"exact": pct}}]},
        }  # fmt: skip

    (b / "bad-ownership-cycle.json").write_text(json.dumps([
        entity("bad-ent-a", "Loop Alpha Holdings Ltd", "09998801"),
        entity("bad-ent-b", "Loop Beta Holdings Ltd", "09998802"),
        owns("bad-rel-1", "bad-ent-a", "bad-ent-b", 50),
        owns("bad-rel-2", "bad-ent-b", "bad-ent-a", 50),
    ], indent=1))  # fmt: skip
    cases.append(Case("BODS ownership cycle", "bods/bad-ownership-cycle.json", "loaded",
                      special="bods_cycle",
                      problem="two companies owning each other (an ownership loop)",
                      kept="all statements; marts.ultimate_controllers cuts the loop and flags it (cycle = true)"))  # fmt: skip
    return cases
