"""BODS staging: statement history, entities, persons and relationships x interests.

Tables:
- `stg_bods_statements` — one row per raw statement, typed, with its place in its version chain
  (`version_status`). `raw.raw_bods_statements` reconciles against it per file (STAGING_PAIRS).
- `stg_bods_entities`, `stg_bods_persons` — the current version of every entity / person chain.
- `stg_bods_relationships` — the current version of every ownership-or-control statement /
  relationship record, one row per interest, with both ends resolved.

Versions read into one model: 0.4 (`recordId`, `recordType`, `recordDetails`, `recordStatus`,
`statementId`, string `subject`/`interestedParty` = record ids), 0.2/0.3 (`statementID`,
`statementType`, `subject.describedByEntityStatement`, `interestedParty.describedBy...Statement`
or `.unspecified`, `replacesStatements`, `isComponent`) and pre-0.2 "0.1" register exports.
0.2 `interestLevel` and 0.3/0.4 `directOrIndirect` become `direct_or_indirect`. Interest types
are mapped onto the 0.4 codelist (`voting-rights` -> `votingRights`, 0.1 `influence-or-control`
-> `otherInfluenceOrControl`, `settlor-of-trust` -> `settlor`...), the published value kept.

Superseding (documented once, here):
- Identity: a statement id is unique dataset-wide. A later copy (file order, then position) with
  identical content is kept as `identical_copy`; with different content it is QUARANTINED.
- 0.4: the statements of one `recordId` are ordered by `statementDate` (as an instant when a
  time is given; undated first), then file and position; the last one is the record's current version, the others are `superseded`. When
  that last statement has `recordStatus: closed` the record is `closed`: a closed relationship
  stays in staging with `end_date` = the interest's `endDate`, else the closing statement's date.
- 0.1-0.3: a statement listed in another statement's `replacesStatements` is `superseded`; the
  statements nobody replaces are current. A reference to any statement of a chain resolves to
  the chain's current version (the latest one if a chain branches), so a relationship that still
  points at a replaced person statement reaches the corrected person. `chain_id` is the chain's
  first statement id (0.4: the recordId) and is what `BODS-PERSON-` ids are built from, so they
  do not change when a person statement is replaced. A replacesStatements cycle leaves no
  current version: its statements are quarantined.

Resolution: subjects and interested parties are looked up in every BODS file loaded (not only
the relationship's own file). A current relationship whose subject is not a staged entity, or
whose interested party is neither a staged entity nor person nor `unspecified`, is QUARANTINED
with the reference in the reason. An unspecified interested party is kept (kind `unspecified`,
with its reason), as are relationships that list no interests (one row, interest NULL).

Identifiers: entities get `org_ref` from their identifiers: Companies House (`scheme` GB-COH, or
a `schemeName` saying Companies House) -> `GB-COH-<8-digit number>`; other org-id.guide schemes
-> `<SCHEME>-<id>`; LEI (`XI-LEI`, or schemeName LEI) -> `XI-LEI-<lei>`, all normalised by the
shared `ft_org_id` (empty and placeholder ids never count); else the shared name-based `FTNAME-`
id; unknown/anonymous entities without identifiers get `BODS-ENTITY-<chain_id>` (never merged by
name). Persons get `person_ref` = `<SCHEME>-<id>` of their first identifier that has a `scheme`
(e.g. `{"scheme": "HBT-PERSON", "id": "0006"}` -> `HBT-PERSON-0006`, the governance register's
member id), else `BODS-PERSON-<chain_id>`.

Shares are percent points 0-100. `exact` sets min = max. 0.3/0.4 numeric `exclusiveMinimum` /
`exclusiveMaximum` are exclusive bounds; 0.1/0.2 boolean ones flag `minimum`/`maximum` as
exclusive. Interests with a share outside 0-100, min above max, an exact share outside its
bounds, unparseable numbers or dates, an unknown interest type or directOrIndirect value are
QUARANTINED one by one (`staging_table` stg_bods_relationships); the statement's other interests
stay. Persons: names, nationalities and person type only (birth dates and addresses never reach
the database, see `assets/raw/bods.py`).
"""

from typing import Any

import dagster as dg
import duckdb
from dagster_duckdb import DuckDBResource

from assets.common.fingerprint import skip_unchanged
from assets.common.sql import JsonPaths, install_macros
from assets.common.tables import Column, TableSpec, create_table, materialize_result, rebuild_table
from assets.raw.bods import RAW_BODS, SOURCE_SYSTEM
from assets.raw.ingest import PROVENANCE_COLUMNS
from assets.staging.quarantine import STG_QUARANTINE, replace_quarantine
from assets.staging.registry import StagingPair

# BODS 0.4 interestType codelist, plus nominee/nominator used by the 0.4 examples.
INTEREST_TYPES = (
    "shareholding", "votingRights", "appointmentOfBoard", "otherInfluenceOrControl",
    "seniorManagingOfficial", "settlor", "trustee", "protector", "beneficiaryOfLegalArrangement",
    "rightsToSurplusAssetsOnDissolution", "rightsToProfitOrIncome", "rightsGrantedByContract",
    "conditionalRightsGrantedByContract", "controlViaCompanyRulesOrArticles",
    "controlByLegalFramework", "boardMember", "boardChair", "unknownInterest",
    "unpublishedInterest", "enjoymentAndUseOfAssets", "rightToProfitOrIncomeFromAssets",
    "nominee", "nominator",
)  # fmt: skip
# 0.1/0.2 codes whose letters differ from their 0.4 successor (hyphens are ignored anyway).
LEGACY_INTEREST_TYPES = {
    "influence-or-control": "otherInfluenceOrControl",
    "settlor-of-trust": "settlor",
    "trustee-of-trust": "trustee",
    "protector-of-trust": "protector",
    "beneficiary-of-trust": "beneficiaryOfLegalArrangement",
    "other-influence-or-control-of-trust": "otherInfluenceOrControl",
    "rights-to-surplus-assets": "rightsToSurplusAssetsOnDissolution",
}
DIRECT_OR_INDIRECT = ("direct", "indirect", "unknown")
STATEMENT_TYPES = ("entity", "person", "relationship")
VERSION_STATUSES = ("current", "closed", "superseded", "identical_copy")
PARTY_KINDS = ("entity", "person", "unspecified")

_PROV = PROVENANCE_COLUMNS
_STATUS_DOC = "current | closed (0.4 record whose last statement closed it)"

