"""`fundtrace who-controls <name or id>`: who controls an organisation, project or stream.

Reads the published marts file only (DuckDB opened read-only, so it can run while the pipeline
republishes) and prints, for every organisation, person, project or funding stream matching the
query (canonical id, else a case-insensitive substring of a name, else a fuzzy name match):
- projects and streams: their rows of `marts.project_control` / `marts.funding_stream_control`;
- organisations and persons: their owners at the top of each chain, what they control;
- for all: the ownership chains (`marts.ultimate_controllers`) behind the parties involved.
"""

import sys
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TextIO

import duckdb
from rapidfuzz import fuzz, process, utils

from assets.marts.published import MartsNotFoundError, open_published_marts

MAX_SUBJECTS = 10
FUZZY_CUTOFF = (
    75.0  # token_sort_ratio: typos ("Lumenwav Sytems": 83) pass, a shared "Holdings" (54) does not
)
_LIST_ITEMS = 6

EXIT_NO_MATCH = 1
EXIT_NO_MARTS = 2

_CANDIDATES_SQL = """
WITH c AS (
  SELECT 1 AS prio, org_id AS id,
    CASE WHEN org_type IN ('person', 'partnership') THEN org_type ELSE 'organisation' END AS kind,
    coalesce(name, org_id) AS name, coalesce(names_seen, []) AS aliases
  FROM marts.organisations
  UNION ALL
  SELECT 2, owner_id, owner_kind, owner_name, [] FROM marts.ultimate_controllers
  UNION ALL
  SELECT 2, controller_id, controller_kind, controller_name, [] FROM marts.project_control
  UNION ALL
  SELECT 2, controller_id, controller_kind, controller_name, [] FROM marts.funding_stream_control
  UNION ALL
  SELECT 1, project_id, 'project', project_title, [partnership_id] FROM marts.project_control
  UNION ALL
  SELECT 1, stream_id, 'stream',
    coalesce(funder_name, funder_org_id) || ': ' || coalesce(programme, '(no named programme)'),
    [programme] FROM marts.funding_streams
)
SELECT id, first(kind ORDER BY prio, kind), first(name ORDER BY prio, name),
  list_distinct(flatten(list(aliases)))
FROM c WHERE id IS NOT NULL GROUP BY id ORDER BY id
"""


@dataclass(frozen=True)
class Subject:
    id: str
    kind: str  # organisation | person | partnership | project | stream
    name: str
    aliases: tuple[str, ...] = field(default=())

    @property
    def label(self) -> str:
        return f"{self.name} [{self.kind} {self.id}]"


@dataclass
class Match:
    subjects: list[Subject]
    how: str  # id | name | fuzzy


def _candidates(con: duckdb.DuckDBPyConnection) -> list[Subject]:
    return [
        Subject(r[0], r[1], r[2] or r[0], tuple(a for a in r[3] or [] if a))
        for r in con.execute(_CANDIDATES_SQL).fetchall()
    ]


def find_subjects(con: duckdb.DuckDBPyConnection, query: str) -> Match:
    """Subjects whose id equals `query`, else whose names contain it, else fuzzy name matches."""
    needle = query.strip().casefold()
    candidates = _candidates(con)
    by_id = [
        s for s in candidates if needle in (s.id.casefold(), s.id.casefold().split(":", 1)[-1])
    ]
    if by_id:
        return Match(by_id, "id")
    # a partnership id (projects.csv partnership_id) stands for the projects it runs
    runs = [s for s in candidates if s.kind == "project" and needle in map(str.casefold, s.aliases)]
    if runs:
        return Match(runs, "id")
    by_name = [
        s
        for s in candidates
        if any(needle in text.casefold() for text in (s.name, s.id, *s.aliases))
    ]
    if by_name:
        return Match(by_name, "name")
    names = [s.name for s in candidates]
    scored = process.extract(
        query,
        names,
        scorer=fuzz.token_sort_ratio,
        processor=utils.default_process,
        score_cutoff=FUZZY_CUTOFF,
        limit=MAX_SUBJECTS,
    )
    if not scored:
        return Match([], "fuzzy")
    best = max(score for _, score, _ in scored)
    # only the best few: a near tie is ambiguous, anything clearly worse is noise
    return Match([candidates[i] for _, score, i in scored if score >= best - 5], "fuzzy")


def _num(value: Decimal) -> str:
    return f"{value.normalize():f}"


def format_share(
    lo: Decimal | None, hi: Decimal | None, lo_x: bool = False, hi_x: bool = False
) -> str:
    if lo is None and hi is None:
        return ""
    if lo is not None and hi is not None and lo == hi and not (lo_x or hi_x):
        return f"{_num(lo)}%"
    low = "?" if lo is None else f"{'>' if lo_x else ''}{_num(lo)}%"
    high = "?" if hi is None else f"{'<' if hi_x else ''}{_num(hi)}%"
    return f"{low} to {high}"


