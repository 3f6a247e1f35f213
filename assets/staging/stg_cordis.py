"""CORDIS staging: `staging.stg_cordis_projects` and `staging.stg_cordis_participations`.

Decisions (documented here once):
- Amounts: CORDIS never writes a thousands separator, so a single comma is a decimal comma
  (`1234,5` = 1234.50, also `1234,567`); anything else goes through the shared
  `ft_parse_amount`. A non-empty amount that does not parse quarantines the record.
- The funder is the European Commission, org-id `XM-DAC-918` (OECD DAC code of the EU
  institutions); its level comes from the funders reference table (eu), like every funder.
- award_date of a participation = the project's `ecSignatureDate` (the day the Commission
  signed the grant agreement, 2021+ exports) or, where absent (legacy exports), its
  `startDate`; `award_date_basis` says which.
- Organisations: `XI-PIC-<PIC>` from organisationID (legacy `id`); without a PIC, the shared
  name-based `FTNAME-` id. The VAT number is normalised with its country prefix for matching.
- Awards: one `grant` per participation with ecContribution > 0, amount = ecContribution.
  ecContribution exists in every CORDIS layout (FP7, legacy H2020, 2021+ H2020 and Horizon
  Europe), netEcContribution only in 2021+ exports; using it would make awards from different
  exports incomparable, so it is kept in staging for analysts who need the net figure.
"""

import dagster as dg
import duckdb
from dagster_duckdb import DuckDBResource

from assets.common import eu_vat
from assets.common.fingerprint import skip_unchanged
from assets.common.levels import funder_levels_sql
from assets.common.money import AMOUNT_TYPE, RATE_TYPE, to_eur_sql
from assets.common.sql import install_macros
from assets.common.tables import Column, TableSpec, create_table, materialize_result, rebuild_table
from assets.raw.eu_cordis import RAW_ORGANISATIONS, RAW_PROJECTS, SOURCE_SYSTEM
from assets.raw.ingest import PROVENANCE_COLUMNS
from assets.raw.reference import ECB_RATES, FUNDERS, ORGID_PREFIXES
from assets.staging.quarantine import STG_QUARANTINE, replace_quarantine
from assets.staging.registry import StagingPair

EC_ORG_REF = "XM-DAC-918"
EC_NAME = "European Commission"
ROLES = (
    "coordinator", "participant", "thirdParty", "associatedPartner", "partner",
    "internationalPartner", "hostInstitution", "beneficiary",
)  # fmt: skip

_FUNDER_COLUMNS = (
    Column("funder_org_ref", "VARCHAR", f"{EC_NAME} ({EC_ORG_REF}), who signs CORDIS grants.", False),
    Column("funder_name", "VARCHAR", "Funder name.", False),
    Column("funding_level", "VARCHAR", "Funding level from the funder (eu).", False),
    Column("funding_level_basis", "VARCHAR", "Which rule set funding_level.", False),
)  # fmt: skip

