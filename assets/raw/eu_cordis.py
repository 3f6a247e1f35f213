"""CORDIS (EU framework programmes) project and participant files, copied as text.

CORDIS publishes, per framework programme, a project table and an organisation (participant)
table: `;`-separated, `"`-quoted, UTF-8 (often with a BOM), amounts sometimes with a decimal
comma (`1234,5`). Column titles changed over time, so a file's kind is recognised from its
header, never from its name (`project.csv`, `cordis-h2020projects.csv`, `h2020_project.csv`...):

- projects, 2021+ exports (H2020, Horizon Europe): `id;acronym;status;title;startDate;endDate;
  totalCost;ecMaxContribution;legalBasis;topics;ecSignatureDate;frameworkProgramme;masterCall;
  subCall;fundingScheme;nature;objective;contentUpdateDate;rcn;grantDoi` (column order varies);
- projects, legacy exports (FP7, H2020 until 2020): `rcn;id;acronym;status;programme;topics;
  frameworkProgramme;title;startDate;endDate;projectUrl;objective;totalCost;ecMaxContribution;
  call;fundingScheme;coordinator;coordinatorCountry;participants;...` (FP7 says `reference`
  instead of `id`);
- organisations, 2021+: `projectID;projectAcronym;organisationID;vatNumber;name;shortName;SME;
  activityType;street;postCode;city;country;nutsCode;geolocation;organizationURL;contactForm;
  contentUpdateDate;rcn;order;role;ecContribution;netEcContribution;totalCost;
  endOfParticipation;active`;
- organisations, legacy: `projectRcn;projectID;projectAcronym;role;id;name;shortName;
  activityType;endOfParticipation;ecContribution;country;street;city;postCode;organizationUrl;
  vatNumber;contactForm;contactType;contactTitle;...` (FP7 says `projectReference`; `id` is the
  PIC there). Contact persons' names and phone numbers are not copied.

Any other header (e.g. CORDIS reference tables such as euroSciVoc or topics) fails that file
alone, naming the columns that could not be mapped. Spreadsheet exports (`.xlsx`, `.xls`) with
the same titles are read too: the first sheet with a recognised header row.
"""

from collections.abc import Callable, Collection, Iterator
from pathlib import Path

import dagster as dg
import duckdb
from dagster_duckdb import DuckDBResource

from assets.common.files import detect_encoding, transcode_to_utf8
from assets.common.tables import Column, TableSpec, create_table
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
    partition_files,
    raw_result,
)
from pipelines.resources import FundtraceSettings

SOURCE_SYSTEM = "eu_cordis"
FOLDER = "eu_cordis"
SUFFIXES = (".csv", ".xlsx", ".xls")
PARSER_VERSION = "eu_cordis-1"
CSV_DELIMITERS = (";", ",", "\t")
LAYOUT_CURRENT = "cordis-2021"
LAYOUT_LEGACY = "cordis-legacy"

# field -> (CORDIS titles, description)
PROJECT_FIELDS: dict[str, tuple[tuple[str, ...], str]] = {
    "project_id": (("id", "reference"), "Project id = grant agreement number (`id`; FP7: `reference`)."),
    "rcn": (("rcn",), "CORDIS record control number of the project."),
    "acronym": (("acronym",), "Project acronym."),
    "status": (("status",), "Project status (SIGNED, CLOSED, TERMINATED...)."),
    "title": (("title",), "Project title."),
    "start_date": (("startDate",), "Project start date."),
    "end_date": (("endDate",), "Project end date."),
    "total_cost": (("totalCost",), "Total eligible cost (EUR), as published (decimal comma possible)."),
    "ec_max_contribution": (("ecMaxContribution",), "Maximum EU contribution (EUR), as published."),
    "legal_basis": (("legalBasis",), "Legal basis (programme part), e.g. H2020-EU.3.4."),
    "programme": (("programme",), "Legacy exports: programme codes, `;`-separated."),
    "topics": (("topics",), "Call topic code(s)."),
    "ec_signature_date": (("ecSignatureDate",), "Date the Commission signed the grant agreement (2021+ exports)."),
    "framework_programme": (("frameworkProgramme",), "Framework programme: FP7, H2020, HORIZON..."),
    "master_call": (("masterCall",), "Call identifier (2021+ exports)."),
    "sub_call": (("subCall",), "Sub-call identifier (2021+ exports)."),
    "call": (("call",), "Call identifier (legacy exports)."),
    "funding_scheme": (("fundingScheme",), "Funding scheme / type of action (RIA, IA, CSA, HORIZON-RIA...)."),
    "nature": (("nature",), "Nature of the project, where published."),
    "objective": (("objective",), "Project objective (abstract)."),
    "content_update_date": (("contentUpdateDate", "lastUpdateDate"), "When CORDIS last updated the record."),
    "grant_doi": (("grantDoi",), "DOI of the grant."),
    "coordinator": (("coordinator",), "Legacy exports: coordinator name."),
    "coordinator_country": (("coordinatorCountry",), "Legacy exports: coordinator country."),
}  # fmt: skip