class _Printer:
    def __init__(self, con: duckdb.DuckDBPyConnection, out: TextIO, evidence: bool) -> None:
        self.con = con
        self.out = out
        self.evidence = evidence
        self.names = {s.id: s.name for s in _candidates(con)}

    def line(self, text: str = "") -> None:
        print(text, file=self.out)

    def path(self, path: str) -> str:
        """'A <- B <- C' with ids replaced by names where the marts know them."""
        return " <- ".join(self.names.get(part, part) for part in path.split(" <- "))

    def rows(self, sql: str, params: list[object]) -> list[tuple]:
        return self.con.execute(sql, params).fetchall()

    def control_rows(self, table: str, key: str, subject: Subject) -> set[str]:
        rows = self.rows(
            f"SELECT control_basis, controller_name, controller_kind, controller_id, share_min, "
            f"share_max, path, evidence FROM {table} WHERE {key} = ? "
            f"ORDER BY control_basis, controller_name, controller_id, path",
            [subject.id],
        )
        self.line(f"  Control ({table}, {len(rows)} rows):")
        involved: set[str] = set()
        for basis, name, kind, cid, lo, hi, path, evidence in rows:
            share = format_share(lo, hi)
            self.line(
                f"    {basis:<20} {name or cid} [{kind} {cid}]" + (f"  {share}" if share else "")
            )
            self.line(f"    {'':<20}   via {self.path(path)}")
            if self.evidence:
                self.line(f"    {'':<20}   evidence: {evidence}")
            involved.update(path.split(" <- ")[1:])
        if not rows:
            self.line("    none recorded")
        return involved

    def chains(self, entity_ids: Iterable[str], title: str) -> None:
        ids = sorted(set(entity_ids))
        rows = self.rows(
            "SELECT entity_id, entity_name, owner_id, owner_name, owner_kind, direct, depth, "
            "share_min, share_max, min_exclusive, max_exclusive, paths, cycle, evidence "
            "FROM marts.ultimate_controllers WHERE list_contains(?, entity_id) "
            "ORDER BY entity_id, share_max DESC NULLS LAST, owner_id",
            [ids],
        )
        self.line(f"  {title} (marts.ultimate_controllers, {len(rows)} rows):")
        for r in rows:
            entity, entity_name, owner, owner_name, kind, direct, depth = r[:7]
            share = format_share(r[7], r[8], r[9], r[10]) or "share unknown"
            how = "direct" if direct else f"indirect, {depth} links"
            loop = ", loop cut" if r[12] else ""
            self.line(
                f"    {entity_name or entity} <- {owner_name or owner} [{kind} {owner}]: "
                f"{share} ({how}{loop})"
            )
            for p in r[11]:
                self.line(f"        chain: {self.path(p)}")
            if self.evidence:
                self.line(f"        evidence: {'; '.join(r[13])}")
        if not rows:
            self.line("    none recorded")

    def controls(self, subject: Subject) -> None:
        """What an organisation or person controls, grouped by basis."""
        rows = self.rows(
            "SELECT control_basis, 'project ' || project_title FROM marts.project_control "
            "WHERE controller_id = ? "
            "UNION ALL SELECT c.control_basis, 'stream ' || coalesce(s.programme, c.stream_id) "
            "FROM marts.funding_stream_control c JOIN marts.funding_streams s USING (stream_id) "
            "WHERE c.controller_id = ? "
            "UNION ALL SELECT 'ultimate owner', entity_name FROM marts.ultimate_controllers "
            "WHERE owner_id = ? ORDER BY 1, 2",
            [subject.id, subject.id, subject.id],
        )
        grouped: dict[str, list[str]] = defaultdict(list)
        for basis, what in rows:
            if what not in grouped[basis]:
                grouped[basis].append(what)
        if not grouped:
            return
        self.line("  It is itself a controller (marts.project_control, funding_stream_control):")
        for basis, items in grouped.items():
            more = f" and {len(items) - _LIST_ITEMS} more" if len(items) > _LIST_ITEMS else ""
            self.line(f"    {basis} of {', '.join(items[:_LIST_ITEMS])}{more}")

    def subject(self, subject: Subject) -> None:
        self.line(f"== {subject.label}")
        if subject.kind == "project":
            involved = self.control_rows("marts.project_control", "project_id", subject)
            self.chains(involved, "Ownership chains behind these controllers")
        elif subject.kind == "stream":
            involved = self.control_rows("marts.funding_stream_control", "stream_id", subject)
            self.chains(involved, "Ownership chains behind these controllers")
        else:
            if subject.kind != "person":
                self.chains([subject.id], "Owners at the top of each ownership chain")
            self.controls(subject)
        self.line()


def who_controls(
    marts_db: Path,
    query: str,
    out: TextIO | None = None,
    err: TextIO | None = None,
    evidence: bool = False,
) -> int:
    """Print the control report for `query` (to stdout, problems to stderr); the exit code."""
    # looked up per call, so redirected streams (pytest's capsys) are honoured
    stdout: TextIO = out if out is not None else sys.stdout
    stderr: TextIO = err if err is not None else sys.stderr
    try:
        con = open_published_marts(marts_db)
    except MartsNotFoundError as exc:
        print(exc, file=stderr)
        return EXIT_NO_MARTS
    except duckdb.Error as exc:
        print(f"cannot open {marts_db} read-only: {exc}", file=stderr)
        return EXIT_NO_MARTS
    try:
        match = find_subjects(con, query)
        if not match.subjects:
            print(
                f"nothing in {marts_db} matches {query!r}: no organisation, person, project or "
                "funding stream has that id or a name containing it (try part of a name, or an "
                "id from marts.organisations)",
                file=stderr,
            )
            return EXIT_NO_MATCH
        shown = match.subjects[:MAX_SUBJECTS]
        note = {"id": "by id", "name": "by name", "fuzzy": "by fuzzy name match"}[match.how]
        count = len(match.subjects)
        print(
            f"{count} {'match' if count == 1 else 'matches'} for {query!r} ({note})\n", file=stdout
        )
        printer = _Printer(con, stdout, evidence)
        for subject in shown:
            printer.subject(subject)
        rest = match.subjects[MAX_SUBJECTS:]
        if rest:
            names = ", ".join(s.label for s in rest[:20])
            print(f"{len(rest)} more match(es), refine the query: {names}", file=stdout)
        return 0
    except duckdb.Error as exc:
        print(f"{marts_db} is not a Fundtrace marts file: {exc}", file=stderr)
        return EXIT_NO_MARTS
    finally:
        con.close()
