"""OCDS staging: release history, compiled releases and one table per OCDS object.

Tables (column names follow OCDS field paths, kingfisher-summarize style: path segments joined
by `_`, each lower-cased, e.g. `tender_numberoftenderers`, `award_value_amount`):

- `stg_ocds_release_history` — the versioned history: one row per raw release, typed, with its
  place in the merge. `raw.raw_ocds_releases` reconciles against it per file.
- `stg_ocds_releases` — one compiled release per ocid (merged with ocdsmerge) and its headline
  fields (tags, date, buyer, tender, planning.budget.projectID, budgetBreakdown sourceParty).
- `stg_ocds_parties`, `stg_ocds_tenders`, `stg_ocds_awards`, `stg_ocds_award_suppliers`,
  `stg_ocds_contracts`, `stg_ocds_bids` — read from the compiled releases.

Each table is rebuilt by ocid: only the contracting processes whose raw releases changed are
derived again, the merge included (`ocds_scope.py` says when everything is rebuilt instead).

Merge rules (documented once, here):
- Merge rules come from the OCDS 1.1.5 release schema shipped in `assets/raw/ocds_schema/`
  (ocdsmerge's `get_merge_rules` on that file; nothing is downloaded). OCDS 1.0 releases merge
  with the same rules (1.0 fields absent from 1.1 are merged as plain JSON).
- Order: per ocid, releases are merged oldest first by `date` read as a UTC instant (not as
  text, so `+01:00` and `Z` compare correctly); ties keep file name order, then position in
  the file. Later releases win field by field; arrays of objects merge by `id`.
- Releases without a (parseable) `date` are merged FIRST, i.e. with the lowest precedence: any
  dated release overrides them. They are flagged (`date_missing`) and listed by a warning check.
- The same release `id` with different content (different `content_hash`): both are kept in
  the history, flagged `duplicate_release_id`, and both are merged in date order (the later one
  wins where they disagree); `stg_ocds_releases.duplicate_release_ids` counts them per ocid and a
  warning check lists them. Identical copies (same id, same content, e.g. a release published
  in a release package and again in a record package) are merged once; the others are kept in
  the history as `identical_copy`.
- A record's `compiledRelease` (raw only keeps it when the record embeds no release) is used for
  an ocid only when no release of that ocid is present in any file; otherwise it is kept in the
  history as `superseded_compiled_release` and not merged.
- A release without `ocid` cannot be merged: it is quarantined (`staging.stg_quarantine`).
- The merge runs in $FUNDTRACE_WORKERS processes (chunks of whole ocids, results taken in
  chunk order), or in-process with 1 worker or a single chunk: the output is the same.

Money: award and contract values are converted to EUR with the shared `to_eur_sql` (ECB rate
of the last fixing on or before the date). The date is the award `date`, else the earliest
`dateSigned` of its contracts, else the date of the first release that published the award
(`value_date_basis` says which). Currency codes are upper-cased (`mdl` -> `MDL`). Tender
estimates are typed but not converted (an estimate is not money that moved).
- A value whose currency is empty or not a 3-letter code, or whose amount is unparseable or
  negative, is QUARANTINED (a `staging.stg_quarantine` row naming award, file and release) and
  its amount/currency are NULL in staging, but the award itself is kept: an award is a fact
  about who won, which matters even without a usable value.
- A valid value in a currency the ECB never quoted (MDL, COP, UAH...) or dated before 1999 is
  kept with `amount_eur` NULL and the reason in `value_note`, and a warning check lists it.
  Unlike a funding amount it is not quarantined: the value is correct as published and sums per
  currency remain exact; only the EUR figure is unknown, and it is never guessed.

Organisation references: `identifier.scheme` + `-` + `identifier.id` normalised by the shared
`ft_org_id` (`GB-COH` + `1234567` -> `GB-COH-01234567`); an empty scheme or id (Contracts Finder
publishes `"scheme": ""`) never makes an id; then the first usable `additionalIdentifiers`
entry; else a name-based `FTNAME-` id (`party_org_ref_basis` says which). Names are HTML-unescaped
(`&amp;` -> `&`, doubly escaped text too) and whitespace-normalised.

Contracts (CONTRACTS_SQL, one row per ocid x award x supplier organisation): the buyer is
`buyer` resolved against `parties`, else the party with role `buyer`, else
`tender.procuringEntity`; a process naming none stays in staging (warning check) because the
canonical table requires a buyer. `eu_funded` is true when a `planning.budget.budgetBreakdown`
source party is an EU fund (an EU org-id `XI-`/`XM-`, or an EU fund's name), NULL otherwise
(no breakdown says nothing either way); `eu_programme` then names those source parties and
`planning.budget.description`. Several suppliers of one award each get a row carrying the
award value (not split), as the canonical table documents.
"""

import contextlib
import html
import itertools
import shutil
import tempfile
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import pyarrow as pa
import pyarrow.compute as pc
from dagster_duckdb import DuckDBResource

from assets.common.fingerprint import skip_unchanged
from assets.common.macros import install_macro_script
from assets.common.memory import memory_share
from assets.common.money import AMOUNT_TYPE, RATE_TYPE, to_eur_sql
from assets.common.sql import JsonPaths
from assets.common.tables import (
    Column,
    TableSpec,
    create_table,
    database_cursor,
    materialize_result,
    sql_literal,
)
from assets.common.unicode_names import install_macros as install_shared_macros
from assets.common.worker_processes import worker_context
from assets.raw.ingest import PROVENANCE_COLUMNS
from assets.raw.ocds import RAW_RELEASES, SOURCE_SYSTEM
from assets.raw.reference import ECB_RATES
from assets.staging.ocds_compile import COMPILED_SCHEMA, compile_chunk_file, compile_to_parquet

# the merge itself lives in ocds_compile (light to import in worker processes); re-exported
from assets.staging.ocds_compile import SCHEMA_PATH as SCHEMA_PATH
from assets.staging.ocds_compile import compile_ocid as compile_ocid
from assets.staging.ocds_compile import merge_rules as merge_rules
from assets.staging.ocds_scope import (
    SCOPE_TABLE,
    OcidScope,
    open_scope,
    raw_digests_sql,
    table_digests_sql,
)
from assets.staging.quarantine import STG_QUARANTINE, replace_quarantine
from assets.staging.registry import StagingPair
from pipelines.resources import workers_from_env

SCHEMA_VERSION = "1.1.5"
COMPILE_BATCH_ROWS = 5_000  # releases per chunk of whole ocids sent to a merge worker
READ_BATCH_ROWS = 2_000
COMPILE_BATCH_BYTES = 8 << 20  # of release JSON per chunk
# DuckDB's share of its memory limit while the merge workers run (scale 1, this step with a
# warm cache: process tree 1.65 -> 1.17 GiB for ~1 s more; a full build had reached 2.4 GiB)
WORKER_PHASE_DUCKDB_SHARE = 0.5

MERGE_ROLES = ("merged", "identical_copy", "superseded_compiled_release")

# --------------------------------------------------------------------------- SQL helpers

_MACROS = r"""
CREATE OR REPLACE TEMP MACRO ocds_text(x) AS nullif(trim(CAST(x AS VARCHAR)), '');
-- a release date as a UTC instant; a date-time without zone is taken as UTC
CREATE OR REPLACE TEMP MACRO ocds_ts(x) AS CASE
  WHEN ocds_text(x) IS NULL THEN NULL
  WHEN regexp_matches(ocds_text(x), '(Z|[+-]\d{2}:?\d{2})$')
    THEN make_timestamp(epoch_us(TRY_CAST(ocds_text(x) AS TIMESTAMPTZ)))
  ELSE TRY_CAST(ocds_text(x) AS TIMESTAMP) END;
-- an OCDS array as a list of JSON values; an object where an array belongs is one element
CREATE OR REPLACE TEMP MACRO ocds_list(j) AS CASE json_type(j)
  WHEN 'ARRAY' THEN from_json(j, '["json"]') WHEN 'OBJECT' THEN [j] ELSE CAST([] AS JSON[]) END;
-- merge_sources[kind][id][pos] (pos 0: first merge order, 1: last, 2: index in the last)
CREATE OR REPLACE TEMP MACRO ocds_source(ms, kind, id, pos) AS
  json_extract_string(ms, '$.' || kind || '."' || replace(id, '"', '\"') || '"[' || pos || ']');
-- entities start with '&': the Python UDF (one call per row, under the GIL) only sees those
CREATE OR REPLACE TEMP MACRO ocds_name(x) AS ft_clean_name(CASE WHEN contains(ocds_text(x), '&')
  THEN ocds_unescape(ocds_text(x)) ELSE ocds_text(x) END);
-- scheme + id -> normalised org-id; an empty scheme or id never makes one
CREATE OR REPLACE TEMP MACRO ocds_org_ref(scheme, id) AS CASE
  WHEN ocds_text(scheme) IS NULL OR ocds_text(id) IS NULL THEN NULL
  WHEN starts_with(upper(ocds_text(id)), upper(ocds_text(scheme)) || '-') THEN ft_org_id(id)
  ELSE ft_org_id(ocds_text(scheme) || '-' || ocds_text(id)) END;
CREATE OR REPLACE TEMP MACRO ocds_identifier_text(o) AS CASE
  WHEN ocds_text(json_extract_string(o, '$.identifier.scheme')) IS NOT NULL AND ocds_text(json_extract_string(o, '$.identifier.id')) IS NOT NULL
    THEN ocds_text(json_extract_string(o, '$.identifier.scheme')) || '-' || ocds_text(json_extract_string(o, '$.identifier.id')) END;
-- the first additional identifier with both scheme and id
CREATE OR REPLACE TEMP MACRO ocds_first_additional(o) AS list_filter(
  ocds_list(json_extract(o, '$.additionalIdentifiers')),
  lambda a: ocds_text(json_extract_string(a, '$.scheme')) IS NOT NULL AND ocds_text(json_extract_string(a, '$.id')) IS NOT NULL)[1];
CREATE OR REPLACE TEMP MACRO ocds_additional_ref(o) AS
  ocds_org_ref(json_extract_string(ocds_first_additional(o), '$.scheme'),
               json_extract_string(ocds_first_additional(o), '$.id'));
CREATE OR REPLACE TEMP MACRO ocds_org_name(o) AS
  coalesce(ocds_name(json_extract_string(o, '$.name')), ocds_name(json_extract_string(o, '$.identifier.legalName')));
-- the party an OrganizationReference points to (by local id), else the reference itself
CREATE OR REPLACE TEMP MACRO ocds_resolve(parties, ref) AS CASE
  WHEN ocds_text(json_extract_string(ref, '$.id')) IS NULL THEN ref
  ELSE coalesce(list_filter(parties, lambda p: json_extract_string(p, '$.id') = json_extract_string(ref, '$.id'))[1], ref) END;
CREATE OR REPLACE TEMP MACRO ocds_resolved(parties, ref) AS
  ocds_text(json_extract_string(ref, '$.id')) IS NOT NULL
  AND len(list_filter(parties, lambda p: json_extract_string(p, '$.id') = json_extract_string(ref, '$.id'))) > 0;
-- a budget source party that is an EU fund: EU org-id (XI-, XM-) or an EU fund's name
CREATE OR REPLACE TEMP MACRO ocds_is_eu_fund(id, name) AS
  regexp_matches(upper(coalesce(trim(id), '')), '^X[IM]-')
  OR regexp_matches(lower(coalesce(name, '') || ' ' || coalesce(id, '')),
    '\b(european|erdf|esf\+?|eafrd|emff|feder|fse|interreg|cohesion fund|horizon (2020|europe)|just transition fund|recovery and resilience)\b');
-- ISO alpha-2 country: published as a code, a UK nation name, else the org-id scheme prefix
CREATE OR REPLACE TEMP MACRO ocds_country(country_name, org_ref) AS CASE
  WHEN regexp_full_match(upper(ocds_text(country_name)), '[A-Z]{2}') THEN upper(ocds_text(country_name))
  WHEN lower(ocds_text(country_name)) IN ('united kingdom', 'uk', 'great britain', 'england',
       'scotland', 'wales', 'northern ireland') THEN 'GB'
  WHEN regexp_matches(org_ref, '^[A-Z]{2}-') AND left(org_ref, 2) NOT IN ('XI', 'XM', 'XE', 'XX', 'XR')
    THEN left(org_ref, 2) END;
"""


