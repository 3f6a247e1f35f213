"""Staging of the governance register: partnerships, members, projects and assets, validated.

Each table keeps a row only when every rule holds; otherwise the row goes to
`staging.stg_quarantine` with the first rule it failed (file and row in the provenance),
worded `<rule>: <value>` so `marts.data_quality` can group reasons by the text before ':'.
Rules, in order:

- ids present; register ids (partnership, project, asset) compare case- and
  whitespace-insensitively and are stored upper-cased without spaces;
- `legal_form`, `member_type`, `role`, `asset_type` in their sets (written in any case, with
  spaces or hyphens for underscores: `Board member` = `board_member`);
- `share_pct` / `voting_pct` parse and lie within 0-100. They are percent points:
  `51%` and `51` are 51; `0.51` is 0.51 percent and is NOT rescaled (a register cannot tell a
  typed 0.51 from a share of half a percent; percentage-formatted XLSX cells already arrive
  as `51%` from the raw parser);
- dates parse (ISO, dd/mm/yyyy...) and `end_date` is not before `start_date`;
- a member or project names a partnership that is staged, an asset a project that is staged
  (the reason says whether the parent is missing or was itself quarantined);
- a project budget has a valid currency and an ECB rate on its start date (`budget_eur`);
- duplicates: the first copy (by file, row) is kept, later copies are quarantined. Keys:
  partnership_id, project_id, asset_id, and for members (partnership, member, role, start).

Owner shares above 100% are not a row error (each row may be right; the set is wrong), so
those rows are kept and flagged: every owner row of a partnership whose owners held more than
100% at some date carries a `validation_note`, and a warning expectation of the members
suite fails. Overlap is judged at each owner's start date, with `end_date` exclusive, so a
handover on the same day is not an overlap.

Governance declares no money flows (a budget is a plan), so this module exports
`STAGING_PAIRS` and `PROJECT_LINKS_SQL`, not `AWARDS_SQL`.
"""

import dagster as dg
import duckdb
from dagster_duckdb import DuckDBResource

from assets.common.fingerprint import skip_unchanged
from assets.common.money import AMOUNT_TYPE, RATE_TYPE, to_eur_sql
from assets.common.sql import install_macros
from assets.common.tables import Column, TableSpec, materialize_result, rebuild_table
from assets.raw.governance import (
    RAW_ASSETS,
    RAW_MEMBERS,
    RAW_PARTNERSHIPS,
    RAW_PROJECTS,
    SOURCE_SYSTEM,
)
from assets.raw.ingest import PROVENANCE_COLUMNS
from assets.raw.reference import ECB_RATES
from assets.staging.quarantine import STG_QUARANTINE, replace_quarantine
from assets.staging.registry import StagingPair

LEGAL_FORMS = ("company", "mou", "consortium", "programme", "contract")
MEMBER_TYPES = ("public_body", "university", "company", "ngo", "person", "community")
ROLES = (
    "owner", "board_member", "advisory_panel", "signatory", "lead", "partner", "funder",
    "operator", "supplier", "managing_authority",
)  # fmt: skip
ASSET_TYPES = ("infrastructure", "data", "ip", "software")
PCT_TYPE = "DECIMAL(9,4)"

_PROV = PROVENANCE_COLUMNS
_PROV_SELECT = "source_system, source_file, source_row, source_locator, file_sha256, loaded_at"

STG_PARTNERSHIPS = TableSpec(
    schema="staging",
    name="stg_governance_partnerships",
    grain="one partnership of the governance register (unique partnership_id)",
    description="Partnerships (joint companies, MoUs, consortia, programmes, contracts) with "
    "their legal form, dates, decision body and the body they are accountable to, as a "
    "canonical organisation reference. Rows failing a rule are in staging.stg_quarantine.",
    columns=(
        Column("partnership_id", "VARCHAR", "Register id, upper-cased, no spaces.", False),
        Column("name", "VARCHAR", "Name of the partnership.", False),
        Column("legal_form", "VARCHAR", "company | mou | consortium | programme | contract.", False),
        Column("city", "VARCHAR", "City the partnership serves."),
        Column("country", "VARCHAR", "Country as written (upper-cased when a 2-letter code)."),
        Column("start_date", "DATE", "Start date."),
        Column("end_date", "DATE", "End date (NULL = ongoing)."),
        Column("accountable_to_ref", "VARCHAR", "Organisation reference of the body the partnership answers to: normalised org-id, else a name-based FTNAME- id."),
        Column("accountable_to_id", "VARCHAR", "accountable_to_id as published."),
        Column("accountable_to_name", "VARCHAR", "Name of that body as published (e.g. the council's cabinet)."),
        Column("decision_body", "VARCHAR", "Body that takes the partnership's decisions."),
        Column("source_url", "VARCHAR", "Where the analyst found the record."),
        *_PROV,
    ),
    order_by=("partnership_id",),
)  # fmt: skip