STG_PROJECTS = TableSpec(
    schema="staging",
    name="stg_cordis_projects",
    grain="one CORDIS project (unique project_id across all project files)",
    description="CORDIS projects typed: dates, total cost and maximum EU contribution as EUR "
    "decimals (decimal commas read), programme = framework programme / funding scheme, the "
    "date that dates its grants. Projects failing a rule, and later copies of a project id, are "
    "in staging.stg_quarantine.",
    columns=(
        Column("project_id", "VARCHAR", "CORDIS project id (grant agreement number); links governance projects.csv cordis_id.", False),
        Column("rcn", "VARCHAR", "CORDIS record control number."),
        Column("acronym", "VARCHAR", "Project acronym."),
        Column("status", "VARCHAR", "Project status as published."),
        Column("title", "VARCHAR", "Project title."),
        Column("start_date", "DATE", "Project start date."),
        Column("end_date", "DATE", "Project end date."),
        Column("ec_signature_date", "DATE", "Date the Commission signed the grant agreement (2021+ exports)."),
        Column("award_date", "DATE", "ec_signature_date, else start_date: the date of the project's grants."),
        Column("award_date_basis", "VARCHAR", "ecSignatureDate | startDate | NULL (no date published)."),
        Column("total_cost", AMOUNT_TYPE, "Total eligible cost in EUR."),
        Column("ec_max_contribution", AMOUNT_TYPE, "Maximum EU contribution in EUR."),
        Column("currency", "VARCHAR", "EUR (CORDIS amounts are in euro).", False),
        Column("framework_programme", "VARCHAR", "FP7, H2020, HORIZON..."),
        Column("programme", "VARCHAR", "Stream label: framework programme / funding scheme (topic when no scheme)."),
        Column("legal_basis", "VARCHAR", "Legal basis (2021+) or programme codes (legacy exports)."),
        Column("topics", "VARCHAR", "Call topic code(s)."),
        Column("funding_scheme", "VARCHAR", "Funding scheme / type of action."),
        Column("call_id", "VARCHAR", "masterCall (2021+) or call (legacy)."),
        Column("sub_call", "VARCHAR", "subCall (2021+ exports)."),
        Column("objective", "VARCHAR", "Project objective."),
        Column("grant_doi", "VARCHAR", "Grant DOI."),
        *_FUNDER_COLUMNS,
        Column("source_layout", "VARCHAR", "CORDIS header layout of the file.", False),
        *PROVENANCE_COLUMNS,
    ),
    order_by=("project_id",),
)  # fmt: skip

STG_PARTICIPATIONS = TableSpec(
    schema="staging",
    name="stg_cordis_participations",
    grain="one participation: CORDIS project x organisation x role (unique participation_id)",
    description="CORDIS participants typed and linked to their project: EU contribution "
    "(ecContribution) and net contribution in EUR, organisation as XI-PIC-<PIC> (or a "
    "name-based id), VAT number normalised with its country prefix, role, SME, activity type, "
    "the award date of the project. Participations of unknown projects, with unparseable "
    "amounts or without an organisation, and later copies of a participation, are in "
    "staging.stg_quarantine.",
    columns=(
        Column("participation_id", "VARCHAR", "project_id:PIC (or name id):role.", False),
        Column("project_id", "VARCHAR", "CORDIS project id.", False),
        Column("project_acronym", "VARCHAR", "Project acronym."),
        Column("project_title", "VARCHAR", "Project title (from the project file)."),
        Column("programme", "VARCHAR", "Stream label of the project (framework programme / funding scheme)."),
        Column("framework_programme", "VARCHAR", "FP7, H2020, HORIZON..."),
        Column("funding_scheme", "VARCHAR", "Funding scheme of the project."),
        Column("topics", "VARCHAR", "Call topic(s) of the project."),
        Column("role", "VARCHAR", "coordinator | participant | thirdParty | associatedPartner | partner | ... (CORDIS spelling).", False),
        Column("is_coordinator", "BOOLEAN", "role = coordinator.", False),
        Column("organisation_pic", "VARCHAR", "Participant Identification Code as published (digits only)."),
        Column("recipient_org_ref", "VARCHAR", "XI-PIC-<PIC>, else a name-based FTNAME- id.", False),
        Column("recipient_ref_basis", "VARCHAR", "pic | name.", False),
        Column("recipient_name", "VARCHAR", "Organisation legal name."),
        Column("short_name", "VARCHAR", "Organisation short name."),
        Column("vat_number", "VARCHAR", "VAT number normalised: upper case, no punctuation, with the country prefix (EL, GB...)."),
        Column("vat_number_published", "VARCHAR", "VAT number as published."),
        Column("sme", "BOOLEAN", "SME flag."),
        Column("activity_type", "VARCHAR", "PRC | HES | REC | PUB | OTH."),
        Column("country", "VARCHAR", "Country code as CORDIS writes it (UK, EL...)."),
        Column("country_iso", "VARCHAR", "ISO 3166-1 alpha-2 country (GB, GR...)."),
        Column("city", "VARCHAR", "City."),
        Column("post_code", "VARCHAR", "Postal code."),
        Column("nuts_code", "VARCHAR", "NUTS region code."),
        Column("ec_contribution", AMOUNT_TYPE, "EU contribution to this participant (EUR); the award amount."),
        Column("net_ec_contribution", AMOUNT_TYPE, "Net EU contribution (EUR), 2021+ exports only."),
        Column("total_cost", AMOUNT_TYPE, "Participant's total cost (EUR)."),
        Column("amount_original", AMOUNT_TYPE, "= ec_contribution."),
        Column("currency_original", "VARCHAR", "EUR.", False),
        Column("amount_eur", AMOUNT_TYPE, "= ec_contribution (already EUR)."),
        Column("fx_rate", RATE_TYPE, "1 (EUR)."),
        Column("fx_date", "DATE", "award_date."),
        Column("fx_note", "VARCHAR", "Why amount_eur is NULL, if it is."),
        Column("award_date", "DATE", "The project's award_date (ecSignatureDate, else startDate).", False),
        Column("award_date_basis", "VARCHAR", "ecSignatureDate | startDate.", False),
        Column("end_of_participation", "BOOLEAN", "Participation ended early."),
        Column("active", "BOOLEAN", "Participation active."),
        *_FUNDER_COLUMNS,
        Column("source_layout", "VARCHAR", "CORDIS header layout of the file.", False),
        *PROVENANCE_COLUMNS,
    ),
    order_by=("participation_id",),
)  # fmt: skip


