"""marts.funding_streams does not depend on the physical row order of int_money_flows, which
is maintained slice by slice (assets/common/slices.py) rather than in flow_id order."""

import duckdb

from assets.common.tables import create_table, ensure_schemas
from assets.intermediate.int_money_flows import INT_MONEY_FLOWS
from assets.intermediate.int_org_identity import INT_ORG_IDENTITY
from assets.marts.core import FUNDING_STREAMS, build_funding_streams, build_money_flows

# one funder published under three names, with and without a programme
FLOWS = [
    ("f3", "Harbourton Council", None),
    ("f1", "Harbourton City Council", "Arts"),
    ("f2", "HARBOURTON CC", "Arts"),
]


def _streams(order: list[tuple[str, str, str | None]]) -> list[tuple]:
    con = duckdb.connect()
    ensure_schemas(con)
    create_table(con, INT_MONEY_FLOWS, replace=True)
    create_table(con, INT_ORG_IDENTITY, replace=True)
    for ref in ("GB-LAE-HBT", "GB-CHC-1"):
        con.execute(
            f"INSERT INTO {INT_ORG_IDENTITY.qualified} (org_ref, org_id, match_method, name) "
            "VALUES (?, ?, 'identifier', ?)",
            [ref, ref, ref],
        )
    for i, (flow_id, name, programme) in enumerate(order):
        con.execute(
            f"INSERT INTO {INT_MONEY_FLOWS.qualified} (flow_id, flow_type, from_org_ref, "
            "from_name, to_org_ref, to_kind, programme, flow_date, amount_original, "
            "currency_original, amount_eur, funding_level, controller_org_ref, control_basis, "
            "source_system, source_file, source_row, source_record_id) VALUES (?, 'grant', "
            "'GB-LAE-HBT', ?, 'GB-CHC-1', 'organisation', ?, DATE '2024-01-01', 10, 'EUR', 10, "
            "'local', 'GB-LAE-HBT', 'funder', '360giving', 'a.csv', ?, ?)",
            [flow_id, name, programme, i, flow_id],
        )
    build_money_flows(con)
    build_funding_streams(con)
    return con.execute(
        f"SELECT funder_name, programme, awards FROM {FUNDING_STREAMS.qualified} ORDER BY ALL"
    ).fetchall()


def test_stream_name_and_programme_come_from_the_first_flow_whatever_the_row_order() -> None:
    by_coalesce = _streams(FLOWS)
    assert _streams(list(reversed(FLOWS))) == by_coalesce
    # the stream key is the funder and coalesce(programme, ''), so two streams here; the
    # funder's name is its canonical name (int_org_identity), not one of those published
    assert by_coalesce == [("GB-LAE-HBT", "Arts", 2), ("GB-LAE-HBT", None, 1)]
