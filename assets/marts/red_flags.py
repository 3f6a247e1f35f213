"""`marts.red_flags`: findings an auditor would look into, each with its evidence trail.

- related_party_award: the supplier of a contract is controlled (itself, or up its ownership
  and control chain) by someone who sits on the buying side: an owner, board member, lead or
  signatory of the partnership that bought the contract or runs the project it belongs to.
- common_controller_winner_funder: one party controls both a project's funder and a supplier
  that won a contract of that project.
- single_bidder_award: a contract awarded after a procedure that received one tender.
- regranting_double_count: an organisation received money and granted money onward in the
  data; adding both flows up by level counts the regranted euros twice.
- common_controller_bidders: one party controls (itself, or up the ownership and control chains)
  two or more bidders of one tender. Bidders are the OCDS parties with role `tenderer`; TED
  award notices name only the winners, so TED tenders never have a bidder list here.
- supplier_registered_after_tender: the supplier's founding date (BODS `foundingDate`) is after
  the tender date: OCDS `tender.tenderPeriod.startDate`, else its `endDate`, else the award
  date (TED: the award date). High severity when the supplier did not exist at the award date
  either. Suppliers without a founding date, or contracts without any date, are never flagged.

Control chains are read as they stand today (current edges), like ultimate_controllers.
"""

import functools
import re

import dagster as dg
import duckdb
from dagster_duckdb import DuckDBResource

from assets.common.fingerprint import skip_unchanged
from assets.common.money import AMOUNT_TYPE
from assets.common.slices import Slice, SliceRefresh, refresh_slices, tables_in
from assets.common.tables import Column, TableSpec, materialize_result
from assets.intermediate.int_control_edges import INT_CONTROL_EDGES, ownership_modules
from assets.intermediate.int_org_identity import INT_ORG_IDENTITY, canonical_org_id_sql
from assets.intermediate.int_procurement_awards import (
    INT_PROCUREMENT_AWARDS,
    contract_project_links_sql,
)
from assets.marts.core import MONEY_FLOWS
from assets.staging import stg_governance, stg_ocds

RED_FLAGS = TableSpec(
    schema="marts",
    name="red_flags",
    grain="one finding (flag type x subject x related party)",
    description="Findings an auditor would look into: related-party awards, common controllers "
    "of a winner and a funder or of several bidders of one tender, single-bidder awards, "
    "suppliers registered after the tender date and money counted twice through regranting, "
    "each with the path that connects the parties and the source records.",
    columns=(
        Column("flag_id", "VARCHAR", "Stable id: flag type + subject + related party.", False),
        Column("flag_type", "VARCHAR", "related_party_award (supplier controlled by an owner, board member, lead or signatory of the buying side) | common_controller_winner_funder (one party controls a project's funder and a supplier of it) | common_controller_bidders (one party controls two or more bidders of one tender) | single_bidder_award (one tender received) | supplier_registered_after_tender (supplier founded after the tender date) | regranting_double_count (money received and granted onward).", False),
        Column("severity", "VARCHAR", "high | medium | low.", False),
        Column("subject_type", "VARCHAR", "contract | tender | flow | organisation.", False),
        Column("subject_id", "VARCHAR", "The contract award (contract_award_id), tender (OCDS ocid), flow or organisation flagged.", False),
        Column("project_id", "VARCHAR", "Governance project concerned, if known."),
        Column("related_party_id", "VARCHAR", "Person or organisation connecting both sides (the common controller; for single_bidder_award and supplier_registered_after_tender the supplier)."),
        Column("related_party_name", "VARCHAR", "Its name."),
        Column("amount_eur", AMOUNT_TYPE, "Money concerned, in EUR (for a tender: its awards added up)."),
        Column("description", "VARCHAR", "The finding in one sentence.", False),
        Column("path", "VARCHAR", "How the parties connect, e.g. 'supplier <- holding <- person (board member of buyer)'; for common_controller_bidders one chain per bidder with each link's basis and share, separated by ' | '."),
        Column("evidence", "VARCHAR[]", "Source records behind the finding.", False),
    ),
    order_by=("flag_type", "subject_id", "related_party_id"),
)  # fmt: skip

