"""The static "who controls" report: one self-contained HTML file rendered from the published
marts (read-only), for readers who never open DuckDB.

Sections: money flows as a Sankey (levels -> funders -> intermediaries -> recipients/suppliers),
top controllers per funding stream and per project, ultimate owners, red flags with their
evidence, and data quality per source. plotly's JavaScript is embedded so the file opens
offline; every table is plain HTML so it reads without JavaScript. All text from the marts is
HTML-escaped (names come from public files anyone can publish).

`python -m assets.marts.report` renders it next to `$FUNDTRACE_MARTS_DB` (what `make report`
does), running the pipeline first when the marts file does not exist yet.
"""

import datetime as dt
import html
import os
import sys
import time
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import plotly.graph_objects as go
import plotly.io as pio
from dagster_duckdb import DuckDBResource

from assets.common.fingerprint import (
    code_version,
    file_state,
    remember_file_output,
    skipped_file_output,
)
from assets.common.tables import scalar_int
from assets.marts import publish
from assets.marts.published import MartsNotFoundError as MartsNotFoundError  # re-exported
from assets.marts.published import open_published_marts
from pipelines.resources import FundtraceSettings

REPORT_NAME = "report.html"
# enough to read at any scale; the rest is counted and left to the marts
SANKEY_MAX_ORGS = 24
MAX_STREAMS = 30
MAX_PROJECTS = 30
MAX_CONTROLLERS_PER_ROW = 10
MAX_OWNERS = 50
MAX_FLAGS_PER_KIND = 50
MAX_DQ_ISSUES = 200
MAX_EVIDENCE_SHOWN = 6

LEVELS = ("local", "national", "eu", "private", "international", "unknown")
LEVEL_COLOURS = {
    "local": "#1b9e77",
    "national": "#d95f02",
    "eu": "#3b5bdb",
    "private": "#e7298a",
    "international": "#66a61e",
    "unknown": "#888888",
}
_ORG_COLOUR = "#9aa5b1"
_OTHER_COLOUR = "#c8ced4"

# who decides first: formal control before money, money before advice
_BASIS_ORDER = (
    "funder",
    "managing_authority",
    "responsible_department",
    "ownership",
    "ownership_chain",
    "voting_rights",
    "board_appointment",
    "board_member",
    "lead",
    "accountable_body",
    "signatory",
    "contract_buyer",
    "operator",
    "partner",
    "supplier",
    "advisory_panel",
)
_SEVERITY_ORDER = ("high", "medium", "low")


def report_path(marts_db: Path) -> Path:
    """Where the report lives: next to the published marts file."""
    return marts_db.with_name(REPORT_NAME)


# --- reading -------------------------------------------------------------------------------


def _rows(
    con: duckdb.DuckDBPyConnection, sql: str, params: Sequence[Any] | dict[str, Any] = ()
) -> list[dict]:
    cur = con.execute(sql, params if isinstance(params, dict) else list(params))
    names = [d[0] for d in cur.description or ()]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def _order_case(column: str, values: Sequence[str]) -> str:
    whens = " ".join(f"WHEN '{v}' THEN {i}" for i, v in enumerate(values))
    return f"CASE {column} {whens} ELSE {len(values)} END"


SANKEY_SQL = """
WITH f AS (
  SELECT from_org_id AS src, to_org_id AS dst, funding_level AS level, amount_eur AS eur
  FROM marts.money_flows WHERE amount_eur IS NOT NULL AND from_org_id <> to_org_id
),
outs AS (SELECT src AS org, sum(eur) AS eur, mode(level) AS level FROM f GROUP BY 1),
ins AS (SELECT dst AS org, sum(eur) AS eur FROM f GROUP BY 1),
orgs AS (
  SELECT org, o.org IS NOT NULL AS pays, i.org IS NOT NULL AS receives,
    coalesce(o.eur, 0) AS eur_out, coalesce(i.eur, 0) AS eur_in, o.level,
    row_number() OVER (ORDER BY greatest(coalesce(o.eur, 0), coalesce(i.eur, 0)) DESC, org) AS rnk
  FROM outs o FULL JOIN ins i USING (org)
),
node AS (
  SELECT org, level, eur_out, eur_in,
    CASE WHEN rnk <= $max_orgs THEN org
         WHEN pays AND receives THEN '~other intermediaries'
         WHEN pays THEN '~other funders'
         ELSE '~other recipients' END AS node
  FROM orgs
),
pairs AS (SELECT src, dst, sum(eur) AS eur, count(*) AS n FROM f GROUP BY ALL)
-- money a funder paid out beyond what it received here is its own: it enters from its level
SELECT 'level:' || coalesce(level, 'unknown') AS source, node AS target,
       sum(eur_out - eur_in) AS eur, NULL::BIGINT AS flows, coalesce(level, 'unknown') AS level
FROM node WHERE eur_out > eur_in GROUP BY ALL
UNION ALL
SELECT s.node, t.node, sum(p.eur), sum(p.n), coalesce(min(s.level), 'unknown')
FROM pairs p JOIN node s ON s.org = p.src JOIN node t ON t.org = p.dst
WHERE s.node <> t.node
GROUP BY s.node, t.node
HAVING sum(p.eur) > 0
ORDER BY 1, 2
"""