STG_STATEMENTS = TableSpec(
    schema="staging",
    name="stg_bods_statements",
    grain="one BODS statement as published (one row per raw statement that could be typed)",
    description="The version history of every BODS record / statement chain: each statement "
    "typed (entity, person, relationship), dated, and placed in its chain (current, closed, "
    "superseded, identical copy) following 0.4 recordId/recordStatus/statementDate and 0.1-0.3 "
    "replacesStatements. Statements without id or known type, ids reused with different "
    "content and current relationships whose ends cannot be resolved are in "
    "staging.stg_quarantine.",
    columns=(
        Column("statement_id", "VARCHAR", "statementId (0.4) / statementID (0.1-0.3).", False),
        Column("record_id", "VARCHAR", "recordId (0.4 only)."),
        Column("bods_version", "VARCHAR", "0.1 | 0.2 | 0.3 | 0.4, from the statement's shape.", False),
        Column("statement_type", "VARCHAR", "entity | person | relationship (0.1-0.3 ownershipOrControlStatement = relationship).", False),
        Column("statement_type_published", "VARCHAR", "statementType / recordType as published.", False),
        Column("statement_date", "DATE", "statementDate."),
        Column("record_status", "VARCHAR", "recordStatus (0.4): new | updated | closed."),
        Column("replaces_statement_ids", "VARCHAR[]", "replacesStatements (0.1-0.3)."),
        Column("is_component", "BOOLEAN", "isComponent: part of a wider indirect relationship."),
        Column("chain_id", "VARCHAR", "The record / chain the statement belongs to: recordId (0.4), or the first statementID of its replacesStatements chain (0.1-0.3).", False),
        Column("chain_position", "BIGINT", "1-based position of the statement in its chain (statementDate, file, position).", False),
        Column("current_statement_id", "VARCHAR", "statement_id of the chain's current (or closing) version.", False),
        Column("version_status", "VARCHAR", "current | closed | superseded | identical_copy (same id and content as an earlier copy).", False),
        Column("private_fields_removed", "VARCHAR", "Personal fields removed at ingest (names only)."),
        *_PROV,
    ),
    order_by=("source_file", "source_row"),
)  # fmt: skip

STG_ENTITIES = TableSpec(
    schema="staging",
    name="stg_bods_entities",
    grain="one BODS entity: the current version of an entity record (0.4) or statement chain (0.1-0.3)",
    description="Entities (companies, trusts, states...) with their canonical organisation "
    "reference: Companies House number, other org-id scheme, LEI, else a name-based id.",
    columns=(
        Column("statement_id", "VARCHAR", "statementId / statementID of the current version.", False),
        Column("record_id", "VARCHAR", "recordId (0.4)."),
        Column("chain_id", "VARCHAR", "recordId (0.4) or first statementID of the chain.", False),
        Column("bods_version", "VARCHAR", "0.1 | 0.2 | 0.3 | 0.4.", False),
        Column("entity_name", "VARCHAR", "name, whitespace-normalised."),
        Column("entity_type", "VARCHAR", "entityType (0.4 entityType.type): registeredEntity, legalEntity, arrangement, anonymousEntity, unknownEntity, state, stateBody."),
        Column("entity_subtype", "VARCHAR", "entityType.subtype (0.4) / entitySubtype.generalCategory (0.3)."),
        Column("jurisdiction_code", "VARCHAR", "jurisdiction (0.4) / incorporatedInJurisdiction (0.1-0.3) code."),
        Column("jurisdiction_name", "VARCHAR", "jurisdiction / incorporatedInJurisdiction name."),
        Column("identifiers", "VARCHAR[]", "Org-id identifiers normalised (GB-COH-09990003, XI-LEI-..., NL-KVK-...), in published order, empty and placeholder ids left out."),
        Column("other_identifiers", "VARCHAR[]", "Identifiers without an org-id scheme, as 'schemeName: id' (OpenCorporates, register URLs...)."),
        Column("org_ref", "VARCHAR", "Canonical organisation reference: GB-COH first, other org-id scheme, LEI, else FTNAME- name id, else BODS-ENTITY-<chain_id>.", False),
        Column("org_ref_basis", "VARCHAR", "GB-COH | org-id | LEI | name | statement.", False),
        Column("founding_date", "DATE", "foundingDate (0.4 recordDetails.foundingDate, 0.1-0.3 foundingDate) as a calendar date; NULL when absent or not a full date (then see founding_date_published). Read by marts.red_flags (supplier registered after the tender)."),
        Column("founding_date_published", "VARCHAR", "foundingDate exactly as published (a year alone or an unparseable date stays here only, listed by a warning check)."),
        Column("dissolution_date", "DATE", "dissolutionDate."),
        Column("is_component", "BOOLEAN", "isComponent."),
        Column("statement_date", "DATE", "statementDate of the current version."),
        Column("record_status", "VARCHAR", "recordStatus (0.4)."),
        Column("version_status", "VARCHAR", _STATUS_DOC + ".", False),
        *_PROV,
    ),
    order_by=("org_ref", "statement_id"),
)  # fmt: skip

STG_PERSONS = TableSpec(
    schema="staging",
    name="stg_bods_persons",
    grain="one BODS person: the current version of a person record (0.4) or statement chain (0.1-0.3)",
    description="Natural persons named as owners or controllers: name, nationalities and person "
    "type only. Birth dates, addresses and residences are never stored.",
    columns=(
        Column("statement_id", "VARCHAR", "statementId / statementID of the current version.", False),
        Column("record_id", "VARCHAR", "recordId (0.4)."),
        Column("chain_id", "VARCHAR", "recordId (0.4) or first statementID of the chain.", False),
        Column("bods_version", "VARCHAR", "0.1 | 0.2 | 0.3 | 0.4.", False),
        Column("person_ref", "VARCHAR", "Stable person id: <SCHEME>-<id> of the first identifier with a scheme (e.g. HBT-PERSON-0006, matching the governance register), else BODS-PERSON-<chain_id>.", False),
        Column("person_ref_basis", "VARCHAR", "identifier | statement.", False),
        Column("full_name", "VARCHAR", "fullName of the first individual/legal name (else the first name), or its given, patronymic and family names joined."),
        Column("nationalities", "VARCHAR[]", "Nationality codes (ISO 3166-1 alpha-2 as published; the name when no code)."),
        Column("person_type", "VARCHAR", "personType: knownPerson, anonymousPerson, unknownPerson."),
        Column("is_component", "BOOLEAN", "isComponent."),
        Column("statement_date", "DATE", "statementDate of the current version."),
        Column("record_status", "VARCHAR", "recordStatus (0.4)."),
        Column("version_status", "VARCHAR", _STATUS_DOC + ".", False),
        *_PROV,
    ),
    order_by=("person_ref", "statement_id"),
)  # fmt: skip