STG_MEMBERS = TableSpec(
    schema="staging",
    name="stg_governance_members",
    grain="one membership: partnership x member x role x start date (unique membership_id)",
    description="Who sits in each partnership and how: owners with shares, board members, "
    "advisory panels, signatories, leads, partners, funders, operators, suppliers, managing "
    "authorities. Members are canonical organisation references (persons keep their register "
    "id). Owner rows of a partnership whose owner shares exceed 100% are kept but carry a "
    "validation_note.",
    columns=(
        Column("membership_id", "VARCHAR", "partnership_id/member_ref/role[/start_date]: the row's key.", False),
        Column("partnership_id", "VARCHAR", "Partnership (staged in stg_governance_partnerships).", False),
        Column("member_ref", "VARCHAR", "Canonical reference: normalised org-id or person register id (upper-cased), else a name-based FTNAME- id.", False),
        Column("member_ref_basis", "VARCHAR", "org-id | person id | name: how member_ref was chosen.", False),
        Column("member_id", "VARCHAR", "member_id as published."),
        Column("member_name", "VARCHAR", "Member name as published (spaces tidied)."),
        Column("member_type", "VARCHAR", "public_body | university | company | ngo | person | community.", False),
        Column("role", "VARCHAR", "owner | board_member | advisory_panel | signatory | lead | partner | funder | operator | supplier | managing_authority.", False),
        Column("share_pct", PCT_TYPE, "Ownership share in percent points (0-100)."),
        Column("voting_pct", PCT_TYPE, "Voting rights in percent points (0-100)."),
        Column("start_date", "DATE", "Membership start (NULL = since the partnership began)."),
        Column("end_date", "DATE", "Membership end (NULL = current)."),
        Column("validation_note", "VARCHAR", "Set on owner rows of a partnership whose owner shares add up to more than 100% at some date."),
        Column("source_url", "VARCHAR", "Where the analyst found the record."),
        *_PROV,
    ),
    order_by=("partnership_id", "role", "member_ref", "start_date"),
)  # fmt: skip

STG_PROJECTS = TableSpec(
    schema="staging",
    name="stg_governance_projects",
    grain="one project of the governance register (unique project_id)",
    description="Projects with their partnership, dates, planned budget (as published and in "
    "EUR at the ECB rate of the start date) and the external ids that link them to funding: "
    "CORDIS project id, Kohesio operation id and OCDS ocids (a list).",
    columns=(
        Column("project_id", "VARCHAR", "Register id, upper-cased, no spaces.", False),
        Column("partnership_id", "VARCHAR", "Partnership running the project.", False),
        Column("title", "VARCHAR", "Project title."),
        Column("city", "VARCHAR", "City."),
        Column("start_date", "DATE", "Start date."),
        Column("end_date", "DATE", "End date."),
        Column("budget_original", AMOUNT_TYPE, "Planned budget as published (a plan, not a flow)."),
        Column("budget_currency", "VARCHAR", "ISO 4217 currency of the budget."),
        Column("budget_eur", AMOUNT_TYPE, "Budget in EUR at the ECB rate of fx_date."),
        Column("fx_rate", RATE_TYPE, "Units of budget_currency per EUR."),
        Column("fx_date", "DATE", "ECB fixing day used: the start date or the last business day before it."),
        Column("cordis_id", "VARCHAR", "CORDIS project id (trailing '.0' of spreadsheet numbers removed)."),
        Column("kohesio_id", "VARCHAR", "Kohesio operation id, trimmed."),
        Column("ocids", "VARCHAR[]", "OCDS ocids declared for the project, in written order, de-duplicated (empty list when none)."),
        Column("source_url", "VARCHAR", "Where the analyst found the record."),
        *_PROV,
    ),
    order_by=("project_id",),
)  # fmt: skip