_EDGES = INT_CONTROL_EDGES.qualified
_CONTRACTS = INT_PROCUREMENT_AWARDS.qualified

# parties controlling a node: everyone up its current ownership/control chains, with each
# link's basis and share and the share multiplied along the chain (NULL as soon as a link is
# not an ownership share or its share is unknown); walked once, read by every flag
_SHARE_CHAIN = f"""
WITH RECURSIVE ctrl AS (
  SELECT controlled_id, controller_id, controller_name,
         CAST(CASE WHEN control_basis = 'ownership' THEN share_min END AS DECIMAL(18,6)) AS smin,
         CAST(CASE WHEN control_basis = 'ownership' THEN share_max END AS DECIMAL(18,6)) AS smax,
         ' (' || replace(control_basis, '_', ' ')
           || CASE WHEN share_min IS NULL AND share_max IS NULL THEN ''
                   WHEN share_min IS NOT DISTINCT FROM share_max THEN ' ' || ft_pct(share_min) || '%'
                   ELSE ' ' || coalesce(ft_pct(share_min), '?') || '-'
                        || coalesce(ft_pct(share_max), '?') || '%' END || ')' AS label,
         source_system || ':' || source_file || ':' || source_record_id AS ev
  FROM {_EDGES}
  WHERE control_basis IN ('ownership', 'voting_rights', 'board_appointment',
                          'senior_managing_official', 'other_influence')
    AND (valid_to IS NULL OR valid_to >= current_date)
),
up AS (
  SELECT controlled_id AS start_id, controller_id AS node, controller_name AS node_name,
         [controlled_id, controller_id] AS path, controlled_id || ' <- ' || controller_id || label AS path_text,
         [ev] AS evidence, 1 AS depth, smin, smax
  FROM ctrl
  UNION ALL
  SELECT u.start_id, c.controller_id, c.controller_name, list_append(u.path, c.controller_id),
         u.path_text || ' <- ' || c.controller_id || c.label, list_append(u.evidence, c.ev),
         u.depth + 1, CAST(u.smin * c.smin / 100 AS DECIMAL(18,6)),
         CAST(u.smax * c.smax / 100 AS DECIMAL(18,6))
  FROM up u JOIN ctrl c ON c.controlled_id = u.node
  WHERE NOT list_contains(u.path, c.controller_id) AND u.depth < 20
)
SELECT start_id, node, node_name, path, path_text, evidence, depth, smin, smax FROM up
"""


# bidders of a tender: OCDS parties with role tenderer (inline tender.tenderers carry it too)
_BIDDERS = f"""
SELECT DISTINCT ON (b.ocid, bidder_id)
  b.ocid AS process_id, {canonical_org_id_sql("b.party_org_ref")} AS bidder_id,
  b.party_name AS bidder_name,
  b.source_system || ':' || b.source_file || ':' || b.ocid || '/parties/' || b.party_key AS ev
FROM {stg_ocds.STG_PARTIES.qualified} b
WHERE list_contains(b.party_roles, 'tenderer') AND b.party_org_ref IS NOT NULL
ORDER BY b.ocid, bidder_id, b.party_key
"""

# tender date per OCDS process: tender period start, else its end (the bid deadline)
_TENDER_DATES = f"""
SELECT t.ocid AS process_id,
  coalesce(t.tender_tenderperiod_startdate, t.tender_tenderperiod_enddate) AS tender_date,
  CASE WHEN t.tender_tenderperiod_startdate IS NOT NULL THEN 'tender period start'
       ELSE 'tender period end' END AS tender_date_basis,
  t.source_system || ':' || t.source_file || ':' || t.ocid || '/tender' AS ev
FROM {stg_ocds.STG_TENDERS.qualified} t
WHERE coalesce(t.tender_tenderperiod_startdate, t.tender_tenderperiod_enddate) IS NOT NULL
"""