ORG_FIELDS: dict[str, tuple[tuple[str, ...], str]] = {
    "project_id": (("projectID", "projectReference"), "Project id the participation belongs to (`projectID`; FP7: `projectReference`)."),
    "project_rcn": (("projectRcn",), "Legacy exports: RCN of the project."),
    "project_acronym": (("projectAcronym",), "Project acronym."),
    "organisation_id": (("organisationID", "organizationID", "id"), "Participant Identification Code (PIC); legacy exports call it `id`."),
    "vat_number": (("vatNumber",), "VAT number as published."),
    "name": (("name", "legalName"), "Organisation legal name."),
    "short_name": (("shortName",), "Organisation short name."),
    "sme": (("SME",), "SME flag (true/false)."),
    "activity_type": (("activityType",), "Activity type: PRC, HES, REC, PUB, OTH."),
    "street": (("street",), "Street address."),
    "post_code": (("postCode",), "Postal code."),
    "city": (("city",), "City."),
    "country": (("country",), "Country code as CORDIS writes it (UK, EL...)."),
    "nuts_code": (("nutsCode",), "NUTS region code."),
    "geolocation": (("geolocation",), "'lat,lon' of the organisation."),
    "organisation_url": (("organizationURL", "organisationURL"), "Organisation web site."),
    "content_update_date": (("contentUpdateDate",), "When CORDIS last updated the record."),
    "rcn": (("rcn",), "CORDIS record control number of the organisation."),
    "order_no": (("order",), "Order of the participant in the consortium."),
    "role": (("role",), "coordinator, participant, thirdParty, associatedPartner, partner..."),
    "ec_contribution": (("ecContribution",), "EU contribution to this participant (EUR), as published."),
    "net_ec_contribution": (("netEcContribution",), "Net EU contribution (EUR), 2021+ exports."),
    "total_cost": (("totalCost",), "Participant's total cost (EUR), as published."),
    "end_of_participation": (("endOfParticipation",), "Participation ended early (true/false)."),
    "active": (("active",), "Participation active (true/false)."),
}  # fmt: skip

PROJECT_INDEX = synonym_index({k: v[0] for k, v in PROJECT_FIELDS.items()})
ORG_INDEX = synonym_index({k: v[0] for k, v in ORG_FIELDS.items()})

_LAYOUT = Column("source_layout", "VARCHAR", f"Header layout recognised: {LAYOUT_CURRENT} (2021+ exports) or {LAYOUT_LEGACY} (FP6/FP7/H2020 exports until 2020).", False)  # fmt: skip

RAW_PROJECTS = TableSpec(
    schema="raw",
    name="raw_cordis_projects",
    grain="one project record as published in one CORDIS project file",
    description="CORDIS project tables (FP7, H2020, Horizon Europe; any file under "
    "$FUNDTRACE_RAW_DIR/eu_cordis/ whose header is a project table) copied as text, one column "
    "per CORDIS field whatever the export's column names and order.",
    columns=(
        *(Column(name, "VARCHAR", desc) for name, (_, desc) in PROJECT_FIELDS.items()),
        _LAYOUT,
        *PROVENANCE_COLUMNS,
    ),
)

RAW_ORGANISATIONS = TableSpec(
    schema="raw",
    name="raw_cordis_organisations",
    grain="one participation record (project x organisation x role) as published in one CORDIS "
    "organisation file",
    description="CORDIS organisation (participant) tables copied as text, one column per CORDIS "
    "field whatever the export's column names and order. Contact persons are not copied.",
    columns=(
        *(Column(name, "VARCHAR", desc) for name, (_, desc) in ORG_FIELDS.items()),
        _LAYOUT,
        *PROVENANCE_COLUMNS,
    ),
)

