"""Compiling one OCDS release per ocid with ocdsmerge, and its headline fields.

The merge half of `stg_ocds` (see its docstring for the rules), apart from it so that the
worker processes that compile in parallel import only ocdsmerge and pyarrow: no Dagster, no
DuckDB (each spawned worker then starts in a fraction of a second and ~100 MB smaller).
"""

import os
import warnings
from functools import lru_cache
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from ocdsmerge.exceptions import OCDSMergeError, OCDSMergeWarning
from ocdsmerge.merge import CompiledRelease
from ocdsmerge.rules import get_merge_rules

from assets.common.json_text import compact_json, loads_exactly, may_hold_wide_integers
from assets.common.python_gc import gc_paused

SCHEMA_PATH = Path(__file__).resolve().parents[1] / "raw" / "ocds_schema" / "release-schema.json"


@lru_cache(maxsize=1)
def merge_rules() -> dict[tuple[str, ...], str]:
    """ocdsmerge rules derived from the shipped release schema (local file only)."""
    return get_merge_rules(str(SCHEMA_PATH))


def _as_list(value: Any) -> list[Any]:
    if isinstance(value, list):
        return value
    return [value] if isinstance(value, dict) else []


def compile_ocid(
    ocid: str, releases: list[tuple[int, dict[str, Any]]]
) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    """Merge one ocid's releases, given in merge order as (merge_order, release).

    Returns the compiled release, the merge sources (per award/contract id: first and last
    merge order carrying it and its index in the last one) and ocdsmerge's warnings.
    """
    merged = CompiledRelease(merge_rules=merge_rules())
    sources: dict[str, dict[str, list[Any]]] = {"awards": {}, "contracts": {}}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", OCDSMergeWarning)
        for order, release in releases:
            if not release.get("ocid"):
                release = {**release, "ocid": ocid}
            merged.append(release)
            for key, seen in sources.items():
                for index, obj in enumerate(_as_list(release.get(key))):
                    if not isinstance(obj, dict) or obj.get("id") is None:
                        continue
                    ident = str(obj["id"])
                    first = seen[ident][0] if ident in seen else order
                    seen[ident] = [first, order, index if isinstance(release[key], list) else None]
    compiled = merged.asdict()
    if compiled.get("date") is None:  # every release undated
        compiled.pop("date", None)
        compiled["id"] = ocid
    notes = sorted({str(w.message) for w in caught})
    return compiled, sources, notes


# (ocid, [(merge_order, release JSON text, may hold integers beyond 64 bits)] in merge
# order, compiled_from)
Group = tuple[str, list[tuple[int, str, bool]], str]


def group_rows(rows: pa.Table) -> list[Group]:
    """Rows (ocid, merge_order, release_json, from_compiled) in ocid and merge order -> one
    Group per ocid; compiled_from is "compiledRelease" when every release of it came from a
    record's compiledRelease."""
    cols = rows.to_pydict()
    wide = may_hold_wide_integers(rows.column("release_json"))
    groups: list[Group] = []
    texts: list[tuple[int, str, bool]] = []
    ocid: str | None = None
    compiled_only = True
    for o, order, text, may_be_wide, from_compiled in zip(
        cols["ocid"],
        cols["merge_order"],
        cols["release_json"],
        wide,
        cols["from_compiled"],
        strict=True,
    ):
        if o != ocid:
            if ocid is not None:
                groups.append((ocid, texts, "compiledRelease" if compiled_only else "releases"))
            ocid, texts, compiled_only = o, [], True
        texts.append((int(order), text, may_be_wide))
        compiled_only = compiled_only and bool(from_compiled)
    if ocid is not None:
        groups.append((ocid, texts, "compiledRelease" if compiled_only else "releases"))
    return groups


# headline fields picked from each compiled release in Python (already parsed there), so SQL
# never re-parses or joins the wide JSON; organisations are passed as JSON for the org-id macros
_HEAD_FIELDS = (
    "date", "initiationtype", "language", "buyer_id", "buyer_name", "tender_id", "tender_title",
    "tender_status", "planning_budget_projectid", "planning_budget_project",
    "planning_budget_amount_amount", "planning_budget_amount_currency",
    "planning_budget_description", "buyer_json", "buyer_party_json", "procuring_json",
)  # fmt: skip
COMPILED_SCHEMA = pa.schema(
    [
        ("ocid", pa.string()),
        ("compiled_release", pa.string()),
        ("merge_sources", pa.string()),
        ("merge_warnings", pa.list_(pa.string())),
        ("compiled_from", pa.string()),
        *((name, pa.string()) for name in _HEAD_FIELDS),
        ("breakdown_ids", pa.list_(pa.string())),
        ("breakdown_names", pa.list_(pa.string())),
    ]
)


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, (dict, list)):
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _org_name(org: dict[str, Any]) -> str | None:
    return _text(org.get("name")) or _text(_dict(org.get("identifier")).get("legalName"))


