"""Entity resolution, step 1: every organisation mention published by any staged source.

`intermediate.int_org_mentions` collects each organisation reference published by any staged
source (money flows, CORDIS participants, FTS beneficiaries, governance members, accountable
bodies, partnerships, asset owners, and when present OCDS parties, TED buyers/winners and BODS
entities) with its name, country and the secondary identifiers published next to it (VAT
number, PIC, company number, additional identifiers). `int_org_matches` decides the pairs.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import dagster as dg
import duckdb
from dagster_duckdb import DuckDBResource

from assets.common import eu_vat, unicode_names
from assets.common.fingerprint import skip_unchanged
from assets.common.macros import install_macro_script
from assets.common.slices import Slice, refresh_slices
from assets.common.tables import (
    Column,
    TableSpec,
    materialize_result,
    row_count,
    sql_literal,
    table_columns,
)
from assets.intermediate.int_money_flows import INT_MONEY_FLOWS
from assets.staging import (
    stg_360giving_grants,
    stg_bods,
    stg_cordis,
    stg_eu_fts_commitments,
    stg_governance,
    stg_kohesio,
    stg_ocds,
    stg_private_funding,
    stg_ted_awards,
)

INT_ORG_MENTIONS = TableSpec(
    schema="intermediate",
    name="int_org_mentions",
    grain="one distinct way an organisation reference is published: reference x name x "
    "country x secondary identifiers x role x source table",
    description="Every organisation reference published by any staged source, with the name, "
    "country and secondary identifiers (VAT, PIC, company number...) published next to it and "
    "the files it comes from: the input of entity resolution.",
    columns=(
        Column("org_ref", "VARCHAR", "Organisation reference as used in staging/intermediate tables.", False),
        Column("name", "VARCHAR", "Name published with it (spaces tidied)."),
        Column("name_key", "VARCHAR", "Normalised name used for matching (ft_match_key: no case, punctuation, accents, HTML entities or legal forms)."),
        Column("country", "VARCHAR", "ISO 3166-1 alpha-2 country published with it."),
        Column("kind", "VARCHAR", "organisation | person | individual | redacted | partnership (a non-company partnership).", False),
        Column("identifiers", "VARCHAR[]", "Secondary identifiers published with it, normalised: org-ids (GB-COH-..., XI-PIC-...), VAT:<vat>, REG:<country>:<registration no.>.", False),
        Column("role", "VARCHAR", "Role in the source: funder, recipient, controller, participant, beneficiary, member, accountable_body, partnership, asset_owner, party, buyer, supplier, entity.", False),
        Column("source_system", "VARCHAR", "Source system.", False),
        Column("source_table", "VARCHAR", "Staging or intermediate table it was read from.", False),
        Column("source_files", "VARCHAR[]", "Files (relative to FUNDTRACE_RAW_DIR) it was published in.", False),
        Column("records", "BIGINT", "Number of source records behind this row.", False),
    ),
    order_by=("org_ref", "source_table", "role", "name", "country", "kind", "identifiers"),
)  # fmt: skip

MACROS = r"""
CREATE OR REPLACE TEMP MACRO ft_match_unescape(x) AS regexp_replace(
  replace(replace(replace(replace(replace(replace(CAST(x AS VARCHAR),
    '&amp;', '&'), '&quot;', '"'), '&#39;', ''''), '&apos;', ''''), '&lt;', '<'), '&gt;', '>'),
  '&#?[A-Za-z0-9]+;', ' ', 'g');
-- the name key used for matching: ft_name_key without accents, HTML entities and possessive
-- apostrophes (People's = Peoples); names in other scripts fall back to the Unicode-aware key
CREATE OR REPLACE TEMP MACRO ft_match_key(x) AS coalesce(
  ft_name_key(strip_accents(
    regexp_replace(ft_match_unescape(x), '([A-Za-z])[''\x{2019}`]([Ss])\b', '\1\2', 'g'))),
  ft_name_key_unicode(ft_match_unescape(x)));
CREATE OR REPLACE TEMP MACRO ft_ref_rank(r) AS CASE
  WHEN starts_with(r, 'FT-REDACTED-') THEN 9
  WHEN starts_with(r, 'FTNAME-') THEN 4
  WHEN starts_with(r, 'XI-PIC-') THEN 1
  WHEN starts_with(r, '360G-') THEN 2
  WHEN regexp_full_match(r, '[A-Z]{2}-[A-Z0-9]+-\S+') THEN 0
  ELSE 3 END;
-- scheme of an identifier-bearing reference (two different ids of one scheme are two
-- organisations); name-based and redacted references have none
CREATE OR REPLACE TEMP MACRO ft_ref_scheme(r) AS CASE
  WHEN starts_with(r, 'FTNAME-') OR starts_with(r, 'FT-REDACTED-') THEN NULL
  WHEN starts_with(r, 'PARTNERSHIP:') THEN 'PARTNERSHIP'
  ELSE nullif(regexp_extract(r, '^([A-Z0-9]+-[A-Z0-9]+)-', 1), '') END;
-- an override names a reference as the analyst copied it: org-ids are normalised
CREATE OR REPLACE TEMP MACRO ft_override_ref(x) AS CASE
  WHEN nullif(trim(CAST(x AS VARCHAR)), '') IS NULL THEN NULL
  WHEN regexp_matches(upper(trim(x)), '^(FTNAME-|FT-REDACTED-|PARTNERSHIP:)') THEN upper(trim(x))
  ELSE coalesce(ft_org_id(x), upper(trim(x))) END;
"""


def install_macros(con: duckdb.DuckDBPyConnection) -> None:
    """Shared macros, VAT/country macros and the matching macros above."""
    unicode_names.install_macros(con)
    eu_vat.install_macros(con)
    install_macro_script(con, __name__, MACROS)


# --------------------------------------------------------------------------- mentions

_NO_IDS = "CAST([] AS VARCHAR[])"


def _ids(*exprs: str) -> str:
    """A list of normalised secondary identifiers, NULLs (placeholders) left out."""
    items = ", ".join(f"CAST({e} AS VARCHAR)" for e in exprs)
    return f"list_filter([{items}], lambda x: x IS NOT NULL)"


def _vat(expr: str) -> str:
    # re-normalised: an empty or placeholder VAT number (already NULL in staging) never links
    return f"'VAT:' || {expr}"


@dataclass(frozen=True)
class MentionSource:
    """One staged table that publishes organisations, read only when it exists with `columns`.

    `sql` selects org_ref, name, country, kind, identifiers, branch (the role and source
    table: `_tail`), source_system, source_file.
    """

    table: str
    columns: tuple[str, ...]
    sql: str


# (role, source table) of each SELECT in MENTION_SOURCES; the SELECTs carry its position
# instead, and the two names join back once per output row (grouping millions of records on
# two long text keys was ~10% of this table's build at scale 1)
_BRANCHES: list[tuple[str, str]] = []


def _tail(role: str, table: str, from_sql: str | None = None) -> str:
    if (role, table) not in _BRANCHES:
        _BRANCHES.append((role, table))
    return (
        f"{_BRANCHES.index((role, table))}::USMALLINT AS branch, source_system, source_file "
        f"FROM {from_sql or table}"
    )


_FLOWS = INT_MONEY_FLOWS.qualified
_G = stg_360giving_grants.STG_GRANTS.qualified
_CORDIS = stg_cordis.STG_PARTICIPATIONS.qualified
_FTS = stg_eu_fts_commitments.STG_COMMITMENTS.qualified
_KOH = stg_kohesio.STG_KOHESIO.qualified
_PRV = stg_private_funding.STG_PRIVATE.qualified
_MEM = stg_governance.STG_MEMBERS.qualified
_PART = stg_governance.STG_PARTNERSHIPS.qualified
_AST = stg_governance.STG_ASSETS.qualified
_OCDS_PARTIES = stg_ocds.STG_PARTIES.qualified
_TED_NOTICES = stg_ted_awards.STG_TED_NOTICES.qualified
_TED_AWARDS = stg_ted_awards.STG_TED_AWARDS.qualified
_PIC = "ft_org_id('XI-PIC-' || organisation_pic)"
# FTS registration numbers link the lines of one beneficiary across years
_FTS_REG = (
    "CASE WHEN NOT ft_is_placeholder_id(regexp_replace(upper(coalesce(registration_number, '')),"
    " '[^A-Z0-9]', '', 'g')) THEN 'REG:' || coalesce(beneficiary_country_code, '?') || ':' || "
    "regexp_replace(upper(registration_number), '[^A-Z0-9]', '', 'g') END"
)
_OCDS_ID = (
    "CASE WHEN identifier_scheme IS NOT NULL AND identifier_id IS NOT NULL THEN ft_org_id("
    "CASE WHEN starts_with(upper(identifier_id), upper(identifier_scheme) || '-') "
    "THEN identifier_id ELSE identifier_scheme || '-' || identifier_id END) END"
)

_BODS = stg_bods.STG_ENTITIES.qualified
_BODS_IDS = (
    "(SELECT *, unnest(CASE WHEN len(identifiers) > 0 THEN identifiers ELSE [NULL] END) "
    f"AS bods_id FROM {_BODS}) AS e"
)
_OCDS_ADDITIONAL = (
    f"(SELECT *, unnest(additionalidentifiers) AS additional_id FROM {_OCDS_PARTIES}) AS p"
)

MENTION_SOURCES: tuple[MentionSource, ...] = (
    MentionSource(
        _FLOWS,
        ("from_org_ref", "to_org_ref", "to_kind", "controller_org_ref"),
        f"""
        SELECT from_org_ref AS org_ref, from_name AS name, NULL AS country,
          'organisation' AS kind, {_NO_IDS} AS identifiers, {_tail("funder", _FLOWS)}
        UNION ALL
        SELECT to_org_ref, to_name, NULL, to_kind, {_NO_IDS}, {_tail("recipient", _FLOWS)}
        UNION ALL
        SELECT controller_org_ref, controller_name, NULL, 'organisation', {_NO_IDS},
          {_tail("controller", _FLOWS)}
        """,
    ),
    MentionSource(
        _G,
        ("recipient_org_ref", "recipient_published_id", "recipient_kind"),
        f"""
        SELECT recipient_org_ref, recipient_name, NULL, recipient_kind,
          {_ids("ft_org_id(recipient_published_id)")}, {_tail("recipient", _G)}
        """,
    ),
    MentionSource(
        _CORDIS,
        ("recipient_org_ref", "vat_number", "organisation_pic", "country_iso"),
        f"""
        SELECT recipient_org_ref, recipient_name, country_iso, 'organisation',
          {_ids(_vat("ft_vat_number(vat_number, country_iso)"), _PIC)},
          {_tail("participant", _CORDIS)}
        """,
    ),
    MentionSource(
        _FTS,
        ("recipient_org_ref", "vat_number", "registration_number", "beneficiary_country_code"),
        f"""
        SELECT recipient_org_ref, recipient_name, beneficiary_country_code, recipient_kind,
          {_ids(_vat("ft_vat_number(vat_number, beneficiary_country_code)"), _FTS_REG)},
          {_tail("beneficiary", _FTS)}
        """,
    ),
    MentionSource(
        _KOH,
        ("recipient_org_ref", "beneficiary_name", "country", "cofinancing_funder_ref"),
        # the national co-financing pseudo-funder belongs to the beneficiary's country
        f"""
        SELECT recipient_org_ref, beneficiary_name, ft_country_code(country), 'organisation',
          {_NO_IDS}, {_tail("beneficiary", _KOH)}
        UNION ALL
        SELECT cofinancing_funder_ref, cofinancing_funder_name,
          CASE WHEN cofinancing_funder_ref <> coalesce(managing_authority_ref, '')
               THEN ft_country_code(country) END,
          'organisation', {_NO_IDS}, {_tail("funder", _KOH)}
        """,
    ),
    MentionSource(
        _PRV,
        ("funder_org_ref", "funder_published_id", "recipient_org_ref", "recipient_published_id"),
        f"""
        SELECT funder_org_ref, funder_name, NULL, 'organisation',
          {_ids("ft_org_id(funder_published_id)")}, {_tail("funder", _PRV)}
        UNION ALL
        SELECT recipient_org_ref, recipient_name, NULL, 'organisation',
          {_ids("ft_org_id(recipient_published_id)")}, {_tail("recipient", _PRV)}
        """,
    ),
    MentionSource(
        _MEM,
        ("member_ref", "member_name", "member_type"),
        f"""
        SELECT member_ref, member_name, NULL,
          CASE WHEN member_type = 'person' THEN 'person' ELSE 'organisation' END,
          {_NO_IDS}, {_tail("member", _MEM)}
        """,
    ),
    MentionSource(
        _PART,
        ("partnership_id", "name", "legal_form", "accountable_to_ref", "accountable_to_name"),
        # a partnership company is an organisation; an MoU, consortium or programme is not
        f"""
        SELECT accountable_to_ref, accountable_to_name, NULL, 'organisation', {_NO_IDS},
          {_tail("accountable_body", _PART)}
        UNION ALL
        SELECT 'PARTNERSHIP:' || partnership_id, name, country,
          CASE WHEN legal_form = 'company' THEN 'organisation' ELSE 'partnership' END,
          {_NO_IDS}, {_tail("partnership", _PART)}
        """,
    ),
    MentionSource(
        _AST,
        ("owner_ref", "owner_name"),
        f"""
        SELECT owner_ref, owner_name, NULL, 'organisation', {_NO_IDS},
          {_tail("asset_owner", _AST)}
        """,
    ),
    # procurement and ownership sources
    MentionSource(
        _OCDS_PARTIES,
        (
            "party_org_ref",
            "party_name",
            "address_country",
            "identifier_scheme",
            "identifier_id",
            "additionalidentifiers",
            "source_system",
            "source_file",
        ),
        f"""
        SELECT party_org_ref, party_name, address_country, 'organisation', {_ids(_OCDS_ID)},
          {_tail("party", _OCDS_PARTIES)}
        UNION ALL
        SELECT party_org_ref, party_name, address_country, 'organisation',
          {_ids("ft_org_id(additional_id)")},
          {_tail("party", _OCDS_PARTIES, _OCDS_ADDITIONAL)}
        """,
    ),
    MentionSource(
        _TED_NOTICES,
        ("buyer_org_ref", "buyer_name", "buyer_country", "source_system", "source_file"),
        f"""
        SELECT buyer_org_ref, buyer_name, buyer_country, 'organisation', {_NO_IDS},
          {_tail("buyer", _TED_NOTICES)}
        """,
    ),
    MentionSource(
        _TED_AWARDS,
        ("supplier_org_ref", "supplier_name", "supplier_country", "source_system", "source_file"),
        f"""
        SELECT supplier_org_ref, supplier_name, supplier_country, 'organisation', {_NO_IDS},
          {_tail("supplier", _TED_AWARDS)}
        """,
    ),
    MentionSource(
        _BODS,
        ("org_ref", "entity_name", "jurisdiction_code", "identifiers"),
        # every org-id a BODS entity publishes (one row each, so each is normalised)
        f"""
        SELECT org_ref, entity_name, jurisdiction_code, 'organisation',
          {_ids("ft_org_id(bods_id)")}, {_tail("entity", _BODS, _BODS_IDS)}
        """,
    ),
)


def mention_sources(
    con: duckdb.DuckDBPyConnection,
) -> tuple[list[MentionSource], list[str]]:
    """The sources present with the columns they need, and the tables skipped (with why)."""
    used: list[MentionSource] = []
    skipped: list[str] = []
    for src in MENTION_SOURCES:
        cols = table_columns(con, src.table) or []
        missing = [c for c in src.columns if c not in cols]
        if not cols:
            skipped.append(f"{src.table} (not built)")
        elif missing:
            skipped.append(f"{src.table} (lacks {', '.join(missing)})")
        else:
            used.append(src)
    return used, skipped


_EMPTY_PART = (
    "SELECT NULL::VARCHAR AS org_ref, NULL::VARCHAR AS name, NULL::VARCHAR AS country, "
    "'organisation' AS kind, CAST([] AS VARCHAR[]) AS identifiers, 0::USMALLINT AS branch, "
    "'' AS source_system, '' AS source_file WHERE false"
)


def mentions_sql(parts: Sequence[str]) -> str:
    """The mention rows of `parts` (SELECTs of MENTION_SOURCES), grouped and name-keyed.

    Grouping keeps source_table and source_system, so the rows of one slice never depend on
    another slice: that is what lets a build redo only the slices whose input changed.
    """
    union = " UNION ALL ".join(f"({p})" for p in (_EMPTY_PART, *parts))
    branches = "VALUES " + ", ".join(
        f"({i}::USMALLINT, {sql_literal(role)}, {sql_literal(table)})"
        for i, (role, table) in enumerate(_BRANCHES)
    )
    return f"""
    WITH per_file AS (
      SELECT org_ref, name, country, kind, identifiers, branch, source_system, source_file,
        count(*) AS n
      FROM ({union}) AS u
      WHERE nullif(trim(org_ref), '') IS NOT NULL
      GROUP BY ALL
    ),
    -- the name and country functions run once per distinct spelling (session 7 measured
    -- them per record: slower); files are grouped first, so no list(DISTINCT) runs over
    -- every record; one grouping on the cleaned values, not a second one on the published
    -- spelling first (932k groups each at scale 1: 3.8 -> 3.2 s, the same rows)
    names AS (SELECT name, ft_clean_name(name) AS clean FROM (SELECT DISTINCT name FROM per_file)),
    countries AS (
      SELECT country, ft_country_code(country) AS clean
      FROM (SELECT DISTINCT country FROM per_file)
    ),
    m AS (
      SELECT trim(p.org_ref) AS org_ref, nm.clean AS name, ct.clean AS country,
        coalesce(p.kind, 'organisation') AS kind,
        list_sort(list_distinct(list_filter(p.identifiers, lambda x: x <> trim(p.org_ref)))) AS identifiers,
        p.branch, p.source_system,
        list_sort(list_distinct(list(p.source_file))) AS source_files,
        sum(p.n)::BIGINT AS records
      FROM per_file p
      LEFT JOIN names nm ON nm.name IS NOT DISTINCT FROM p.name
      LEFT JOIN countries ct ON ct.country IS NOT DISTINCT FROM p.country
      GROUP BY ALL
    ),
    -- each distinct name normalised once
    keys AS (SELECT name, ft_match_key(name) AS name_key FROM (SELECT DISTINCT name FROM m))
    SELECT m.org_ref, m.name, m.country, m.kind, m.identifiers, b.role, m.source_system,
      b.source_table, m.source_files, m.records, k.name_key
    FROM m LEFT JOIN keys k USING (name) JOIN ({branches}) AS b(branch, role, source_table) USING (branch)
    """


@dataclass
class MentionsBuild:
    rows: int
    used: list[str]
    skipped: list[str]
    rebuilt: list[str]  # "table:system" slices written in this build
    kept: int  # slices whose rows were kept as they were


def mention_slices(
    con: duckdb.DuckDBPyConnection, sources: Sequence[MentionSource]
) -> tuple[list[Slice], dict[str, str]]:
    """One slice per source table x source system present, fingerprinted on those rows; and
    per slice key, the SELECT of its input rows (a part of `mentions_sql`)."""
    slices, parts = [], {}
    for src in sources:
        systems = [
            r[0]
            for r in con.execute(
                f"SELECT DISTINCT source_system FROM {src.table} "
                "WHERE source_system IS NOT NULL ORDER BY 1"
            ).fetchall()
        ]
        for system in systems:
            rows = f"source_system = {sql_literal(system)}"
            key = f"{src.table}:{system}"
            parts[key] = f"SELECT * FROM ({src.sql}) AS p WHERE {rows}"
            slices.append(
                Slice(
                    key=key,
                    where=f"source_table = {sql_literal(src.table)} AND {rows}",
                    sql=mentions_sql([parts[key]]),
                    inputs=(f"{src.table} WHERE {rows}",),
                )
            )
    return slices, parts


def build_int_org_mentions(con: duckdb.DuckDBPyConnection) -> MentionsBuild:
    """Write the mentions of every source present, redoing only the slices that changed.

    A slice is one source table x source system (assets/common/slices.py): grouping keeps
    both, so one slice's rows never depend on another's. A new 360Giving file so re-derives
    the 360Giving slices only, not the 1M+ other flows. Slices of a source no longer present
    are removed.
    """
    install_macros(con)
    sources, skipped = mention_sources(con)
    # all slices at once (a first build, or new code) share one pass: each distinct name is
    # keyed once, not once per slice it appears in
    whole = mentions_sql(
        [f"SELECT * FROM ({src.sql}) AS p WHERE source_system IS NOT NULL" for src in sources]
    )
    slices, parts = mention_slices(con, sources)
    # by organisation: a new file rewrites the mentions of the organisations it names; the
    # slices it changes (its money flows and its source table) computed in one pass, each
    # distinct name keyed once, as grouping keeps the slices' rows apart
    refresh = refresh_slices(
        con,
        INT_ORG_MENTIONS,
        slices,
        whole,
        key="org_ref",
        together=lambda todo: mentions_sql([parts[s.key] for s in todo]),
    )
    return MentionsBuild(
        rows=row_count(con, INT_ORG_MENTIONS),
        used=[src.table for src in sources],
        skipped=skipped,
        rebuilt=refresh.rebuilt,
        kept=len(refresh.kept),
    )


# Staging tables read whenever they exist (a missing one is skipped and named in the
# asset's metadata), so the job builds them first.
MENTION_DEPS: list[dg.AssetKey] = [
    INT_MONEY_FLOWS.asset_key,
    stg_360giving_grants.STG_GRANTS.asset_key,
    stg_cordis.STG_PARTICIPATIONS.asset_key,
    stg_eu_fts_commitments.STG_COMMITMENTS.asset_key,
    stg_kohesio.STG_KOHESIO.asset_key,
    stg_private_funding.STG_PRIVATE.asset_key,
    stg_governance.STG_MEMBERS.asset_key,
    stg_governance.STG_PARTNERSHIPS.asset_key,
    stg_governance.STG_ASSETS.asset_key,
    stg_ted_awards.STG_TED_NOTICES.asset_key,
    stg_ted_awards.STG_TED_AWARDS.asset_key,
    stg_bods.STG_ENTITIES.asset_key,
    stg_ocds.STG_PARTIES.asset_key,
]


@dg.asset(
    key=INT_ORG_MENTIONS.asset_key,
    group_name="intermediate",
    kinds={"duckdb", "sql"},
    description=INT_ORG_MENTIONS.doc,
    deps=MENTION_DEPS,
)
@skip_unchanged
def int_org_mentions(
    context: dg.AssetExecutionContext, duckdb: DuckDBResource
) -> dg.MaterializeResult:
    with duckdb.get_connection() as con:
        built = build_int_org_mentions(con)
        context.log.info(
            f"organisation mentions from {', '.join(built.used)}; skipped {built.skipped}; "
            f"slices rebuilt {built.rebuilt or 'none'}, {built.kept} kept as they were"
        )
        return materialize_result(
            con,
            INT_ORG_MENTIONS,
            {
                "sources_used": built.used,
                "sources_skipped": built.skipped,
                "slices_rebuilt": built.rebuilt,
                "slices_kept": built.kept,
            },
        )