def cordis_amount_sql(column: str) -> str:
    """DECIMAL from a CORDIS amount text: a lone comma is a decimal comma."""
    return (
        f"ft_parse_amount(CASE WHEN regexp_full_match(trim({column}), '-?[0-9]+,[0-9]+') "
        f"THEN replace(trim({column}), ',', '.') ELSE {column} END)"
    )


def bool_sql(column: str) -> str:
    return (
        f"CASE WHEN lower(trim({column})) IN ('true', 't', 'yes', 'y', '1') THEN true "
        f"WHEN lower(trim({column})) IN ('false', 'f', 'no', 'n', '0') THEN false END"
    )


def role_sql(column: str) -> str:
    cases = " ".join(f"WHEN '{r.lower()}' THEN '{r}'" for r in ROLES)
    return (
        f"CASE lower(regexp_replace(trim({column}), '[^A-Za-z]', '', 'g')) {cases} "
        f"ELSE nullif(trim({column}), '') END"
    )


def _unparseable(column: str, title: str) -> str:
    return (
        f"WHEN {column} IS NOT NULL AND {cordis_amount_sql(column)} IS NULL "
        f"THEN 'unparseable {title}: ' || {column}"
    )


def _bad_date(column: str, title: str) -> str:
    return (
        f"WHEN {column} IS NOT NULL AND ft_parse_date({column}) IS NULL "
        f"THEN 'unparseable {title}: ' || {column}"
    )


_PROJECTS_CHECKED = f"""
SELECT r.*, nullif(trim(r.project_id), '') AS _pid,
  CASE
    WHEN nullif(trim(r.project_id), '') IS NULL THEN 'missing project id (id / reference)'
    {_unparseable("r.total_cost", "totalCost")}
    {_unparseable("r.ec_max_contribution", "ecMaxContribution")}
    {_bad_date("r.start_date", "startDate")}
    {_bad_date("r.end_date", "endDate")}
    {_bad_date("r.ec_signature_date", "ecSignatureDate")}
  END AS _reason
FROM {RAW_PROJECTS.qualified} r
"""

_RANKED = """
SELECT c.*,
  CASE WHEN c._reason IS NULL THEN row_number() OVER (
    PARTITION BY c._reason IS NULL, c._key ORDER BY c.source_file, c.source_row) END AS _rank,
  first_value(c.source_file || ' ' || c.source_locator) OVER (
    PARTITION BY c._reason IS NULL, c._key ORDER BY c.source_file, c.source_row) AS _first_seen
FROM {table} c
"""

_EC_LEVEL = funder_levels_sql(f"SELECT '{EC_ORG_REF}' AS org_ref")