def _founding_sql() -> str:
    """Earliest published founding date per canonical organisation (modules exporting
    FOUNDING_SQL: org_ref, founding_date, source_system, source_file, source_record_id)."""
    parts = [getattr(m, "FOUNDING_SQL") for m in _founding_modules()]  # noqa: B009
    if not parts:
        return "SELECT NULL::VARCHAR AS org_id, NULL::DATE AS founding_date, NULL::VARCHAR AS ev WHERE false"
    union = " UNION ALL ".join(f"SELECT * FROM ({q})" for q in parts)
    return f"""
    SELECT {canonical_org_id_sql("f.org_ref")} AS org_id, min(f.founding_date) AS founding_date,
      arg_min(f.source_system || ':' || f.source_file || ':' || f.source_record_id,
              (f.founding_date, f.source_file, f.source_record_id)) AS ev
    FROM ({union}) f WHERE f.founding_date IS NOT NULL
    GROUP BY ALL
    """


def _founding_modules() -> list:
    return [m for m in ownership_modules() if hasattr(m, "FOUNDING_SQL")]


RED_FLAGS_SQL = f"""
WITH share_chain AS ({_SHARE_CHAIN}),
chain AS (SELECT start_id, node, node_name, path, evidence FROM share_chain),
bidders AS ({_BIDDERS}),
tender_dates AS ({_TENDER_DATES}),
founded AS ({_founding_sql()}),
contracts AS (
  SELECT c.*, {canonical_org_id_sql("c.supplier_org_ref")} AS supplier_id,
         {canonical_org_id_sql("c.buyer_org_ref")} AS buyer_id
  FROM {_CONTRACTS} c
),
contract_project AS ({contract_project_links_sql()}),
-- the buying side: the buyer itself, and the members of the partnership that is the buyer or
-- that runs the project the contract belongs to
buy_ctx AS (
  SELECT c.contract_award_id, c.buyer_id, p.partnership_id
  FROM contracts c
  LEFT JOIN contract_project cp USING (contract_award_id)
  LEFT JOIN {stg_governance.STG_PROJECTS.qualified} p ON p.project_id = cp.project_id
),
buy_edges AS (
  SELECT e.controlled_id, e.partnership_id, e.controller_id AS party,
         e.controller_name AS party_name,
         CASE e.control_basis
           WHEN 'ownership' THEN 'an owner'
           WHEN 'board_member' THEN 'a board member'
           WHEN 'lead' THEN 'the lead partner'
           WHEN 'signatory' THEN 'a signatory'
           WHEN 'voting_rights' THEN 'a holder of voting rights'
           WHEN 'board_appointment' THEN 'able to appoint the board'
           ELSE replace(e.control_basis, '_', ' ')
         END || ' of ' || coalesce(e.controlled_name, e.partnership_id) AS role,
         e.source_system || ':' || e.source_file || ':' || e.source_record_id AS ev
  FROM {_EDGES} e
  WHERE e.control_basis IN ('ownership', 'board_member', 'lead', 'signatory', 'voting_rights',
                            'board_appointment', 'senior_managing_official')
),
-- two equi-joins, not one OR-join (quadratic at scale); the second skips what the first found
buy_side AS (
  SELECT x.contract_award_id, e.party, e.party_name, e.role, e.ev
  FROM buy_ctx x JOIN buy_edges e ON e.partnership_id = x.partnership_id
  UNION ALL
  SELECT x.contract_award_id, e.party, e.party_name, e.role, e.ev
  FROM buy_ctx x JOIN buy_edges e ON e.controlled_id = x.buyer_id
  WHERE e.partnership_id IS DISTINCT FROM x.partnership_id OR x.partnership_id IS NULL
),
sell_side AS (
  SELECT c.contract_award_id, c.supplier_id AS party, c.supplier_name AS party_name,
         [c.supplier_id] AS path, []::VARCHAR[] AS evidence
  FROM contracts c
  UNION ALL
  SELECT c.contract_award_id, ch.node, ch.node_name, ch.path, ch.evidence
  FROM contracts c JOIN chain ch ON ch.start_id = c.supplier_id
),
related AS (
  SELECT DISTINCT ON (c.contract_award_id, s.party)
    'related_party_award' AS flag_type, 'high' AS severity, 'contract' AS subject_type,
    c.contract_award_id AS subject_id, cp.project_id, s.party AS related_party_id,
    coalesce(b.party_name, s.party_name) AS related_party_name, c.value_eur AS amount_eur,
    'Supplier ' || coalesce(c.supplier_name, c.supplier_id) || ' of ' || c.process_id
      || CASE WHEN s.party = c.supplier_id THEN ' is itself '
              ELSE ' is controlled by ' || coalesce(b.party_name, s.party) || ', ' END
      || b.role || ', on the buying side' AS description,
    array_to_string(s.path, ' <- ') || ' (' || b.role || ')' AS path,
    list_sort(list_distinct(list_concat(s.evidence, [b.ev, c.source_system || ':' || c.source_file || ':' || c.source_record_id]))) AS evidence
  FROM contracts c
  JOIN sell_side s USING (contract_award_id)
  JOIN buy_side b ON b.contract_award_id = c.contract_award_id AND b.party = s.party
  LEFT JOIN contract_project cp ON cp.contract_award_id = c.contract_award_id
  WHERE s.party <> c.buyer_id
    -- implied by the join on buy_side; said so, DuckDB filters the 410k seller-side rows of
    -- scale 1 down to the contracts with a buying-side party first (0.40 -> 0.20 s)
    AND c.contract_award_id IN (SELECT contract_award_id FROM buy_side)
  -- full tie-break: a party reached through two interests keeps the same evidence every run
  ORDER BY c.contract_award_id, s.party, array_length(s.path), b.role, s.path::VARCHAR,
    list_sort(s.evidence)::VARCHAR, b.ev
),
funder_side AS (
  SELECT f.project_id, f.from_org_id AS funder_id, f.from_org_id AS party,
         [f.from_org_id] AS path, []::VARCHAR[] AS evidence
  FROM {MONEY_FLOWS.qualified} f
  WHERE f.project_id IS NOT NULL AND f.flow_type <> 'contract_award'
  UNION ALL
  SELECT f.project_id, f.from_org_id, ch.node, ch.path, ch.evidence
  FROM {MONEY_FLOWS.qualified} f JOIN chain ch ON ch.start_id = f.from_org_id
  WHERE f.project_id IS NOT NULL AND f.flow_type <> 'contract_award'
),
winner_funder AS (
  SELECT DISTINCT ON (c.contract_award_id, s.party, fs.funder_id)
    'common_controller_winner_funder', 'medium', 'contract', c.contract_award_id, cp.project_id,
    s.party, s.party_name, c.value_eur,
    'The same party ' || s.party || ' controls supplier ' || coalesce(c.supplier_name, c.supplier_id)
      || ' and funder ' || fs.funder_id || ' of project ' || cp.project_id,
    array_to_string(s.path, ' <- ') || ' | ' || array_to_string(fs.path, ' <- '),
    list_sort(list_distinct(list_concat(s.evidence, fs.evidence)))
  FROM contracts c
  JOIN contract_project cp USING (contract_award_id)
  JOIN sell_side s USING (contract_award_id)
  JOIN funder_side fs ON fs.project_id = cp.project_id AND fs.party = s.party
  WHERE s.party <> fs.funder_id OR s.party <> c.supplier_id
  ORDER BY c.contract_award_id, s.party, fs.funder_id, array_length(s.path) + array_length(fs.path),
    s.path::VARCHAR, fs.path::VARCHAR, list_sort(s.evidence)::VARCHAR, list_sort(fs.evidence)::VARCHAR
),
single_bidder AS (
  SELECT 'single_bidder_award', 'medium', 'contract', c.contract_award_id, cp.project_id,
    c.supplier_id, c.supplier_name, c.value_eur,
    'Contract ' || c.process_id || ' was awarded to ' || coalesce(c.supplier_name, c.supplier_id)
      || ' after a procedure that received a single tender',
    c.buyer_id || ' -> ' || c.supplier_id,
    [c.source_system || ':' || c.source_file || ':' || c.source_record_id]
  FROM contracts c LEFT JOIN contract_project cp USING (contract_award_id)
  WHERE c.number_of_tenders = 1
),
-- every party controlling a bidder, the bidder itself included: one chain per pair, the
-- shortest (ties: ownership with the larger share, then text)
bidder_control AS (
  SELECT DISTINCT ON (process_id, party, bidder_id) * FROM (
    SELECT b.process_id, b.bidder_id, b.bidder_name, b.ev AS bidder_ev, b.bidder_id AS party,
      b.bidder_name AS party_name, b.bidder_id AS path_text, []::VARCHAR[] AS evidence, 0 AS depth,
      100::DECIMAL(18,6) AS smin, 100::DECIMAL(18,6) AS smax
    FROM bidders b
    UNION ALL
    SELECT b.process_id, b.bidder_id, b.bidder_name, b.ev, ch.node, ch.node_name, ch.path_text,
      ch.evidence, ch.depth, ch.smin, ch.smax
    FROM bidders b JOIN share_chain ch ON ch.start_id = b.bidder_id
  )
  ORDER BY process_id, party, bidder_id, depth, smax DESC NULLS LAST, smin DESC NULLS LAST,
    path_text, evidence::VARCHAR
),
tender_awards AS (
  SELECT process_id, sum(value_eur) AS value_eur, min(project_id) AS project_id,
    min(title) AS title
  FROM (SELECT DISTINCT c.process_id, c.award_id, c.value_eur, c.title, cp.project_id
        FROM contracts c LEFT JOIN contract_project cp USING (contract_award_id))
  GROUP BY process_id
),
-- one row per tender x controller of two or more bidders; min() keeps a name spelt
-- differently by two sources stable between runs
common_bidders AS (
  SELECT 'common_controller_bidders', 'high', 'tender', bc.process_id, any_value(ta.project_id),
    bc.party, min(bc.party_name), any_value(ta.value_eur),
    coalesce(min(bc.party_name), bc.party) || ' controls ' || count(*) || ' bidders of '
      || bc.process_id || coalesce(' (' || any_value(ta.title) || ')', '') || ': '
      || string_agg(coalesce(bc.bidder_name, bc.bidder_id) || CASE
           WHEN bc.depth = 0 THEN ' (itself)'
           WHEN bc.smin IS NULL AND bc.smax IS NULL THEN ' (controls it, share unknown)'
           WHEN bc.smin IS NOT DISTINCT FROM bc.smax THEN ' (owns ' || ft_pct(bc.smin) || '%)'
           ELSE ' (owns ' || coalesce(ft_pct(bc.smin), '?') || '-' || coalesce(ft_pct(bc.smax), '?') || '%)'
         END, ', ' ORDER BY bc.bidder_id),
    string_agg(bc.path_text, ' | ' ORDER BY bc.bidder_id),
    list_sort(list_distinct(flatten(list(bc.evidence || [bc.bidder_ev]))))
  FROM bidder_control bc LEFT JOIN tender_awards ta USING (process_id)
  GROUP BY bc.process_id, bc.party
  HAVING count(*) >= 2
),
registered_after AS (
  SELECT 'supplier_registered_after_tender',
    CASE WHEN f.founding_date > c.award_date THEN 'high' ELSE 'medium' END, 'contract',
    c.contract_award_id, cp.project_id, c.supplier_id, c.supplier_name, c.value_eur,
    'Supplier ' || coalesce(c.supplier_name, c.supplier_id) || ' of ' || c.process_id
      || ' was registered on ' || f.founding_date || ', after the tender date '
      || coalesce(td.tender_date, c.award_date) || ' (' || coalesce(td.tender_date_basis, 'award date')
      || ')' || CASE WHEN f.founding_date > c.award_date THEN ' and after the award date '
                     WHEN td.tender_date IS NOT NULL THEN '; awarded on ' ELSE '' END
      || CASE WHEN td.tender_date IS NOT NULL OR f.founding_date > c.award_date
              THEN coalesce(c.award_date::VARCHAR, '(no award date)') ELSE '' END,
    c.buyer_id || ' -> ' || c.supplier_id,
    list_sort(list_filter([f.ev, td.ev, c.source_system || ':' || c.source_file || ':' || c.source_record_id],
                          lambda x: x IS NOT NULL))
  FROM contracts c
  JOIN founded f ON f.org_id = c.supplier_id
  LEFT JOIN tender_dates td ON td.process_id = c.process_id AND c.source_system = 'ocds'
  LEFT JOIN contract_project cp ON cp.contract_award_id = c.contract_award_id
  WHERE f.founding_date > coalesce(td.tender_date, c.award_date)
),
regrant AS (
  SELECT 'regranting_double_count', 'low', 'organisation', i.to_org_id, NULL,
    i.from_org_id, min(i.from_name),
    -- each onward flow once, however many inbound flows it pairs with
    list_sum(list_transform(list_distinct(list(struct_pack(id := o.flow_id, eur := o.amount_eur))), lambda x: x.eur)),
    min(i.to_name) || ' received ' || count(DISTINCT i.flow_id) || ' flow(s) from '
      || min(i.from_name) || ' and granted ' || count(DISTINCT o.flow_id)
      || ' flow(s) onward: adding both levels may count regranted money twice',
    i.from_org_id || ' -> ' || i.to_org_id || ' -> (' || count(DISTINCT o.to_org_id) || ' recipients)',
    list_sort(list_distinct(list(i.flow_id) || list(o.flow_id)))
  FROM {MONEY_FLOWS.qualified} i
  JOIN {MONEY_FLOWS.qualified} o ON o.from_org_id = i.to_org_id
    AND o.flow_date BETWEEN i.flow_date AND i.flow_date + INTERVAL 2 YEAR
  WHERE i.flow_type IN ('grant', 'eu_share', 'co_financing', 'commitment')
    AND o.flow_type IN ('grant', 'eu_share', 'co_financing', 'commitment')
  GROUP BY i.to_org_id, i.from_org_id
)
SELECT flag_type || ':' || subject_id || ':' || coalesce(related_party_id, '') AS flag_id, *
FROM (
  SELECT * FROM related
  UNION ALL SELECT * FROM winner_funder
  UNION ALL SELECT * FROM common_bidders
  UNION ALL SELECT * FROM single_bidder
  UNION ALL SELECT * FROM registered_after
  UNION ALL SELECT * FROM regrant
)
"""