def _unescape(text: str) -> str:
    """HTML entities decoded; twice-escaped text (`&amp;amp;`) is decoded until stable."""
    for _ in range(3):
        decoded = html.unescape(text)
        if decoded == text:
            break
        text = decoded
    return text


def install_ocds_sql(con: duckdb.DuckDBPyConnection) -> None:
    """Shared macros, the HTML-unescape function and the OCDS macros above."""
    install_shared_macros(con)
    # Python functions live in the database instance, not the connection: while the build
    # database is held open for a run, an earlier step's connection may have registered it
    try:
        # binding a relation names a missing function without aborting a transaction, and
        # costs ~0.3 ms where listing duckdb_functions() cost ~10 ms
        con.sql("SELECT ocds_unescape(NULL::VARCHAR)")
    except duckdb.CatalogException:
        con.create_function("ocds_unescape", _unescape, ["VARCHAR"], "VARCHAR")  # type: ignore[arg-type]
    install_macro_script(con, __name__, _MACROS)


# --------------------------------------------------------------------------- table specs

_PROVENANCE = PROVENANCE_COLUMNS

STG_HISTORY = TableSpec(
    schema="staging",
    name="stg_ocds_release_history",
    grain="one OCDS release as published (one row per raw release that has an ocid)",
    description="The versioned history of every contracting process: each release typed (UTC "
    "date, tag list), with its role in the merge (merged, identical copy, superseded "
    "compiledRelease), its merge order and flags for missing dates and release ids reused with "
    "different content. Releases without ocid are in staging.stg_quarantine.",
    columns=(
        Column("ocid", "VARCHAR", "Open Contracting ID.", False),
        Column("release_id", "VARCHAR", "Release `id`."),
        Column("release_date", "TIMESTAMP", "Release `date` as a UTC instant (NULL when missing or unparseable)."),
        Column("release_date_published", "VARCHAR", "Release `date` as published."),
        Column("release_tag", "VARCHAR[]", "Release `tag` as a list (a string tag becomes a one-element list)."),
        Column("ocds_version", "VARCHAR", "OCDS version of the release or its package (NULL = 1.0)."),
        Column("release_origin", "VARCHAR", "release | record.releases | record.compiledRelease.", False),
        Column("packaging", "VARCHAR", "Container the release came in (see raw.raw_ocds_releases).", False),
        Column("publisher_name", "VARCHAR", "Publisher name of the package or record."),
        Column("content_hash", "VARCHAR", "MD5 of the canonical release JSON (without packageInfo).", False),
        Column("merge_role", "VARCHAR", "merged | identical_copy (same id and content as a merged release) | superseded_compiled_release (a record's compiledRelease where releases exist).", False),
        Column("merge_order", "BIGINT", "1-based position in the ocid's merge (undated first, then by UTC date, file, position); NULL when not merged."),
        Column("date_missing", "BOOLEAN", "True when the release has no parseable `date` (merged first, lowest precedence).", False),
        Column("duplicate_release_id", "BOOLEAN", "True when another release of the same ocid has this `id` with different content.", False),
        Column("note", "VARCHAR", "Why the release is flagged or not merged, in words."),
        *_PROVENANCE,
    ),
    order_by=("ocid", "source_file", "source_row"),
)  # fmt: skip

STG_RELEASES = TableSpec(
    schema="staging",
    name="stg_ocds_releases",
    grain="one contracting process (ocid), compiled from all its releases",
    description="Compiled releases (ocdsmerge, OCDS 1.1.5 merge rules shipped with the project) "
    "with the headline fields of each contracting process: tags seen, dates, buyer, tender, "
    "planning budget project and budget-breakdown source parties. Provenance is the latest "
    "merged release.",
    columns=(
        Column("ocid", "VARCHAR", "Open Contracting ID.", False),
        Column("tag", "VARCHAR[]", "Distinct release tags of the merged releases, in merge order.", False),
        Column("date", "TIMESTAMP", "Date (UTC) of the latest merged release = the compiled release's date."),
        Column("first_release_date", "TIMESTAMP", "Date (UTC) of the earliest dated merged release."),
        Column("release_count", "BIGINT", "Releases merged into the compiled release.", False),
        Column("compiled_from", "VARCHAR", "releases | compiledRelease (a publisher's compiled release used because no release was present).", False),
        Column("duplicate_release_ids", "BIGINT", "Release ids published with different content for this ocid.", False),
        Column("undated_releases", "BIGINT", "Merged releases without a parseable date.", False),
        Column("merge_warnings", "VARCHAR[]", "ocdsmerge warnings (e.g. two objects with the same id in one array)."),
        Column("ocds_version", "VARCHAR", "Highest OCDS version among the merged releases (NULL = 1.0)."),
        Column("initiationtype", "VARCHAR", "`initiationType`."),
        Column("language", "VARCHAR", "`language`."),
        Column("buyer_id", "VARCHAR", "`buyer.id` (local party id)."),
        Column("buyer_name", "VARCHAR", "Buyer name: `buyer.name`, else the buyer party's name (HTML-unescaped)."),
        Column("buyer_org_ref", "VARCHAR", "Organisation reference of the buyer (org-id, else FTNAME-), from `buyer` resolved against `parties`, else the party with role buyer, else `tender.procuringEntity`."),
        Column("buyer_basis", "VARCHAR", "buyer | parties.roles | tender.procuringEntity | NULL (no buyer published)."),
        Column("tender_id", "VARCHAR", "`tender.id`."),
        Column("tender_title", "VARCHAR", "`tender.title` (HTML-unescaped)."),
        Column("tender_status", "VARCHAR", "`tender.status`."),
        Column("planning_budget_projectid", "VARCHAR", "`planning.budget.projectID`: links the process to a governance project."),
        Column("planning_budget_project", "VARCHAR", "`planning.budget.project` (project name)."),
        Column("planning_budget_amount_amount", AMOUNT_TYPE, "`planning.budget.amount.amount`."),
        Column("planning_budget_amount_currency", "VARCHAR", "`planning.budget.amount.currency` (upper-cased)."),
        Column("planning_budget_budgetbreakdown_sourceparty_id", "VARCHAR[]", "`planning.budget.budgetBreakdown[].sourceParty.id` (budget breakdown extension), in order."),
        Column("planning_budget_budgetbreakdown_sourceparty_name", "VARCHAR[]", "`planning.budget.budgetBreakdown[].sourceParty.name`, else the referenced party's name."),
        Column("planning_budget_description", "VARCHAR", "`planning.budget.description`."),
        Column("budget_eu_source_parties", "VARCHAR[]", "Budget-breakdown source parties that are EU funds (EU org-id XI-/XM-, or an EU fund's name: European..., ERDF, ESF, Cohesion Fund, Interreg, Horizon...): the release says EU money pays for the process."),
        Column("compiled_release", "JSON", "The compiled release (ocdsmerge), as JSON.", False),
        Column("merge_sources", "JSON", "Per award and contract id: merge orders of the first and last release carrying it and its index there (provenance of the child tables).", False),
        *_PROVENANCE,
    ),
    order_by=("ocid",),
)  # fmt: skip

STG_PARTIES = TableSpec(
    schema="staging",
    name="stg_ocds_parties",
    grain="one party of one contracting process (ocid x party)",
    description="Organisations of each compiled release: the `parties` array, plus (for OCDS "
    "1.0 and for references that name no party) the organisations written inline as buyer, "
    "procuring entity, tenderers and award suppliers. Identifier scheme + id, additional "
    "identifiers and a normalised organisation reference.",
    columns=(
        Column("ocid", "VARCHAR", "Open Contracting ID.", False),
        Column("party_key", "VARCHAR", "Unique within the ocid: the party `id`, else its organisation reference.", False),
        Column("party_index", "BIGINT", "Position in the compiled `parties` array (NULL for inline organisations)."),
        Column("party_id", "VARCHAR", "`parties[].id` (local id referenced by buyer, suppliers...)."),
        Column("party_name", "VARCHAR", "`name` (else `identifier.legalName`), HTML-unescaped."),
        Column("party_roles", "VARCHAR[]", "`roles` as published; for inline organisations the role of the path they were found at."),
        Column("party_origin", "VARCHAR", "parties | buyer | tender.procuringEntity | tender.tenderers | awards.suppliers.", False),
        Column("identifier_scheme", "VARCHAR", "`identifier.scheme` (empty strings read as NULL)."),
        Column("identifier_id", "VARCHAR", "`identifier.id` (empty strings read as NULL)."),
        Column("identifier_legalname", "VARCHAR", "`identifier.legalName`."),
        Column("additionalidentifiers", "VARCHAR[]", "`additionalIdentifiers` as scheme-id texts."),
        Column("party_org_ref", "VARCHAR", "Normalised organisation reference: scheme-id via ft_org_id, else an additional identifier, else FTNAME- from the name."),
        Column("party_org_ref_basis", "VARCHAR", "identifier | additionalIdentifiers | name | NULL (neither identifier nor name)."),
        Column("address_countryname", "VARCHAR", "`address.countryName` as published."),
        Column("address_country", "VARCHAR", "ISO alpha-2 country: a published code, a UK nation name, else the org-id scheme prefix."),
        *_PROVENANCE,
    ),
    order_by=("ocid", "party_key"),
)  # fmt: skip

STG_TENDERS = TableSpec(
    schema="staging",
    name="stg_ocds_tenders",
    grain="one tender (one per contracting process that publishes `tender`)",
    description="The `tender` object of each compiled release: status, procurement method, "
    "main category, estimated value (not converted), number of tenderers, tender period, "
    "procuring entity and main CPV code.",
    columns=(
        Column("ocid", "VARCHAR", "Open Contracting ID.", False),
        Column("tender_id", "VARCHAR", "`tender.id`."),
        Column("tender_title", "VARCHAR", "`tender.title` (HTML-unescaped)."),
        Column("tender_status", "VARCHAR", "`tender.status`."),
        Column("tender_procurementmethod", "VARCHAR", "`tender.procurementMethod` (open | selective | limited | direct)."),
        Column("tender_procurementmethoddetails", "VARCHAR", "`tender.procurementMethodDetails`."),
        Column("tender_mainprocurementcategory", "VARCHAR", "`tender.mainProcurementCategory`."),
        Column("tender_value_amount", AMOUNT_TYPE, "`tender.value.amount` (an estimate; not converted to EUR)."),
        Column("tender_value_currency", "VARCHAR", "`tender.value.currency`, upper-cased (NULL when not a 3-letter code)."),
        Column("tender_numberoftenderers", "BIGINT", "`tender.numberOfTenderers`."),
        Column("tender_tenderperiod_startdate", "DATE", "`tender.tenderPeriod.startDate` (calendar date)."),
        Column("tender_tenderperiod_enddate", "DATE", "`tender.tenderPeriod.endDate` (calendar date)."),
        Column("tender_procuringentity_id", "VARCHAR", "`tender.procuringEntity.id`."),
        Column("tender_procuringentity_name", "VARCHAR", "`tender.procuringEntity.name` (HTML-unescaped)."),
        Column("tender_items_count", "BIGINT", "Number of `tender.items`.", False),
        Column("tender_main_cpv", "VARCHAR", "First `tender.items[].classification.id` whose scheme is CPV."),
        *_PROVENANCE,
    ),
    order_by=("ocid",),
)  # fmt: skip