STG_RELATIONSHIPS = TableSpec(
    schema="staging",
    name="stg_bods_relationships",
    grain="one interest of the current version of a BODS ownership-or-control statement / relationship record (one row with NULL interest when it lists none)",
    description="Who owns or controls which entity, how (interest type), how much (share range "
    "in percent) and when, with subject and interested party resolved across all BODS files. "
    "Interests failing a rule are in staging.stg_quarantine (staging_table "
    "stg_bods_relationships).",
    columns=(
        Column("relationship_id", "VARCHAR", "<statement_id>#interests/<i> (or #no-interests): the row's key.", False),
        Column("statement_id", "VARCHAR", "statementId / statementID of the relationship's current version.", False),
        Column("record_id", "VARCHAR", "recordId (0.4)."),
        Column("interest_index", "BIGINT", "0-based position in `interests`; NULL when none are listed."),
        Column("subject_statement_id", "VARCHAR", "statement_id of the subject entity's current version.", False),
        Column("subject_org_ref", "VARCHAR", "org_ref of the subject entity.", False),
        Column("subject_name", "VARCHAR", "Name of the subject entity."),
        Column("interested_party_kind", "VARCHAR", "entity | person | unspecified.", False),
        Column("interested_party_statement_id", "VARCHAR", "statement_id of the interested party's current version."),
        Column("interested_party_ref", "VARCHAR", "org_ref (entity) or person_ref (person); NULL when unspecified."),
        Column("interested_party_name", "VARCHAR", "Entity name or person full name."),
        Column("unspecified_reason", "VARCHAR", "Reason given for an unspecified interested party."),
        Column("unspecified_description", "VARCHAR", "Description given for an unspecified interested party."),
        Column("interest_type", "VARCHAR", "Interest type on the BODS 0.4 codelist (an interest without type = unknownInterest).", ),
        Column("interest_type_published", "VARCHAR", "Interest type as published."),
        Column("interest_details", "VARCHAR", "Interest details (local name of the interest)."),
        Column("share_exact", "DOUBLE", "share.exact, percent."),
        Column("share_min", "DOUBLE", "Lower bound of the share, percent (exact, minimum or exclusiveMinimum)."),
        Column("share_max", "DOUBLE", "Upper bound of the share, percent (exact, maximum or exclusiveMaximum)."),
        Column("min_exclusive", "BOOLEAN", "share_min is exclusive (the share is above it).", False),
        Column("max_exclusive", "BOOLEAN", "share_max is exclusive (the share is below it).", False),
        Column("direct_or_indirect", "VARCHAR", "direct | indirect | unknown (0.3/0.4 directOrIndirect, 0.2 interestLevel; absent = unknown)."),
        Column("beneficial_ownership_or_control", "BOOLEAN", "beneficialOwnershipOrControl."),
        Column("start_date", "DATE", "Interest startDate."),
        Column("end_date", "DATE", "Interest endDate, else the date of the statement that closed the record."),
        Column("end_date_basis", "VARCHAR", "endDate | closed record."),
        Column("is_component", "BOOLEAN", "isComponent: a link inside a declared indirect chain."),
        Column("bods_version", "VARCHAR", "0.1 | 0.2 | 0.3 | 0.4.", False),
        Column("statement_date", "DATE", "statementDate of the current version."),
        Column("record_status", "VARCHAR", "recordStatus (0.4)."),
        Column("version_status", "VARCHAR", _STATUS_DOC + ".", False),
        *_PROV,
    ),
    order_by=("statement_id", "interest_index"),
)  # fmt: skip

STG_SPECS = (STG_STATEMENTS, STG_ENTITIES, STG_PERSONS, STG_RELATIONSHIPS)


def _in_set(values: tuple[str, ...]) -> str:
    return "(" + ", ".join(f"'{v}'" for v in values) + ")"


def _letters(sql: str) -> str:
    return f"lower(regexp_replace({sql}, '[^A-Za-z]', '', 'g'))"


def interest_codes() -> dict[str, str]:
    """Letters-only lower-case key -> 0.4 code, for every version's spelling."""
    codes = {c.lower(): c for c in INTEREST_TYPES}
    for legacy, code in LEGACY_INTEREST_TYPES.items():
        codes["".join(ch for ch in legacy.lower() if ch.isalpha())] = code
    return codes


# ---------------------------------------------------------------- statements (history)

_DETAILS = (
    "CASE WHEN {a}.bods_version = '0.4' THEN json_extract({a}.statement_json, '$.recordDetails') "
    "ELSE json({a}.statement_json) END"
)

# 0.4 subject / interestedParty are record ids (or an unspecified object); 0.1-0.3 name the
# describing statements. Read from the statement's details in one parse per function
# (JsonPaths: `_ends_extract(d)` is the select items), {f} = its family.
_END_TEXT = JsonPaths(
    "_end_text",
    {"subject": "$.subject", "subject_entity": "$.subject.describedByEntityStatement",
     "party": "$.interestedParty",
     "party_person": "$.interestedParty.describedByPersonStatement",
     "party_entity": "$.interestedParty.describedByEntityStatement",
     "is_component": "$.isComponent"},
)  # fmt: skip
_END_TYPES = JsonPaths(
    "_end_types",
    {"subject": "$.subject", "party": "$.interestedParty",
     "party_unspecified": "$.interestedParty.unspecified", "details": "$"},
    function="json_type",
)  # fmt: skip


def _ends_extract(details: str) -> str:
    return f"{_END_TEXT.extract(details)}, {_END_TYPES.extract(details)}"


_ENDS_COLUMNS = f"""
  CASE WHEN {{f}} = '0.4' THEN
         CASE WHEN {_END_TYPES["subject"]} = 'VARCHAR' THEN {_END_TEXT["subject"]} END
       ELSE {_END_TEXT["subject_entity"]}
  END AS _subject_ref,
  {{f}} = '0.4' AND {_END_TYPES["subject"]} = 'OBJECT' AS _subject_unspecified,
  CASE WHEN {{f}} = '0.4' THEN
         CASE WHEN {_END_TYPES["party"]} = 'VARCHAR' THEN {_END_TEXT["party"]} END
       ELSE coalesce({_END_TEXT["party_person"]}, {_END_TEXT["party_entity"]})
  END AS _party_ref,
  CASE WHEN {{f}} = '0.4' THEN {_END_TYPES["party"]} = 'OBJECT'
       ELSE {_END_TYPES["party_unspecified"]} = 'OBJECT'
  END AS _party_unspecified"""

_RAW_KEEP = """r.statement_id, r.bods_version, r.statement_type, r.record_id, r.record_status,
    r.statement_date, r.content_hash, r.private_fields_removed, r.source_system, r.source_file,
    r.source_row, r.source_locator, r.file_sha256, r.loaded_at"""

# The statement JSON is parsed here once; later steps carry only what they need.
_CHECKED_SQL = f"""
WITH t0 AS (
  SELECT {_RAW_KEEP},
    CASE WHEN r.statement_type IN ('entityStatement', 'entity') THEN 'entity'
         WHEN r.statement_type IN ('personStatement', 'person') THEN 'person'
         WHEN r.statement_type IN ('ownershipOrControlStatement', 'relationship')
           THEN 'relationship' END AS _type,
    CASE WHEN r.bods_version = '0.4' THEN '0.4' ELSE 'legacy' END AS _family,
    {_DETAILS.format(a="r")} AS _details,
    ft_parse_date(r.statement_date) AS _date,
    -- order by instant where a time is given (several statements of one record per day)
    coalesce(TRY_CAST(r.statement_date AS TIMESTAMPTZ),
             CAST(ft_parse_date(r.statement_date) AS TIMESTAMPTZ)) AS _ts
  FROM {RAW_BODS.qualified} r
), t AS (SELECT t0.*, {_ends_extract("t0._details")} FROM t0)
SELECT t.* EXCLUDE (_details, _end_text, _end_types),
  CASE WHEN t._family = 'legacy'
       THEN json_extract_string(t._details, '$.replacesStatements[*]') END AS _replaces,
  TRY_CAST({_END_TEXT["is_component"]} AS BOOLEAN) AS _is_component,
  {_ENDS_COLUMNS.format(f="t._family")},
  CASE
    WHEN t.statement_id IS NULL THEN 'missing statement id: '
      || CASE WHEN t._family = '0.4' THEN 'statementId' ELSE 'statementID' END
      || ' absent, empty or not a string'
    WHEN t.statement_type IS NULL THEN 'missing statement type: no '
      || CASE WHEN t._family = '0.4' THEN 'recordType' ELSE 'statementType' END
    WHEN t._type IS NULL THEN 'unknown statement type: ' || t.statement_type
    WHEN t._family = '0.4' AND t.record_id IS NULL THEN 'missing recordId'
    WHEN t._family = '0.4' AND t.record_status NOT IN ('new', 'updated', 'closed')
      THEN 'unknown recordStatus: ' || t.record_status
    WHEN t._family = '0.4' AND coalesce({_END_TYPES["details"]}, '') <> 'OBJECT'
      THEN 'missing recordDetails object'
    WHEN t.statement_date IS NOT NULL AND t._date IS NULL
      THEN 'unparseable statementDate: ' || t.statement_date
  END AS _reason
FROM t
"""