# a percentage as text without trailing zeros: 25.0000 -> '25', 12.5 -> '12.5'
_PCT_MACRO = (
    "CREATE OR REPLACE TEMP MACRO ft_pct(x) AS "
    "rtrim(rtrim(CAST(CAST(x AS DECIMAL(18,4)) AS VARCHAR), '0'), '.')"
)


# each flag type is one CTE of RED_FLAGS_SQL, and one slice of the table
FLAG_CTES = {
    "related_party_award": "related",
    "common_controller_winner_funder": "winner_funder",
    "common_controller_bidders": "common_bidders",
    "single_bidder_award": "single_bidder",
    "supplier_registered_after_tender": "registered_after",
    "regranting_double_count": "regrant",
}
# a flag reads only the canonical ids of identity (canonical_org_id_sql): a file that changes
# names or evidence of known organisations leaves them, and the flags, as they were. A
# reference that is its own organisation gives the id it would give absent (itself), so only
# merged references count: a file of new organisations leaves them as they were too
_IDENTITY_IDS = f"{INT_ORG_IDENTITY.qualified}[org_ref, org_id] WHERE org_ref <> org_id"


@functools.cache
def _split_ctes(sql: str) -> dict[str, str]:
    """{name: body} of the top-level CTEs of `sql` (`WITH a AS (...), b AS (...) SELECT`),
    in order; quotes and nested parentheses are skipped."""
    ctes: dict[str, str] = {}
    i = sql.index("WITH ") + len("WITH ")
    while True:
        name_end = sql.index(" AS (", i)
        name = sql[i:name_end].strip().splitlines()[-1].strip()  # after its comment lines
        start = name_end + len(" AS (")
        depth, quote = 1, ""
        j = start
        while depth:
            ch = sql[j]
            if quote:
                quote = "" if ch == quote else quote
            elif ch in "'\"":
                quote = ch
            elif ch == "(":
                depth += 1
            elif ch == ")":
                depth -= 1
            j += 1
        ctes[name] = sql[start : j - 1]
        rest = sql[j:].lstrip()
        if not rest.startswith(","):
            return ctes
        i = len(sql) - len(rest) + 1