STG_AWARDS = TableSpec(
    schema="staging",
    name="stg_ocds_awards",
    grain="one award of one contracting process (ocid x award)",
    description="Awards of the compiled releases with their value as published and in EUR. "
    "Awards are never dropped: a value with an empty/invalid currency or an unparseable or "
    "negative amount is quarantined (NULL here, reason in value_note and staging.stg_quarantine); "
    "a valid value without an ECB rate keeps amount_eur NULL with the reason in value_note.",
    columns=(
        Column("ocid", "VARCHAR", "Open Contracting ID.", False),
        Column("award_id", "VARCHAR", "`awards[].id` (`#<index>` when the award has no id).", False),
        Column("award_index", "BIGINT", "Position in the compiled `awards` array.", False),
        Column("award_title", "VARCHAR", "`awards[].title` (HTML-unescaped)."),
        Column("award_status", "VARCHAR", "`awards[].status`."),
        Column("award_date", "DATE", "`awards[].date` (calendar date; NULL when empty)."),
        Column("award_value_amount", AMOUNT_TYPE, "`awards[].value.amount` (NULL when missing or quarantined)."),
        Column("award_value_currency", "VARCHAR", "`awards[].value.currency`, upper-cased ISO 4217 (NULL when missing or quarantined)."),
        Column("award_value_currency_published", "VARCHAR", "`awards[].value.currency` exactly as published."),
        Column("amount_eur", AMOUNT_TYPE, "award_value_amount in EUR at the ECB rate of fx_date (NULL: no ECB rate, see value_note)."),
        Column("fx_rate", RATE_TYPE, "Units of award_value_currency per EUR."),
        Column("fx_date", "DATE", "ECB fixing day used."),
        Column("value_date", "DATE", "Date the EUR rate applies to (see value_date_basis)."),
        Column("value_date_basis", "VARCHAR", "award date | contract dateSigned | release date: which date value_date is."),
        Column("value_quarantined", "BOOLEAN", "True when the published value is unusable and was quarantined.", False),
        Column("value_note", "VARCHAR", "Why the value or its EUR figure is missing."),
        Column("award_contractperiod_startdate", "DATE", "`awards[].contractPeriod.startDate`."),
        Column("award_contractperiod_enddate", "DATE", "`awards[].contractPeriod.endDate`."),
        Column("contract_datesigned", "DATE", "Earliest `contracts[].dateSigned` of the contracts for this award."),
        Column("suppliers_count", "BIGINT", "Number of `awards[].suppliers` entries.", False),
        Column("source_release_id", "VARCHAR", "Id of the latest release that carried this award (its values won the merge)."),
        *_PROVENANCE,
    ),
    order_by=("ocid", "award_index"),
)  # fmt: skip

STG_AWARD_SUPPLIERS = TableSpec(
    schema="staging",
    name="stg_ocds_award_suppliers",
    grain="one supplier of one award (ocid x award x supplier organisation)",
    description="Award suppliers resolved to their parties (Contracts Finder and OCDS 1.1 "
    "reference parties by local id), with a normalised organisation reference. Identifiers are "
    "present or explicitly missing (identifier_status).",
    columns=(
        Column("ocid", "VARCHAR", "Open Contracting ID.", False),
        Column("award_id", "VARCHAR", "Award id (as in stg_ocds_awards).", False),
        Column("supplier_index", "BIGINT", "Position in `awards[].suppliers`.", False),
        Column("supplier_id", "VARCHAR", "`awards[].suppliers[].id` (local party id) as published."),
        Column("supplier_name", "VARCHAR", "Supplier name (reference, else party name), HTML-unescaped."),
        Column("party_resolved", "BOOLEAN", "True when the supplier's id names an entry of `parties`.", False),
        Column("supplier_identifier", "VARCHAR", "Identifier as published: scheme-id of the party (NULL when missing)."),
        Column("supplier_org_ref", "VARCHAR", "Normalised organisation reference (org-id, else FTNAME- from the name).", False),
        Column("supplier_org_ref_basis", "VARCHAR", "identifier | additionalIdentifiers | name.", False),
        Column("identifier_status", "VARCHAR", "identified (an org-id) | missing (no usable identifier published: name-based reference).", False),
        Column("supplier_country", "VARCHAR", "ISO alpha-2 country where published or implied by the org-id scheme."),
        *_PROVENANCE,
    ),
    order_by=("ocid", "award_id", "supplier_index"),
)  # fmt: skip

STG_CONTRACTS = TableSpec(
    schema="staging",
    name="stg_ocds_contracts",
    grain="one contract of one contracting process (ocid x contract)",
    description="Contracts of the compiled releases: award link, status, period, signature "
    "date and value as published and in EUR (ECB rate of dateSigned, else period start, else "
    "the release date); values without a usable currency keep amount_eur NULL with a note.",
    columns=(
        Column("ocid", "VARCHAR", "Open Contracting ID.", False),
        Column("contract_id", "VARCHAR", "`contracts[].id` (`#<index>` when missing).", False),
        Column("contract_index", "BIGINT", "Position in the compiled `contracts` array.", False),
        Column("contract_awardid", "VARCHAR", "`contracts[].awardID`."),
        Column("contract_title", "VARCHAR", "`contracts[].title` (HTML-unescaped)."),
        Column("contract_status", "VARCHAR", "`contracts[].status`."),
        Column("contract_period_startdate", "DATE", "`contracts[].period.startDate`."),
        Column("contract_period_enddate", "DATE", "`contracts[].period.endDate`."),
        Column("contract_datesigned", "DATE", "`contracts[].dateSigned`."),
        Column("contract_value_amount", AMOUNT_TYPE, "`contracts[].value.amount`."),
        Column("contract_value_currency", "VARCHAR", "`contracts[].value.currency`, upper-cased ISO 4217."),
        Column("amount_eur", AMOUNT_TYPE, "contract_value_amount in EUR (NULL: see value_note)."),
        Column("fx_rate", RATE_TYPE, "Units of currency per EUR."),
        Column("fx_date", "DATE", "ECB fixing day used."),
        Column("value_note", "VARCHAR", "Why the value or its EUR figure is missing."),
        *_PROVENANCE,
    ),
    order_by=("ocid", "contract_index"),
)  # fmt: skip

STG_BIDS = TableSpec(
    schema="staging",
    name="stg_ocds_bids",
    grain="one contracting process that publishes how many tenders it received",
    description="Number of tenders per process from, first match wins: "
    "`tender.numberOfTenderers`, the bids extension's `bids.statistics` (measure `bids`, else "
    "`validBids`, process level), the number of `bids.details`, the number of distinct "
    "`tender.tenderers`.",
    columns=(
        Column("ocid", "VARCHAR", "Open Contracting ID.", False),
        Column("tender_numberoftenderers", "BIGINT", "`tender.numberOfTenderers`."),
        Column("bids_statistics_bids", "BIGINT", "`bids.statistics[]` value of measure `bids` (no relatedLot)."),
        Column("bids_statistics_validbids", "BIGINT", "`bids.statistics[]` value of measure `validBids` (no relatedLot)."),
        Column("bids_details_count", "BIGINT", "Number of `bids.details`."),
        Column("tender_tenderers_count", "BIGINT", "Number of distinct `tender.tenderers`."),
        Column("number_of_tenders", "BIGINT", "Tenders received, from the first published source above.", False),
        Column("number_of_tenders_basis", "VARCHAR", "Which field number_of_tenders comes from.", False),
        *_PROVENANCE,
    ),
    order_by=("ocid",),
)  # fmt: skip


def _prov(alias: str) -> str:
    return ", ".join(f"{alias}.{c.name}" for c in _PROVENANCE)


def with_org_refs(
    con: duckdb.DuckDBPyConnection, table: str, source_sql: str, objects: dict[str, str]
) -> None:
    """TEMP `table` = the rows of `source_sql` plus, for each prefix p -> JSON organisation
    expression: p_name, p_identifier (scheme-id as published), p_org_ref, p_org_ref_basis
    (identifier | additionalIdentifiers | name), p_country_name.

    Built in steps through temporary tables: the identifier macros run once per distinct
    identifier and name, not once per row.
    """
    fields = ", ".join(
        f"""ocds_org_name({e}) AS {p}_name,
        ocds_text(json_extract_string({e}, '$.identifier.scheme')) AS _{p}_scheme,
        ocds_text(json_extract_string({e}, '$.identifier.id')) AS _{p}_idf,
        json_extract_string(ocds_first_additional({e}), '$.scheme') AS _{p}_add_scheme,
        json_extract_string(ocds_first_additional({e}), '$.id') AS _{p}_add_id,
        ocds_text(json_extract_string({e}, '$.address.countryName')) AS {p}_country_name"""
        for p, e in objects.items()
    )
    con.execute(f"CREATE OR REPLACE TEMP TABLE {table}_1 AS SELECT *, {fields} FROM ({source_sql})")
    # The identifier and name macros run once per distinct (scheme, id) and name, in small
    # lookup tables joined back: the same organisations recur across processes.
    # A NULL scheme, id or name gives no reference either way, so NULLs stay out of the lookups.
    pairs = " UNION ".join(
        f"SELECT _{p}_scheme, _{p}_idf FROM {table}_1 "
        f"UNION SELECT _{p}_add_scheme, _{p}_add_id FROM {table}_1"
        for p in objects
    )
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE {table}_ids AS
        SELECT scheme, id, ocds_org_ref(scheme, id) AS ref
        FROM (SELECT DISTINCT * FROM ({pairs}) AS t(scheme, id))
        WHERE scheme IS NOT NULL AND id IS NOT NULL"""
    )
    names = " UNION ".join(f"SELECT {p}_name FROM {table}_1" for p in objects)
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE {table}_names AS
        SELECT name, ft_name_org_id_any(name) AS ref
        FROM (SELECT DISTINCT * FROM ({names}) AS t(name)) WHERE name IS NOT NULL"""
    )
    refs = ", ".join(
        f"""_{p}_id.ref AS _{p}_ref_id, _{p}_add.ref AS _{p}_ref_add, _{p}_nm.ref AS _{p}_ref_name,
        CASE WHEN _{p}_scheme IS NOT NULL AND _{p}_idf IS NOT NULL
             THEN _{p}_scheme || '-' || _{p}_idf END AS {p}_identifier"""
        for p in objects
    )
    joins = " ".join(
        f"""LEFT JOIN {table}_ids _{p}_id ON _{p}_id.scheme = t._{p}_scheme AND _{p}_id.id = t._{p}_idf
        LEFT JOIN {table}_ids _{p}_add
          ON _{p}_add.scheme = t._{p}_add_scheme AND _{p}_add.id = t._{p}_add_id
        LEFT JOIN {table}_names _{p}_nm ON _{p}_nm.name = t.{p}_name"""
        for p in objects
    )
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {table}_2 AS SELECT t.*, {refs} FROM {table}_1 t {joins}"
    )
    final = ", ".join(
        f"""coalesce(_{p}_ref_id, _{p}_ref_add, _{p}_ref_name) AS {p}_org_ref,
        CASE WHEN _{p}_ref_id IS NOT NULL THEN 'identifier'
             WHEN _{p}_ref_add IS NOT NULL THEN 'additionalIdentifiers'
             WHEN _{p}_ref_name IS NOT NULL THEN 'name' END AS {p}_org_ref_basis"""
        for p in objects
    )
    con.execute(f"CREATE OR REPLACE TEMP TABLE {table} AS SELECT *, {final} FROM {table}_2")
    con.execute(
        f"DROP TABLE {table}_1; DROP TABLE {table}_2; DROP TABLE {table}_ids; "
        f"DROP TABLE {table}_names"
    )