def build_stg_cordis_projects(con: duckdb.DuckDBPyConnection) -> tuple[int, int]:
    """Rebuild staging.stg_cordis_projects and its quarantine rows. Returns (staged, quarantined)."""
    install_macros(con)
    create_table(con, RAW_PROJECTS, replace=False)
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE _cordis_p_checked AS SELECT *, _pid AS _key FROM ({_PROJECTS_CHECKED})"
    )
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _cordis_p_ranked AS "
        + _RANKED.format(table="_cordis_p_checked")
    )
    quarantined = replace_quarantine(
        con,
        SOURCE_SYSTEM,
        STG_PROJECTS.name,
        """SELECT source_file, file_sha256, source_row, source_locator, _pid AS record_id,
             coalesce(_reason, 'duplicate project id ' || _pid || ': kept the first copy, '
                      || _first_seen) AS reason
           FROM _cordis_p_ranked WHERE _reason IS NOT NULL OR _rank > 1""",
    )
    select = f"""
    WITH levels AS ({_EC_LEVEL}),
    p AS (
      SELECT *, ft_parse_date(start_date) AS _start, ft_parse_date(ec_signature_date) AS _signed,
        nullif(trim(framework_programme), '') AS _fp, nullif(trim(funding_scheme), '') AS _scheme,
        nullif(trim(topics), '') AS _topics
      FROM _cordis_p_ranked WHERE _reason IS NULL AND _rank = 1
    )
    SELECT p._pid AS project_id, p.rcn, p.acronym, p.status, ft_clean_name(p.title) AS title,
      p._start AS start_date, ft_parse_date(p.end_date) AS end_date,
      p._signed AS ec_signature_date, coalesce(p._signed, p._start) AS award_date,
      CASE WHEN p._signed IS NOT NULL THEN 'ecSignatureDate'
           WHEN p._start IS NOT NULL THEN 'startDate' END AS award_date_basis,
      {cordis_amount_sql("p.total_cost")} AS total_cost,
      {cordis_amount_sql("p.ec_max_contribution")} AS ec_max_contribution,
      'EUR' AS currency, p._fp AS framework_programme,
      nullif(concat_ws(' / ', p._fp, coalesce(p._scheme, p._topics)), '') AS programme,
      coalesce(p.legal_basis, p.programme) AS legal_basis, p._topics AS topics,
      p._scheme AS funding_scheme, coalesce(p.master_call, p.call) AS call_id, p.sub_call,
      p.objective, p.grant_doi,
      '{EC_ORG_REF}' AS funder_org_ref, '{EC_NAME}' AS funder_name,
      l.funding_level, l.funding_level_basis, p.source_layout,
      p.source_system, p.source_file, p.source_row, p.source_locator, p.file_sha256, p.loaded_at
    FROM p CROSS JOIN levels l
    """
    staged = rebuild_table(con, STG_PROJECTS, select)
    con.execute("DROP TABLE _cordis_p_checked; DROP TABLE _cordis_p_ranked")
    return staged, quarantined