STG_ASSETS = TableSpec(
    schema="staging",
    name="stg_governance_assets",
    grain="one asset produced by a register project (unique asset_id)",
    description="Assets (infrastructure, data, IP, software) a project produced, who owns them "
    "(canonical organisation reference) and under which licence.",
    columns=(
        Column("asset_id", "VARCHAR", "Register id, upper-cased, no spaces.", False),
        Column("project_id", "VARCHAR", "Project that produced the asset.", False),
        Column("description", "VARCHAR", "What the asset is."),
        Column("asset_type", "VARCHAR", "infrastructure | data | ip | software.", False),
        Column("owner_ref", "VARCHAR", "Owner: normalised org-id or person id, else name-based FTNAME- id; NULL when not recorded."),
        Column("owner_id", "VARCHAR", "owner_id as published."),
        Column("owner_name", "VARCHAR", "Owner name as published."),
        Column("licence", "VARCHAR", "Licence, as written."),
        *_PROV,
    ),
    order_by=("asset_id",),
)  # fmt: skip

STG_SPECS = (STG_PARTNERSHIPS, STG_MEMBERS, STG_PROJECTS, STG_ASSETS)


# ---------------------------------------------------------------- SQL pieces


def _rid(col: str) -> str:
    """Register id: upper-case, no whitespace, NULL when empty."""
    return f"nullif(ft_id_text({col}), '')"


def _vocab(col: str) -> str:
    """Controlled value: lower-case, spaces/hyphens as underscores."""
    return f"nullif(trim(regexp_replace(lower(trim({col})), '[\\s-]+', '_', 'g'), '_'), '')"


def _in_set(values: tuple[str, ...]) -> str:
    return "(" + ", ".join(f"'{v}'" for v in values) + ")"


def _pct(col: str) -> str:
    return f"ft_parse_amount(replace({col}, '%', ''))"


def _date_rules(alias: str = "r") -> str:
    return f"""
    WHEN {alias}.start_date IS NOT NULL AND ft_parse_date({alias}.start_date) IS NULL
      THEN 'unparseable start_date: ' || {alias}.start_date
    WHEN {alias}.end_date IS NOT NULL AND ft_parse_date({alias}.end_date) IS NULL
      THEN 'unparseable end_date: ' || {alias}.end_date
    WHEN ft_parse_date({alias}.end_date) < ft_parse_date({alias}.start_date)
      THEN 'end_date before start_date: ' || {alias}.end_date || ' < ' || {alias}.start_date"""


def _parent_rule(col: str, parent_col: str, staged: TableSpec, raw: TableSpec, what: str) -> str:
    """Reject a row whose parent id is not staged, saying whether it is missing or quarantined."""
    return f"""
    WHEN {_rid(col)} NOT IN (SELECT {parent_col} FROM {staged.qualified})
      THEN CASE WHEN {_rid(col)} IN (SELECT {_rid(parent_col)} FROM {raw.qualified}
                                     WHERE {_rid(parent_col)} IS NOT NULL)
             THEN '{parent_col} quarantined in {what}: ' || {_rid(col)}
             ELSE 'unknown {parent_col} (not in {what}): ' || {_rid(col)} END"""


def _ranked(checked: str, key: str) -> str:
    """Rank good rows per key (first file/row wins) and remember where the first copy is."""
    return f"""
    SELECT c.*,
      CASE WHEN c._reason IS NULL THEN row_number() OVER (
        PARTITION BY c._reason IS NULL, {key} ORDER BY c.source_file, c.source_row) END AS _rank,
      first_value(c.source_file || ' ' || c.source_locator) OVER (
        PARTITION BY c._reason IS NULL, {key} ORDER BY c.source_file, c.source_row) AS _first_seen
    FROM {checked} c"""


def _quarantine(con: duckdb.DuckDBPyConnection, spec: TableSpec, ranked: str, what: str) -> int:
    return replace_quarantine(
        con,
        SOURCE_SYSTEM,
        spec.name,
        f"""SELECT source_file, file_sha256, source_row, source_locator, _key AS record_id,
             coalesce(_reason, 'duplicate {what}: ' || _key || ', kept the first copy at '
                      || _first_seen) AS reason
           FROM {ranked} WHERE _reason IS NOT NULL OR _rank > 1""",
    )