# the name a Sankey node shows: as a recipient if it receives (individuals have none), else
# as a funder; the name on most of its flows (ties alphabetical), not one that follows row order
_NODE_NAMES_SQL = """
SELECT org_id, CASE WHEN pref = 1 THEN coalesce(name, 'individual recipient') ELSE name END AS name
FROM (
  SELECT to_org_id AS org_id, to_name AS name, count(*) AS n, 1 AS pref
  FROM marts.money_flows WHERE to_org_id IN (SELECT unnest($ids)) GROUP BY 1, 2
  UNION ALL
  SELECT from_org_id, from_name, count(*), 2
  FROM marts.money_flows WHERE from_org_id IN (SELECT unnest($ids)) GROUP BY 1, 2)
QUALIFY row_number() OVER (PARTITION BY org_id ORDER BY pref, name IS NULL, n DESC, name) = 1
"""


def _sankey_data(con: duckdb.DuckDBPyConnection, max_orgs: int) -> dict[str, Any]:
    links = _rows(con, SANKEY_SQL, {"max_orgs": max_orgs})
    # names of the organisations shown only (~max_orgs), not of all 150k
    shown = sorted(
        {
            node
            for link in links
            for node in (link["source"], link["target"])
            if not node.startswith(("level:", "~"))
        }
    )
    names = {
        r["org_id"]: r["name"] for r in _rows(con, _NODE_NAMES_SQL, {"ids": shown}) if r["name"]
    }
    totals = con.execute(
        "SELECT count(*), count(amount_eur), coalesce(sum(amount_eur), 0) FROM marts.money_flows"
    ).fetchall()[0]
    return {
        "links": links,
        "names": names,
        "flows": int(totals[0]),
        "flows_eur": int(totals[1]),
        "total_eur": totals[2],
    }


def _streams(con: duckdb.DuckDBPyConnection) -> list[dict]:
    return _rows(
        con,
        f"""
        WITH top AS (
          SELECT * FROM marts.funding_streams ORDER BY total_eur DESC, stream_id
          LIMIT {MAX_STREAMS}
        )
        SELECT t.stream_id, t.funder_name, t.funder_org_id, t.programme, t.funding_level,
               t.total_eur, t.awards, c.controller_id, c.controller_name, c.controller_kind,
               c.control_basis, c.share_min, c.share_max, c.path, c.evidence
        FROM top t LEFT JOIN marts.funding_stream_control c USING (stream_id)
        ORDER BY t.total_eur DESC, t.stream_id,
                 {_order_case("c.control_basis", _BASIS_ORDER)}, c.share_max DESC NULLS LAST,
                 c.controller_id
        """,
    )


def _projects(con: duckdb.DuckDBPyConnection) -> list[dict]:
    return _rows(
        con,
        f"""
        WITH money AS (
          SELECT project_id, sum(amount_eur) AS eur FROM marts.money_flows
          WHERE project_id IS NOT NULL GROUP BY 1
        ),
        top AS (
          SELECT project_id, any_value(project_title) AS project_title,
                 any_value(partnership_id) AS partnership_id
          FROM marts.project_control GROUP BY 1
        )
        SELECT t.project_id, t.project_title, t.partnership_id, t.eur AS project_eur,
               c.controller_id, c.controller_name, c.controller_kind, c.control_basis,
               c.share_min, c.share_max, c.path, c.evidence
        FROM (SELECT * FROM top LEFT JOIN money USING (project_id)
              ORDER BY eur DESC NULLS LAST, project_id LIMIT {MAX_PROJECTS}) t
        JOIN marts.project_control c USING (project_id)
        ORDER BY t.eur DESC NULLS LAST, t.project_id,
                 {_order_case("c.control_basis", _BASIS_ORDER)}, c.share_max DESC NULLS LAST,
                 c.controller_id, c.valid_from
        """,
    )


def _owners(con: duckdb.DuckDBPyConnection) -> list[dict]:
    return _rows(
        con,
        f"""
        SELECT u.entity_id, u.entity_name, u.owner_id, u.owner_name, u.owner_kind, u.direct,
               u.depth, u.share_min, u.share_max, u.paths, u.cycle, o.eur_in
        FROM marts.ultimate_controllers u LEFT JOIN marts.organisations o ON o.org_id = u.entity_id
        ORDER BY o.eur_in DESC NULLS LAST, u.entity_id, u.share_max DESC NULLS LAST, u.owner_id
        LIMIT {MAX_OWNERS}
        """,
    )