_RANKED_SQL = """
SELECT c.*,
  row_number() OVER w AS _copy,
  coalesce(c._reason, CASE WHEN row_number() OVER w > 1 AND c.content_hash <> first_value(c.content_hash) OVER w
    THEN 'statement id reused with different content: ' || c.statement_id || ' kept from '
         || first_value(c.source_file || ' ' || c.source_locator) OVER w END) AS _reason2
FROM _bods_checked c
WINDOW w AS (PARTITION BY c._reason IS NULL, c.statement_id ORDER BY c.source_file, c.source_row)
"""

_CHAIN_SQL = """
CREATE OR REPLACE TEMP TABLE _bods_p AS
  SELECT * FROM _bods_ranked WHERE _reason2 IS NULL AND _copy = 1;
CREATE OR REPLACE TEMP TABLE _bods_edges AS
  SELECT DISTINCT e.new_id, e.old_id FROM (
    SELECT statement_id AS new_id, unnest(_replaces) AS old_id
    FROM _bods_p WHERE _family = 'legacy') e
  JOIN _bods_p o ON o.statement_id = e.old_id AND o._family = 'legacy'
  WHERE e.new_id <> e.old_id;
CREATE OR REPLACE TEMP TABLE _bods_reach AS
  WITH RECURSIVE reach(head_id, statement_id) AS (
    SELECT statement_id, statement_id FROM _bods_p
    WHERE _family = 'legacy' AND statement_id NOT IN (SELECT old_id FROM _bods_edges)
    UNION
    SELECT r.head_id, e.old_id FROM reach r JOIN _bods_edges e ON e.new_id = r.statement_id
  ) SELECT * FROM reach;
CREATE OR REPLACE TEMP TABLE _bods_chain AS
  WITH legacy_pick AS (
    SELECT r.statement_id, r.head_id,
      row_number() OVER (PARTITION BY r.statement_id
        ORDER BY h._ts DESC NULLS LAST, h.source_file DESC, h.source_row DESC) AS n
    FROM _bods_reach r JOIN _bods_p h ON h.statement_id = r.head_id
  ), roots AS (
    SELECT head_id, coalesce(
      min(statement_id) FILTER (WHERE statement_id NOT IN (SELECT new_id FROM _bods_edges)),
      min(statement_id)) AS chain_id
    FROM _bods_reach GROUP BY head_id
  ), legacy AS (
    SELECT p.statement_id, 'legacy' AS _family, ro.chain_id, lp.head_id,
      row_number() OVER (PARTITION BY lp.head_id
        ORDER BY p._ts NULLS FIRST, p.source_file, p.source_row) AS chain_position
    FROM legacy_pick lp JOIN _bods_p p ON p.statement_id = lp.statement_id
    JOIN roots ro ON ro.head_id = lp.head_id
    WHERE lp.n = 1
  ), v04 AS (
    SELECT statement_id, '0.4' AS _family, record_id AS chain_id,
      last_value(statement_id) OVER w AS head_id,
      row_number() OVER (PARTITION BY record_id
        ORDER BY _ts NULLS FIRST, source_file, source_row) AS chain_position
    FROM _bods_p WHERE _family = '0.4'
    WINDOW w AS (PARTITION BY record_id ORDER BY _ts NULLS FIRST, source_file, source_row
                 ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)
  )
  SELECT * FROM legacy UNION ALL SELECT * FROM v04;
CREATE OR REPLACE TEMP TABLE _bods_rejected AS
  SELECT DISTINCT _family, CASE WHEN _family = '0.4' THEN record_id ELSE statement_id END AS ref
  FROM _bods_ranked WHERE _reason2 IS NOT NULL;
CREATE OR REPLACE TEMP TABLE _bods_refs AS
  SELECT DISTINCT _family, chain_id AS ref, head_id FROM _bods_chain WHERE _family = '0.4'
  UNION ALL
  SELECT _family, statement_id, head_id FROM _bods_chain WHERE _family = 'legacy';
"""

_REL_REASONS_SQL = """
SELECT e.statement_id,
  CASE
    WHEN e._subject_unspecified THEN 'subject unspecified: no entity to attach the relationship to'
    WHEN e._subject_ref IS NULL THEN 'relationship without subject'
    WHEN sr.head_id IS NULL THEN 'subject not found: ' || e._subject_ref || CASE
      WHEN qs.ref IS NOT NULL THEN ' was itself quarantined'
      ELSE ' is not a statement or record in any BODS file' END
    WHEN sh._type <> 'entity' THEN 'subject is not an entity: ' || e._subject_ref
      || ' is a ' || sh._type
    WHEN e._party_ref IS NULL AND NOT coalesce(e._party_unspecified, false)
      THEN 'relationship without interestedParty'
    WHEN e._party_ref IS NOT NULL AND pr.head_id IS NULL THEN 'interestedParty not found: '
      || e._party_ref || CASE WHEN qp.ref IS NOT NULL THEN ' was itself quarantined'
                              ELSE ' is not a statement or record in any BODS file' END
    WHEN e._party_ref IS NOT NULL AND ph._type = 'relationship'
      THEN 'interestedParty is a relationship: ' || e._party_ref
  END AS reason
FROM _bods_p e
JOIN _bods_chain c ON c.statement_id = e.statement_id AND c.head_id = e.statement_id
LEFT JOIN _bods_refs sr ON sr._family = e._family AND sr.ref = e._subject_ref
LEFT JOIN _bods_p sh ON sh.statement_id = sr.head_id
LEFT JOIN _bods_refs pr ON pr._family = e._family AND pr.ref = e._party_ref
LEFT JOIN _bods_p ph ON ph.statement_id = pr.head_id
LEFT JOIN _bods_rejected qs ON qs._family = e._family AND qs.ref = e._subject_ref
LEFT JOIN _bods_rejected qp ON qp._family = e._family AND qp.ref = e._party_ref
WHERE e._type = 'relationship'
"""

_FINAL_SQL = """
SELECT k.*, c.chain_id, c.chain_position, c.head_id,
  coalesce(k._reason2,
    CASE WHEN c.head_id IS NULL
      THEN 'replacesStatements cycle: no current version of ' || k.statement_id END,
    rr.reason) AS _final_reason,
  CASE WHEN k._copy > 1 THEN 'identical_copy'
       WHEN c.head_id = k.statement_id
         THEN CASE WHEN k.record_status = 'closed' THEN 'closed' ELSE 'current' END
       ELSE 'superseded' END AS _version_status
FROM _bods_ranked k
LEFT JOIN _bods_chain c ON c.statement_id = k.statement_id AND k._reason2 IS NULL
LEFT JOIN _bods_rel_reasons rr ON rr.statement_id = k.statement_id AND k._reason2 IS NULL
"""