def _stage(
    con: duckdb.DuckDBPyConnection,
    spec: TableSpec,
    checked_sql: str,
    what: str,
    select_sql: str,
) -> tuple[int, int]:
    """checked_sql -> ranked temp table -> quarantine + rebuild `spec` from `select_sql`
    (which reads `_good`: the first copy of each key that passed every rule)."""
    tmp = f"_stg_{spec.name}"
    con.execute(f"CREATE OR REPLACE TEMP TABLE {tmp}_checked AS {checked_sql}")
    con.execute(f"CREATE OR REPLACE TEMP TABLE {tmp}_ranked AS {_ranked(tmp + '_checked', '_key')}")
    quarantined = _quarantine(con, spec, f"{tmp}_ranked", what)
    con.execute(
        f"CREATE OR REPLACE TEMP VIEW _good AS "
        f"SELECT * FROM {tmp}_ranked WHERE _reason IS NULL AND _rank = 1"
    )
    staged = rebuild_table(con, spec, select_sql)
    con.execute(f"DROP VIEW _good; DROP TABLE {tmp}_checked; DROP TABLE {tmp}_ranked")
    return staged, quarantined


# ---------------------------------------------------------------- partnerships


def build_stg_governance_partnerships(con: duckdb.DuckDBPyConnection) -> tuple[int, int]:
    """Rebuild staging partnerships and their quarantine rows. Returns (staged, quarantined)."""
    install_macros(con)
    checked = f"""
    SELECT r.*, {_rid("r.partnership_id")} AS _key, {_vocab("r.legal_form")} AS _legal_form,
      CASE
        WHEN {_rid("r.partnership_id")} IS NULL THEN 'missing partnership_id'
        WHEN ft_clean_name(r.name) IS NULL THEN 'missing name'
        WHEN r.legal_form IS NULL THEN 'missing legal_form'
        WHEN {_vocab("r.legal_form")} NOT IN {_in_set(LEGAL_FORMS)}
          THEN 'unknown legal_form: ' || r.legal_form || ' (allowed {", ".join(LEGAL_FORMS)})'
        {_date_rules()}
      END AS _reason
    FROM {RAW_PARTNERSHIPS.qualified} r"""
    select = f"""
    SELECT _key AS partnership_id, ft_clean_name(name) AS name, _legal_form AS legal_form,
      ft_clean_name(city) AS city,
      CASE WHEN length(trim(country)) = 2 THEN upper(trim(country))
           ELSE ft_clean_name(country) END AS country,
      ft_parse_date(start_date) AS start_date, ft_parse_date(end_date) AS end_date,
      coalesce(ft_org_id(accountable_to_id), ft_name_org_id(accountable_to_name))
        AS accountable_to_ref,
      accountable_to_id, ft_clean_name(accountable_to_name) AS accountable_to_name,
      ft_clean_name(decision_body) AS decision_body, source_url, {_PROV_SELECT}
    FROM _good"""
    return _stage(con, STG_PARTNERSHIPS, checked, "partnership_id", select)


# ---------------------------------------------------------------- members


def _pct_rules(col: str) -> str:
    return f"""
    WHEN r.{col} IS NOT NULL AND {_pct("r." + col)} IS NULL
      THEN 'unparseable {col}: ' || r.{col}
    WHEN {_pct("r." + col)} < 0 OR {_pct("r." + col)} > 100
      THEN '{col} outside 0-100 (percent points): ' || r.{col}"""


_MEMBER_REF = "coalesce(ft_org_id(r.member_id), ft_name_org_id(r.member_name))"

# Owner shares held at each owner's start date (end_date exclusive); partnerships above 100.
OWNER_OVERLAP_SQL = """
WITH own AS (
  SELECT partnership_id, share_pct,
         coalesce(start_date, DATE '0001-01-01') AS s, end_date AS e
  FROM {members} WHERE role = 'owner' AND share_pct IS NOT NULL
), totals AS (
  SELECT p.partnership_id, p.s AS at_date, sum(o.share_pct) AS total
  FROM (SELECT DISTINCT partnership_id, s FROM own) AS p
  JOIN own AS o ON o.partnership_id = p.partnership_id AND o.s <= p.s
                   AND (o.e IS NULL OR o.e > p.s)
  GROUP BY p.partnership_id, p.s
)
SELECT partnership_id, max(total) AS owner_share_total, arg_max(at_date, total) AS at_date
FROM totals WHERE total > 100 GROUP BY partnership_id
"""