def _red_flags(con: duckdb.DuckDBPyConnection) -> tuple[list[dict], dict[str, int]]:
    severity = _order_case("severity", _SEVERITY_ORDER)
    # any flag kind, and any column a new kind brings, is shown: nothing is hard-wired to kinds
    rows = _rows(
        con,
        f"""
        SELECT * EXCLUDE (rn, kind_rank) FROM (
          SELECT *, row_number() OVER (
            PARTITION BY flag_type ORDER BY {severity}, amount_eur DESC NULLS LAST, flag_id
          ) AS rn, min({severity}) OVER (PARTITION BY flag_type) AS kind_rank
          FROM marts.red_flags
        ) WHERE rn <= {MAX_FLAGS_PER_KIND}
        ORDER BY kind_rank, flag_type, rn
        """,
    )
    counts = dict(
        con.execute("SELECT flag_type, count(*) FROM marts.red_flags GROUP BY 1").fetchall()
    )
    return rows, {str(k): int(v) for k, v in counts.items()}


def _flow_sources(con: duckdb.DuckDBPyConnection, flow_ids: list[str]) -> dict[str, dict]:
    """Evidence that names a money flow (`system:record`) resolved to its source file."""
    if not flow_ids:
        return {}
    rows = _rows(
        con,
        "SELECT flow_id, source_system, source_file, source_row, source_record_id "
        "FROM marts.money_flows WHERE flow_id IN (SELECT unnest($ids))",
        {"ids": sorted(set(flow_ids))},
    )
    return {r["flow_id"]: r for r in rows}


def _data_quality(con: duckdb.DuckDBPyConnection) -> tuple[list[dict], list[dict]]:
    summary = _rows(
        con,
        """
        SELECT source_system, count(DISTINCT source_file) AS files,
          count(DISTINCT source_file) FILTER (WHERE status = 'failed') AS failed_files,
          sum(rows_in) FILTER (WHERE check_name = 'ingest') AS records_read,
          sum(rows_quarantined) FILTER (WHERE check_name = 'ingest') AS ingest_quarantined,
          sum(rows_loaded) FILTER (WHERE check_name LIKE 'staging:%') AS staged,
          sum(rows_quarantined) FILTER (WHERE check_name LIKE 'staging:%') AS staging_quarantined,
          count(*) FILTER (WHERE check_name LIKE 'gx:%' AND status <> 'ok') AS gx_not_ok,
          count(*) FILTER (WHERE rows_in IS NOT NULL
                             AND rows_in <> rows_loaded + rows_quarantined) AS unreconciled
        FROM marts.data_quality GROUP BY 1 ORDER BY 1
        """,
    )
    issues = _rows(
        con,
        f"""
        SELECT source_system, source_file, check_name, status, rows_in, rows_loaded,
               rows_quarantined, failed_expectations, message
        FROM marts.data_quality WHERE status <> 'ok'
        ORDER BY {_order_case("status", ("failed", "quarantined_rows", "warning"))},
                 source_system, source_file, check_name
        LIMIT {MAX_DQ_ISSUES}
        """,
    )
    return summary, issues


# --- formatting ----------------------------------------------------------------------------


def _e(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _eur(value: object) -> str:
    if value is None:
        return "—"
    return f"€{Decimal(str(value)):,.0f}"


def _int(value: object) -> str:
    return "—" if value is None else f"{int(value):,}"  # type: ignore[call-overload]


def _share(lo: object, hi: object) -> str:
    if lo is None and hi is None:
        return ""

    def pct(v: object) -> str:
        if v is None:
            return "?"
        return f"{Decimal(str(v)).quantize(Decimal('0.01')).normalize():f}%"

    return pct(lo) if lo == hi else f"{pct(lo)} to {pct(hi)}"


def _cell(value: object) -> str:
    """Any mart value as escaped HTML; lists become line-separated items."""
    if value is None:
        return '<span class="null">—</span>'
    if isinstance(value, list | tuple):
        return "<br>".join(_e(v) for v in value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, Decimal | float):
        return _e(f"{value:,.2f}")
    return _e(value)


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], cls: str = "") -> str:
    """`rows` are already-escaped HTML cells."""
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "\n".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    attr = f' class="{cls}"' if cls else ""
    return f"<table{attr}><thead><tr>{head}</tr></thead><tbody>\n{body}\n</tbody></table>"


def _more(shown: int, total: int, where: str) -> str:
    if total <= shown:
        return ""
    return f'<p class="note">{total - shown:,} more in <code>{_e(where)}</code>.</p>'


