"""Where each mart column comes from, shown as `dagster/column_lineage` in the Dagster UI.

Declared by hand from the marts' SQL, as (upstream table, column) pairs; a test checks that
every pair names a column of an upstream TableSpec the mart depends on, so a renamed column
fails the suite rather than leaving stale lineage. Columns computed from the mart's own logic
(paths, flags, link bases) are left out rather than guessed. Kept free of imports of the mart
modules so `assets.common.tables` can read it without an import cycle.
"""

import dagster as dg

_FLOWS = "intermediate.int_money_flows"
_IDENTITY = "intermediate.int_org_identity"
_AWARDS = "intermediate.int_procurement_awards"
_EDGES = "intermediate.int_control_edges"
_PROJECTS = "staging.stg_governance_projects"
_MONEY = "marts.money_flows"
_STREAMS = "marts.funding_streams"

_EVIDENCE = [(_EDGES, "source_system"), (_EDGES, "source_file"), (_EDGES, "source_record_id")]


def _same(table: str, *columns: str) -> dict[str, list[tuple[str, str]]]:
    """Columns copied unchanged from `table`."""
    return {c: [(table, c)] for c in columns}


# mart table -> column -> upstream (table, column) pairs
COLUMN_LINEAGE: dict[str, dict[str, list[tuple[str, str]]]] = {
    "marts.money_flows": {
        **_same(_FLOWS, "flow_id", "flow_type", "control_basis", "project_id", "funding_level"),
        **_same(_FLOWS, "title", "flow_date", "amount_eur", "amount_original"),
        **_same(_FLOWS, "currency_original", "fx_rate", "fx_date"),
        **_same(_FLOWS, "source_system", "source_file", "source_row", "source_record_id"),
        "from_org_id": [(_FLOWS, "from_org_ref"), (_IDENTITY, "org_id")],
        "from_name": [(_IDENTITY, "name")],
        "to_org_id": [(_FLOWS, "to_org_ref"), (_IDENTITY, "org_id")],
        "to_name": [(_IDENTITY, "name"), (_FLOWS, "to_kind")],
        "stream_id": [(_IDENTITY, "org_id"), (_FLOWS, "programme")],
        "controller_org_id": [(_FLOWS, "controller_org_ref"), (_IDENTITY, "org_id")],
    },
    "marts.funding_streams": {
        **_same(_MONEY, "stream_id", "funding_level", "controller_org_id", "control_basis"),
        "funder_org_id": [(_MONEY, "from_org_id")],
        "funder_name": [(_MONEY, "from_name")],
        "programme": [(_FLOWS, "programme")],
        "awards": [(_MONEY, "flow_id")],
        "recipients": [(_MONEY, "to_org_id")],
        "total_eur": [(_MONEY, "amount_eur")],
        "awards_without_eur": [(_MONEY, "amount_eur")],
        "currencies": [(_MONEY, "currency_original")],
        "first_award_date": [(_MONEY, "flow_date")],
        "last_award_date": [(_MONEY, "flow_date")],
        "controller_name": [(_IDENTITY, "name")],
        "source_systems": [(_MONEY, "source_system")],
    },
    "marts.organisations": {
        **_same(_IDENTITY, "org_id", "names_seen", "scheme", "org_type", "country"),
        **_same(_IDENTITY, "source_systems"),
        "name": [(_IDENTITY, "name"), (_IDENTITY, "org_type")],
        "org_refs": [(_IDENTITY, "org_ref")],
        "match_methods": [(_IDENTITY, "match_method")],
        "funding_level": [(_MONEY, "funding_level")],
        "flows_out": [(_MONEY, "from_org_id")],
        "flows_in": [(_MONEY, "to_org_id")],
        "eur_out": [(_MONEY, "from_org_id"), (_MONEY, "amount_eur")],
        "eur_in": [(_MONEY, "to_org_id"), (_MONEY, "amount_eur")],
    },
    "marts.procurement_contracts": {
        **_same(_AWARDS, "contract_award_id", "process_id", "award_id", "buyer_name"),
        **_same(_AWARDS, "supplier_name", "title", "award_date", "value_original"),
        **_same(_AWARDS, "currency_original", "value_eur", "fx_rate", "fx_date"),
        **_same(_AWARDS, "procedure_type", "cpv", "eu_funded", "eu_programme"),
        **_same(_AWARDS, "source_system", "source_file", "source_record_id"),
        "buyer_org_id": [(_AWARDS, "buyer_org_ref"), (_IDENTITY, "org_id")],
        "supplier_org_id": [(_AWARDS, "supplier_org_ref"), (_IDENTITY, "org_id")],
        "number_of_bidders": [(_AWARDS, "number_of_tenders")],
        "project_id": [(_PROJECTS, "project_id")],
        "partnership_id": [(_PROJECTS, "partnership_id")],
        "counted_in_money_flows": [(_FLOWS, "flow_id")],
    },
    "marts.ultimate_controllers": {
        **_same(_EDGES, "share_min", "share_max", "min_exclusive", "max_exclusive"),
        "entity_id": [(_EDGES, "controlled_id")],
        "entity_name": [(_EDGES, "controlled_name")],
        "owner_id": [(_EDGES, "controller_id")],
        "owner_name": [(_EDGES, "controller_name")],
        "owner_kind": [(_EDGES, "controller_kind")],
        "paths": [(_EDGES, "controlled_id"), (_EDGES, "controller_id")],
        "evidence": _EVIDENCE,
    },
    "marts.project_control": {
        **_same(_PROJECTS, "project_id", "partnership_id"),
        "project_title": [(_PROJECTS, "title")],
        "controller_id": [
            (_EDGES, "controller_id"),
            (_MONEY, "from_org_id"),
            (_MONEY, "controller_org_id"),
        ],
        "controller_name": [
            (_EDGES, "controller_name"),
            (_MONEY, "from_name"),
            (_IDENTITY, "name"),
        ],
        "controller_kind": [(_EDGES, "controller_kind")],
        "control_basis": [(_EDGES, "control_basis"), (_MONEY, "control_basis")],
        "share_min": [(_EDGES, "share_min"), (_MONEY, "amount_eur")],
        "share_max": [(_EDGES, "share_max"), (_MONEY, "amount_eur")],
        "valid_from": [(_EDGES, "valid_from"), (_MONEY, "flow_date")],
        "valid_to": [(_EDGES, "valid_to"), (_MONEY, "flow_date")],
        "evidence": [*_EVIDENCE, (_MONEY, "source_system")],
    },
    "marts.funding_stream_control": {
        **_same(_STREAMS, "stream_id", "funder_org_id", "programme"),
        "controller_id": [
            (_STREAMS, "funder_org_id"),
            (_STREAMS, "controller_org_id"),
            (_EDGES, "controller_id"),
        ],
        "controller_name": [
            (_STREAMS, "funder_name"),
            (_STREAMS, "controller_name"),
            (_EDGES, "controller_name"),
        ],
        "controller_kind": [(_EDGES, "controller_kind")],
        "control_basis": [(_STREAMS, "control_basis"), (_EDGES, "control_basis")],
        "share_min": [(_EDGES, "share_min")],
        "share_max": [(_EDGES, "share_max")],
        "evidence": _EVIDENCE,
    },
    # flags of every kind in one table: a column lists the sources of all the kinds
    "marts.red_flags": {
        "subject_id": [
            (_AWARDS, "contract_award_id"),
            (_AWARDS, "process_id"),
            (_MONEY, "to_org_id"),
        ],
        "project_id": [(_PROJECTS, "project_id")],
        "related_party_id": [
            (_EDGES, "controller_id"),
            (_IDENTITY, "org_id"),
            (_MONEY, "from_org_id"),
        ],
        "related_party_name": [
            (_EDGES, "controller_name"),
            (_AWARDS, "supplier_name"),
            (_MONEY, "from_name"),
        ],
        "amount_eur": [(_AWARDS, "value_eur"), (_MONEY, "amount_eur")],
        "evidence": [
            *_EVIDENCE,
            (_AWARDS, "source_system"),
            (_AWARDS, "source_file"),
            (_AWARDS, "source_record_id"),
            (_MONEY, "flow_id"),
        ],
    },
}


def _asset_key(qualified: str) -> dg.AssetKey:
    return dg.AssetKey(qualified.split("."))


def column_lineage(qualified: str) -> dg.TableColumnLineage | None:
    """The declared lineage of mart `qualified` (schema.table), or None when none is declared."""
    columns = COLUMN_LINEAGE.get(qualified)
    if not columns:
        return None
    return dg.TableColumnLineage(
        deps_by_column={
            column: [
                dg.TableColumnDep(asset_key=_asset_key(table), column_name=name)
                for table, name in deps
            ]
            for column, deps in columns.items()
        }
    )