_PARTICIPATIONS_CHECKED = f"""
WITH by_rcn AS (
  SELECT rcn, any_value(project_id) AS project_id FROM {STG_PROJECTS.qualified}
  WHERE rcn IS NOT NULL GROUP BY rcn HAVING count(*) = 1
),
-- amounts and the name id are computed once and read by the checks and the final select:
-- DuckDB inlines macros and does not share repeated calls
o1 AS (
  SELECT r.*,
    coalesce(nullif(trim(r.project_id), ''), br.project_id) AS _pid,
    CASE WHEN regexp_full_match(trim(r.organisation_id), '[0-9]{{5,12}}')
         THEN trim(r.organisation_id) END AS _pic,
    {role_sql("r.role")} AS _role,
    {cordis_amount_sql("r.ec_contribution")} AS _ec,
    {cordis_amount_sql("r.net_ec_contribution")} AS _net_ec,
    {cordis_amount_sql("r.total_cost")} AS _total_cost
  FROM {RAW_ORGANISATIONS.qualified} r LEFT JOIN by_rcn br ON br.rcn = trim(r.project_rcn)
),
o AS (
  -- the name id is only read without a PIC
  SELECT *, CASE WHEN _pic IS NULL THEN ft_name_org_id(name) END AS _name_id FROM o1
)
SELECT o.*,
  coalesce('XI-PIC-' || o._pic, o._name_id) AS _org_ref,
  o._pid || ':' || coalesce(o._pic, o._name_id, '?') || ':' || coalesce(o._role, '?') AS _key,
  p.project_id AS _project_found, p.award_date AS _award_date,
  p.award_date_basis AS _award_date_basis, p.acronym AS _p_acronym, p.title AS _p_title,
  p.programme AS _programme, p.framework_programme AS _fp, p.funding_scheme AS _scheme,
  p.topics AS _topics,
  CASE
    WHEN o._pid IS NULL THEN 'missing projectID'
    WHEN o._pic IS NULL AND o._name_id IS NULL
      THEN 'missing organisation: no organisationID (PIC) and no name'
    WHEN o._role IS NULL THEN 'missing role'
    WHEN o.ec_contribution IS NOT NULL AND o._ec IS NULL
      THEN 'unparseable ecContribution: ' || o.ec_contribution
    WHEN o.net_ec_contribution IS NOT NULL AND o._net_ec IS NULL
      THEN 'unparseable netEcContribution: ' || o.net_ec_contribution
    WHEN o.total_cost IS NOT NULL AND o._total_cost IS NULL
      THEN 'unparseable totalCost: ' || o.total_cost
    WHEN p.project_id IS NULL
      THEN 'unknown project id ' || o._pid || ': not in any staged CORDIS project file'
    WHEN p.award_date IS NULL
      THEN 'project ' || o._pid || ' has no ecSignatureDate or startDate to date the grant'
  END AS _reason
FROM o LEFT JOIN {STG_PROJECTS.qualified} p ON p.project_id = o._pid
"""


def build_stg_cordis_participations(con: duckdb.DuckDBPyConnection) -> tuple[int, int]:
    """Rebuild staging.stg_cordis_participations (needs stg_cordis_projects) and its quarantine
    rows. Returns (staged, quarantined)."""
    install_macros(con)
    eu_vat.install_macros(con)
    create_table(con, RAW_ORGANISATIONS, replace=False)
    create_table(con, STG_PROJECTS, replace=False)
    con.execute(f"CREATE OR REPLACE TEMP TABLE _cordis_o_checked AS {_PARTICIPATIONS_CHECKED}")
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _cordis_o_ranked AS "
        + _RANKED.format(table="_cordis_o_checked")
    )
    quarantined = replace_quarantine(
        con,
        SOURCE_SYSTEM,
        STG_PARTICIPATIONS.name,
        """SELECT source_file, file_sha256, source_row, source_locator,
             coalesce(_key, _pid) AS record_id,
             coalesce(_reason, 'duplicate participation ' || _key || ': kept the first copy, '
                      || _first_seen) AS reason
           FROM _cordis_o_ranked WHERE _reason IS NOT NULL OR _rank > 1""",
    )
    good = """
      SELECT *, _ec AS amount_original,
        'EUR' AS currency_original, _award_date AS fx_on
      FROM _cordis_o_ranked WHERE _reason IS NULL AND _rank = 1"""
    select = f"""
    WITH money AS ({to_eur_sql(good, ECB_RATES.qualified)}),
         levels AS ({_EC_LEVEL})
    SELECT m._key AS participation_id, m._pid AS project_id,
      coalesce(m._p_acronym, m.project_acronym) AS project_acronym, m._p_title AS project_title,
      m._programme AS programme, m._fp AS framework_programme, m._scheme AS funding_scheme,
      m._topics AS topics, m._role AS role, m._role = 'coordinator' AS is_coordinator,
      m._pic AS organisation_pic, m._org_ref AS recipient_org_ref,
      CASE WHEN m._pic IS NOT NULL THEN 'pic' ELSE 'name' END AS recipient_ref_basis,
      ft_clean_name(m.name) AS recipient_name, ft_clean_name(m.short_name) AS short_name,
      ft_vat_number(m.vat_number, m.country) AS vat_number, m.vat_number AS vat_number_published,
      {bool_sql("m.sme")} AS sme, upper(trim(m.activity_type)) AS activity_type,
      upper(trim(m.country)) AS country, ft_country_code(m.country) AS country_iso,
      m.city, m.post_code, m.nuts_code,
      m.amount_original AS ec_contribution,
      m._net_ec AS net_ec_contribution, m._total_cost AS total_cost,
      m.amount_original, m.currency_original, m.amount_eur, m.fx_rate, m.fx_date, m.fx_note,
      m._award_date AS award_date, m._award_date_basis AS award_date_basis,
      {bool_sql("m.end_of_participation")} AS end_of_participation, {bool_sql("m.active")} AS active,
      '{EC_ORG_REF}' AS funder_org_ref, '{EC_NAME}' AS funder_name,
      l.funding_level, l.funding_level_basis, m.source_layout,
      m.source_system, m.source_file, m.source_row, m.source_locator, m.file_sha256, m.loaded_at
    FROM money m CROSS JOIN levels l
    """
    staged = rebuild_table(con, STG_PARTICIPATIONS, select)
    con.execute("DROP TABLE _cordis_o_checked; DROP TABLE _cordis_o_ranked")
    return staged, quarantined