def build_stg_governance_members(con: duckdb.DuckDBPyConnection) -> tuple[int, int]:
    """Rebuild staging members (needs staged partnerships). Returns (staged, quarantined)."""
    install_macros(con)
    member_type, role = _vocab("r.member_type"), _vocab("r.role")
    key = (
        f"{_rid('r.partnership_id')} || '/' || {_MEMBER_REF} || '/' || {role} "
        "|| coalesce('/' || CAST(ft_parse_date(r.start_date) AS VARCHAR), '')"
    )
    checked = f"""
    SELECT r.*, {key} AS _key, {_rid("r.partnership_id")} AS _partnership_id,
      {_MEMBER_REF} AS _member_ref, {member_type} AS _member_type, {role} AS _role,
      CASE
        WHEN {_rid("r.partnership_id")} IS NULL THEN 'missing partnership_id'
        WHEN {_MEMBER_REF} IS NULL THEN 'no usable member_id or member_name'
        WHEN r.member_type IS NULL THEN 'missing member_type'
        WHEN {member_type} NOT IN {_in_set(MEMBER_TYPES)}
          THEN 'unknown member_type: ' || r.member_type || ' (allowed {", ".join(MEMBER_TYPES)})'
        WHEN r.role IS NULL THEN 'missing role'
        WHEN {role} NOT IN {_in_set(ROLES)}
          THEN 'unknown role: ' || r.role || ' (allowed {", ".join(ROLES)})'
        {_pct_rules("share_pct")}
        {_pct_rules("voting_pct")}
        {_date_rules()}
        {_parent_rule("r.partnership_id", "partnership_id", STG_PARTNERSHIPS, RAW_PARTNERSHIPS, "partnerships")}
      END AS _reason
    FROM {RAW_MEMBERS.qualified} r"""  # fmt: skip
    select = f"""
    WITH m AS (
      SELECT _key AS membership_id, _partnership_id AS partnership_id, _member_ref AS member_ref,
        CASE WHEN ft_org_id(member_id) IS NULL THEN 'name'
             WHEN _member_type = 'person' THEN 'person id' ELSE 'org-id' END AS member_ref_basis,
        member_id, ft_clean_name(member_name) AS member_name, _member_type AS member_type,
        _role AS role,
        CAST({_pct("share_pct")} AS {PCT_TYPE}) AS share_pct,
        CAST({_pct("voting_pct")} AS {PCT_TYPE}) AS voting_pct,
        ft_parse_date(start_date) AS start_date, ft_parse_date(end_date) AS end_date,
        source_url, {_PROV_SELECT}
      FROM _good
    ), over AS ({OWNER_OVERLAP_SQL.format(members="m")})
    SELECT m.*,
      CASE WHEN m.role = 'owner' AND m.share_pct IS NOT NULL AND o.partnership_id IS NOT NULL
        THEN 'owner shares of partnership ' || o.partnership_id || ' add up to '
             || CAST(CAST(o.owner_share_total AS DOUBLE) AS VARCHAR) || '% '
             || CASE WHEN o.at_date = DATE '0001-01-01' THEN 'from the start'
                     ELSE 'on ' || CAST(o.at_date AS VARCHAR) END
             || ' (more than 100%)' END AS validation_note
    FROM m LEFT JOIN over o ON o.partnership_id = m.partnership_id"""
    return _stage(con, STG_MEMBERS, checked, "membership", select)


# ---------------------------------------------------------------- projects


def _ocid_list(col: str) -> str:
    parts = f"regexp_split_to_array(trim(coalesce({col}, '')), '[;|,\\s]+')"
    return f"list_filter({parts}, lambda x, i: x <> '' AND list_position({parts}, x) = i)"