# --------------------------------------------------------------------------- history


def build_stg_ocds_release_history(
    con: duckdb.DuckDBPyConnection, log: Callable[[str], None] | None = None
) -> tuple[int, int]:
    """Rebuild the release history (the ocids whose raw releases changed, or all: see
    ocds_scope) and its quarantine rows. Returns (staged, quarantined)."""
    install_ocds_sql(con)
    create_table(con, RAW_RELEASES, replace=False)
    scope = open_scope(con, STG_HISTORY, raw_digests_sql(RAW_RELEASES.qualified), log=log)
    # releases without an ocid are always all read: their quarantine rows are replaced whole
    raw = (
        RAW_RELEASES.qualified
        if scope.full
        else f"""(SELECT * FROM {RAW_RELEASES.qualified}
                  WHERE ocds_text(ocid) IS NULL OR ocds_text(ocid) IN (SELECT ocid FROM {SCOPE_TABLE}))"""
    )
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE _ocds_hist AS
        SELECT r.* EXCLUDE (release_json), ocds_text(r.ocid) AS _ocid,
          ocds_ts(r.release_date) AS _ts,
          CASE WHEN ocds_text(r.ocid) IS NULL
            THEN 'missing ocid: release ' || coalesce(r.release_id, '(no id)')
                 || ' cannot be merged into a contracting process' END AS _reason
        FROM {raw} r"""
    )
    con.execute(
        """CREATE OR REPLACE TEMP TABLE _ocds_hist_ranked AS
        -- the window sorts only the columns it reads; the wide row joins back once
        -- (source_file + source_row is unique in raw)
        -- per-group facts as grouped aggregates joined back, not windows: each window sorted
        -- the 500k releases again (the three: 1.4 of 2.0 CPU s of this query at scale 1)
        WITH h AS (
          SELECT source_file, source_row, _ocid, release_id, release_date, release_origin, _ts,
            content_hash, coalesce(release_id, '#' || content_hash) AS _id_key
          FROM _ocds_hist WHERE _reason IS NULL
        ), firsts AS (  -- the first copy of each release: lowest file, then row
          SELECT _ocid, _id_key, content_hash, min((source_file, source_row)) AS _first
          FROM h GROUP BY ALL
        ), versions AS (
          SELECT _ocid, release_id, count(DISTINCT content_hash) AS _versions FROM h GROUP BY ALL
        ), origins AS (
          SELECT _ocid, bool_or(release_origin <> 'record.compiledRelease') AS _has_releases
          FROM h GROUP BY ALL
        ), g AS (
          SELECT h.* EXCLUDE (_id_key, content_hash),
            (h.source_file, h.source_row) <> f._first AS _later_copy, v._versions, o._has_releases
          FROM h
          JOIN firsts f ON f._ocid = h._ocid AND f._id_key IS NOT DISTINCT FROM h._id_key
            AND f.content_hash IS NOT DISTINCT FROM h.content_hash
          JOIN versions v ON v._ocid = h._ocid AND v.release_id IS NOT DISTINCT FROM h.release_id
          JOIN origins o ON o._ocid = h._ocid
        ), roles AS (
          SELECT g.*, CASE
              WHEN release_origin = 'record.compiledRelease' AND _has_releases
                THEN 'superseded_compiled_release'
              WHEN _later_copy THEN 'identical_copy'
              ELSE 'merged' END AS _role
          FROM g
        ), ranked AS (
          SELECT source_file AS _key_file, source_row AS _key_row, _versions, _has_releases, _role,
            CASE WHEN _role = 'merged' THEN row_number() OVER (
              PARTITION BY _ocid, _role = 'merged'
              ORDER BY _ts IS NOT NULL, _ts, release_date, source_file, source_row) END AS _order
          FROM roles
        )
        SELECT h.*, k.* EXCLUDE (_key_file, _key_row)
        FROM _ocds_hist h JOIN ranked k ON k._key_file = h.source_file AND k._key_row = h.source_row"""
    )
    quarantined = replace_quarantine(
        con,
        SOURCE_SYSTEM,
        STG_HISTORY.name,
        """SELECT source_file, file_sha256, source_row, source_locator, release_id AS record_id,
             _reason AS reason FROM _ocds_hist WHERE _reason IS NOT NULL""",
    )
    staged = scope.write(
        con,
        """SELECT _ocid AS ocid, release_id, _ts AS release_date,
          release_date AS release_date_published,
          CASE WHEN release_tag IS NULL THEN CAST([] AS VARCHAR[])
               ELSE from_json(release_tag, '["varchar"]') END AS release_tag,
          ocds_version, release_origin, packaging, publisher_name, content_hash,
          _role AS merge_role, _order AS merge_order,
          _ts IS NULL AS date_missing,
          release_id IS NOT NULL AND _versions > 1 AS duplicate_release_id,
          nullif(concat_ws('; ',
            CASE WHEN _ts IS NULL AND release_date IS NULL
                 THEN 'no date: merged first (lowest precedence)'
                 WHEN _ts IS NULL THEN 'unparseable date ' || release_date
                                       || ': merged first (lowest precedence)' END,
            CASE WHEN release_id IS NOT NULL AND _versions > 1
                 THEN 'release id ' || release_id || ' published with ' || _versions
                      || ' different contents: all merged in date order' END,
            CASE _role WHEN 'identical_copy' THEN 'identical copy of a merged release: not merged again'
                       WHEN 'superseded_compiled_release'
                         THEN 'compiledRelease not used: releases of this ocid are merged instead' END
          ), '') AS note,
          source_system, source_file, source_row, source_locator, file_sha256, loaded_at
        FROM _ocds_hist_ranked""",
    )
    con.execute("DROP TABLE _ocds_hist; DROP TABLE _ocds_hist_ranked")
    return staged, quarantined


# --------------------------------------------------------------------------- compile


def _iter_chunks(
    con: duckdb.DuckDBPyConnection, ocids: list[str] | None = None
) -> Iterator[pa.Table]:
    """The merged releases of each ocid (of `ocids`; None: all) as rows (ocid, merge_order,
    release_json, from_compiled) in ocid and merge order, streamed from DuckDB in chunks of
    whole ocids (~COMPILE_BATCH_ROWS releases or COMPILE_BATCH_BYTES of JSON each).

    Arrow all the way: the build process only cuts batches at ocid boundaries, so its Python
    does not compete with the merge workers for the two cores (grouping rows into Python
    tuples here cost ~3 s of a 13 s merge at scale 1)."""
    cur = database_cursor(con)
    try:
        only = "" if ocids is None else "AND h.ocid IN (SELECT unnest($ocids::VARCHAR[]))"
        reader = cur.sql(
            f"""SELECT h.ocid, h.merge_order, r.release_json,
                   h.release_origin = 'record.compiledRelease' AS from_compiled
            FROM {STG_HISTORY.qualified} h
            JOIN {RAW_RELEASES.qualified} r
              ON r.source_file = h.source_file AND r.source_row = h.source_row
            WHERE h.merge_role = 'merged' {only}
            ORDER BY h.ocid, h.merge_order""",
            params=None if ocids is None else {"ocids": ocids},
        ).to_arrow_reader(READ_BATCH_ROWS)
        whole: list[pa.RecordBatch] = []  # rows of complete ocids
        last: list[pa.RecordBatch] = []  # rows of the last ocid read, which may go on
        rows = size = 0
        for batch in reader:
            if not batch.num_rows:
                continue
            ids = batch.column("ocid")
            cut = pc.index(ids, ids[-1]).as_py()  # where the batch's last ocid starts
            if cut:
                whole.extend((*last, batch.slice(0, cut)))
                rows += sum(b.num_rows for b in last) + cut
                size += sum(_json_bytes(b) for b in last) + _json_bytes(batch.slice(0, cut))
                last = []
            last.append(batch.slice(cut))
            if rows >= COMPILE_BATCH_ROWS or size >= COMPILE_BATCH_BYTES:
                yield pa.Table.from_batches(whole)
                whole, rows, size = [], 0, 0
        whole.extend(last)
        if whole:
            yield pa.Table.from_batches(whole)
    finally:
        cur.close()


def _json_bytes(batch: pa.RecordBatch) -> int:
    lengths = pc.binary_length(batch.column("release_json"))  # pyright: ignore[reportAttributeAccessIssue]
    return pc.sum(lengths).as_py() or 0  # pyright: ignore[reportAttributeAccessIssue]


def _compile_chunks(
    con: duckdb.DuckDBPyConnection, chunks: Iterator[pa.Table], workers: int, out_dir: Path
) -> Iterator[tuple[str, list[tuple[str, str]]]]:
    """compile_to_parquet of each chunk (one file per chunk in `out_dir`), in chunk order:
    (file, failures). With workers > 1 and more than one chunk, in that many worker
    processes (assets/common/worker_processes.py: never forked from this process, which
    holds a DuckDB connection), each chunk handed over as an Arrow file beside its output."""
    paths = (str(out_dir / f"{n:06d}.parquet") for n in itertools.count())
    head = list(itertools.islice(chunks, 2 if workers > 1 else 1))
    if len(head) < 2:  # one process: small inputs do not pay for starting workers
        for chunk, path in zip(itertools.chain(head, chunks), paths, strict=False):
            yield path, compile_to_parquet(chunk, path)
        return
    # the workers need memory while DuckDB here only streams chunks out
    with memory_share(con, WORKER_PHASE_DUCKDB_SHARE):
        yield from _compile_in_pool(head, chunks, workers, paths)


def _compile_in_pool(
    head: list[pa.Table], chunks: Iterator[pa.Table], workers: int, paths: Iterator[str]
) -> Iterator[tuple[str, list[tuple[str, str]]]]:
    pool = ProcessPoolExecutor(workers, mp_context=worker_context())
    try:
        pending: deque[tuple[str, Future[list[tuple[str, str]]]]] = deque()
        for chunk in itertools.chain(head, chunks):
            path = next(paths)
            # sent as a file, not pickled (compile_chunk_file): the merge at scale 1
            # 11.8 -> 11.0 s, this process's CPU 2.2 -> 1.0 s
            sent = str(Path(path).with_suffix(".arrow"))
            with pa.OSFile(sent, "wb") as sink, pa.ipc.new_file(sink, chunk.schema) as writer:
                writer.write_table(chunk)
            pending.append((path, pool.submit(compile_chunk_file, sent, path)))
            if len(pending) >= 2 * workers:  # bounded memory: chunks are sent as taken
                path, done = pending.popleft()
                yield path, done.result()
        while pending:
            path, done = pending.popleft()
            yield path, done.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


@contextlib.contextmanager
def _compiled_view(
    con: duckdb.DuckDBPyConnection, workers: int, ocids: list[str] | None = None
) -> Iterator[list[tuple[str, str]]]:
    """TEMP VIEW _ocds_compiled over the compiled chunks (Parquet files, removed after the
    block); yields (ocid, error) for ocids that failed to merge."""
    out_dir = Path(tempfile.mkdtemp(prefix="fundtrace-ocds-compiled-"))
    try:
        files: list[str] = []
        failures: list[tuple[str, str]] = []
        for path, failed in _compile_chunks(con, _iter_chunks(con, ocids), workers, out_dir):
            files.append(path)
            failures.extend(failed)
        if files:
            listed = ", ".join(sql_literal(f) for f in files)
            con.execute(
                f"CREATE OR REPLACE TEMP VIEW _ocds_compiled AS SELECT * FROM read_parquet([{listed}])"
            )
        else:
            columns = ", ".join(
                f"NULL::{'VARCHAR[]' if pa.types.is_list(f.type) else 'VARCHAR'} AS {f.name}"
                for f in COMPILED_SCHEMA
            )
            con.execute(
                f"CREATE OR REPLACE TEMP VIEW _ocds_compiled AS SELECT {columns} WHERE false"
            )
        yield failures
    finally:
        con.execute("DROP VIEW IF EXISTS _ocds_compiled")
        shutil.rmtree(out_dir, ignore_errors=True)


def build_stg_ocds_releases(
    con: duckdb.DuckDBPyConnection,
    workers: int | None = None,
    log: Callable[[str], None] | None = None,
) -> tuple[int, int]:
    """Compile the ocids whose history changed (or all: see ocds_scope) into
    stg_ocds_releases. Returns (ocids, ocids quarantined).

    `workers`: processes that compile (default $FUNDTRACE_WORKERS); 1 compiles in-process."""
    install_ocds_sql(con)
    scope = open_scope(con, STG_RELEASES, table_digests_sql(STG_HISTORY.qualified), log=log)
    workers = workers_from_env() if workers is None else workers
    with _compiled_view(con, workers, scope.ocids(con)) as failures:
        return _write_releases(con, scope, failures)


def _write_releases(
    con: duckdb.DuckDBPyConnection, scope: OcidScope, failures: list[tuple[str, str]]
) -> tuple[int, int]:
    """stg_ocds_releases rows of the ocids in `scope` from the view _ocds_compiled."""
    history = scope.rows(STG_HISTORY.qualified)
    con.execute("CREATE OR REPLACE TEMP TABLE _ocds_failed (ocid VARCHAR, error VARCHAR)")
    if failures:
        con.executemany("INSERT INTO _ocds_failed VALUES (?, ?)", failures)
    quarantined = scope.replace_quarantine(
        con,
        SOURCE_SYSTEM,
        f"""SELECT h.source_file, h.file_sha256, h.source_row, h.source_locator,
             h.ocid AS record_id,
             'cannot merge the releases of ' || h.ocid || ': ' || f.error AS reason
           FROM {history} h JOIN _ocds_failed f USING (ocid)
           WHERE h.merge_role = 'merged'""",
        ocid_of_record="record_id",
    )
    with_org_refs(
        con,
        "_ocds_rel_orgs",
        """SELECT ocid, CAST(buyer_json AS JSON) AS b, CAST(buyer_party_json AS JSON) AS bp,
             CAST(procuring_json AS JSON) AS pe
           FROM _ocds_compiled""",
        {"b": "b", "bp": "bp", "pe": "pe"},
    )
    # every per-ocid field but the compiled JSON, narrow; the wide JSON joins it once at the end
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE _ocds_rel_head AS
    WITH h AS (SELECT * FROM {history} WHERE merge_role = 'merged'),
    latest AS (SELECT * FROM h QUALIFY row_number() OVER (PARTITION BY ocid ORDER BY merge_order DESC) = 1),
    stats AS (
      SELECT ocid, count(*) AS release_count, min(release_date) AS first_release_date,
        count(*) FILTER (WHERE date_missing) AS undated_releases, max(ocds_version) AS ocds_version
      FROM h GROUP BY ocid
    ),
    dups AS (
      SELECT ocid, count(DISTINCT release_id) AS duplicate_release_ids
      FROM {history} WHERE duplicate_release_id GROUP BY ocid
    ),
    tags AS (
      SELECT ocid, list(tag ORDER BY first_seen, tag) AS tag FROM (
        SELECT ocid, tag, min((merge_order, i)) AS first_seen
        FROM (SELECT ocid, merge_order, unnest(release_tag) AS tag,
                     generate_subscripts(release_tag, 1) AS i FROM h)
        GROUP BY ALL)
      GROUP BY ocid
    )
    SELECT c.ocid, coalesce(tags.tag, CAST([] AS VARCHAR[])) AS tag,
      ocds_ts(c.date) AS date, stats.first_release_date, stats.release_count,
      c.compiled_from, coalesce(dups.duplicate_release_ids, 0) AS duplicate_release_ids,
      stats.undated_releases, c.merge_warnings, stats.ocds_version,
      ocds_text(c.initiationtype) AS initiationtype, ocds_text(c.language) AS language,
      ocds_text(c.buyer_id) AS buyer_id,
      coalesce(ocds_name(c.buyer_name), o.b_name, o.bp_name, o.pe_name) AS buyer_name,
      coalesce(o.b_org_ref, o.bp_org_ref, o.pe_org_ref) AS buyer_org_ref,
      CASE WHEN o.b_org_ref IS NOT NULL THEN 'buyer'
           WHEN o.bp_org_ref IS NOT NULL THEN 'parties.roles'
           WHEN o.pe_org_ref IS NOT NULL THEN 'tender.procuringEntity' END AS buyer_basis,
      ocds_text(c.tender_id) AS tender_id, ocds_name(c.tender_title) AS tender_title,
      ocds_text(c.tender_status) AS tender_status,
      ocds_text(c.planning_budget_projectid) AS planning_budget_projectid,
      ocds_name(c.planning_budget_project) AS planning_budget_project,
      ft_parse_amount(c.planning_budget_amount_amount) AS planning_budget_amount_amount,
      ft_parse_currency(c.planning_budget_amount_currency) AS planning_budget_amount_currency,
      list_transform(c.breakdown_ids, lambda x: ocds_text(x))
        AS planning_budget_budgetbreakdown_sourceparty_id,
      list_transform(c.breakdown_names, lambda x: ocds_name(x))
        AS planning_budget_budgetbreakdown_sourceparty_name,
      ocds_name(c.planning_budget_description) AS planning_budget_description,
      list_filter(list_transform(list_zip(c.breakdown_ids, c.breakdown_names),
          lambda z: CASE WHEN ocds_is_eu_fund(z[1], z[2]) THEN coalesce(ocds_name(z[2]), z[1]) END),
        lambda x: x IS NOT NULL) AS budget_eu_source_parties,
      {_prov("latest")}
    FROM _ocds_compiled c JOIN _ocds_rel_orgs o USING (ocid)
    JOIN latest USING (ocid) JOIN stats USING (ocid)
    LEFT JOIN tags USING (ocid) LEFT JOIN dups USING (ocid)"""
    )
    staged = scope.write(
        con,
        """SELECT head.*, CAST(c.compiled_release AS JSON) AS compiled_release,
             CAST(c.merge_sources AS JSON) AS merge_sources
           FROM _ocds_compiled c LEFT JOIN _ocds_rel_head head USING (ocid)""",
    )
    con.execute("DROP TABLE _ocds_failed; DROP TABLE _ocds_rel_orgs; DROP TABLE _ocds_rel_head")
    return staged, quarantined