_REF_DEPS = [ECB_RATES.asset_key, FUNDERS.asset_key, ORGID_PREFIXES.asset_key]


@dg.asset(
    key=STG_PROJECTS.asset_key,
    group_name="staging",
    kinds={"duckdb", "sql"},
    description=STG_PROJECTS.doc,
    deps=[RAW_PROJECTS.asset_key, *_REF_DEPS],
    tags={"source_system": SOURCE_SYSTEM},
)
@skip_unchanged
def stg_cordis_projects(
    context: dg.AssetExecutionContext, duckdb: DuckDBResource
) -> dg.MaterializeResult:
    with duckdb.get_connection() as con:
        staged, quarantined = build_stg_cordis_projects(con)
        context.log.info(
            f"{STG_PROJECTS.qualified}: {staged} projects staged, {quarantined} quarantined "
            f"(see {STG_QUARANTINE.qualified})"
        )
        return materialize_result(con, STG_PROJECTS, {"rows_quarantined": quarantined})


@dg.asset(
    key=STG_PARTICIPATIONS.asset_key,
    group_name="staging",
    kinds={"duckdb", "sql"},
    description=STG_PARTICIPATIONS.doc,
    deps=[RAW_ORGANISATIONS.asset_key, STG_PROJECTS.asset_key, *_REF_DEPS],
    tags={"source_system": SOURCE_SYSTEM},
)
@skip_unchanged
def stg_cordis_participations(
    context: dg.AssetExecutionContext, duckdb: DuckDBResource
) -> dg.MaterializeResult:
    with duckdb.get_connection() as con:
        staged, quarantined = build_stg_cordis_participations(con)
        context.log.info(
            f"{STG_PARTICIPATIONS.qualified}: {staged} participations staged, {quarantined} "
            f"quarantined (see {STG_QUARANTINE.qualified})"
        )
        return materialize_result(con, STG_PARTICIPATIONS, {"rows_quarantined": quarantined})


STAGING_PAIRS = (
    StagingPair(SOURCE_SYSTEM, RAW_PROJECTS, STG_PROJECTS),
    StagingPair(SOURCE_SYSTEM, RAW_ORGANISATIONS, STG_PARTICIPATIONS),
)
AWARDS_DEPS = (STG_PARTICIPATIONS,)
AWARDS_SQL = f"""
SELECT source_system || ':' || participation_id AS award_id, 'grant' AS award_type,
  funder_org_ref, funder_name, recipient_org_ref, recipient_name,
  'organisation' AS recipient_kind, programme, project_id AS project_ref,
  coalesce(project_title, project_acronym) AS title, award_date,
  amount_original, currency_original, amount_eur, fx_rate, fx_date, funding_level,
  funder_org_ref AS controller_org_ref, funder_name AS controller_name,
  'funder' AS control_basis,
  source_system, source_file, source_row, participation_id AS source_record_id
FROM {STG_PARTICIPATIONS.qualified}
WHERE ec_contribution > 0
"""