def build_stg_governance_projects(con: duckdb.DuckDBPyConnection) -> tuple[int, int]:
    """Rebuild staging projects (needs staged partnerships and ECB rates)."""
    install_macros(con)
    typed = f"""
    SELECT r.*, ft_parse_amount(r.budget) AS amount_original,
      ft_parse_currency(r.currency) AS currency_original,
      ft_parse_date(r.start_date) AS fx_on
    FROM {RAW_PROJECTS.qualified} r"""
    checked = f"""
    SELECT r.*, {_rid("r.project_id")} AS _key,
      CASE
        WHEN {_rid("r.project_id")} IS NULL THEN 'missing project_id'
        WHEN {_rid("r.partnership_id")} IS NULL THEN 'missing partnership_id'
        WHEN r.budget IS NOT NULL AND r.amount_original IS NULL
          THEN 'unparseable budget: ' || r.budget
        WHEN r.currency IS NOT NULL AND r.currency_original IS NULL
          THEN 'invalid currency: ' || r.currency
        WHEN r.amount_original IS NOT NULL AND r.currency_original IS NULL
          THEN 'budget without currency: ' || r.budget
        {_date_rules()}
        WHEN r.fx_note IS NOT NULL
          THEN 'budget cannot be converted to EUR: ' || r.fx_note
               || CASE WHEN r.fx_on IS NULL THEN ' (start_date is needed for the rate)' ELSE '' END
        {_parent_rule("r.partnership_id", "partnership_id", STG_PARTNERSHIPS, RAW_PARTNERSHIPS, "partnerships")}
      END AS _reason
    FROM ({to_eur_sql(typed, ECB_RATES.qualified)}) r"""  # fmt: skip
    select = f"""
    SELECT _key AS project_id, {_rid("partnership_id")} AS partnership_id,
      ft_clean_name(title) AS title, ft_clean_name(city) AS city,
      ft_parse_date(start_date) AS start_date, ft_parse_date(end_date) AS end_date,
      amount_original AS budget_original, currency_original AS budget_currency,
      amount_eur AS budget_eur, fx_rate, fx_date,
      nullif(regexp_replace(regexp_replace(trim(cordis_id), '\\s+', '', 'g'), '\\.0+$', ''), '')
        AS cordis_id,
      nullif(trim(kohesio_id), '') AS kohesio_id,
      {_ocid_list("ocids")} AS ocids,
      source_url, {_PROV_SELECT}
    FROM _good"""
    return _stage(con, STG_PROJECTS, checked, "project_id", select)


# ---------------------------------------------------------------- assets


def build_stg_governance_assets(con: duckdb.DuckDBPyConnection) -> tuple[int, int]:
    """Rebuild staging assets (needs staged projects). Returns (staged, quarantined)."""
    install_macros(con)
    asset_type = _vocab("r.asset_type")
    checked = f"""
    SELECT r.*, {_rid("r.asset_id")} AS _key, {asset_type} AS _asset_type,
      CASE
        WHEN {_rid("r.asset_id")} IS NULL THEN 'missing asset_id'
        WHEN {_rid("r.project_id")} IS NULL THEN 'missing project_id'
        WHEN r.asset_type IS NULL THEN 'missing asset_type'
        WHEN {asset_type} NOT IN {_in_set(ASSET_TYPES)}
          THEN 'unknown asset_type: ' || r.asset_type || ' (allowed {", ".join(ASSET_TYPES)})'
        {_parent_rule("r.project_id", "project_id", STG_PROJECTS, RAW_PROJECTS, "projects")}
      END AS _reason
    FROM {RAW_ASSETS.qualified} r"""
    select = f"""
    SELECT _key AS asset_id, {_rid("project_id")} AS project_id,
      ft_clean_name(description) AS description, _asset_type AS asset_type,
      coalesce(ft_org_id(owner_id), ft_name_org_id(owner_name)) AS owner_ref,
      owner_id, ft_clean_name(owner_name) AS owner_name, ft_clean_name(licence) AS licence,
      {_PROV_SELECT}
    FROM _good"""
    return _stage(con, STG_ASSETS, checked, "asset_id", select)


def build_stg_governance(con: duckdb.DuckDBPyConnection) -> dict[str, tuple[int, int]]:
    """All four tables in dependency order: {table: (staged, quarantined)}."""
    return {
        STG_PARTNERSHIPS.name: build_stg_governance_partnerships(con),
        STG_MEMBERS.name: build_stg_governance_members(con),
        STG_PROJECTS.name: build_stg_governance_projects(con),
        STG_ASSETS.name: build_stg_governance_assets(con),
    }


# ---------------------------------------------------------------- Dagster wiring


def _result(
    context: dg.AssetExecutionContext,
    con: duckdb.DuckDBPyConnection,
    spec: TableSpec,
    counts: tuple[int, int],
) -> dg.MaterializeResult:
    staged, quarantined = counts
    context.log.info(
        f"{spec.qualified}: {staged} rows staged, {quarantined} quarantined "
        f"(see {STG_QUARANTINE.qualified})"
    )
    return materialize_result(con, spec, {"rows_quarantined": quarantined})