def _evidence_item(item: str, flows: dict[str, dict]) -> str:
    """`system:file:record` (file paths have a folder) or a money flow id `system:record`."""
    parts = item.split(":", 2)
    flow = flows.get(item)
    if flow is not None:
        system, file, record = (
            flow["source_system"],
            flow["source_file"],
            f"{flow['source_record_id']} (row {flow['source_row']})",
        )
    elif len(parts) == 3 and "/" in parts[1]:
        system, file, record = parts
    elif len(parts) >= 2:
        system, file, record = parts[0], None, item.split(":", 1)[1]
    else:
        system, file, record = None, None, item
    return (
        f'<li><span class="sys">{_e(system or "?")}</span> '
        f"<code>{_e(file or '—')}</code> <span class='rec'>{_e(record)}</span></li>"
    )


def _evidence_list(items: list[str], flows: dict[str, dict]) -> str:
    """The first items in view, the rest folded (<details> needs no JavaScript)."""
    shown = "".join(_evidence_item(i, flows) for i in items[:MAX_EVIDENCE_SHOWN])
    html_ = f"<ul class='ev'>{shown}</ul>"
    if len(items) > MAX_EVIDENCE_SHOWN:
        rest = "".join(_evidence_item(i, flows) for i in items[MAX_EVIDENCE_SHOWN:])
        html_ += (
            f"<details><summary>{len(items) - MAX_EVIDENCE_SHOWN} more records</summary>"
            f"<ul class='ev'>{rest}</ul></details>"
        )
    return html_


# --- sections ------------------------------------------------------------------------------


def _node_label(node: str, names: dict[str, str], counts: dict[str, int]) -> str:
    if node.startswith("level:"):
        level = node.removeprefix("level:")
        return f"{level.upper() if level == 'eu' else level.capitalize()} funding"
    if node.startswith("~"):
        return f"{node[1:].capitalize()} ({counts.get(node, 0):,})"
    return names.get(node) or node