# --------------------------------------------------------------------------- child tables


def _child_scope(
    con: duckdb.DuckDBPyConnection,
    spec: TableSpec,
    log: Callable[[str], None] | None,
    upstream: TableSpec = STG_RELEASES,
    money: bool = False,
) -> OcidScope:
    """What a build of a table read from the compiled releases (or `upstream`) re-derives;
    with `money` (values in EUR) the ECB rates are part of its context."""
    return open_scope(
        con,
        spec,
        table_digests_sql(upstream.qualified),
        [ECB_RATES.qualified] if money else [],
        log,
    )


def _value_checks(amount: str, currency: str) -> str:
    """First failed rule for a published value (NULL: usable or no value at all)."""
    return f"""CASE
      WHEN ocds_text({amount}) IS NULL AND ocds_text({currency}) IS NULL THEN NULL
      WHEN ocds_text({amount}) IS NULL THEN NULL
      WHEN ft_parse_amount({amount}) IS NULL THEN 'unparseable value.amount: ' || {amount}
      WHEN ft_parse_amount({amount}) < 0 THEN 'negative value.amount: ' || {amount}
      WHEN ocds_text({currency}) IS NULL THEN 'empty value.currency'
      WHEN ft_parse_currency({currency}) IS NULL THEN 'invalid value.currency: ' || {currency}
    END"""


_PARTY_JSON = JsonPaths(
    "v",
    {"parties": "$.parties", "buyer": "$.buyer", "entity": "$.tender.procuringEntity",
     "tenderers": "$.tender.tenderers", "awards": "$.awards"},
    function="json_extract",
)  # fmt: skip


