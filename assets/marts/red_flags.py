"""`marts.red_flags`: findings an auditor would look into, each with its evidence trail.

- related_party_award: the supplier of a contract is controlled (itself, or up its ownership
  and control chain) by someone who sits on the buying side: an owner, board member, lead or
  signatory of the partnership that bought the contract or runs the project it belongs to.
- common_controller_winner_funder: one party controls both a project's funder and a supplier
  that won a contract of that project.
- single_bidder_award: a contract awarded after a procedure that received one tender.
- regranting_double_count: an organisation received money and granted money onward in the
  data; adding both flows up by level counts the regranted euros twice.

Not yet derivable from the sources we hold (documented, not guessed): common controllers across
competing bidders (bidder lists are rarely published) and suppliers registered after the tender
date (needs incorporation dates).
"""

import dagster as dg
import duckdb
from dagster_duckdb import DuckDBResource

from assets.common.money import AMOUNT_TYPE
from assets.common.tables import Column, TableSpec, materialize_result, rebuild_table
from assets.intermediate.int_control_edges import INT_CONTROL_EDGES
from assets.intermediate.int_org_identity import INT_ORG_IDENTITY
from assets.intermediate.int_procurement_awards import (
    INT_PROCUREMENT_AWARDS,
    contract_project_links_sql,
)
from assets.marts.core import MONEY_FLOWS
from assets.staging import stg_governance

RED_FLAGS = TableSpec(
    schema="marts",
    name="red_flags",
    grain="one finding (flag type x subject x related party)",
    description="Findings an auditor would look into: related-party awards, common controllers "
    "of a winner and a funder, single-bidder awards and money counted twice through "
    "regranting, each with the path that connects the parties and the source records.",
    columns=(
        Column("flag_id", "VARCHAR", "Stable id: flag type + subject + related party.", False),
        Column("flag_type", "VARCHAR", "related_party_award | common_controller_winner_funder | single_bidder_award | regranting_double_count.", False),
        Column("severity", "VARCHAR", "high | medium | low.", False),
        Column("subject_type", "VARCHAR", "contract | flow | organisation.", False),
        Column("subject_id", "VARCHAR", "The contract award, flow or organisation flagged.", False),
        Column("project_id", "VARCHAR", "Governance project concerned, if known."),
        Column("related_party_id", "VARCHAR", "Person or organisation connecting both sides, if any."),
        Column("related_party_name", "VARCHAR", "Its name."),
        Column("amount_eur", AMOUNT_TYPE, "Money concerned, in EUR."),
        Column("description", "VARCHAR", "The finding in one sentence.", False),
        Column("path", "VARCHAR", "How the parties connect, e.g. 'supplier <- holding <- person (board member of buyer)'."),
        Column("evidence", "VARCHAR[]", "Source records behind the finding.", False),
    ),
    order_by=("flag_type", "subject_id", "related_party_id"),
)  # fmt: skip

_EDGES = INT_CONTROL_EDGES.qualified
_CONTRACTS = INT_PROCUREMENT_AWARDS.qualified
_IDENTITY = INT_ORG_IDENTITY.qualified

# parties controlling a node: the node itself and everyone up its ownership/control chains
_CONTROL_CHAIN = f"""
WITH RECURSIVE ctrl AS (
  SELECT controlled_id, controller_id, controller_name,
         source_system || ':' || source_file || ':' || source_record_id AS ev
  FROM {_EDGES}
  WHERE control_basis IN ('ownership', 'voting_rights', 'board_appointment',
                          'senior_managing_official', 'other_influence')
    AND (valid_to IS NULL OR valid_to >= current_date)
),
up AS (
  SELECT controlled_id AS start_id, controller_id AS node, controller_name AS node_name,
         [controlled_id, controller_id] AS path, [ev] AS evidence, 1 AS depth
  FROM ctrl
  UNION ALL
  SELECT u.start_id, c.controller_id, c.controller_name, list_append(u.path, c.controller_id),
         list_append(u.evidence, c.ev), u.depth + 1
  FROM up u JOIN ctrl c ON c.controlled_id = u.node
  WHERE NOT list_contains(u.path, c.controller_id) AND u.depth < 20
)
SELECT start_id, node, node_name, path, evidence FROM up
"""

_CANON = f"coalesce((SELECT i.org_id FROM {_IDENTITY} i WHERE i.org_ref = {{ref}}), {{ref}})"

RED_FLAGS_SQL = f"""
WITH chain AS ({_CONTROL_CHAIN}),
contracts AS (
  SELECT c.*, {_CANON.format(ref="c.supplier_org_ref")} AS supplier_id,
         {_CANON.format(ref="c.buyer_org_ref")} AS buyer_id
  FROM {_CONTRACTS} c
),
contract_project AS ({contract_project_links_sql()}),
-- the buying side: the buyer itself, and the members of the partnership that is the buyer or
-- that runs the project the contract belongs to
buy_side AS (
  SELECT c.contract_award_id, e.controller_id AS party, e.controller_name AS party_name,
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
  FROM contracts c
  LEFT JOIN contract_project cp USING (contract_award_id)
  LEFT JOIN {stg_governance.STG_PROJECTS.qualified} p ON p.project_id = cp.project_id
  JOIN {_EDGES} e
    ON (e.partnership_id = p.partnership_id OR e.controlled_id = c.buyer_id)
  WHERE e.control_basis IN ('ownership', 'board_member', 'lead', 'signatory', 'voting_rights',
                            'board_appointment', 'senior_managing_official')
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
  ORDER BY c.contract_award_id, s.party, array_length(s.path), b.role
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
  ORDER BY c.contract_award_id, s.party, fs.funder_id
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
regrant AS (
  SELECT 'regranting_double_count', 'low', 'organisation', i.to_org_id, NULL,
    i.from_org_id, any_value(i.from_name), sum(DISTINCT o.amount_eur),
    any_value(i.to_name) || ' received ' || count(DISTINCT i.flow_id) || ' flow(s) from '
      || any_value(i.from_name) || ' and granted ' || count(DISTINCT o.flow_id)
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
  UNION ALL SELECT * FROM single_bidder
  UNION ALL SELECT * FROM regrant
)
"""


def build_red_flags(con: duckdb.DuckDBPyConnection) -> int:
    return rebuild_table(con, RED_FLAGS, RED_FLAGS_SQL)


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
    ],
)
def red_flags(duckdb: DuckDBResource) -> dg.MaterializeResult:
    with duckdb.get_connection() as con:
        build_red_flags(con)
        return materialize_result(con, RED_FLAGS, preview_rows=10)