_TAGS = {"source_system": SOURCE_SYSTEM}


@dg.asset(
    key=STG_PARTNERSHIPS.asset_key,
    group_name="staging",
    kinds={"duckdb", "sql"},
    description=STG_PARTNERSHIPS.doc,
    deps=[RAW_PARTNERSHIPS.asset_key],
    tags=_TAGS,
)
@skip_unchanged
def stg_governance_partnerships(
    context: dg.AssetExecutionContext, duckdb: DuckDBResource
) -> dg.MaterializeResult:
    with duckdb.get_connection() as con:
        counts = build_stg_governance_partnerships(con)
        return _result(context, con, STG_PARTNERSHIPS, counts)


@dg.asset(
    key=STG_MEMBERS.asset_key,
    group_name="staging",
    kinds={"duckdb", "sql"},
    description=STG_MEMBERS.doc,
    deps=[RAW_MEMBERS.asset_key, RAW_PARTNERSHIPS.asset_key, STG_PARTNERSHIPS.asset_key],
    tags=_TAGS,
)
@skip_unchanged
def stg_governance_members(
    context: dg.AssetExecutionContext, duckdb: DuckDBResource
) -> dg.MaterializeResult:
    with duckdb.get_connection() as con:
        counts = build_stg_governance_members(con)
        return _result(context, con, STG_MEMBERS, counts)


@dg.asset(
    key=STG_PROJECTS.asset_key,
    group_name="staging",
    kinds={"duckdb", "sql"},
    description=STG_PROJECTS.doc,
    deps=[
        RAW_PROJECTS.asset_key,
        RAW_PARTNERSHIPS.asset_key,
        STG_PARTNERSHIPS.asset_key,
        ECB_RATES.asset_key,
    ],
    tags=_TAGS,
)
@skip_unchanged
def stg_governance_projects(
    context: dg.AssetExecutionContext, duckdb: DuckDBResource
) -> dg.MaterializeResult:
    with duckdb.get_connection() as con:
        counts = build_stg_governance_projects(con)
        return _result(context, con, STG_PROJECTS, counts)


@dg.asset(
    key=STG_ASSETS.asset_key,
    group_name="staging",
    kinds={"duckdb", "sql"},
    description=STG_ASSETS.doc,
    deps=[RAW_ASSETS.asset_key, RAW_PROJECTS.asset_key, STG_PROJECTS.asset_key],
    tags=_TAGS,
)
@skip_unchanged
def stg_governance_assets(
    context: dg.AssetExecutionContext, duckdb: DuckDBResource
) -> dg.MaterializeResult:
    with duckdb.get_connection() as con:
        counts = build_stg_governance_assets(con)
        return _result(context, con, STG_ASSETS, counts)


STAGING_PAIRS = (
    StagingPair(SOURCE_SYSTEM, RAW_PARTNERSHIPS, STG_PARTNERSHIPS),
    StagingPair(SOURCE_SYSTEM, RAW_MEMBERS, STG_MEMBERS),
    StagingPair(SOURCE_SYSTEM, RAW_PROJECTS, STG_PROJECTS),
    StagingPair(SOURCE_SYSTEM, RAW_ASSETS, STG_ASSETS),
)

# Every external id a project declares: (project_id, partnership_id, link_kind, link_value),
# link_kind 'cordis' | 'kohesio' | 'ocid'; one row per id, ordered.
PROJECT_LINKS_DEPS = (STG_PROJECTS,)
PROJECT_LINKS_SQL = f"""
SELECT project_id, partnership_id, link_kind, link_value FROM (
  SELECT project_id, partnership_id, 'cordis' AS link_kind, cordis_id AS link_value
  FROM {STG_PROJECTS.qualified} WHERE cordis_id IS NOT NULL
  UNION ALL
  SELECT project_id, partnership_id, 'kohesio', kohesio_id
  FROM {STG_PROJECTS.qualified} WHERE kohesio_id IS NOT NULL
  UNION ALL
  SELECT project_id, partnership_id, 'ocid', unnest(ocids)
  FROM {STG_PROJECTS.qualified}
) AS links
ORDER BY project_id, link_kind, link_value
"""