def build_stg_ocds_parties(
    con: duckdb.DuckDBPyConnection, log: Callable[[str], None] | None = None
) -> int:
    install_ocds_sql(con)
    scope = _child_scope(con, STG_PARTIES, log)
    releases = scope.rows(STG_RELEASES.qualified)
    # the pieces that name organisations, not the whole compiled release, go through the CTE
    v = _PARTY_JSON
    source = f"""
    WITH j AS (
      -- one parse of each compiled release for the five paths (JsonPaths; five calls parsed it
      -- five times: 0.45 -> 0.12 s at scale 1)
      SELECT ocid, {v.extract("compiled_release")} FROM {releases}
    ),
    c AS (
      SELECT ocid, ocds_list({v["parties"]}) AS parties, {v["buyer"]} AS buyer,
        {v["entity"]} AS procuring_entity, ocds_list({v["tenderers"]}) AS tenderers,
        ocds_list({v["awards"]}) AS awards
      FROM j
    ),
    awards AS (SELECT ocid, parties, unnest(awards) AS award FROM c)
    SELECT ocid, parties, p, party_index, 'parties' AS origin, NULL AS role FROM (
      SELECT ocid, parties, unnest(parties) AS p, generate_subscripts(parties, 1) - 1 AS party_index FROM c)
    UNION ALL SELECT ocid, parties, buyer, NULL, 'buyer', 'buyer' FROM c
    UNION ALL SELECT ocid, parties, procuring_entity, NULL,
                     'tender.procuringEntity', 'procuringEntity' FROM c
    UNION ALL SELECT ocid, parties, unnest(tenderers), NULL, 'tender.tenderers', 'tenderer' FROM c
    UNION ALL SELECT ocid, parties, unnest(ocds_list(json_extract(award, '$.suppliers'))), NULL,
                     'awards.suppliers', 'supplier' FROM awards
    """
    # an inline organisation that names a listed party adds nothing (the party's row stands
    # for it): dropped before the identifier macros run on it, about half the rows
    with_org_refs(
        con,
        "_ocds_party_orgs",
        f"""SELECT * FROM (
              SELECT ocid, p, party_index, origin, role,
                ocds_text(json_extract_string(p, '$.id')) AS _id,
                origin <> 'parties' AND ocds_resolved(parties, p) AS _listed
              FROM ({source}) WHERE json_type(p) = 'OBJECT')
            WHERE NOT _listed""",
        {"o": "p"},
    )
    select = f"""
    WITH listed AS (
      SELECT ocid, coalesce(_id, o_org_ref, '#' || party_index) AS party_key, party_index,
        origin AS party_origin,
        CASE WHEN json_type(json_extract(p, '$.roles')) = 'ARRAY'
               THEN from_json(json_extract(p, '$.roles'), '["varchar"]')
             WHEN ocds_text(json_extract_string(p, '$.roles')) IS NOT NULL
               THEN [json_extract_string(p, '$.roles')] END AS party_roles,
        p, o_name, o_identifier, o_org_ref, o_org_ref_basis, o_country_name
      FROM _ocds_party_orgs WHERE origin = 'parties'
    ),
    inline AS (
      SELECT *, coalesce(_id, o_org_ref) AS party_key,
        CASE origin WHEN 'buyer' THEN 1 WHEN 'tender.procuringEntity' THEN 2
                    WHEN 'awards.suppliers' THEN 3 ELSE 4 END AS origin_rank
      FROM _ocds_party_orgs
      WHERE origin <> 'parties' AND NOT _listed AND coalesce(_id, o_org_ref) IS NOT NULL
    ),
    inline_grouped AS (
      -- the first place the organisation is named (ties: its text), so reruns pick the same
      SELECT ocid, party_key, NULL AS party_index, arg_min(origin, _pick) AS party_origin,
        list(DISTINCT role ORDER BY role) AS party_roles,
        arg_min(p, _pick) AS p, arg_min(o_name, _pick) AS o_name,
        arg_min(o_identifier, _pick) AS o_identifier,
        arg_min(o_org_ref, _pick) AS o_org_ref,
        arg_min(o_org_ref_basis, _pick) AS o_org_ref_basis,
        arg_min(o_country_name, _pick) AS o_country_name
      FROM (SELECT *, (origin_rank, CAST(p AS VARCHAR)) AS _pick FROM inline)
      GROUP BY ocid, party_key
    ),
    rows AS (
      SELECT * FROM listed
      UNION ALL BY NAME SELECT * FROM inline_grouped
    ),
    -- one row per (ocid, party_key): the listed party of lowest index, else the inline one
    -- (one per key). Chosen on the narrow key: ranking the wide rows cost ~1.8 s at scale 1.
    keep AS (SELECT ocid, party_key, min(party_index) AS party_index FROM rows GROUP BY ALL)
    SELECT r.ocid, r.party_key, r.party_index, ocds_text(json_extract_string(r.p, '$.id')) AS party_id,
      r.o_name AS party_name, r.party_roles, r.party_origin,
      ocds_text(json_extract_string(r.p, '$.identifier.scheme')) AS identifier_scheme,
      ocds_text(json_extract_string(r.p, '$.identifier.id')) AS identifier_id,
      ocds_name(json_extract_string(r.p, '$.identifier.legalName')) AS identifier_legalname,
      list_filter(list_transform(ocds_list(json_extract(r.p, '$.additionalIdentifiers')),
        lambda a: CASE
          WHEN ocds_text(json_extract_string(a, '$.scheme')) IS NULL
            OR ocds_text(json_extract_string(a, '$.id')) IS NULL THEN NULL
          WHEN starts_with(upper(ocds_text(json_extract_string(a, '$.id'))),
                           upper(ocds_text(json_extract_string(a, '$.scheme'))) || '-')
            THEN ocds_text(json_extract_string(a, '$.id'))
          ELSE ocds_text(json_extract_string(a, '$.scheme')) || '-'
               || ocds_text(json_extract_string(a, '$.id')) END),
        lambda x: x IS NOT NULL) AS additionalidentifiers,
      r.o_org_ref AS party_org_ref, r.o_org_ref_basis AS party_org_ref_basis,
      r.o_country_name AS address_countryname,
      ocds_country(r.o_country_name, CASE WHEN r.o_org_ref_basis <> 'name' THEN r.o_org_ref END)
        AS address_country,
      {_prov("s")}
    FROM rows r
    SEMI JOIN keep k ON k.ocid = r.ocid AND k.party_key = r.party_key
      AND k.party_index IS NOT DISTINCT FROM r.party_index
    JOIN {releases} s USING (ocid)
    """
    staged = scope.write(con, select)
    con.execute("DROP TABLE _ocds_party_orgs")
    return staged


_TENDER_JSON = JsonPaths(
    "j",
    {"tender": "$.tender", "parties": "$.parties", "entity": "$.tender.procuringEntity",
     "items": "$.tender.items"},
    function="json_extract",
)  # fmt: skip
_TENDER_TEXT = JsonPaths(
    "v",
    {"id": "$.tender.id", "title": "$.tender.title", "status": "$.tender.status",
     "method": "$.tender.procurementMethod",
     "method_details": "$.tender.procurementMethodDetails",
     "category": "$.tender.mainProcurementCategory", "amount": "$.tender.value.amount",
     "currency": "$.tender.value.currency", "tenderers": "$.tender.numberOfTenderers",
     "start": "$.tender.tenderPeriod.startDate", "end": "$.tender.tenderPeriod.endDate",
     "entity_id": "$.tender.procuringEntity.id", "entity_name": "$.tender.procuringEntity.name"},
)  # fmt: skip


def build_stg_ocds_tenders(
    con: duckdb.DuckDBPyConnection, log: Callable[[str], None] | None = None
) -> int:
    install_ocds_sql(con)
    scope = _child_scope(con, STG_TENDERS, log)
    releases = scope.rows(STG_RELEASES.qualified)
    # one parse of each compiled release for all its paths (JsonPaths: twelve calls of one path
    # each held ~540 MiB over 176k releases and took 7x as long)
    j, v = _TENDER_JSON, _TENDER_TEXT
    select = f"""
    WITH x AS (
      SELECT r.*, {j.extract("r.compiled_release")}, {v.extract("r.compiled_release")}
      FROM {releases} r
    ),
    t AS (SELECT * FROM x WHERE json_type({j["tender"]}) = 'OBJECT')
    SELECT ocid, ocds_text({v["id"]}) AS tender_id, ocds_name({v["title"]}) AS tender_title,
      ocds_text({v["status"]}) AS tender_status,
      ocds_text({v["method"]}) AS tender_procurementmethod,
      ocds_text({v["method_details"]}) AS tender_procurementmethoddetails,
      ocds_text({v["category"]}) AS tender_mainprocurementcategory,
      ft_parse_amount({v["amount"]}) AS tender_value_amount,
      ft_parse_currency({v["currency"]}) AS tender_value_currency,
      TRY_CAST(ft_parse_amount({v["tenderers"]}) AS BIGINT) AS tender_numberoftenderers,
      ft_parse_date({v["start"]}) AS tender_tenderperiod_startdate,
      ft_parse_date({v["end"]}) AS tender_tenderperiod_enddate,
      ocds_text({v["entity_id"]}) AS tender_procuringentity_id,
      coalesce(ocds_name({v["entity_name"]}),
        CASE WHEN json_type({j["entity"]}) = 'OBJECT'
             THEN ocds_org_name(ocds_resolve(ocds_list({j["parties"]}), {j["entity"]})) END)
        AS tender_procuringentity_name,
      len(ocds_list({j["items"]})) AS tender_items_count,
      list_filter(list_transform(ocds_list({j["items"]}), lambda i: CASE
          WHEN upper(ocds_text(json_extract_string(i, '$.classification.scheme'))) = 'CPV'
          THEN ocds_text(json_extract_string(i, '$.classification.id')) END), lambda x: x IS NOT NULL)[1]
        AS tender_main_cpv,
      source_system, source_file, source_row, source_locator, file_sha256, loaded_at
    FROM t
    """
    return scope.write(con, select)


def _award_rows_sql(releases: str) -> str:
    """Each award of the compiled releases in `releases` (the table or the scope's rows)."""
    # one scan: unnest next to the release's own columns (a self-join on ocid read the wide
    # JSON twice, 0.7 -> 0.2 s at scale 1)
    return f"""
SELECT ocid, compiled_release, merge_sources, award, award_index,
  coalesce(ocds_text(json_extract_string(award, '$.id')), '#' || award_index) AS award_id
FROM (
  SELECT ocid, compiled_release, merge_sources, unnest(awards) AS award,
    generate_subscripts(awards, 1) - 1 AS award_index
  FROM (SELECT ocid, compiled_release, merge_sources,
          ocds_list(json_extract(compiled_release, '$.awards')) AS awards FROM {releases}))
WHERE json_type(award) = 'OBJECT'
"""


def _child_provenance(kind: str, key: str, history: str) -> str:
    """Join a child row (alias x, with ocid + id column `key`) to the release that last carried
    it: history row alias hl (of `history`), locator extended with the index in that release."""
    return f"""
    LEFT JOIN {history} hl
      ON hl.ocid = x.ocid AND hl.merge_role = 'merged'
     AND hl.merge_order = coalesce(
       TRY_CAST(ocds_source(x.merge_sources, '{kind}', x.{key}, 1) AS BIGINT), x._last_order)
    """


_AWARD_RECORD = " award "  # record_id of a quarantined award value: <ocid> award <award id>


_AWARD_TEXT = JsonPaths(
    "v",
    {"title": "$.title", "status": "$.status", "date": "$.date", "amount": "$.value.amount",
     "currency": "$.value.currency", "period_start": "$.contractPeriod.startDate",
     "period_end": "$.contractPeriod.endDate"},
)  # fmt: skip