def build_stg_bods_statements(con: duckdb.DuckDBPyConnection) -> tuple[int, int]:
    """Type every raw statement and place it in its version chain. Returns (staged, quarantined)."""
    install_macros(con)
    create_table(con, RAW_BODS, replace=False)
    con.execute(f"CREATE OR REPLACE TEMP TABLE _bods_checked AS {_CHECKED_SQL}")
    con.execute(f"CREATE OR REPLACE TEMP TABLE _bods_ranked AS {_RANKED_SQL}")
    con.execute(_CHAIN_SQL)
    con.execute(f"CREATE OR REPLACE TEMP TABLE _bods_rel_reasons AS {_REL_REASONS_SQL}")
    con.execute(f"CREATE OR REPLACE TEMP TABLE _bods_final AS {_FINAL_SQL}")
    quarantined = replace_quarantine(
        con,
        SOURCE_SYSTEM,
        STG_STATEMENTS.name,
        """SELECT source_file, file_sha256, source_row, source_locator,
             statement_id AS record_id, _final_reason AS reason
           FROM _bods_final WHERE _final_reason IS NOT NULL""",
    )
    select = """
    SELECT statement_id, record_id, bods_version, _type AS statement_type,
      statement_type AS statement_type_published, _date AS statement_date, record_status,
      CASE WHEN len(_replaces) > 0 THEN _replaces END AS replaces_statement_ids,
      _is_component AS is_component,
      chain_id, chain_position, head_id AS current_statement_id,
      _version_status AS version_status, private_fields_removed,
      source_system, source_file, source_row, source_locator, file_sha256, loaded_at
    FROM _bods_final WHERE _final_reason IS NULL
    """
    staged = rebuild_table(con, STG_STATEMENTS, select)
    for t in (
        "checked",
        "ranked",
        "p",
        "edges",
        "reach",
        "chain",
        "rejected",
        "refs",
        "rel_reasons",
        "final",
    ):
        con.execute(f"DROP TABLE IF EXISTS _bods_{t}")
    return staged, quarantined


# ---------------------------------------------------------------- current versions

_CURRENT_SQL = f"""
SELECT s.*, {_DETAILS.format(a="r")} AS _details,
  CASE WHEN s.bods_version = '0.4' THEN '0.4' ELSE 'legacy' END AS _family
FROM {STG_STATEMENTS.qualified} s
JOIN {RAW_BODS.qualified} r ON r.source_file = s.source_file AND r.source_row = s.source_row
WHERE s.version_status IN ('current', 'closed') AND s.statement_type = '{{type}}'
"""

_COMMON_OUT = """statement_date, record_status, version_status,
  source_system, source_file, source_row, source_locator, file_sha256, loaded_at"""


# BODS 0.4 paths, and the 0.3 ones (_v03) that hold the same facts
_ENTITY_TEXT = JsonPaths(
    "v",
    {"name": "$.name", "type": "$.entityType.type", "type_text": "$.entityType",
     "subtype": "$.entityType.subtype", "subtype_v03": "$.entitySubtype.generalCategory",
     "jurisdiction_code": "$.jurisdiction.code",
     "jurisdiction_code_v03": "$.incorporatedInJurisdiction.code",
     "jurisdiction_name": "$.jurisdiction.name",
     "jurisdiction_name_v03": "$.incorporatedInJurisdiction.name",
     "founded": "$.foundingDate", "dissolved": "$.dissolutionDate"},
)  # fmt: skip


def build_stg_bods_entities(con: duckdb.DuckDBPyConnection) -> int:
    install_macros(con)
    con.execute("CREATE OR REPLACE TEMP TABLE _bods_ent AS " + _CURRENT_SQL.format(type="entity"))
    con.execute(r"""
    CREATE OR REPLACE TEMP TABLE _bods_ent_ids AS
    WITH raw_ids AS (
      SELECT statement_id, unnest(json_extract(_details, '$.identifiers[*]')) AS i,
             generate_subscripts(json_extract(_details, '$.identifiers[*]'), 1) AS idx
      FROM _bods_ent
    ), parts AS (
      SELECT statement_id, idx,
        nullif(upper(trim(json_extract_string(i, '$.scheme'))), '') AS scheme,
        nullif(trim(json_extract_string(i, '$.schemeName')), '') AS scheme_name,
        nullif(trim(json_extract_string(i, '$.id')), '') AS id_text
      FROM raw_ids
    ), kinds AS (
      SELECT *, CASE
        WHEN scheme = 'GB-COH' OR (scheme IS NULL
             AND regexp_matches(lower(scheme_name), 'companies\s*house')) THEN 'GB-COH'
        WHEN scheme = 'XI-LEI' OR (scheme IS NULL AND regexp_full_match(lower(scheme_name),
             '(lei|legal entity identifier|gleif.*|global legal entity identifier.*)')) THEN 'XI-LEI'
        WHEN regexp_full_match(scheme, '[A-Z]{2}-[A-Z0-9]+') THEN scheme
      END AS org_scheme
      FROM parts
    )
    SELECT *,
      CASE WHEN org_scheme IS NOT NULL THEN ft_org_id(
        CASE WHEN starts_with(upper(id_text), org_scheme || '-') THEN id_text
             ELSE org_scheme || '-' || id_text END) END AS org_id,
      CASE org_scheme WHEN 'GB-COH' THEN 1 WHEN 'XI-LEI' THEN 3 ELSE 2 END AS prio
    FROM kinds
    """)
    v = _ENTITY_TEXT
    select = f"""
    WITH ids AS (
      SELECT statement_id,
        list(org_id ORDER BY idx) FILTER (WHERE org_id IS NOT NULL AND first_idx) AS identifiers,
        first(org_id ORDER BY prio, idx) FILTER (WHERE org_id IS NOT NULL) AS best_id,
        first(org_scheme ORDER BY prio, idx) FILTER (WHERE org_id IS NOT NULL) AS best_scheme,
        list(coalesce(scheme, scheme_name, '(no scheme)') || ': ' || id_text ORDER BY idx)
          FILTER (WHERE org_id IS NULL AND org_scheme IS NULL AND id_text IS NOT NULL)
          AS other_identifiers
      FROM (SELECT *, row_number() OVER (PARTITION BY statement_id, org_id ORDER BY idx) = 1
                 AS first_idx FROM _bods_ent_ids)
      GROUP BY statement_id
    ), parsed AS (  -- one parse of each statement for all its paths (JsonPaths)
      SELECT b.*, {v.extract("b._details")} FROM _bods_ent b
    ), e AS (
      SELECT p.*, ft_clean_name({v["name"]}) AS _name,
        coalesce({v["type"]},
          CASE WHEN json_type(p._details, '$.entityType') = 'VARCHAR' THEN {v["type_text"]} END)
          AS _etype
      FROM parsed p
    )
    SELECT e.statement_id, e.record_id, e.chain_id, e.bods_version,
      e._name AS entity_name, e._etype AS entity_type,
      coalesce({v["subtype"]}, {v["subtype_v03"]}) AS entity_subtype,
      coalesce({v["jurisdiction_code"]}, {v["jurisdiction_code_v03"]}) AS jurisdiction_code,
      coalesce({v["jurisdiction_name"]}, {v["jurisdiction_name_v03"]}) AS jurisdiction_name,
      coalesce(i.identifiers, []) AS identifiers, coalesce(i.other_identifiers, []) AS other_identifiers,
      coalesce(i.best_id,
        CASE WHEN coalesce(e._etype, '') NOT IN ('anonymousEntity', 'unknownEntity')
             THEN ft_name_org_id(e._name) END,
        'BODS-ENTITY-' || e.chain_id) AS org_ref,
      CASE WHEN i.best_id IS NOT NULL THEN
             CASE i.best_scheme WHEN 'GB-COH' THEN 'GB-COH' WHEN 'XI-LEI' THEN 'LEI' ELSE 'org-id' END
           WHEN coalesce(e._etype, '') NOT IN ('anonymousEntity', 'unknownEntity')
                AND ft_name_org_id(e._name) IS NOT NULL THEN 'name'
           ELSE 'statement' END AS org_ref_basis,
      ft_parse_date({v["founded"]}) AS founding_date,
      nullif(trim({v["founded"]}), '') AS founding_date_published,
      ft_parse_date({v["dissolved"]}) AS dissolution_date,
      e.is_component, {_COMMON_OUT}
    FROM e LEFT JOIN ids i ON i.statement_id = e.statement_id
    """
    staged = rebuild_table(con, STG_ENTITIES, select)
    con.execute("DROP TABLE _bods_ent; DROP TABLE _bods_ent_ids")
    return staged