RAW_TABLES = (RAW_PROJECTS, RAW_ORGANISATIONS)

# Auxiliary CORDIS tables people drop next to the two we read: named in the error message.
_AUX_TABLES = {
    "euroSciVoc": {"euroscivoccode", "euroscivocpath"},
    "topics": {"topic", "title", "projectid"},
    "legalBasis": {"legalbasis", "uniqueprogrammepart"},
    "webLink / webItem": {"physurl"},
    "projectDeliverables": {"deliverabletype"},
    "projectPublications": {"ispublishedas"},
    "reportSummaries": {"workperformed"},
    "cordisref countries": {"eucode", "isocode"},
    "cordisref programmes": {"code", "title", "shorttitle", "language"},
    "cordisref topics": {"topiccode"},
}


def org_accepts(mapping: dict[int, str]) -> bool:
    fields = set(mapping.values())
    return (
        bool(fields & {"project_id", "project_rcn"})
        and "role" in fields
        and bool(fields & {"name", "organisation_id"})
    )


def project_accepts(mapping: dict[int, str]) -> bool:
    fields = set(mapping.values())
    return {"project_id", "acronym", "title"} <= fields and bool(
        fields & {"start_date", "end_date", "total_cost", "ec_max_contribution"}
    )


_ORG_REQUIRED = ("projectID (or projectReference / projectRcn)", "role", "name (or organisationID)")
_PROJECT_REQUIRED = (
    "id (or reference)",
    "acronym",
    "title",
    "startDate / endDate / totalCost / ecMaxContribution",
)


def _missing_org(fields: set[str]) -> list[str]:
    checks = (
        bool(fields & {"project_id", "project_rcn"}),
        "role" in fields,
        bool(fields & {"name", "organisation_id"}),
    )
    return [t for t, ok in zip(_ORG_REQUIRED, checks, strict=True) if not ok]


def _missing_project(fields: set[str]) -> list[str]:
    checks = (
        "project_id" in fields,
        "acronym" in fields,
        "title" in fields,
        bool(fields & {"start_date", "end_date", "total_cost", "ec_max_contribution"}),
    )
    return [t for t, ok in zip(_PROJECT_REQUIRED, checks, strict=True) if not ok]


def unknown_layout_message(source_file: str, titles: list[str]) -> str:
    """Why a header is neither a CORDIS project nor an organisation table."""
    from assets.common.tabular import map_titles, title_key

    org = set(map_titles(titles, ORG_INDEX).values())
    proj = set(map_titles(titles, PROJECT_INDEX).values())
    miss_org, miss_proj = _missing_org(org), _missing_project(proj)
    keys = {title_key(t) for t in titles}
    aux = [name for name, sig in _AUX_TABLES.items() if sig <= keys]
    closest = (
        f"as an organisation table it lacks {', '.join(miss_org)}"
        if len(miss_org) < len(miss_proj)
        or (len(miss_org) == len(miss_proj) and len(org) >= len(proj))
        else f"as a project table it lacks {', '.join(miss_proj)}"
    )
    hint = (
        f" It looks like the CORDIS {aux[0]} table, which Fundtrace does not read." if aux else ""
    )
    return (
        f"{source_file}: unknown layout, not a CORDIS project or organisation table: "
        f"{closest} (columns found: {describe_titles(titles)}).{hint}"
    )


def _layout(fields: set[str], kind: str) -> str:
    if kind == "organisations":
        return (
            LAYOUT_CURRENT
            if fields & {"net_ec_contribution", "order_no", "nuts_code"}
            else LAYOUT_LEGACY
        )
    return (
        LAYOUT_CURRENT
        if fields & {"ec_signature_date", "master_call", "sub_call", "grant_doi"}
        else LAYOUT_LEGACY
    )


def forget_file(con: duckdb.DuckDBPyConnection, source_file: str) -> None:
    """Remove a file's rows from both raw tables (a file may change kind between versions)."""
    for spec in RAW_TABLES:
        create_table(con, spec, replace=False)
        con.execute(f"DELETE FROM {spec.qualified} WHERE source_file = ?", [source_file])