def build_stg_ocds_awards(
    con: duckdb.DuckDBPyConnection, log: Callable[[str], None] | None = None
) -> tuple[int, int]:
    """Rebuild stg_ocds_awards and its value quarantine. Returns (awards, values quarantined)."""
    install_ocds_sql(con)
    scope = _child_scope(con, STG_AWARDS, log, money=True)
    releases = scope.rows(STG_RELEASES.qualified)
    history = scope.rows(STG_HISTORY.qualified)
    v = _AWARD_TEXT
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE _ocds_awards AS
        WITH a AS ({_award_rows_sql(releases)}),
        last_order AS (
          SELECT ocid, max(merge_order) AS _last_order FROM {history}
          WHERE merge_role = 'merged' GROUP BY ocid
        ),
        contract_dates AS (
          SELECT ocid, ocds_text(json_extract_string(c, '$.awardID')) AS award_id,
                 min(ft_parse_date(json_extract_string(c, '$.dateSigned'))) AS contract_datesigned
          FROM (SELECT ocid, unnest(ocds_list(json_extract(compiled_release, '$.contracts'))) AS c
                FROM {releases})
          GROUP BY ALL
        ),
        x AS (  -- one parse of each award for all its paths (JsonPaths)
          SELECT a.*, lo._last_order, {v.extract("a.award")}
          FROM a JOIN last_order lo USING (ocid)
        )
        SELECT x.ocid, x.award_id, x.award_index, x.award,
          ocds_name({v["title"]}) AS award_title,
          ocds_text({v["status"]}) AS award_status,
          ft_parse_date({v["date"]}) AS award_date,
          ocds_text({v["amount"]}) AS _amount_text,
          {v["currency"]} AS award_value_currency_published,
          {_value_checks(v["amount"], v["currency"])} AS _value_reason,
          {v["period_start"]} AS _period_start, {v["period_end"]} AS _period_end,
          cd.contract_datesigned,
          CAST(hf.release_date AS DATE) AS _first_release_date,
          hl.release_id AS source_release_id,
          hl.source_system, hl.source_file, hl.source_row,
          hl.source_locator || '.awards' || coalesce(
            '[' || ocds_source(x.merge_sources, 'awards', x.award_id, 2) || ']', '') AS source_locator,
          hl.file_sha256, hl.loaded_at
        FROM x
        {_child_provenance("awards", "award_id", history)}
        LEFT JOIN {history} hf
          ON hf.ocid = x.ocid AND hf.merge_role = 'merged'
         AND hf.merge_order = coalesce(
           TRY_CAST(ocds_source(x.merge_sources, 'awards', x.award_id, 0) AS BIGINT), x._last_order)
        LEFT JOIN contract_dates cd ON cd.ocid = x.ocid AND cd.award_id = x.award_id"""
    )
    quarantined = scope.replace_quarantine(
        con,
        SOURCE_SYSTEM,
        f"""SELECT source_file, file_sha256, source_row, source_locator || '.value' AS source_locator,
             ocid || '{_AWARD_RECORD}' || award_id AS record_id,
             _value_reason || ' (award ' || award_id || ' of ' || ocid
               || '; award kept, value quarantined)' AS reason
           FROM _ocds_awards WHERE _value_reason IS NOT NULL""",
        ocid_of_record=f"split_part(record_id, '{_AWARD_RECORD}', 1)",
    )
    money_source = """
      SELECT *, CASE WHEN _value_reason IS NULL THEN ft_parse_amount(_amount_text) END AS amount_original,
        CASE WHEN _value_reason IS NULL AND _amount_text IS NOT NULL
             THEN ft_parse_currency(award_value_currency_published) END AS currency_original,
        coalesce(award_date, contract_datesigned, _first_release_date) AS fx_on,
        CASE WHEN award_date IS NOT NULL THEN 'award date'
             WHEN contract_datesigned IS NOT NULL THEN 'contract dateSigned'
             WHEN _first_release_date IS NOT NULL THEN 'release date' END AS value_date_basis
      FROM _ocds_awards"""
    select = f"""
    WITH m AS ({to_eur_sql(money_source, ECB_RATES.qualified)})
    SELECT ocid, award_id, award_index, award_title, award_status, award_date,
      amount_original AS award_value_amount, currency_original AS award_value_currency,
      award_value_currency_published, amount_eur, fx_rate, fx_date,
      fx_on AS value_date, value_date_basis,
      _value_reason IS NOT NULL AS value_quarantined,
      CASE WHEN _value_reason IS NOT NULL THEN 'value quarantined: ' || _value_reason
           WHEN _amount_text IS NULL THEN 'no value published'
           WHEN fx_note IS NOT NULL THEN 'no EUR value: ' || fx_note END AS value_note,
      ft_parse_date(_period_start) AS award_contractperiod_startdate,
      ft_parse_date(_period_end) AS award_contractperiod_enddate,
      contract_datesigned, len(ocds_list(json_extract(award, '$.suppliers'))) AS suppliers_count,
      source_release_id,
      source_system, source_file, source_row, source_locator, file_sha256, loaded_at
    FROM m
    """
    staged = scope.write(con, select)
    con.execute("DROP TABLE _ocds_awards")
    return staged, quarantined


def build_stg_ocds_award_suppliers(
    con: duckdb.DuckDBPyConnection, log: Callable[[str], None] | None = None
) -> int:
    install_ocds_sql(con)
    scope = _child_scope(con, STG_AWARD_SUPPLIERS, log, upstream=STG_AWARDS)
    releases = scope.rows(STG_RELEASES.qualified)
    with_org_refs(
        con,
        "_ocds_supplier_orgs",
        f"""WITH a AS ({_award_rows_sql(releases)}),
        s AS (
          SELECT a.ocid, a.award_id, ocds_list(json_extract(a.compiled_release, '$.parties')) AS parties,
            unnest(ocds_list(json_extract(a.award, '$.suppliers'))) AS ref,
            generate_subscripts(ocds_list(json_extract(a.award, '$.suppliers')), 1) - 1 AS supplier_index
          FROM a
        )
        SELECT ocid, award_id, supplier_index, ref, ocds_resolve(parties, ref) AS party,
          ocds_resolved(parties, ref) AS party_resolved
        FROM s WHERE json_type(ref) = 'OBJECT'""",
        {"r": "ref", "p": "party"},
    )
    select = f"""
    WITH x AS (
      SELECT *,
        -- an identifier of the party wins over one written in the reference; names come last
        CASE WHEN p_org_ref_basis IN ('identifier', 'additionalIdentifiers') THEN p_org_ref
             WHEN r_org_ref_basis IN ('identifier', 'additionalIdentifiers') THEN r_org_ref
             ELSE coalesce(p_org_ref, r_org_ref) END AS supplier_org_ref,
        CASE WHEN p_org_ref_basis IN ('identifier', 'additionalIdentifiers') THEN p_org_ref_basis
             WHEN r_org_ref_basis IN ('identifier', 'additionalIdentifiers') THEN r_org_ref_basis
             ELSE coalesce(p_org_ref_basis, r_org_ref_basis) END AS supplier_org_ref_basis
      FROM _ocds_supplier_orgs
    ),
    -- one row per supplier organisation of an award (1.0 releases repeat inline suppliers):
    -- the first, chosen on the narrow key rather than by ranking the wide rows
    keep AS (
      SELECT ocid, award_id, min(supplier_index) AS supplier_index FROM x
      WHERE supplier_org_ref IS NOT NULL GROUP BY ocid, award_id, supplier_org_ref
    )
    SELECT x.ocid, x.award_id, x.supplier_index, ocds_text(json_extract_string(x.ref, '$.id')) AS supplier_id,
      coalesce(x.r_name, x.p_name) AS supplier_name, x.party_resolved,
      coalesce(x.p_identifier, x.r_identifier) AS supplier_identifier,
      x.supplier_org_ref, x.supplier_org_ref_basis,
      CASE WHEN x.supplier_org_ref_basis = 'name' THEN 'missing' ELSE 'identified' END
        AS identifier_status,
      ocds_country(coalesce(x.p_country_name, x.r_country_name),
                   CASE WHEN x.supplier_org_ref_basis <> 'name' THEN x.supplier_org_ref END)
        AS supplier_country,
      w.source_system, w.source_file, w.source_row,
      w.source_locator || '.suppliers[' || x.supplier_index || ']' AS source_locator,
      w.file_sha256, w.loaded_at
    FROM x SEMI JOIN keep k USING (ocid, award_id, supplier_index)
    JOIN {STG_AWARDS.qualified} w ON w.ocid = x.ocid AND w.award_id = x.award_id
    """
    staged = scope.write(con, select)
    con.execute("DROP TABLE _ocds_supplier_orgs")
    return staged


_CONTRACT_TEXT = JsonPaths(
    "v",
    {"award_id": "$.awardID", "title": "$.title", "status": "$.status",
     "start": "$.period.startDate", "end": "$.period.endDate", "signed": "$.dateSigned",
     "amount": "$.value.amount", "currency": "$.value.currency"},
)  # fmt: skip


def build_stg_ocds_contracts(
    con: duckdb.DuckDBPyConnection, log: Callable[[str], None] | None = None
) -> int:
    install_ocds_sql(con)
    scope = _child_scope(con, STG_CONTRACTS, log, money=True)
    releases = scope.rows(STG_RELEASES.qualified)
    history = scope.rows(STG_HISTORY.qualified)
    v = _CONTRACT_TEXT
    source = f"""
    WITH x AS (
      SELECT c.ocid, c.merge_sources, c.contract, c.contract_index,
        coalesce(ocds_text(json_extract_string(c.contract, '$.id')), '#' || c.contract_index) AS contract_id,
        lo._last_order, lo._last_date
      FROM (  -- one scan of the releases, as in _award_rows_sql
        SELECT ocid, merge_sources, unnest(contracts) AS contract,
          generate_subscripts(contracts, 1) - 1 AS contract_index
        FROM (SELECT ocid, merge_sources,
                ocds_list(json_extract(compiled_release, '$.contracts')) AS contracts
              FROM {releases})) c,
        (SELECT ocid AS _lo, max(merge_order) AS _last_order, CAST(max(release_date) AS DATE) AS _last_date
         FROM {history} WHERE merge_role = 'merged' GROUP BY ocid) lo
      WHERE lo._lo = c.ocid AND json_type(c.contract) = 'OBJECT'
    ),
    xv AS (SELECT *, {v.extract("contract")} FROM x)  -- one parse of each contract (JsonPaths)
    SELECT x.ocid, x.contract_id, x.contract_index,
      ocds_text({v["award_id"]}) AS contract_awardid,
      ocds_name({v["title"]}) AS contract_title,
      ocds_text({v["status"]}) AS contract_status,
      ft_parse_date({v["start"]}) AS contract_period_startdate,
      ft_parse_date({v["end"]}) AS contract_period_enddate,
      ft_parse_date({v["signed"]}) AS contract_datesigned,
      {_value_checks(v["amount"], v["currency"])} AS _value_reason,
      ocds_text({v["amount"]}) AS _amount_text,
      {v["currency"]} AS _currency_text,
      hl.source_system, hl.source_file, hl.source_row,
      hl.source_locator || '.contracts' || coalesce(
        '[' || ocds_source(x.merge_sources, 'contracts', x.contract_id, 2) || ']', '') AS source_locator,
      hl.file_sha256, hl.loaded_at,
      coalesce(ft_parse_date({v["signed"]}), ft_parse_date({v["start"]}), x._last_date) AS fx_on
    FROM xv AS x
    {_child_provenance("contracts", "contract_id", history)}
    """
    money_source = f"""
      SELECT *, CASE WHEN _value_reason IS NULL THEN ft_parse_amount(_amount_text) END AS amount_original,
        CASE WHEN _value_reason IS NULL AND _amount_text IS NOT NULL
             THEN ft_parse_currency(_currency_text) END AS currency_original
      FROM ({source})"""
    select = f"""
    SELECT ocid, contract_id, contract_index, contract_awardid, contract_title, contract_status,
      contract_period_startdate, contract_period_enddate, contract_datesigned,
      amount_original AS contract_value_amount, currency_original AS contract_value_currency,
      amount_eur, fx_rate, fx_date,
      CASE WHEN _value_reason IS NOT NULL THEN 'value not usable: ' || _value_reason
           WHEN _amount_text IS NULL THEN 'no value published'
           WHEN fx_note IS NOT NULL THEN 'no EUR value: ' || fx_note END AS value_note,
      source_system, source_file, source_row, source_locator, file_sha256, loaded_at
    FROM ({to_eur_sql(money_source, ECB_RATES.qualified)})
    """
    return scope.write(con, select)


_BID_JSON = JsonPaths(
    "bj",
    {"statistics": "$.bids.statistics", "details": "$.bids.details",
     "tenderers": "$.tender.tenderers"},
    function="json_extract",
)  # fmt: skip


def build_stg_ocds_bids(
    con: duckdb.DuckDBPyConnection, log: Callable[[str], None] | None = None
) -> int:
    install_ocds_sql(con)
    scope = _child_scope(con, STG_BIDS, log)
    releases = scope.rows(STG_RELEASES.qualified)
    b = _BID_JSON
    select = f"""
    WITH parsed AS (  -- one parse of each compiled release for its paths (JsonPaths)
      SELECT s.*, {b.extract("s.compiled_release")},
        json_extract_string(s.compiled_release, '$.tender.numberOfTenderers') AS n_text
      FROM {releases} s
    ),
    r AS (
      SELECT parsed.*,
        list_filter(ocds_list({b["statistics"]}),
                    lambda x: ocds_text(json_extract_string(x, '$.relatedLot')) IS NULL) AS stats
      FROM parsed
    ),
    n AS (
      SELECT r.*,
        TRY_CAST(ft_parse_amount(n_text) AS BIGINT) AS tender_numberoftenderers,
        TRY_CAST(ft_parse_amount(list_filter(stats, lambda x: json_extract_string(x, '$.measure') = 'bids')[1]->>'$.value') AS BIGINT)
          AS bids_statistics_bids,
        TRY_CAST(ft_parse_amount(list_filter(stats, lambda x: json_extract_string(x, '$.measure') = 'validBids')[1]->>'$.value') AS BIGINT)
          AS bids_statistics_validbids,
        CASE WHEN json_type({b["details"]}) = 'ARRAY' THEN len(ocds_list({b["details"]})) END
          AS bids_details_count,
        CASE WHEN json_type({b["tenderers"]}) = 'ARRAY' THEN len(list_distinct(list_transform(
          ocds_list({b["tenderers"]}),
          lambda t: coalesce(ocds_text(json_extract_string(t, '$.id')), ocds_org_name(t))))) END AS tender_tenderers_count
      FROM r
    )
    SELECT ocid, tender_numberoftenderers, bids_statistics_bids, bids_statistics_validbids,
      bids_details_count, tender_tenderers_count,
      coalesce(tender_numberoftenderers, bids_statistics_bids, bids_statistics_validbids,
               bids_details_count, tender_tenderers_count) AS number_of_tenders,
      CASE WHEN tender_numberoftenderers IS NOT NULL THEN 'tender.numberOfTenderers'
           WHEN bids_statistics_bids IS NOT NULL THEN 'bids.statistics (bids)'
           WHEN bids_statistics_validbids IS NOT NULL THEN 'bids.statistics (validBids)'
           WHEN bids_details_count IS NOT NULL THEN 'bids.details'
           ELSE 'tender.tenderers' END AS number_of_tenders_basis,
      source_system, source_file, source_row, source_locator, file_sha256, loaded_at
    FROM n
    WHERE coalesce(tender_numberoftenderers, bids_statistics_bids, bids_statistics_validbids,
                   bids_details_count, tender_tenderers_count) IS NOT NULL
    """
    return scope.write(con, select)


def build_all(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Every OCDS staging table in dependency order (tests, benchmarks)."""
    counts: dict[str, int] = {}
    counts["history"], counts["history_quarantined"] = build_stg_ocds_release_history(con)
    counts["releases"], counts["releases_quarantined"] = build_stg_ocds_releases(con)
    counts["parties"] = build_stg_ocds_parties(con)
    counts["tenders"] = build_stg_ocds_tenders(con)
    counts["awards"], counts["award_values_quarantined"] = build_stg_ocds_awards(con)
    counts["award_suppliers"] = build_stg_ocds_award_suppliers(con)
    counts["contracts"] = build_stg_ocds_contracts(con)
    counts["bids"] = build_stg_ocds_bids(con)
    return counts