def _rgba(hex_colour: str, alpha: float) -> str:
    r, g, b = (int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def _sankey_section(con: duckdb.DuckDBPyConnection, max_orgs: int) -> str:
    data = _sankey_data(con, max_orgs)
    links: list[dict] = data["links"]
    names: dict[str, str] = data["names"]
    intro = (
        f"<p>{_int(data['flows'])} money flows in <code>marts.money_flows</code>, "
        f"{_eur(data['total_eur'])} in total ({_int(data['flows'] - data['flows_eur'])} without "
        "an EUR value are left out). Money enters from the funder's level where a funder paid "
        "out more than it received in these data; money it received from another funder "
        "arrives through that funder. Credits net against payments. "
        f"The {max_orgs} organisations moving the most money are shown by name; the "
        "others are grouped.</p>"
    )
    if not links:
        return intro + "<p>No money flows with an EUR value.</p>"
    nodes = sorted({link["source"] for link in links} | {link["target"] for link in links})
    # grouped-organisation counts for the "other" labels
    other_counts = dict(
        con.execute(
            """
            WITH f AS (SELECT from_org_id AS src, to_org_id AS dst, amount_eur AS eur
                       FROM marts.money_flows
                       WHERE amount_eur IS NOT NULL AND from_org_id <> to_org_id),
            outs AS (SELECT src AS org, sum(eur) AS eur FROM f GROUP BY 1),
            ins AS (SELECT dst AS org, sum(eur) AS eur FROM f GROUP BY 1),
            orgs AS (
              SELECT org, o.org IS NOT NULL AS pays, i.org IS NOT NULL AS receives,
                row_number() OVER (ORDER BY greatest(coalesce(o.eur, 0), coalesce(i.eur, 0))
                                   DESC, org) AS rnk
              FROM outs o FULL JOIN ins i USING (org)
            )
            SELECT CASE WHEN pays AND receives THEN '~other intermediaries'
                        WHEN pays THEN '~other funders' ELSE '~other recipients' END, count(*)
            FROM orgs WHERE rnk > $max_orgs GROUP BY 1
            """,
            {"max_orgs": max_orgs},
        ).fetchall()
    )

    def rank(node: str) -> tuple[int, int, str]:
        if node.startswith("level:"):
            level = node.removeprefix("level:")
            return (0, LEVELS.index(level) if level in LEVELS else len(LEVELS), node)
        return (2 if node.startswith("~") else 1, 0, node)

    nodes.sort(key=rank)
    index = {n: i for i, n in enumerate(nodes)}
    # labels are escaped: plotly renders a subset of HTML tags in them
    labels = [_e(_node_label(n, names, other_counts)) for n in nodes]
    colours = [
        LEVEL_COLOURS.get(n.removeprefix("level:"), _ORG_COLOUR)
        if n.startswith("level:")
        else (_OTHER_COLOUR if n.startswith("~") else _ORG_COLOUR)
        for n in nodes
    ]
    fig = go.Figure(
        go.Sankey(
            arrangement="snap",
            valueformat=",.0f",
            valuesuffix=" EUR",
            node={"label": labels, "color": colours, "pad": 14, "thickness": 16},
            link={
                "source": [index[link["source"]] for link in links],
                "target": [index[link["target"]] for link in links],
                "value": [float(link["eur"]) for link in links],
                "color": [
                    _rgba(LEVEL_COLOURS.get(link["level"], _ORG_COLOUR), 0.35) for link in links
                ],
            },
        )
    )
    fig.update_layout(
        height=max(520, 26 * len(nodes)),
        margin={"l": 10, "r": 10, "t": 10, "b": 10},
        font={"size": 12},
    )
    chart = pio.to_html(
        fig,
        full_html=False,
        include_plotlyjs=True,  # embedded: the report must open offline
        config={"displaylogo": False, "responsive": True},
        div_id="sankey",
    )
    top = sorted(links, key=lambda link: (-link["eur"], link["source"], link["target"]))[:30]
    rows = [
        [
            _e(_node_label(link["source"], names, other_counts)),
            _e(_node_label(link["target"], names, other_counts)),
            _e(link["level"]),
            f'<span class="num">{_eur(link["eur"])}</span>',
            f'<span class="num">{_int(link["flows"])}</span>' if link["flows"] else "",
        ]
        for link in top
    ]
    return (
        intro
        + '<noscript><p class="note">The chart needs JavaScript; the largest links are listed '
        "below.</p></noscript>"
        + f'<div class="chart">{chart}</div>'
        + "<details><summary>Largest links of the chart as a table</summary>"
        + _table(["from", "to", "level", "EUR", "flows"], rows)
        + "</details>"
    )


def _controller_cells(r: dict) -> list[str]:
    kind = "person" if r.get("controller_kind") == "person" else ""
    return [
        f'<span class="{kind}">{_e(r.get("controller_name") or r.get("controller_id"))}</span>'
        f'<br><code class="id">{_e(r.get("controller_id"))}</code>',
        f'<span class="basis">{_e(r.get("control_basis"))}</span>',
        _e(_share(r.get("share_min"), r.get("share_max"))),
        f'<code class="path">{_e(r.get("path"))}</code>',
        f'<span class="evi">{_e(r.get("evidence"))}</span>',
    ]


def _grouped_control_table(
    rows: list[dict], key: str, head_html: Any, first_header: str
) -> tuple[str, int]:
    groups: dict[str, list[dict]] = {}
    for r in rows:
        groups.setdefault(r[key], []).append(r)
    out: list[str] = []
    for members in groups.values():
        shown = [m for m in members if m.get("control_basis")][:MAX_CONTROLLERS_PER_ROW]
        hidden = sum(1 for m in members if m.get("control_basis")) - len(shown)
        span = max(1, len(shown)) + (1 if hidden else 0)
        first = f'<td rowspan="{span}" class="group">{head_html(members[0])}</td>'
        if not shown:
            out.append(f'<tr>{first}<td colspan="5" class="null">no controller recorded</td></tr>')
            continue
        for i, m in enumerate(shown):
            cells = "".join(f"<td>{c}</td>" for c in _controller_cells(m))
            out.append(f"<tr>{first if i == 0 else ''}{cells}</tr>")
        if hidden:
            out.append(f'<tr><td colspan="5" class="note">+{hidden} more controllers</td></tr>')
    head = "".join(
        f"<th>{h}</th>" for h in (first_header, "controller", "basis", "share", "path", "evidence")
    )
    table = f'<table class="control"><thead><tr>{head}</tr></thead><tbody>\n'
    return table + "\n".join(out) + "\n</tbody></table>", len(groups)


def _streams_section(con: duckdb.DuckDBPyConnection) -> str:
    rows = _streams(con)
    total = scalar_int(con, "SELECT count(*) FROM marts.funding_streams")

    def head(r: dict) -> str:
        programme = r.get("programme") or "(no named programme)"
        return (
            f"<strong>{_e(r.get('funder_name') or r.get('funder_org_id'))}</strong><br>"
            f"{_e(programme)}<br><span class='lvl lvl-{_e(r.get('funding_level'))}'>"
            f"{_e(r.get('funding_level'))}</span> {_eur(r.get('total_eur'))} · "
            f"{_int(r.get('awards'))} awards"
        )

    if not rows:
        return "<p>No funding streams.</p>"
    table, shown = _grouped_control_table(rows, "stream_id", head, "funding stream")
    return (
        "<p>The largest funding streams by EUR and who controls each: the funder, the body the "
        "source names (managing authority, responsible department), the funder's owners and "
        "board.</p>" + table + _more(shown, total, "marts.funding_stream_control")
    )


def _projects_section(con: duckdb.DuckDBPyConnection) -> str:
    rows = _projects(con)
    total = scalar_int(con, "SELECT count(DISTINCT project_id) FROM marts.project_control")

    def head(r: dict) -> str:
        return (
            f"<strong>{_e(r.get('project_title') or r.get('project_id'))}</strong><br>"
            f"<code class='id'>{_e(r.get('project_id'))}</code><br>"
            f"run by <code class='id'>{_e(r.get('partnership_id'))}</code><br>"
            f"{_eur(r.get('project_eur'))} linked"
        )

    if not rows:
        return "<p>No project control rows.</p>"
    table, shown = _grouped_control_table(rows, "project_id", head, "project")
    return (
        "<p>Who controls each governance project and why: owners (directly and through "
        "ownership chains), board seats, lead partner, accountable body, funders with their "
        "share of the project's money, managing authorities.</p>"
        + table
        + _more(shown, total, "marts.project_control")
    )


def _owners_section(con: duckdb.DuckDBPyConnection) -> str:
    rows = _owners(con)
    total = scalar_int(con, "SELECT count(*) FROM marts.ultimate_controllers")
    if not rows:
        return "<p>No ownership chains recorded.</p>"
    body = [
        [
            f"{_e(r['entity_name'] or r['entity_id'])}<br><code class='id'>{_e(r['entity_id'])}</code>",
            f"<span class='{'person' if r['owner_kind'] == 'person' else ''}'>"
            f"{_e(r['owner_name'] or r['owner_id'])}</span>"
            f"<br><code class='id'>{_e(r['owner_id'])}</code>",
            _e(_share(r["share_min"], r["share_max"])),
            ("direct" if r["direct"] else f"{_int(r['depth'])} links")
            + (" <strong class='warn'>cycle cut</strong>" if r["cycle"] else ""),
            f"<code class='path'>{_cell(r['paths'])}</code>",
        ]
        for r in rows
    ]
    return (
        "<p>The owners at the top of each ownership chain, shares multiplied along the chain "
        "(<code>marts.ultimate_controllers</code>), for the entities receiving the most money.</p>"
        + _table(["entity", "ultimate owner", "share", "depth", "paths"], body)
        + _more(len(rows), total, "marts.ultimate_controllers")
    )


_FLAG_SHOWN = {
    "flag_id",
    "flag_type",
    "severity",
    "subject_type",
    "subject_id",
    "project_id",
    "related_party_id",
    "related_party_name",
    "amount_eur",
    "description",
    "path",
    "evidence",
}


def _flags_section(con: duckdb.DuckDBPyConnection) -> str:
    rows, counts = _red_flags(con)
    if not rows:
        return "<p>No red flags.</p>"
    evidence_ids = [str(item) for r in rows for item in (r.get("evidence") or [])]
    flows = _flow_sources(con, evidence_ids)
    summary = _table(
        ["kind", "findings"],
        [
            [f'<a href="#flags-{_e(k)}">{_e(k)}</a>', f'<span class="num">{_int(v)}</span>']
            for k, v in sorted(counts.items())
        ],
        "small",
    )
    parts = [
        "<p>Findings an auditor would look into (<code>marts.red_flags</code>), each with the "
        "path connecting the parties and the source records behind it.</p>",
        summary,
    ]
    by_kind: dict[str, list[dict]] = {}
    for r in rows:
        by_kind.setdefault(str(r.get("flag_type")), []).append(r)
    for kind, flags in by_kind.items():
        body = []
        for r in flags:
            extra = {k: v for k, v in r.items() if k not in _FLAG_SHOWN and v is not None}
            extra_html = "".join(
                f"<br><span class='k'>{_e(k)}:</span> {_cell(v)}" for k, v in extra.items()
            )
            evidence = r.get("evidence")
            items = evidence if isinstance(evidence, list) else [evidence] if evidence else []
            body.append(
                [
                    f"<span class='sev sev-{_e(r.get('severity'))}'>{_e(r.get('severity'))}</span>",
                    f"{_e(r.get('description'))}{extra_html}",
                    f"{_e(r.get('subject_type'))}<br><code class='id'>{_e(r.get('subject_id'))}</code>"
                    + (
                        f"<br>project <code class='id'>{_e(r['project_id'])}</code>"
                        if r.get("project_id")
                        else ""
                    ),
                    f"{_e(r.get('related_party_name'))}<br>"
                    f"<code class='id'>{_e(r.get('related_party_id'))}</code>",
                    f'<span class="num">{_eur(r.get("amount_eur"))}</span>',
                    f"<code class='path'>{_e(r.get('path'))}</code>",
                    _evidence_list([str(i) for i in items], flows),
                ]
            )
        parts.append(
            f'<h3 id="flags-{_e(kind)}">{_e(kind)} <span class="count">'
            f"({_int(counts.get(kind, len(flags)))})</span></h3>"
        )
        parts.append(
            _table(
                [
                    "severity",
                    "finding",
                    "subject",
                    "controller / related party",
                    "EUR",
                    "path",
                    "evidence (source system · file · record)",
                ],
                body,
                "flags",
            )
        )
        parts.append(_more(len(flags), counts.get(kind, 0), "marts.red_flags"))
    return "\n".join(parts)


def _quality_section(con: duckdb.DuckDBPyConnection) -> str:
    summary, issues = _data_quality(con)
    if not summary:
        return "<p>No data quality rows.</p>"
    body = [
        [
            _e(r["source_system"]),
            *(
                f'<span class="num">{_int(r[k])}</span>'
                for k in (
                    "files",
                    "failed_files",
                    "records_read",
                    "ingest_quarantined",
                    "staged",
                    "staging_quarantined",
                    "gx_not_ok",
                )
            ),
            "<strong class='warn'>no</strong>" if r["unreconciled"] else "yes",
        ]
        for r in summary
    ]
    total_issues = scalar_int(con, "SELECT count(*) FROM marts.data_quality WHERE status <> 'ok'")
    issue_rows = [
        [
            _e(r["source_system"]),
            f"<code>{_e(r['source_file'])}</code>",
            _e(r["check_name"]),
            f"<span class='st st-{_e(r['status'])}'>{_e(r['status'])}</span>",
            f'<span class="num">{_int(r["rows_in"])}</span>',
            f'<span class="num">{_int(r["rows_loaded"])}</span>',
            f'<span class="num">{_int(r["rows_quarantined"])}</span>',
            _cell(r["failed_expectations"]) if r["failed_expectations"] else "",
            _e(r["message"]),
        ]
        for r in issues
    ]
    return (
        "<p>Per source (<code>marts.data_quality</code>): files read, records in and "
        "quarantined at ingest and staging (quarantined records are in the build database), "
        "Great Expectations checks that did not pass, and whether every file reconciles "
        "(in = loaded + quarantined).</p>"
        + _table(
            [
                "source",
                "files",
                "failed files",
                "records read",
                "quarantined at ingest",
                "staged",
                "quarantined at staging",
                "GX checks not ok",
                "reconciles",
            ],
            body,
        )
        + "<h3>Files and checks that need a look</h3>"
        + (
            _table(
                [
                    "source",
                    "file",
                    "check",
                    "status",
                    "in",
                    "loaded",
                    "quarantined",
                    "failed expectations",
                    "message",
                ],
                issue_rows,
                "dq",
            )
            if issue_rows
            else "<p>Every file and check is ok.</p>"
        )
        + _more(len(issues), total_issues, "marts.data_quality")
    )


_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1d2430;background:#fafbfc}
header{background:#1d2f4a;color:#fff;padding:18px 28px}
header h1{margin:0 0 4px;font-size:22px}
header p{margin:2px 0;color:#cfd8e3;font-size:13px}
header code{color:#fff}
nav{padding:8px 28px;background:#e9eef4;font-size:13px}
nav a{margin-right:16px;color:#1d2f4a}
main{padding:8px 28px 40px;max-width:1400px;box-sizing:border-box}
h2{margin-top:32px;border-bottom:2px solid #1d2f4a;padding-bottom:4px}
h3{margin:22px 0 6px}
.kpis{display:flex;gap:14px;flex-wrap:wrap;margin:16px 0}
.kpi{background:#fff;border:1px solid #dde3ea;border-radius:6px;padding:8px 14px}
.kpi b{display:block;font-size:20px}
table{border-collapse:collapse;width:100%;margin:8px 0;background:#fff;font-size:13px}
table.small{width:auto}
th,td{border:1px solid #dde3ea;padding:4px 6px;text-align:left;vertical-align:top}
th{background:#eef2f6}
td.group{background:#f6f8fa;min-width:200px}
code{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12px;overflow-wrap:anywhere}
code.id{color:#55606e}
code.path{word-break:break-word}
.ev{margin:0;padding-left:14px;font-size:12px}
.ev .sys{font-weight:600}
.evi{font-size:12px}
.num{font-variant-numeric:tabular-nums;white-space:nowrap}
.note,.null{color:#6b7480;font-size:12px}
.person{font-style:italic}
.basis{white-space:nowrap}
.warn{color:#b42318}
.sev{white-space:nowrap;font-weight:700;text-transform:uppercase;font-size:11px;padding:1px 5px;border-radius:3px}
.sev-high{background:#fde2e1;color:#b42318}.sev-medium{background:#fff1d6;color:#8a5300}
.sev-low{background:#e6f0ff;color:#1e4fa3}
.st-failed{color:#b42318;font-weight:700}.st-warning{color:#8a5300}
.lvl{font-size:11px;font-weight:600;text-transform:uppercase}
.chart{background:#fff;border:1px solid #dde3ea}
details{margin:8px 0}
table.dq td:nth-child(2){min-width:220px}
"""


def render_report(
    marts_db: Path, out: Path, *, sankey_max_orgs: int = SANKEY_MAX_ORGS
) -> dict[str, int]:
    """Write the report for the published marts file `marts_db` to `out` (replaced atomically)
    and return sizes. Reads the marts read-only; raises MartsNotFoundError when absent."""
    con = open_published_marts(Path(marts_db))
    try:
        counts = {
            t: scalar_int(con, f"SELECT count(*) FROM marts.{t}")
            for t in ("money_flows", "funding_streams", "project_control", "red_flags")
        }
        projects = scalar_int(con, "SELECT count(DISTINCT project_id) FROM marts.project_control")
        sections = [
            ("flows", "Money flows", _sankey_section(con, sankey_max_orgs)),
            ("streams", "Who controls each funding stream", _streams_section(con)),
            ("projects", "Who controls each project", _projects_section(con)),
            ("owners", "Ultimate owners", _owners_section(con)),
            ("flags", "Red flags", _flags_section(con)),
            ("quality", "Data quality per source", _quality_section(con)),
        ]
    finally:
        con.close()
    built = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    published = dt.datetime.fromtimestamp(marts_db.stat().st_mtime, dt.UTC).strftime(
        "%Y-%m-%d %H:%M UTC"
    )
    kpis = "".join(
        f'<div class="kpi"><b>{_int(n)}</b>{_e(label)}</div>'
        for n, label in (
            (counts["money_flows"], "money flows"),
            (counts["funding_streams"], "funding streams"),
            (projects, "projects"),
            (counts["red_flags"], "red flags"),
        )
    )
    nav = "".join(f'<a href="#{sid}">{_e(title)}</a>' for sid, title, _ in sections)
    body = "\n".join(
        f'<section id="{sid}"><h2>{_e(title)}</h2>\n{content}\n</section>'
        for sid, title, content in sections
    )
    # only the file name: the report is shared, machine paths stay private
    document = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Fundtrace — who controls the money</title>
<style>{_CSS}</style></head>
<body>
<header><h1>Fundtrace — who controls the money</h1>
<p>Marts file <code>{_e(marts_db.name)}</code>, published {_e(published)} · report built {_e(built)}</p>
<p>Every name, amount and link below comes from the published marts; each finding names its source records.</p>
</header>
<nav>{nav}</nav>
<main><div class="kpis">{kpis}</div>
{body}
</main></body></html>
"""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.{time.time_ns()}.tmp")
    try:
        tmp.write_text(document, encoding="utf-8")
        os.replace(tmp, out)  # a reader never sees a half-written report
    finally:
        tmp.unlink(missing_ok=True)
    return {"bytes": out.stat().st_size, **{f"rows/{k}": v for k, v in counts.items()}}


@dg.asset(
    key=dg.AssetKey(["marts", "report_html"]),
    group_name="marts",
    kinds={"duckdb", "html", "plotly"},  # reads the DuckDB marts, writes HTML
    description="Grain: one self-contained HTML file next to the published marts "
    '(report.html). The static "who controls" report: money flows as a Sankey, top '
    "controllers per funding stream and project, ultimate owners, red flags with evidence and "
    "data quality per source, rendered read-only from the published marts; opens offline.",
    deps=[publish.published_marts.key],
)
def report_html(
    context: dg.AssetExecutionContext, duckdb: DuckDBResource, fundtrace: FundtraceSettings
) -> dg.MaterializeResult:
    marts = fundtrace.marts_path
    target = report_path(marts)
    key = "marts.report_html"
    # the published file is only rewritten when a mart changed (see published_marts)
    fingerprint = f"{code_version()}|{file_state(marts)}"
    with duckdb.get_connection() as con:
        skipped = skipped_file_output(con, key, fingerprint, [target])
        if skipped is not None:
            context.log.info(f"{target}: published marts unchanged, report not re-rendered")
            return dg.MaterializeResult(metadata=skipped)
        sizes = render_report(marts, target)
        context.log.info(f"report written to {target} ({sizes['bytes']:,} bytes)")
        metadata = {"path": dg.MetadataValue.path(str(target)), **sizes}
        remember_file_output(con, key, fingerprint, [target], metadata)
    return dg.MaterializeResult(metadata=metadata)


def main(argv: list[str] | None = None) -> int:
    """`make report`: render next to $FUNDTRACE_MARTS_DB, running the pipeline first if the
    marts file does not exist yet."""
    from pipelines.resources import marts_db_from_env

    del argv
    marts = marts_db_from_env()
    if not marts.is_file():
        from pipelines import cli

        print(f"no marts file {marts.name} yet: running the pipeline first")
        if cli.main(["run"]) != 0:
            print("the run failed; no report", file=sys.stderr)
            return 1
    target = report_path(marts)
    sizes = render_report(marts, target)
    print(f"report: {target} ({sizes['bytes']:,} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