def pick_head(compiled: dict[str, Any]) -> dict[str, Any]:
    """Headline fields of a compiled release (raw text; SQL types and cleans them)."""
    parties = [p for p in _as_list(compiled.get("parties")) if isinstance(p, dict)]
    by_id: dict[str, dict[str, Any]] = {}
    for party in parties:
        if party.get("id") is not None:
            by_id.setdefault(str(party["id"]), party)

    def resolve(ref: Any) -> dict[str, Any] | None:
        if not isinstance(ref, dict):
            return None
        return by_id.get(str(ref["id"]), ref) if ref.get("id") is not None else ref

    def as_json(obj: dict[str, Any] | None) -> str | None:
        return None if obj is None else compact_json(obj)

    buyer = _dict(compiled.get("buyer"))
    tender = _dict(compiled.get("tender"))
    budget = _dict(_dict(compiled.get("planning")).get("budget"))
    roles_buyer = next(
        (p for p in parties if "buyer" in [str(r) for r in _as_list_any(p.get("roles"))]), None
    )
    breakdown = [_dict(b) for b in _as_list(budget.get("budgetBreakdown"))]
    sources = [_dict(b.get("sourceParty")) for b in breakdown]
    return {
        "date": _text(compiled.get("date")),
        "initiationtype": _text(compiled.get("initiationType")),
        "language": _text(compiled.get("language")),
        "buyer_id": _text(buyer.get("id")),
        "buyer_name": _text(buyer.get("name")),
        "tender_id": _text(tender.get("id")),
        "tender_title": _text(tender.get("title")),
        "tender_status": _text(tender.get("status")),
        "planning_budget_projectid": _text(budget.get("projectID")),
        "planning_budget_project": _text(budget.get("project")),
        "planning_budget_amount_amount": _text(_dict(budget.get("amount")).get("amount")),
        "planning_budget_amount_currency": _text(_dict(budget.get("amount")).get("currency")),
        "planning_budget_description": _text(budget.get("description")),
        "buyer_json": as_json(resolve(compiled.get("buyer"))),
        "buyer_party_json": as_json(roles_buyer),
        "procuring_json": as_json(resolve(tender.get("procuringEntity"))),
        "breakdown_ids": [_text(sp.get("id")) for sp in sources],
        "breakdown_names": [
            _text(sp.get("name")) or _org_name(resolve(sp) or {}) for sp in sources
        ],
    }


def _as_list_any(value: Any) -> list[Any]:
    if isinstance(value, list):
        return value
    return [] if value is None else [value]


def compile_groups(groups: list[Group]) -> tuple[pa.Table, list[tuple[str, str]]]:
    """Compile a chunk of ocids: their _ocds_compiled rows, and (ocid, error) for the ocids
    that failed to merge. Runs in a worker process (arguments and result are pickled)."""
    rows: dict[str, list[Any]] = {f.name: [] for f in COMPILED_SCHEMA}
    failures: list[tuple[str, str]] = []
    with gc_paused():  # ocdsmerge's flattened releases hold no cycles: ~30% of the merge time
        for ocid, texts, compiled_from in groups:
            # parsed ocid by ocid: all of a chunk at once was slower to merge
            releases = [(order, loads_exactly(text, wide)) for order, text, wide in texts]
            try:
                compiled, sources, notes = compile_ocid(ocid, releases)
            except OCDSMergeError as exc:
                failures.append((ocid, f"{type(exc).__name__}: {exc}"))
                continue
            rows["ocid"].append(ocid)
            rows["compiled_release"].append(compact_json(compiled))
            rows["merge_sources"].append(compact_json(sources))
            rows["merge_warnings"].append(notes or None)
            rows["compiled_from"].append(compiled_from)
            for key, value in pick_head(compiled).items():
                rows[key].append(value)
    return pa.table(rows, schema=COMPILED_SCHEMA), failures


def compile_rows(rows: pa.Table) -> tuple[pa.Table, list[tuple[str, str]]]:
    """compile_groups of rows of whole ocids (see group_rows): what a worker is sent."""
    return compile_groups(group_rows(rows))


def compile_to_parquet(rows: pa.Table, path: str) -> list[tuple[str, str]]:
    """compile_rows, the compiled rows written to the Parquet file `path` (DuckDB reads them
    in the build process, in parallel, without unpickling or inserting Arrow batches there
    while the workers run); returns the ocids that failed to merge."""
    compiled, failures = compile_rows(rows)
    pq.write_table(compiled, path, compression="snappy")
    return failures


def compile_chunk_file(chunk: str, path: str) -> list[tuple[str, str]]:
    """compile_to_parquet of the rows in the Arrow IPC file `chunk`, removed once compiled:
    what a merge worker is sent. A pickled chunk carried every buffer its rows were sliced
    from (~2x the release JSON through a pipe: 730 MB at scale 1); the file holds the rows
    alone and the worker maps it."""
    with pa.memory_map(chunk) as source:
        failures = compile_to_parquet(pa.ipc.open_file(source).read_all(), path)
    os.unlink(chunk)
    return failures