def build_stg_bods_persons(con: duckdb.DuckDBPyConnection) -> int:
    install_macros(con)
    con.execute("CREATE OR REPLACE TEMP TABLE _bods_per AS " + _CURRENT_SQL.format(type="person"))
    select = f"""
    WITH names AS (
      SELECT statement_id, idx, json_extract_string(n, '$.type') AS ntype,
        coalesce(ft_clean_name(json_extract_string(n, '$.fullName')), ft_clean_name(concat_ws(' ',
          json_extract_string(n, '$.givenName'), json_extract_string(n, '$.patronymicName'),
          json_extract_string(n, '$.familyName')))) AS full_name
      FROM (SELECT statement_id, unnest(json_extract(_details, '$.names[*]')) AS n,
                   generate_subscripts(json_extract(_details, '$.names[*]'), 1) AS idx
            FROM _bods_per)
    ), best_name AS (
      SELECT statement_id, first(full_name ORDER BY CASE WHEN ntype IN ('individual', 'legal')
        THEN 0 ELSE 1 END, idx) FILTER (WHERE full_name IS NOT NULL) AS full_name
      FROM names GROUP BY statement_id
    ), nats AS (
      SELECT statement_id, list(nat ORDER BY idx) FILTER (WHERE nat IS NOT NULL) AS nationalities
      FROM (SELECT statement_id, idx,
              coalesce(nullif(upper(trim(json_extract_string(n, '$.code'))), ''),
                       nullif(trim(json_extract_string(n, '$.name')), '')) AS nat
            FROM (SELECT statement_id, unnest(json_extract(_details, '$.nationalities[*]')) AS n,
                    generate_subscripts(json_extract(_details, '$.nationalities[*]'), 1) AS idx
                  FROM _bods_per))
      GROUP BY statement_id
    ), pids AS (
      SELECT statement_id, first(pid ORDER BY idx) FILTER (WHERE pid IS NOT NULL) AS pid
      FROM (SELECT statement_id, idx, ft_org_id(
              nullif(upper(trim(json_extract_string(i, '$.scheme'))), '') || '-'
              || nullif(trim(json_extract_string(i, '$.id')), '')) AS pid
            FROM (SELECT statement_id, unnest(json_extract(_details, '$.identifiers[*]')) AS i,
                    generate_subscripts(json_extract(_details, '$.identifiers[*]'), 1) AS idx
                  FROM _bods_per))
      GROUP BY statement_id
    )
    SELECT p.statement_id, p.record_id, p.chain_id, p.bods_version,
      coalesce(i.pid, 'BODS-PERSON-' || p.chain_id) AS person_ref,
      CASE WHEN i.pid IS NOT NULL THEN 'identifier' ELSE 'statement' END AS person_ref_basis,
      n.full_name, coalesce(x.nationalities, []) AS nationalities,
      json_extract_string(p._details, '$.personType') AS person_type,
      p.is_component, {_COMMON_OUT}
    FROM _bods_per p
    LEFT JOIN best_name n ON n.statement_id = p.statement_id
    LEFT JOIN nats x ON x.statement_id = p.statement_id
    LEFT JOIN pids i ON i.statement_id = p.statement_id
    """
    staged = rebuild_table(con, STG_PERSONS, select)
    con.execute("DROP TABLE _bods_per")
    return staged


# ---------------------------------------------------------------- relationships x interests