def _parse_csv(con: duckdb.DuckDBPyConnection, path: Path, ctx: FileContext) -> ParseResult:
    encoding = detect_encoding(path)
    readable = path if encoding == "utf-8" else transcode_to_utf8(path, encoding)
    try:
        for kind, spec, index, accepts in (
            ("organisations", RAW_ORGANISATIONS, ORG_INDEX, org_accepts),
            ("projects", RAW_PROJECTS, PROJECT_INDEX, project_accepts),
        ):
            header, _ = find_csv_header(readable, index, accepts, delimiters=CSV_DELIMITERS)
            if header is not None:
                loaded, rejects = load_csv(
                    con,
                    readable,
                    ctx,
                    table=spec.qualified,
                    header=header,
                    constants={"source_layout": _layout(header.fields, kind)},
                )
                note = _note(kind, header) + (
                    "" if encoding == "utf-8" else f"; transcoded from {encoding}"
                )
                return ParseResult(loaded, "csv", encoding, rejects, note)
        _, best = find_csv_header(readable, ORG_INDEX, lambda m: False, delimiters=CSV_DELIMITERS)
    finally:
        if readable != path:
            readable.unlink(missing_ok=True)
    titles = best.titles if best is not None else []
    raise FileRejected(unknown_layout_message(ctx.source_file, titles), locator="header row")


def _parse_xlsx(con: duckdb.DuckDBPyConnection, path: Path, ctx: FileContext) -> ParseResult:
    try:
        found = [
            (kind, spec, find_xlsx_header(path, index, accepts))
            for kind, spec, index, accepts in (
                ("organisations", RAW_ORGANISATIONS, ORG_INDEX, org_accepts),
                ("projects", RAW_PROJECTS, PROJECT_INDEX, project_accepts),
            )
        ]
    except Exception as exc:
        raise FileRejected(f"{ctx.source_file}: not a readable workbook: {exc}") from exc
    for kind, spec, (scan, _, _) in found:
        if scan is not None:
            loaded = load_sheet(
                con,
                ctx,
                scan,
                table=spec.qualified,
                constants={"source_layout": _layout(scan.header.fields, kind)},
            )
            fmt = path.suffix.lower().lstrip(".")
            return ParseResult(loaded, fmt, None, [], _note(kind, scan.header))
    best = found[0][2][1]
    raise FileRejected(
        unknown_layout_message(ctx.source_file, best.titles if best else []), locator="header row"
    )


def _note(kind: str, header: Header) -> str:
    where = f"sheet '{header.sheet}' " if header.sheet else ""
    return f"read as CORDIS {kind} ({where}header at row {header.index + 1})"


def parse_file(con: duckdb.DuckDBPyConnection, path: Path, ctx: FileContext) -> ParseResult:
    forget_file(con, ctx.source_file)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return _parse_csv(con, path, ctx)
    if suffix in (".xlsx", ".xls"):
        return _parse_xlsx(con, path, ctx)
    raise FileRejected(f"{ctx.source_file}: unsupported file type {suffix}")


def ingest_cordis(
    con: duckdb.DuckDBPyConnection,
    raw_dir: Path,
    log: Callable[[str], None] = print,
    force: bool = False,
    files: Collection[str] | None = None,
) -> IngestReport:
    """Ingest every file of the eu_cordis folder into the two raw tables."""
    return ingest_folder(
        con,
        source_system=SOURCE_SYSTEM,
        raw_dir=raw_dir,
        folder=FOLDER,
        suffixes=SUFFIXES,
        raw_table=RAW_PROJECTS,
        parser=parse_file,
        parser_version=PARSER_VERSION,
        log=log,
        force=force,
        files=files,
        also_tables=[RAW_ORGANISATIONS],
    )


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            spec.asset_key,
            group_name="raw",
            kinds={"duckdb", "csv", "python"},
            description=spec.doc,
            tags={"source_system": SOURCE_SYSTEM},
        )
        for spec in RAW_TABLES
    ],
)
def raw_cordis(
    context: dg.AssetExecutionContext, duckdb: DuckDBResource, fundtrace: FundtraceSettings
) -> Iterator[dg.MaterializeResult]:
    with duckdb.get_connection() as con:
        report = ingest_cordis(
            con, fundtrace.raw_path, log=context.log.info, files=partition_files(context)
        )
        context.log.info(report.summary())
        for spec in RAW_TABLES:
            result = raw_result(con, spec, report)
            yield dg.MaterializeResult(asset_key=spec.asset_key, metadata=result.metadata)