def flag_sql(flag_type: str) -> str:
    """RED_FLAGS_SQL for one flag type: its CTE and those it reads, nothing else."""
    ctes = _split_ctes(RED_FLAGS_SQL)
    needed = {FLAG_CTES[flag_type]}
    for name in reversed(list(ctes)):  # a CTE reads only CTEs defined before it
        if name in needed:
            needed |= {n for n in ctes if n != name and re.search(rf"\b{n}\b", ctes[name])}
    parts = ", ".join(f"{n} AS ({body})" for n, body in ctes.items() if n in needed)
    columns = ", ".join(c for c in RED_FLAGS.column_names if c != "flag_id")
    return (
        f"WITH {parts} SELECT flag_type || ':' || subject_id || ':' || "
        f"coalesce(related_party_id, '') AS flag_id, * "
        f"FROM {FLAG_CTES[flag_type]} AS f({columns})"
    )


def flag_slices() -> list[Slice]:
    """One slice per flag type, fingerprinted on the tables its SQL reads (identity by its
    canonical ids only): a new funding file rebuilds the two flags that read money flows."""
    slices = []
    for flag_type in FLAG_CTES:
        sql = flag_sql(flag_type)
        inputs = tuple(
            _IDENTITY_IDS if t == INT_ORG_IDENTITY.qualified else t for t in tables_in(sql)
        )
        slices.append(Slice(flag_type, f"flag_type = '{flag_type}'", sql, inputs))
    return slices


def build_red_flags(con: duckdb.DuckDBPyConnection) -> SliceRefresh:
    con.execute(_PCT_MACRO)
    return refresh_slices(con, RED_FLAGS, flag_slices(), RED_FLAGS_SQL)


@dg.asset(
    key=RED_FLAGS.asset_key,
    group_name="marts",
    kinds={"duckdb", "sql"},
    description=RED_FLAGS.doc,
    deps=[
        INT_CONTROL_EDGES.asset_key,
        INT_PROCUREMENT_AWARDS.asset_key,
        INT_ORG_IDENTITY.asset_key,
        MONEY_FLOWS.asset_key,
        stg_governance.STG_PROJECTS.asset_key,
        stg_ocds.STG_PARTIES.asset_key,
        stg_ocds.STG_TENDERS.asset_key,
        *(spec.asset_key for m in _founding_modules() for spec in m.FOUNDING_DEPS),
    ],
)
@skip_unchanged
def red_flags(duckdb: DuckDBResource) -> dg.MaterializeResult:
    with duckdb.get_connection() as con:
        built = build_red_flags(con)
        return materialize_result(con, RED_FLAGS, built.metadata(), preview_rows=10)