# the share's bounds, read in one parse per function (JsonPaths)
_SHARE_FIELDS = ("exact", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")
_SHARE_TEXT = JsonPaths("_share_text", {f: f"$.{f}" for f in _SHARE_FIELDS})
_SHARE_TYPES = JsonPaths("_share_types", {f: f"$.{f}" for f in _SHARE_FIELDS}, function="json_type")


def _num(field: str) -> str:
    return f"TRY_CAST({_SHARE_TEXT[field]} AS DOUBLE)"


def _type(field: str) -> str:
    return _SHARE_TYPES[field]


def _given(field: str) -> str:
    return f"({_type(field)} IS NOT NULL AND {_type(field)} <> 'NULL')"


def _bounds_sql() -> str:
    """share_min/max and exclusivity from exact, minimum/maximum and both styles of
    exclusiveMinimum/Maximum (0.3/0.4 numbers; 0.1/0.2 booleans flagging minimum/maximum).
    Reads the lists `_share_text` and `_share_types` (`_SHARE_TEXT`/`_SHARE_TYPES.extract`)."""
    xmin_num = (
        f"CASE WHEN {_type('exclusiveMinimum')} <> 'BOOLEAN' THEN {_num('exclusiveMinimum')} END"
    )
    xmax_num = (
        f"CASE WHEN {_type('exclusiveMaximum')} <> 'BOOLEAN' THEN {_num('exclusiveMaximum')} END"
    )
    xmin_flag = f"CASE WHEN {_type('exclusiveMinimum')} = 'BOOLEAN' THEN {_SHARE_TEXT['exclusiveMinimum']}::BOOLEAN END"
    xmax_flag = f"CASE WHEN {_type('exclusiveMaximum')} = 'BOOLEAN' THEN {_SHARE_TEXT['exclusiveMaximum']}::BOOLEAN END"
    return f"""
      {_num("exact")} AS _exact, {_num("minimum")} AS _minimum, {_num("maximum")} AS _maximum,
      {xmin_num} AS _xmin, {xmax_num} AS _xmax, {xmin_flag} AS _xmin_flag, {xmax_flag} AS _xmax_flag,
      (({_given("exact")} AND {_num("exact")} IS NULL)
        OR ({_given("minimum")} AND {_num("minimum")} IS NULL)
        OR ({_given("maximum")} AND {_num("maximum")} IS NULL)
        OR ({_given("exclusiveMinimum")} AND {_type("exclusiveMinimum")} <> 'BOOLEAN'
            AND {_num("exclusiveMinimum")} IS NULL)
        OR ({_given("exclusiveMaximum")} AND {_type("exclusiveMaximum")} <> 'BOOLEAN'
            AND {_num("exclusiveMaximum")} IS NULL)) AS _share_unparseable"""


_INTEREST_TEXT = JsonPaths(
    "_interest_text",
    {"type": "$.type", "direct_or_indirect": "$.directOrIndirect",
     "interest_level": "$.interestLevel", "start": "$.startDate", "end": "$.endDate"},
)  # fmt: skip


_INTERESTS_SQL = """
SELECT c.*, i.interest, i.idx
FROM _bods_rel c
JOIN (SELECT statement_id, unnest(json_extract(_details, '$.interests[*]')) AS interest,
             generate_subscripts(json_extract(_details, '$.interests[*]'), 1) - 1 AS idx
      FROM _bods_rel) i ON i.statement_id = c.statement_id
UNION ALL
SELECT c.*, NULL::JSON AS interest, NULL::BIGINT AS idx
FROM _bods_rel c
WHERE coalesce(len(json_extract(c._details, '$.interests[*]')), 0) = 0
"""


def build_stg_bods_relationships(con: duckdb.DuckDBPyConnection) -> tuple[int, int]:
    """Current relationships x interests, ends resolved. Returns (staged, quarantined)."""
    install_macros(con)
    codes = ", ".join(f"('{k}', '{v}')" for k, v in sorted(interest_codes().items()))
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE _bods_codes AS SELECT * FROM (VALUES {codes}) t(key, code)"
    )
    ends = _ENDS_COLUMNS.format(f="x._family")
    con.execute(f"""
    CREATE OR REPLACE TEMP TABLE _bods_rel AS
    SELECT x.* EXCLUDE (_end_text, _end_types), {ends},
      CASE WHEN x._family = '0.4' THEN json_extract(x._details, '$.interestedParty')
           ELSE json_extract(x._details, '$.interestedParty.unspecified') END AS _unspecified
    FROM (SELECT y.*, {_ends_extract("y._details")}
          FROM ({_CURRENT_SQL.format(type="relationship")}) y) x
    """)
    con.execute(f"""
    CREATE OR REPLACE TEMP TABLE _bods_lookup AS
    SELECT DISTINCT CASE WHEN bods_version = '0.4' THEN '0.4' ELSE 'legacy' END AS _family,
      CASE WHEN bods_version = '0.4' THEN chain_id ELSE statement_id END AS ref,
      current_statement_id AS head_id
    FROM {STG_STATEMENTS.qualified}
    """)
    con.execute(f"""
    CREATE OR REPLACE TEMP TABLE _bods_int AS
    WITH base AS ({_INTERESTS_SQL}),
    texts AS (SELECT b.*, {_INTEREST_TEXT.extract("b.interest")} FROM base b),
    shares AS (
      SELECT b.* EXCLUDE (_interest_text), json_extract(b.interest, '$.share') AS _share,
        {_INTEREST_TEXT["type"]} AS _type_pub,
        coalesce({_INTEREST_TEXT["direct_or_indirect"]},
                 {_INTEREST_TEXT["interest_level"]}) AS _dir_pub,
        {_INTEREST_TEXT["start"]} AS _start_pub, {_INTEREST_TEXT["end"]} AS _end_pub
      FROM texts b
    ),
    typed AS (
      SELECT b.*, {_SHARE_TEXT.extract("b._share")}, {_SHARE_TYPES.extract("b._share")}
      FROM shares b
    )
    SELECT t.*, k.code AS _code, {_bounds_sql()},
      ft_parse_date(t._start_pub) AS _start, ft_parse_date(t._end_pub) AS _end_given
    FROM typed t LEFT JOIN _bods_codes k ON k.key = {_letters("t._type_pub")}
    """)
    con.execute("""
    CREATE OR REPLACE TEMP TABLE _bods_int2 AS
    WITH b AS (
      SELECT *,
        CASE WHEN _exact IS NOT NULL THEN _exact
             WHEN _minimum IS NOT NULL AND _xmin IS NOT NULL THEN greatest(_minimum, _xmin)
             ELSE coalesce(_minimum, _xmin) END AS _smin,
        CASE WHEN _exact IS NOT NULL THEN false
             WHEN _xmin IS NOT NULL AND (_minimum IS NULL OR _xmin >= _minimum) THEN true
             WHEN _minimum IS NOT NULL THEN coalesce(_xmin_flag, false)
             ELSE false END AS _smin_x,
        CASE WHEN _exact IS NOT NULL THEN _exact
             WHEN _maximum IS NOT NULL AND _xmax IS NOT NULL THEN least(_maximum, _xmax)
             ELSE coalesce(_maximum, _xmax) END AS _smax,
        CASE WHEN _exact IS NOT NULL THEN false
             WHEN _xmax IS NOT NULL AND (_maximum IS NULL OR _xmax <= _maximum) THEN true
             WHEN _maximum IS NOT NULL THEN coalesce(_xmax_flag, false)
             ELSE false END AS _smax_x,
        coalesce(_end_given, CASE WHEN version_status = 'closed' THEN statement_date END) AS _end,
        CASE WHEN interest IS NULL THEN NULL ELSE lower(trim(coalesce(_dir_pub, 'unknown'))) END
          AS _dir
      FROM _bods_int
    )
    SELECT *,
      CASE
        WHEN interest IS NOT NULL AND json_type(interest) <> 'OBJECT'
          THEN 'interest is not a JSON object: ' || CAST(interest AS VARCHAR)
        WHEN _type_pub IS NOT NULL AND _code IS NULL THEN 'unknown interest type: ' || _type_pub
        WHEN _dir NOT IN ('direct', 'indirect', 'unknown')
          THEN 'invalid directOrIndirect: ' || _dir_pub
        WHEN _share IS NOT NULL AND json_type(_share) NOT IN ('OBJECT', 'NULL')
          THEN 'share is not an object: ' || CAST(_share AS VARCHAR)
        WHEN _share_unparseable THEN 'unparseable share: ' || CAST(_share AS VARCHAR)
        WHEN least(_exact, _minimum, _maximum, _xmin, _xmax) < 0
          OR greatest(_exact, _minimum, _maximum, _xmin, _xmax) > 100
          THEN 'share outside 0-100 percent: ' || CAST(_share AS VARCHAR)
        WHEN _exact IS NOT NULL AND (_exact < _minimum OR _exact > _maximum
                                     OR _exact <= _xmin OR _exact >= _xmax)
          THEN 'share exact outside its minimum/maximum: ' || CAST(_share AS VARCHAR)
        WHEN _smin > _smax OR (_smin = _smax AND (_smin_x OR _smax_x))
          THEN 'share minimum above maximum: ' || CAST(_share AS VARCHAR)
        WHEN _start_pub IS NOT NULL AND _start IS NULL THEN 'unparseable startDate: ' || _start_pub
        WHEN _end_pub IS NOT NULL AND _end_given IS NULL THEN 'unparseable endDate: ' || _end_pub
        WHEN _end < _start THEN 'endDate before startDate: ' || CAST(_end AS VARCHAR) || ' < '
          || CAST(_start AS VARCHAR)
          || CASE WHEN _end_given IS NULL THEN ' (record closed)' ELSE '' END
      END AS _reason,
      statement_id || CASE WHEN idx IS NULL THEN '#no-interests'
                           ELSE '#interests/' || CAST(idx AS VARCHAR) END AS _rid,
      source_locator || CASE WHEN idx IS NULL THEN ''
        ELSE CASE WHEN bods_version = '0.4' THEN '.recordDetails' ELSE '' END
             || '.interests[' || CAST(idx AS VARCHAR) || ']' END AS _loc
    FROM b
    """)
    quarantined = replace_quarantine(
        con,
        SOURCE_SYSTEM,
        STG_RELATIONSHIPS.name,
        """SELECT source_file, file_sha256, source_row, _loc AS source_locator,
             _rid AS record_id, _reason AS reason
           FROM _bods_int2 WHERE _reason IS NOT NULL""",
    )
    select = f"""
    SELECT x._rid AS relationship_id, x.statement_id, x.record_id, x.idx AS interest_index,
      se.statement_id AS subject_statement_id, se.org_ref AS subject_org_ref,
      se.entity_name AS subject_name,
      CASE WHEN pe.statement_id IS NOT NULL THEN 'entity'
           WHEN pp.statement_id IS NOT NULL THEN 'person' ELSE 'unspecified' END
        AS interested_party_kind,
      coalesce(pe.statement_id, pp.statement_id) AS interested_party_statement_id,
      coalesce(pe.org_ref, pp.person_ref) AS interested_party_ref,
      coalesce(pe.entity_name, pp.full_name) AS interested_party_name,
      CASE WHEN x._party_ref IS NULL THEN json_extract_string(x._unspecified, '$.reason') END
        AS unspecified_reason,
      CASE WHEN x._party_ref IS NULL THEN json_extract_string(x._unspecified, '$.description') END
        AS unspecified_description,
      CASE WHEN x.interest IS NOT NULL THEN coalesce(x._code, 'unknownInterest') END
        AS interest_type,
      x._type_pub AS interest_type_published,
      json_extract_string(x.interest, '$.details') AS interest_details,
      x._exact AS share_exact, x._smin AS share_min, x._smax AS share_max,
      x._smin_x AS min_exclusive, x._smax_x AS max_exclusive,
      x._dir AS direct_or_indirect,
      TRY_CAST(json_extract_string(x.interest, '$.beneficialOwnershipOrControl') AS BOOLEAN)
        AS beneficial_ownership_or_control,
      x._start AS start_date, x._end AS end_date,
      CASE WHEN x._end_given IS NOT NULL THEN 'endDate'
           WHEN x._end IS NOT NULL THEN 'closed record' END AS end_date_basis,
      x.is_component, x.bods_version, x.statement_date, x.record_status, x.version_status,
      x.source_system, x.source_file, x.source_row, x._loc AS source_locator, x.file_sha256,
      x.loaded_at
    FROM _bods_int2 x
    JOIN _bods_lookup sl ON sl._family = x._family AND sl.ref = x._subject_ref
    JOIN {STG_ENTITIES.qualified} se ON se.statement_id = sl.head_id
    LEFT JOIN _bods_lookup pl ON pl._family = x._family AND pl.ref = x._party_ref
    LEFT JOIN {STG_ENTITIES.qualified} pe ON pe.statement_id = pl.head_id
    LEFT JOIN {STG_PERSONS.qualified} pp ON pp.statement_id = pl.head_id
    WHERE x._reason IS NULL
    """
    staged = rebuild_table(con, STG_RELATIONSHIPS, select)
    for t in ("codes", "rel", "lookup", "int", "int2"):
        con.execute(f"DROP TABLE IF EXISTS _bods_{t}")
    return staged, quarantined