# --------------------------------------------------------------------------- assets


def _asset(spec: TableSpec, deps: list[TableSpec]) -> Any:
    return dg.asset(
        key=spec.asset_key,
        group_name="staging",
        kinds={"duckdb", "sql"} if spec is not STG_RELEASES else {"duckdb", "sql", "python"},
        description=spec.doc,
        deps=[d.asset_key for d in deps],
        tags={"source_system": SOURCE_SYSTEM},
    )


@_asset(STG_HISTORY, [RAW_RELEASES])
@skip_unchanged
def stg_ocds_release_history(
    context: dg.AssetExecutionContext, duckdb: DuckDBResource
) -> dg.MaterializeResult:
    with duckdb.get_connection() as con:
        staged, quarantined = build_stg_ocds_release_history(con, log=context.log.info)
        context.log.info(f"{STG_HISTORY.qualified}: {staged} releases, {quarantined} quarantined")
        return materialize_result(con, STG_HISTORY, {"rows_quarantined": quarantined})


@_asset(STG_RELEASES, [STG_HISTORY, RAW_RELEASES])
@skip_unchanged
def stg_ocds_releases(
    context: dg.AssetExecutionContext, duckdb: DuckDBResource
) -> dg.MaterializeResult:
    with duckdb.get_connection() as con:
        staged, quarantined = build_stg_ocds_releases(con, log=context.log.info)
        context.log.info(f"{STG_RELEASES.qualified}: {staged} compiled releases")
        if quarantined:
            context.log.warning(f"{quarantined} releases of ocids that could not be merged")
        return materialize_result(con, STG_RELEASES, {"rows_quarantined": quarantined})


@_asset(STG_PARTIES, [STG_RELEASES])
@skip_unchanged
def stg_ocds_parties(
    context: dg.AssetExecutionContext, duckdb: DuckDBResource
) -> dg.MaterializeResult:
    with duckdb.get_connection() as con:
        build_stg_ocds_parties(con, log=context.log.info)
        return materialize_result(con, STG_PARTIES)


@_asset(STG_TENDERS, [STG_RELEASES])
@skip_unchanged
def stg_ocds_tenders(
    context: dg.AssetExecutionContext, duckdb: DuckDBResource
) -> dg.MaterializeResult:
    with duckdb.get_connection() as con:
        build_stg_ocds_tenders(con, log=context.log.info)
        return materialize_result(con, STG_TENDERS)


@_asset(STG_AWARDS, [STG_RELEASES, STG_HISTORY, ECB_RATES])
@skip_unchanged
def stg_ocds_awards(
    context: dg.AssetExecutionContext, duckdb: DuckDBResource
) -> dg.MaterializeResult:
    with duckdb.get_connection() as con:
        staged, quarantined = build_stg_ocds_awards(con, log=context.log.info)
        context.log.info(
            f"{STG_AWARDS.qualified}: {staged} awards, {quarantined} award values quarantined "
            f"(see {STG_QUARANTINE.qualified})"
        )
        return materialize_result(con, STG_AWARDS, {"values_quarantined": quarantined})


@_asset(STG_AWARD_SUPPLIERS, [STG_AWARDS, STG_RELEASES])
@skip_unchanged
def stg_ocds_award_suppliers(
    context: dg.AssetExecutionContext, duckdb: DuckDBResource
) -> dg.MaterializeResult:
    with duckdb.get_connection() as con:
        build_stg_ocds_award_suppliers(con, log=context.log.info)
        return materialize_result(con, STG_AWARD_SUPPLIERS)


@_asset(STG_CONTRACTS, [STG_RELEASES, STG_HISTORY, ECB_RATES])
@skip_unchanged
def stg_ocds_contracts(
    context: dg.AssetExecutionContext, duckdb: DuckDBResource
) -> dg.MaterializeResult:
    with duckdb.get_connection() as con:
        build_stg_ocds_contracts(con, log=context.log.info)
        return materialize_result(con, STG_CONTRACTS)


@_asset(STG_BIDS, [STG_RELEASES])
@skip_unchanged
def stg_ocds_bids(
    context: dg.AssetExecutionContext, duckdb: DuckDBResource
) -> dg.MaterializeResult:
    with duckdb.get_connection() as con:
        build_stg_ocds_bids(con, log=context.log.info)
        return materialize_result(con, STG_BIDS)


# --------------------------------------------------------------------------- exports

# raw releases reconcile per file against the history (one row per release, or quarantined)
STAGING_PAIRS = (StagingPair(SOURCE_SYSTEM, RAW_RELEASES, STG_HISTORY),)

CONTRACTS_DEPS = (STG_RELEASES, STG_TENDERS, STG_AWARDS, STG_AWARD_SUPPLIERS, STG_BIDS)
# one row per ocid x award x supplier; processes naming no buyer at all (no buyer, no party
# with role buyer, no procuring entity) stay in staging (warning check) and are left out here


def contracts_sql(ocids: str | None = None) -> str:
    """CONTRACTS_SQL, or its rows of the ocids in `ocids` (a relation with column k): then each
    staging table is read for those ocids only."""

    def read(spec: TableSpec) -> str:
        if ocids is None:
            return spec.qualified
        return f"(SELECT * FROM {spec.qualified} WHERE ocid IN (SELECT k FROM {ocids}))"

    return f"""
SELECT 'ocds:' || s.ocid || ':' || s.award_id || ':' || s.supplier_org_ref AS contract_award_id,
  s.ocid AS process_id, s.award_id, r.buyer_org_ref, r.buyer_name,
  s.supplier_org_ref, s.supplier_name, s.supplier_identifier, s.supplier_country,
  coalesce(t.tender_title, r.tender_title, a.award_title) AS title,
  coalesce(a.award_date, a.contract_datesigned) AS award_date,
  a.award_value_amount AS value_original, a.award_value_currency AS currency_original,
  a.amount_eur AS value_eur, a.fx_rate, a.fx_date,
  coalesce(t.tender_procurementmethod, t.tender_procurementmethoddetails) AS procedure_type,
  b.number_of_tenders, t.tender_main_cpv AS cpv,
  CASE WHEN len(r.budget_eu_source_parties) > 0 THEN true END AS eu_funded,
  CASE WHEN len(r.budget_eu_source_parties) > 0
       THEN concat_ws('; ', array_to_string(r.budget_eu_source_parties, '; '),
                      r.planning_budget_description) END AS eu_programme,
  r.planning_budget_projectid AS budget_project_ref,
  nullif(array_to_string(list_filter(list_transform(
    list_zip(r.planning_budget_budgetbreakdown_sourceparty_name,
             r.planning_budget_budgetbreakdown_sourceparty_id),
    lambda z: coalesce(z[1], z[2])), lambda v: v IS NOT NULL), '; '), '') AS budget_source_party,
  s.source_system, a.source_file, a.source_row,
  coalesce(a.source_release_id, s.ocid) AS source_record_id
FROM {read(STG_AWARD_SUPPLIERS)} s
JOIN {read(STG_AWARDS)} a ON a.ocid = s.ocid AND a.award_id = s.award_id
JOIN {read(STG_RELEASES)} r ON r.ocid = s.ocid
LEFT JOIN {read(STG_TENDERS)} t ON t.ocid = s.ocid
LEFT JOIN {read(STG_BIDS)} b ON b.ocid = s.ocid
WHERE r.buyer_org_ref IS NOT NULL
"""


CONTRACTS_SQL = contracts_sql()