def build_stg_bods(con: duckdb.DuckDBPyConnection) -> dict[str, tuple[int, int]]:
    """All four tables in dependency order: {table: (staged, quarantined)}."""
    statements = build_stg_bods_statements(con)
    entities = build_stg_bods_entities(con)
    persons = build_stg_bods_persons(con)
    relationships = build_stg_bods_relationships(con)
    return {
        STG_STATEMENTS.name: statements,
        STG_ENTITIES.name: (entities, 0),
        STG_PERSONS.name: (persons, 0),
        STG_RELATIONSHIPS.name: relationships,
    }


# ---------------------------------------------------------------- Dagster wiring

_TAGS = {"source_system": SOURCE_SYSTEM}


def _asset(spec: TableSpec, deps: list[TableSpec]) -> Any:
    return dg.asset(
        key=spec.asset_key,
        group_name="staging",
        kinds={"duckdb", "sql"},
        description=spec.doc,
        deps=[d.asset_key for d in deps],
        tags=_TAGS,
    )


def _result(
    context: dg.AssetExecutionContext,
    con: duckdb.DuckDBPyConnection,
    spec: TableSpec,
    staged: int,
    quarantined: int | None = None,
) -> dg.MaterializeResult:
    extra: dict[str, object] = {}
    note = ""
    if quarantined is not None:
        extra["rows_quarantined"] = quarantined
        note = f", {quarantined} quarantined (see {STG_QUARANTINE.qualified})"
    context.log.info(f"{spec.qualified}: {staged} rows staged{note}")
    return materialize_result(con, spec, extra)


@_asset(STG_STATEMENTS, [RAW_BODS])
@skip_unchanged
def stg_bods_statements(
    context: dg.AssetExecutionContext, duckdb: DuckDBResource
) -> dg.MaterializeResult:
    with duckdb.get_connection() as con:
        staged, quarantined = build_stg_bods_statements(con)
        return _result(context, con, STG_STATEMENTS, staged, quarantined)


@_asset(STG_ENTITIES, [RAW_BODS, STG_STATEMENTS])
@skip_unchanged
def stg_bods_entities(
    context: dg.AssetExecutionContext, duckdb: DuckDBResource
) -> dg.MaterializeResult:
    with duckdb.get_connection() as con:
        return _result(context, con, STG_ENTITIES, build_stg_bods_entities(con))


@_asset(STG_PERSONS, [RAW_BODS, STG_STATEMENTS])
@skip_unchanged
def stg_bods_persons(
    context: dg.AssetExecutionContext, duckdb: DuckDBResource
) -> dg.MaterializeResult:
    with duckdb.get_connection() as con:
        return _result(context, con, STG_PERSONS, build_stg_bods_persons(con))


@_asset(STG_RELATIONSHIPS, [RAW_BODS, STG_STATEMENTS, STG_ENTITIES, STG_PERSONS])
@skip_unchanged
def stg_bods_relationships(
    context: dg.AssetExecutionContext, duckdb: DuckDBResource
) -> dg.MaterializeResult:
    with duckdb.get_connection() as con:
        staged, quarantined = build_stg_bods_relationships(con)
        return _result(context, con, STG_RELATIONSHIPS, staged, quarantined)


# `raw.raw_bods_statements` reconciles per file against the statement history; interests
# quarantined one by one are reported under staging_table stg_bods_relationships.
STAGING_PAIRS = (StagingPair(SOURCE_SYSTEM, RAW_BODS, STG_STATEMENTS),)

# Control edges: every interest of the current version of every relationship whose interested
# party is a known entity or person. Ended relationships (endDate, or a closed 0.4 record) are
# included with end_date set, so control over time stays visible: filter on end_date for
# control "today". direct_or_indirect = 'indirect' rows restate a chain whose direct links are
# (usually) also present: walk direct/unknown edges to avoid counting a chain twice.
OWNERSHIP_DEPS = (STG_RELATIONSHIPS,)
OWNERSHIP_COLUMNS = (
    "subject_org_ref", "subject_name", "controller_ref", "controller_name", "controller_kind",
    "interest_type", "share_min", "share_max", "min_exclusive", "max_exclusive",
    "direct_or_indirect", "start_date", "end_date", "source_system", "source_file",
    "source_record_id",
)  # fmt: skip
# founding dates of entities (read by marts.red_flags: suppliers registered after the tender)
FOUNDING_DEPS = (STG_ENTITIES,)
FOUNDING_SQL = f"""
SELECT org_ref, founding_date, source_system, source_file, statement_id AS source_record_id
FROM {STG_ENTITIES.qualified}
WHERE founding_date IS NOT NULL
"""

OWNERSHIP_SQL = f"""
SELECT subject_org_ref, subject_name, interested_party_ref AS controller_ref,
  interested_party_name AS controller_name, interested_party_kind AS controller_kind,
  coalesce(interest_type, 'unknownInterest') AS interest_type,
  share_min, share_max, min_exclusive, max_exclusive, direct_or_indirect, start_date, end_date,
  source_system, source_file, relationship_id AS source_record_id
FROM {STG_RELATIONSHIPS.qualified}
WHERE interested_party_kind IN ('entity', 'person')
"""
