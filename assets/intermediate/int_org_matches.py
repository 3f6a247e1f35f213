"""Entity resolution, step 2: every candidate match decided.

The input is `intermediate.int_org_mentions` (assets/intermediate/int_org_mentions.py).
`intermediate.int_org_matches` holds every decision taken on a candidate pair, accepted or
rejected, in the order it was taken. Methods, strongest first:

1. `override_same` / `override_different`: analyst rows of `governance/overrides.csv`. They
   always win: `different` forbids every merge that would join the two references (directly
   or through a cluster), `same` merges them whatever the algorithm says. A `same` row that
   contradicts a `different` row is rejected (forbidding is the safe side).
2. `shared_identifier`: one identifier (VAT number, PIC, org-id) published for two references
   (a CORDIS participant's VAT = an FTS beneficiary's VAT; a charity published with its
   company number). An identifier published for two different registered ids of one scheme
   (two company numbers) is ambiguous and merges nothing; one published for more than
   `identifier_max_refs` references is treated as a placeholder.
3. `exact_name`: the normalised name (`ft_match_key`: case, punctuation, accents, HTML
   entities, possessive 's, legal forms) of a weak reference equals the name of exactly one other
   organisation cluster in the same country (or where either country is unknown).
4. `fuzzy_name`: rapidfuzz `token_sort_ratio` of normalised names, only for candidate pairs
   built set-based in DuckDB: a shared block (a pair of the rarest words of the name, or a word
   of a one- or two-word name, held by at most `block_max_refs` references), equal numbers
   and initials, compatible country. It merges only when the best cluster scores at least
   `fuzzy_min_score` and leads the second by `fuzzy_min_margin`.

Names only ever attach a *weak* reference (XI-PIC-, 360G-, a local register id, FTNAME-) whose
cluster has no registered id yet; they never join two clusters that both hold a registered id
(GB-COH vs GB-CHC) nor two different ids of one scheme (two PICs). Persons, anonymised
individuals and redacted payees never match on anything but an override. Empty and
placeholder identifiers were already dropped by `ft_org_id` / `ft_vat_number`.

Every threshold is in `MatchConfig` below. Clusters are the union-find closure of the accepted
pairs; `intermediate.int_org_identity` turns them into canonical ids.

Incremental runs. A row is a decision (refs, method, score, accepted, why, and what it rests
on: the identifier or name keys, kept in `quality.org_match_basis`) plus what it shows (names,
evidence with files, systems), rendered afterwards from the mentions of its two references.
Matching reads, per reference, only its kinds, countries (a registered id's are its
register's, so the countries its mentions publish are not read), the keys of its names and its
identifiers; `quality.key_digests` keeps a hash of those (`decision`) and one of
all its mention columns (`mentions`), and `quality.build_fingerprints` the fingerprint of
code, thresholds, overrides and org-id prefixes and the row count (under
`intermediate.int_org_matches#decisions`, a key of its own: the asset's entry is dropped before
every rebuild). When that fingerprint and every reference's `decision` hash are unchanged (no
reference added or gone), matching would read exactly what it read last time and, being
deterministic, take the same decisions: they are kept and only the rows of references whose
`mentions` hash changed are rendered again (a new file of known recipients). They are kept
too when the only references whose `decision` hash changed are new ones that share nothing
matching reads with any other (`_apart`: no override names them, no identifier, name key or
fuzzy pair joins them to another, and they push no block past its cap nor change which words
of a longer name are its rarest): a file of organisations nobody published before. When the
new references connect to others by fuzzy pairs only, the decisions by override, identifier
and exact name are taken as stored and the fuzzy ones again, on the pairs the stored decisions
were taken on (`quality.org_fuzzy_pairs`) and the new references' own: the known references'
blocks are unchanged, so are their pairs (`Matcher.pairs_with`). Anything else takes every
decision again. Rows and state are written in one transaction, so a failed build leaves both
as they were.
"""

import csv
import dataclasses
import json
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from pathlib import Path

import dagster as dg
import duckdb
import numpy as np
import pyarrow as pa
from dagster_duckdb import DuckDBResource
from rapidfuzz import fuzz, process

from assets.common.files import detect_encoding, sha256_file
from assets.common.fingerprint import (
    ensure_fingerprint_table,
    input_fingerprint,
    record_in_transaction,
    skip_unchanged,
    stored_entry,
)
from assets.common.key_digests import (
    DIGESTS,
    changed_keys_sql,
    ensure_key_digests,
    store_digests,
    stored_sql,
)
from assets.common.python_gc import gc_paused
from assets.common.tables import (
    Column,
    TableSpec,
    create_table,
    materialize_result,
    rebuild_table,
    registered,
    registered_table,
    scalar_int,
    sql_literal,
    table_columns,
    transaction,
)

# mentions live in their own module; re-exported for callers of this one
from assets.intermediate.int_org_mentions import (
    INT_ORG_MENTIONS as INT_ORG_MENTIONS,
)
from assets.intermediate.int_org_mentions import (
    build_int_org_mentions as build_int_org_mentions,
)
from assets.intermediate.int_org_mentions import (
    install_macros as install_macros,
)
from assets.intermediate.int_org_mentions import (
    int_org_mentions as int_org_mentions,
)
from assets.raw.reference import ORGID_PREFIXES
from pipelines.resources import FundtraceSettings


@dataclass(frozen=True)
class MatchConfig:
    """Every threshold of entity resolution, in one place (see the module doc for the why)."""

    # token_sort_ratio (0-100) of normalised names at or above which a fuzzy pair may merge:
    # tolerates a typo or two in a 20-30 character name; unrelated demo names stay <= 75
    fuzzy_min_score: float = 90.0
    # the best candidate cluster must lead the second by this much, else nothing merges
    fuzzy_min_margin: float = 5.0
    # near misses at or above this score are written (rejected) for analysts to review
    fuzzy_report_min: float = 80.0
    # shorter normalised names (abbreviations) are too unreliable for fuzzy matching
    fuzzy_min_key_length: int = 8
    # fuzzy blocks are pairs of words (single words for one- and two-word names) taken from
    # the rarest `block_max_tokens` words of a name; a block shared by more references than
    # `block_max_refs` is too common to say anything and is dropped
    block_max_refs: int = 100
    block_max_tokens: int = 6
    block_min_token_length: int = 3
    # an identifier published for more distinct references than this is a placeholder
    identifier_max_refs: int = 10


MATCH_CONFIG = MatchConfig()

# Words too common to form a fuzzy block (frequency caps the rest).
STOP_TOKENS = (
    "and", "the", "for", "of", "de", "du", "des", "la", "le", "les", "der", "die", "das", "und",
    "del", "della", "van", "von", "y", "et",
)  # fmt: skip

# Normalised names that say "unknown" rather than name an organisation: never matched.
PLACEHOLDER_NAME_KEYS = (
    "n a", "na", "none", "unknown", "not known", "not applicable", "various", "tbc", "tba",
    "redacted", "withheld", "redacted personal data", "personal data", "individual",
    "private individual", "anonymous", "natural person", "confidential", "other", "misc",
)  # fmt: skip

NAME_METHODS = ("exact_name", "fuzzy_name")

# Strength of a reference (ft_ref_rank below: 0 registered org-id, 1 XI-PIC, 2 360G-, 3 local
# id, 4 FTNAME-, 9 redacted); the canonical id of a cluster is its strongest member.
RANK_REGISTRY, RANK_NEVER = 0, 9


INT_ORG_MATCHES = TableSpec(
    schema="intermediate",
    name="int_org_matches",
    grain="one candidate pair of organisation references decided by one method "
    "(accepted or rejected)",
    description="Every entity-resolution decision, in the order taken: analyst overrides, "
    "shared identifiers, exact and fuzzy names, with score, evidence and, when rejected, why. "
    "Clusters of intermediate.int_org_identity are the closure of the accepted pairs.",
    columns=(
        Column("step", "BIGINT", "Order in which the decision was taken (stronger methods first).", False),
        Column("ref_a", "VARCHAR", "Reference that joins (the weaker one), or the first reference of an override row.", False),
        Column("ref_b", "VARCHAR", "Reference it joins (the strongest candidate), or the second reference of an override row.", False),
        Column("method", "VARCHAR", "override_same | override_different | override_invalid | shared_identifier | exact_name | fuzzy_name.", False),
        Column("score", "DOUBLE", "100 for identifiers and exact names, the rapidfuzz token_sort_ratio for fuzzy names, NULL for overrides."),
        Column("accepted", "BOOLEAN", "True when the pair was merged (override_different: the prohibition is in force).", False),
        Column("evidence", "VARCHAR", "What supports the pair: the identifier or normalised names as published, with source files; the analyst's reason.", False),
        Column("rejection_reason", "VARCHAR", "Why a candidate pair was not merged (ambiguous, conflicting registered ids, forbidden by an override, below threshold...)."),
        Column("name_a", "VARCHAR", "A name published for ref_a."),
        Column("name_b", "VARCHAR", "A name published for ref_b."),
        Column("source_systems", "VARCHAR[]", "Sources the evidence comes from.", False),
    ),
    order_by=("step",),
)  # fmt: skip

# --------------------------------------------------------------------------- overrides

OVERRIDE_COLUMNS = ("ref_a", "ref_b", "decision", "reason", "analyst", "date")
OVERRIDE_REQUIRED = ("ref_a", "ref_b", "decision")
OVERRIDES_FILE = Path("governance") / "overrides.csv"


class OverridesFileError(ValueError):
    """The overrides file cannot be read as a whole (its rows would be misapplied)."""


@dataclass(frozen=True)
class Override:
    row: int  # data row number (1 = first row under the header)
    line: int
    ref_a: str
    ref_b: str
    decision: str
    reason: str
    analyst: str
    date: str
    source_file: str


def _header_key(text: str) -> str:
    return "".join(ch for ch in text.strip().lower().replace(" ", "_") if ch.isalnum() or ch == "_")


def read_overrides(path: Path, source_file: str | None = None) -> list[Override]:
    """Rows of an overrides CSV as written (refs normalised later in SQL).

    UTF-8 (BOM or not) or Windows-1252, `,`/`;`/tab delimited, headers in any case; blank rows
    skipped. A missing file means no overrides. A file without the required columns raises
    OverridesFileError naming the file and what it lacks.
    """
    if not path.is_file():
        return []
    label = source_file or path.name
    encoding = detect_encoding(path)
    with path.open(encoding=encoding, newline="") as fh:
        first = fh.readline()
        delim = max((",", ";", "\t"), key=first.count)
        fh.seek(0)
        reader = csv.reader(fh, delimiter=delim)
        header = next(reader, [])
        keys = [_header_key(h) for h in header]
        missing = [c for c in OVERRIDE_REQUIRED if c not in keys]
        if missing:
            raise OverridesFileError(
                f"{label}: missing column(s) {', '.join(missing)}; expected "
                f"{', '.join(OVERRIDE_COLUMNS)}, found {', '.join(h.strip() for h in header)}"
            )
        pos = {k: keys.index(k) for k in OVERRIDE_COLUMNS if k in keys}
        out: list[Override] = []
        n = 0
        for rec in reader:
            line = reader.line_num
            if not any(v.strip() for v in rec):
                continue
            n += 1

            def get(col: str, rec: list[str] = rec) -> str:
                i = pos.get(col)
                return rec[i].strip() if i is not None and i < len(rec) else ""

            out.append(
                Override(
                    n,
                    line,
                    get("ref_a"),
                    get("ref_b"),
                    get("decision").lower(),
                    get("reason"),
                    get("analyst"),
                    get("date"),
                    label,
                )
            )
    return out


# --------------------------------------------------------------------------- matching


@dataclass
class MatchRow:
    """One decision: what it rests on (refs, keys, note). What it shows (names, evidence,
    systems: `RENDER_SHOWN_SQL`) depends also on the names, counts and files published, so it
    is rendered in SQL afterwards and can be redone for a few rows when only those change."""

    ref_a: str
    ref_b: str
    method: str
    score: float | None
    accepted: bool
    rejection_reason: str | None = None
    # the identifier (shared_identifier), or the name keys of ref_a and ref_b (names)
    key_a: str | None = None
    key_b: str | None = None
    # overrides: the evidence; exact_name: the countries; fuzzy_name: what follows the files
    note: str = ""


@dataclass(slots=True)
class RefInfo:
    rank: int
    scheme: str | None
    kind: str
    countries: frozenset[str]
    name: str | None

    @property
    def matchable(self) -> bool:
        return self.kind == "organisation" and self.rank < RANK_NEVER


class Clusters:
    """Union-find over references that refuses unions an override or the id rules forbid.

    Per merged cluster it keeps its identifier-bearing members by scheme and whether one is a
    registered id, so each check costs the size of the smaller cluster, not of the data.
    """

    def __init__(self, refs: dict[str, RefInfo]):
        self.refs = refs
        self.parent: dict[str, str] = {}
        self.size: dict[str, int] = {}
        self.schemes: dict[str, dict[str, set[str]]] = {}  # merged clusters only
        self.registered: set[str] = set()  # roots of merged clusters holding a registered id
        self.bans: list[tuple[str, str, str]] = []  # (ref_a, ref_b, which override)
        self.bans_of: dict[str, list[int]] = {}

    def find(self, ref: str) -> str:
        root = ref
        while (p := self.parent.get(root)) is not None and p != root:
            root = p
        while ref != root:  # path compression
            nxt = self.parent[ref]
            self.parent[ref] = root
            ref = nxt
        return root

    def forbid(self, a: str, b: str, why: str) -> None:
        idx = len(self.bans)
        self.bans.append((a, b, why))
        for ref in (a, b):
            self.bans_of.setdefault(self.find(ref), []).append(idx)

    def _schemes(self, root: str) -> dict[str, set[str]]:
        if root in self.schemes:
            return self.schemes[root]
        scheme = self.refs[root].scheme
        return {scheme: {root}} if scheme is not None else {}

    def has_registry(self, root: str) -> bool:
        if root in self.schemes:
            return root in self.registered
        return self.refs[root].rank == RANK_REGISTRY

    def registered_ids(self, root: str) -> list[str]:
        return sorted(
            r
            for members in self._schemes(root).values()
            for r in members
            if self.refs[r].rank == RANK_REGISTRY
        )

    def conflict(self, a: str, b: str, method: str) -> str | None:
        """Why a and b may not be merged by `method` (None: they may)."""
        ra, rb = self.find(a), self.find(b)
        for idx in self.bans_of.get(ra, ()):
            x, y, why = self.bans[idx]
            if {self.find(x), self.find(y)} == {ra, rb}:
                return f"forbidden by {why} ({x} / {y})"
        if method == "override_same":
            return None
        sa, sb = self._schemes(ra), self._schemes(rb)
        if len(sa) > len(sb):
            sa, sb = sb, sa
        for scheme, members in sorted(sa.items()):
            other = sb.get(scheme)
            if not other or other == members:
                continue
            first = min(members | other)
            if method == "shared_identifier" and self.refs[first].rank != RANK_REGISTRY:
                continue  # two PICs with one VAT number: duplicate registrations of one body
            return f"would join two different {scheme} ids ({min(members)} and {min(other)})"
        if method in NAME_METHODS and self.has_registry(ra) and self.has_registry(rb):
            return "a name never joins two organisations that both have a registered id"
        return None

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return
        if self.size.get(ra, 1) < self.size.get(rb, 1):
            ra, rb = rb, ra  # attach the smaller cluster
        registered = self.has_registry(ra) or self.has_registry(rb)
        # the larger cluster's table is extended in place: each union costs the smaller one
        merged = self.schemes.get(ra) or {k: set(v) for k, v in self._schemes(ra).items()}
        for scheme, members in self._schemes(rb).items():
            merged.setdefault(scheme, set()).update(members)
        self.parent[rb] = ra
        self.parent.setdefault(ra, ra)
        self.size[ra] = self.size.get(ra, 1) + self.size.pop(rb, 1)
        self.schemes[ra] = merged
        self.schemes.pop(rb, None)
        if registered:
            self.registered.add(ra)
        self.registered.discard(rb)
        if rb in self.bans_of:
            self.bans_of.setdefault(ra, []).extend(self.bans_of.pop(rb))


def _countries_compatible(a: frozenset[str], b: frozenset[str]) -> bool:
    return not a or not b or bool(a & b)


def _override_evidence(o: Override) -> str:
    who = f" ({o.analyst}{', ' + o.date if o.date else ''})" if o.analyst else ""
    return f"{o.source_file} row {o.row} (line {o.line}): {o.reason or 'no reason given'}{who}"


FILES_SHOWN = 3  # files named in evidence; the rest are counted


# the name a reference is shown with: its most published, ties alphabetical (over mentions
# summed per org_ref, kind, country, name)
_REF_NAME = "first(name ORDER BY records DESC, name) FILTER (WHERE name IS NOT NULL)"


def _files_sql(alias: str) -> str:
    """The first files (sorted, distinct) of `alias`.files, the rest counted, as evidence
    shows them."""
    files = f"{alias}.files"
    return (
        f"array_to_string({files}[1:{FILES_SHOWN}], ', ') || CASE WHEN len({files}) > "
        f"{FILES_SHOWN} THEN ' +' || (len({files}) - {FILES_SHOWN}) || ' more' ELSE '' END"
    )


# ref -> its normalised name keys
NameKeys = dict[str, list[str]]


def create_refs_table(con: duckdb.DuckDBPyConnection) -> None:
    """The temp table _ft_refs: per reference what matching reads of it (rank, scheme, kind,
    countries, whether it may match) and the name it is shown with."""
    prefixes = (
        f"SELECT prefix, country FROM {ORGID_PREFIXES.qualified} WHERE country IS NOT NULL"
        if table_columns(con, ORGID_PREFIXES.qualified)
        else "SELECT NULL::VARCHAR AS prefix, NULL::VARCHAR AS country WHERE false"
    )
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE _ft_refs AS
        WITH r AS (
          SELECT org_ref, ft_ref_rank(org_ref) AS rank,
            CASE WHEN starts_with(org_ref, 'FT-REDACTED-') OR bool_or(kind = 'redacted') THEN 'redacted'
                 WHEN bool_or(kind = 'person') THEN 'person'
                 WHEN bool_or(kind = 'individual') THEN 'individual'
                 WHEN bool_and(kind = 'partnership') THEN 'partnership'
                 ELSE 'organisation' END AS kind,
            list_sort(list(DISTINCT country) FILTER (WHERE country IS NOT NULL)) AS countries,
            {_REF_NAME} AS name
          FROM (SELECT org_ref, kind, country, name, sum(records) AS records
                FROM {INT_ORG_MENTIONS.qualified} GROUP BY ALL)
          GROUP BY org_ref
        ),
        register_country AS (
          SELECT r.org_ref, arg_max(p.country, length(p.prefix)) AS country
          FROM r JOIN ({prefixes}) p ON starts_with(r.org_ref || '-', p.prefix || '-')
          WHERE r.rank = 0
          GROUP BY r.org_ref
        )
        SELECT r.org_ref, r.rank, ft_ref_scheme(r.org_ref) AS scheme, r.kind,
          -- a registered id's country is its register's; else what the sources publish
          coalesce(CASE WHEN r.rank = 0 THEN
            list_filter([coalesce(c.country,
              CASE WHEN NOT regexp_matches(r.org_ref, '^(XI|XM)-')
                   THEN regexp_extract(r.org_ref, '^([A-Z]{{2}})-', 1) END)],
              lambda x: x IS NOT NULL) END,
            r.countries, []::VARCHAR[]) AS countries, r.name,
          r.kind = 'organisation' AND r.rank < {RANK_NEVER} AS matchable
        FROM r LEFT JOIN register_country c USING (org_ref)
        """
    )


def create_names_table(con: duckdb.DuckDBPyConnection, config: MatchConfig) -> None:
    """The temp table _ft_names: the name keys of each matchable reference of _ft_refs (the
    shorter ones fuzzy matching may use included)."""
    placeholders = ", ".join(f"'{k}'" for k in PLACEHOLDER_NAME_KEYS)
    min_length = min(2, config.fuzzy_min_key_length)
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE _ft_names AS
        SELECT DISTINCT org_ref, name_key AS k
        FROM {INT_ORG_MENTIONS.qualified}
        SEMI JOIN (SELECT org_ref FROM _ft_refs WHERE matchable) USING (org_ref)
        WHERE name IS NOT NULL AND kind = 'organisation' AND name_key IS NOT NULL
          AND length(name_key) >= {min_length} AND name_key NOT IN ({placeholders})
        """
    )


def _block_ctes(cfg: MatchConfig) -> str:
    """The CTEs of fuzzy blocking over _ft_names and _ft_refs, ending in `block_tokens`: per
    matchable reference and name key (k) of at least `fuzzy_min_key_length`, its numbers
    and initials (fixed), its blocks that `block_max_refs` keeps, its rank and countries.
    `name_blocks` holds every block before that cap, `ranked` each name's usable tokens."""
    stops = ", ".join(f"'{t}'" for t in STOP_TOKENS)
    return f"""
        usable AS (
          -- numbers and initials a fuzzy match may not change ("Academy 1" vs "Academy 2")
          SELECT org_ref, k, list_sort(list_filter(string_split(k, ' '),
                   lambda x: length(x) <= 2 OR regexp_matches(x, '[0-9]'))) AS fixed
          FROM _ft_names WHERE length(k) >= {cfg.fuzzy_min_key_length}
        ),
        tokens AS (
          SELECT DISTINCT org_ref, k, fixed, t FROM (
            SELECT org_ref, k, fixed, unnest(string_split(k, ' ')) AS t FROM usable)
          WHERE length(t) >= {cfg.block_min_token_length} AND t NOT IN ({stops})
        ),
        token_refs AS (SELECT t, count(DISTINCT org_ref) AS n FROM tokens GROUP BY t),
        -- the rarest tokens of each name (long names keep {cfg.block_max_tokens})
        ranked AS (
          SELECT tokens.*, count(*) OVER (PARTITION BY org_ref, k) AS tokens_in_name,
            row_number() OVER (PARTITION BY org_ref, k ORDER BY token_refs.n, t) AS i
          FROM tokens JOIN token_refs USING (t)
        ),
        kept AS (SELECT * FROM ranked WHERE i <= {cfg.block_max_tokens}),
        -- blocks: every pair of tokens (a typo in one word of a three-word name leaves a
        -- pair intact); short names also block on single words
        name_blocks AS (
          SELECT a.org_ref, a.k, a.fixed, a.t || ' ' || b.t AS block
          FROM kept a JOIN kept b ON b.org_ref = a.org_ref AND b.k = a.k AND a.t < b.t
          UNION ALL
          SELECT org_ref, k, fixed, t FROM kept WHERE tokens_in_name <= 2
        ),
        blocks AS (
          SELECT block FROM name_blocks GROUP BY block
          HAVING count(DISTINCT org_ref) <= {cfg.block_max_refs}
        ),
        block_tokens AS (
          SELECT nb.*, f.rank, f.countries
          FROM name_blocks nb SEMI JOIN blocks USING (block) JOIN _ft_refs f USING (org_ref)
        )
        """


def _candidates_sql(cfg: MatchConfig, side: str, rank_rule: str) -> str:
    """FROM and WHERE of the fuzzy candidate pairs (a of `side`, b of `block_tokens`, after
    `_block_ctes`): a shared block, the same numbers and initials, `rank_rule`, compatible
    countries and lengths that can still reach the report floor."""
    return f"""
        FROM {side} a
        JOIN block_tokens b ON b.block = a.block AND b.org_ref <> a.org_ref AND b.k <> a.k
          AND b.fixed = a.fixed
        WHERE {rank_rule}
          AND (len(a.countries) = 0 OR len(b.countries) = 0
               OR list_has_any(a.countries, b.countries))
          -- the similarity cannot reach the report floor when the lengths differ this much
          AND 200 * least(length(a.k), length(b.k))
              >= {cfg.fuzzy_report_min} * (length(a.k) + length(b.k))
        """


def _scores(cfg: MatchConfig, a_keys: list[str], b_keys: list[str]) -> list[float]:
    """token_sort_ratio of each pair of keys, in one rapidfuzz call (its C loop); 0 below
    the report floor."""
    return process.cpdist(
        a_keys,
        b_keys,
        scorer=fuzz.token_sort_ratio,
        score_cutoff=cfg.fuzzy_report_min,
        dtype=np.float64,
    ).tolist()


# per reference, the identifiers published for it, and its own id when it is one (rank 0-2)
_IDENTIFIER_KEYS = f"""
    SELECT DISTINCT org_ref, key FROM (
      SELECT org_ref, unnest(identifiers) AS key FROM {INT_ORG_MENTIONS.qualified})
    UNION ALL
    -- an identifier-bearing reference is published under its own id
    SELECT org_ref, org_ref FROM _ft_refs WHERE rank <= 2
"""


class Matcher:
    """Takes the decisions in order; `rows` is the content of int_org_matches."""

    def __init__(self, con: duckdb.DuckDBPyConnection, config: MatchConfig, prepared: bool = False):
        self.con = con
        self.config = config
        self.prepared = prepared  # _ft_refs and _ft_names made already (`_apart`)
        self.refs = self._load_refs(prepared)
        self.clusters = Clusters(self.refs)
        self.rows: list[MatchRow] = []
        self.ambiguous: set[str] = set()
        self.decided: set[tuple[str, str, str]] = set()
        # every scored fuzzy pair the decisions were taken on: (ref, key, candidate, key, score)
        self.fuzzy_pairs: list[tuple[str, str, str, str, float]] = []
        self._country_notes: dict[frozenset[str], str] = {}  # countries -> "GB/IE"

    # ---- inputs
    def _load_refs(self, prepared: bool) -> dict[str, RefInfo]:
        """Every reference, also kept as the temp table _ft_refs for the set-based steps
        (`prepared`: already made, by `create_refs_table`)."""
        if not prepared:
            create_refs_table(self.con)
        # countries as one string (no list per row to convert); equal sets share one frozenset
        rows = self.con.execute(
            "SELECT org_ref, rank, scheme, kind, CASE WHEN len(countries) > 0 "
            "THEN array_to_string(countries, chr(31)) END, name FROM _ft_refs ORDER BY org_ref"
        ).fetchall()
        sets: dict[str | None, frozenset[str]] = {None: frozenset()}
        out: dict[str, RefInfo] = {}
        for ref, rank, scheme, kind, countries, name in rows:
            cs = sets.get(countries)
            if cs is None:
                cs = sets[countries] = frozenset(countries.split(chr(31)))
            out[ref] = RefInfo(rank, scheme, kind, cs, name)
        return out

    def _add(self, row: MatchRow) -> None:
        pair = (row.method, min(row.ref_a, row.ref_b), max(row.ref_a, row.ref_b))
        if row.method in NAME_METHODS and not row.accepted and pair in self.decided:
            return  # the same pair seen from its other side: decided once is enough
        self.decided.add(pair)
        self.rows.append(row)

    def _try(self, row: MatchRow) -> bool:
        """Accept the pair unless a rule forbids it; record the decision either way."""
        why = self.clusters.conflict(row.ref_a, row.ref_b, row.method)
        if why is None:
            self.clusters.union(row.ref_b, row.ref_a)
            row.accepted = True
        else:
            row.accepted, row.rejection_reason = False, why
        self._add(row)
        return row.accepted

    def _eligible(self, ref: str) -> bool:
        """A weak organisation reference whose cluster has no registered id yet."""
        info = self.refs[ref]
        return (
            info.matchable
            and info.rank != RANK_REGISTRY
            and not self.clusters.has_registry(self.clusters.find(ref))
        )

    # ---- 1. overrides
    def apply_overrides(self, overrides: list[Override]) -> None:
        if not overrides:
            return
        self.con.execute(
            "CREATE OR REPLACE TEMP TABLE _ft_overrides (row BIGINT, a VARCHAR, b VARCHAR)"
        )
        self.con.executemany(
            "INSERT INTO _ft_overrides VALUES (?, ?, ?)",
            [(o.row, o.ref_a, o.ref_b) for o in overrides],
        )
        norm = {
            r[0]: (r[1], r[2])
            for r in self.con.execute(
                "SELECT row, ft_override_ref(a), ft_override_ref(b) FROM _ft_overrides"
            ).fetchall()
        }
        valid: list[tuple[Override, str, str]] = []
        for o in overrides:
            a, b = norm[o.row]
            problem = self._override_problem(o, a, b)
            if problem is not None:
                row = MatchRow(a or o.ref_a, b or o.ref_b, "override_invalid", None, False)
                row.note = _override_evidence(o)
                row.rejection_reason = f"invalid override: {problem}"
                self._add(row)
            else:
                valid.append((o, a, b))
        # forbidding first, so a 'same' row can never undo a 'different' one
        for o, a, b in valid:
            if o.decision == "different":
                self.clusters.forbid(a, b, f"override {o.source_file} row {o.row}")
                row = MatchRow(a, b, "override_different", None, True)
                row.note = _override_evidence(o)
                self._add(row)
        for o, a, b in valid:
            if o.decision == "same":
                row = MatchRow(a, b, "override_same", None, False)
                row.note = _override_evidence(o)
                self._try(row)

    def _override_problem(self, o: Override, a: str | None, b: str | None) -> str | None:
        if not a or not b:
            return "ref_a and ref_b are both required"
        if o.decision not in ("same", "different"):
            return f"decision must be 'same' or 'different', not '{o.decision}'"
        if a == b:
            return "ref_a and ref_b are the same reference"
        unknown = [r for r in (a, b) if r not in self.refs]
        if unknown:
            return f"{' and '.join(unknown)} not published by any source"
        return None

    # ---- 2. shared identifiers
    def match_identifiers(self) -> None:
        groups = self.con.execute(
            f"""
            WITH keys AS ({_IDENTIFIER_KEYS})
            SELECT key, list(DISTINCT org_ref ORDER BY org_ref) AS refs
            FROM keys GROUP BY key HAVING count(DISTINCT org_ref) >= 2 ORDER BY key
            """
        ).fetchall()
        for key, members in groups:
            refs = [r for r in members if r in self.refs and self.refs[r].matchable]
            if len(refs) < 2:
                continue
            refs.sort(key=lambda r: (self.refs[r].rank, r))
            anchor = refs[0]

            problem = None
            if len(refs) > self.config.identifier_max_refs:
                problem = (
                    f"{key} is published for {len(refs)} references (more than "
                    f"{self.config.identifier_max_refs}): treated as a placeholder"
                )
            else:
                registered: dict[str, set[str]] = defaultdict(set)
                for m in refs:
                    for r in self.clusters.registered_ids(self.clusters.find(m)):
                        registered[self.refs[r].scheme or ""].add(r)
                clash = next((sorted(v) for v in registered.values() if len(v) > 1), None)
                if clash:
                    problem = (
                        f"{key} is published for two registered organisations "
                        f"({clash[0]}, {clash[1]}): ambiguous"
                    )
            for m in refs[1:]:
                if self.clusters.find(m) == self.clusters.find(anchor):
                    continue
                row = MatchRow(m, anchor, "shared_identifier", 100.0, False, key_a=key)
                if problem is not None:
                    row.rejection_reason = problem
                    self._add(row)
                else:
                    self._try(row)

    # ---- 3. exact names
    def _name_keys(self) -> NameKeys:
        """ref -> its match keys, matchable refs only.

        Also kept as the temp table _ft_names (with the shorter keys fuzzy may use): the one
        pass over the mentions both name steps need.
        """
        if not self.prepared:
            create_names_table(self.con, self.config)
        out: NameKeys = defaultdict(list)
        for ref, key in self.con.execute(
            "SELECT org_ref, k FROM _ft_names WHERE length(k) >= 2 ORDER BY org_ref, k"
        ).fetchall():
            out[ref].append(key)
        return out

    def match_exact_names(self, keys: NameKeys) -> None:
        refs, find = self.refs, self.clusters.find
        by_key: dict[str, list[str]] = defaultdict(list)
        for ref, ks in keys.items():
            for k in ks:
                by_key[k].append(ref)
        # a key of one reference only has no candidate
        by_key = {k: v for k, v in by_key.items() if len(v) > 1}
        weak = sorted(
            (r for r in keys if refs[r].rank != RANK_REGISTRY),
            key=lambda r: (refs[r].rank, r),
        )
        has_registry = self.clusters.has_registry
        for w in weak:
            info = refs[w]
            root = find(w)
            if not info.matchable or has_registry(root):  # weak: only its cluster can be
                continue
            rank, countries = info.rank, info.countries
            # candidate clusters (same key, compatible country, not weaker than w), each by
            # its strongest member (rank, ref) and the first key they share (keys are sorted)
            reps: dict[str, tuple[int, str, str]] = {}
            for k in keys[w]:
                for r in by_key.get(k, ()):
                    ri = refs[r]
                    if r == w or ri.rank > rank:
                        continue
                    c = find(r)
                    if c == root or not _countries_compatible(countries, ri.countries):
                        continue
                    rep = reps.get(c)
                    if rep is None or (ri.rank, r) < rep[:2]:
                        reps[c] = (ri.rank, r, k)
            if not reps:
                continue
            if len(reps) == 1:
                ((_, r, k),) = reps.values()
                self._try(self._exact_row(w, r, k))
                continue
            ordered = [(r, k) for _, r, k in sorted(reps.values())]
            self.ambiguous.add(w)
            names = ", ".join(r for r, _ in ordered)
            for r, k in ordered:
                row = self._exact_row(w, r, k)
                row.rejection_reason = (
                    f"ambiguous: {len(ordered)} organisations publish this name ({names})"
                )
                self._add(row)

    def _exact_row(self, w: str, r: str, k: str) -> MatchRow:
        countries = self.refs[w].countries | self.refs[r].countries
        country = self._country_notes.get(countries)
        if country is None:
            country = self._country_notes[countries] = "/".join(sorted(countries)) or "unknown"
        return MatchRow(w, r, "exact_name", 100.0, False, key_a=k, key_b=k, note=country)

    # ---- 2-3. identifiers and exact names, as stored
    def replay_stored(self, ambiguous: set[str]) -> int:
        """Take the stored decisions by shared identifier and exact name again, in their
        order, instead of deciding them: for when they provably stand (`_Apart.names_kept`).
        The clusters and the pairs decided end as `match_identifiers` and `match_exact_names`
        leave them; `ambiguous` is the set of references ambiguous by name they left
        (`stored_ambiguous`: a pair decided from its other side first leaves no row saying
        so). Returns the rows taken."""
        self.ambiguous = set(ambiguous)
        stored = self.con.execute(
            _stored_basis_sql("method IN ('shared_identifier', 'exact_name')")
        ).fetchall()
        for _, *values in stored:
            row = MatchRow(*values)
            if row.accepted:  # as _try unites them
                self.clusters.union(row.ref_b, row.ref_a)
            self._add(row)
        return len(stored)

    # ---- 4. fuzzy names
    def _fuzzy_pairs(
        self, eligible: list[str]
    ) -> Iterator[tuple[str, list[tuple[str, str, str, float]]]]:
        """(w, [(w key, candidate, candidate key, score)]) for each eligible w, in (rank, ref)
        order, with the pairs whose token_sort_ratio reaches `fuzzy_report_min` (a w with none
        is left out).

        Candidates share an uncommon block with w (a pair of its rarest words, or a word of a
        short name), the same numbers and initials,
        are not weaker than w, have a compatible country and a length that can still reach the
        report floor: all set-based in DuckDB, streamed so memory does not grow with the pairs.
        """
        cfg = self.config
        _temp_table(
            self.con, "_ft_fuzzy_eligible", pa.table({"org_ref": pa.array(eligible, pa.string())})
        )
        # streamed from the connection itself: its temp tables are not visible to a cursor, and
        # nothing else runs on it while the pairs are consumed
        cur = self.con.sql(
            f"""
            WITH {_block_ctes(cfg)},
            -- the eligible side first: joined last, the block self-join spilled GBs to disk
            eligible_tokens AS MATERIALIZED (
              SELECT * FROM block_tokens SEMI JOIN _ft_fuzzy_eligible USING (org_ref)
            )
            SELECT DISTINCT a.rank, a.org_ref, a.k, b.org_ref, b.k
            {_candidates_sql(cfg, "eligible_tokens", "b.rank <= a.rank")}
            ORDER BY 1, 2, 3, 4, 5
            """
        )
        current: str | None = None
        batch: list[tuple[str, str, str, float]] = []
        for chunk in cur.to_arrow_reader(20_000):
            ws, wks, rs, rks = (chunk.column(i).to_pylist() for i in range(1, 5))
            # scored per chunk, so the matcher's Python only sees the pairs that reach the
            # report floor
            scores = _scores(cfg, wks, rks)
            for w, wk, r, rk, score in zip(ws, wks, rs, rks, scores, strict=True):
                if w != current:
                    if current is not None and batch:
                        yield current, batch
                    current, batch = w, []
                if score:
                    batch.append((wk, r, rk, score))
        if current is not None and batch:
            yield current, batch

    def pairs_with(
        self,
        stored: Sequence[tuple[str, str, str, str, float]],
        new: Sequence[tuple[str, str, str, str]],
    ) -> dict[str, list[tuple[str, str, str, float]]]:
        """The pairs `_fuzzy_pairs` would give, per eligible reference, from the `stored`
        ones (ORG_FUZZY_PAIRS) and the `new` references' (`_Apart.new_pairs`, either side):
        for when only new references change the pairs (module doc of `_apart`)."""
        by_ref: dict[str, list[tuple[str, str, str, float]]] = defaultdict(list)
        for w, wk, r, rk, score in stored:
            by_ref[w].append((wk, r, rk, score))
        oriented: set[tuple[str, str, str, str]] = set()
        for a, ak, b, bk in new:  # each way the SQL would take it: the candidate not weaker
            if self.refs[b].rank <= self.refs[a].rank:
                oriented.add((a, ak, b, bk))
            if self.refs[a].rank <= self.refs[b].rank:
                oriented.add((b, bk, a, ak))
        ordered = sorted(oriented)
        scores = _scores(self.config, [p[1] for p in ordered], [p[3] for p in ordered])
        for (w, wk, r, rk), score in zip(ordered, scores, strict=True):
            if score:
                by_ref[w].append((wk, r, rk, score))
        for pairs in by_ref.values():  # the SQL's order within a reference
            pairs.sort(key=lambda p: p[:3])
        return by_ref

    def match_fuzzy_names(
        self, keys: NameKeys, pairs: dict[str, list[tuple[str, str, str, float]]] | None = None
    ) -> int:
        """`pairs`: the scored pairs per reference (`pairs_with`) instead of `_fuzzy_pairs`."""
        cfg = self.config
        eligible = sorted(
            (r for r in keys if self._eligible(r) and r not in self.ambiguous),
            key=lambda r: (self.refs[r].rank, r),
        )
        pairs_near = 0  # pairs at or above the report floor, outside w's cluster
        found = self._fuzzy_pairs(eligible) if pairs is None else _given(eligible, pairs)
        for w, batch in found:
            self.fuzzy_pairs.extend((w, *p) for p in batch)
            if w in self.ambiguous or not self._eligible(w):
                continue
            info = self.refs[w]
            root = self.clusters.find(w)
            best: dict[str, tuple[float, str, str, str]] = {}  # cluster -> (score, r, wk, rk)
            for wk, r, rk, score in batch:
                ri = self.refs[r]
                if ri.rank > info.rank or self.clusters.find(r) == root:
                    continue
                if not _countries_compatible(info.countries, ri.countries):
                    continue
                pairs_near += 1
                c = self.clusters.find(r)
                cand = (round(float(score), 2), r, wk, rk)
                if c not in best or self._order(cand) < self._order(best[c]):
                    best[c] = cand
            if not best:
                continue
            ranked = sorted(best.values(), key=self._order)
            top = ranked[0]
            second = ranked[1][0] if len(ranked) > 1 else 0.0

            if top[0] < cfg.fuzzy_min_score:
                near = self._fuzzy_row(w, top)
                near.rejection_reason = f"below the fuzzy threshold {cfg.fuzzy_min_score:g}"
                self._add(near)
            elif top[0] - second < cfg.fuzzy_min_margin:
                for s in ranked[:2]:
                    r2 = self._fuzzy_row(w, s)
                    r2.rejection_reason = (
                        f"ambiguous: best {top[0]:g} and second {second:g} are less than "
                        f"{cfg.fuzzy_min_margin:g} apart"
                    )
                    self._add(r2)
            else:
                self._try(self._fuzzy_row(w, top, f"; next best cluster {second:g}"))
        return pairs_near

    def _order(self, scored: tuple[float, str, str, str]) -> tuple[float, int, str]:
        """Best score first, then the stronger reference, then alphabetical."""
        return (-scored[0], self.refs[scored[1]].rank, scored[1])

    def _fuzzy_row(self, w: str, scored: tuple[float, str, str, str], after: str = "") -> MatchRow:
        score, r, wk, rk = scored
        return MatchRow(w, r, "fuzzy_name", score, False, key_a=wk, key_b=rk, note=after)


def _given(
    eligible: list[str], pairs: dict[str, list[tuple[str, str, str, float]]]
) -> Iterator[tuple[str, list[tuple[str, str, str, float]]]]:
    """`pairs` as `Matcher._fuzzy_pairs` yields them: the eligible references' in order."""
    for w in eligible:
        if pairs.get(w):
            yield w, pairs[w]


# what a row rests on (MatchRow's fields up to `note`), as stored in the table and its basis
BASIS_COLUMNS = (
    "ref_a", "ref_b", "method", "score", "accepted", "rejection_reason", "key_a", "key_b", "note",
)  # fmt: skip
# what it shows, rendered from the mentions of its references
SHOWN_COLUMNS = ("evidence", "name_a", "name_b", "source_systems")


def match_organisations(
    con: duckdb.DuckDBPyConnection,
    overrides: list[Override],
    config: MatchConfig = MATCH_CONFIG,
    prepared: bool = False,
    replay: set[str] | None = None,
    ambiguous: set[str] | None = None,
    fuzzy_pairs: tuple[Sequence[tuple[str, str, str, str, float]], Sequence[tuple]] | None = None,
    pairs_out: list[tuple[str, str, str, str, float]] | None = None,
) -> tuple[list[MatchRow], dict[str, float]]:
    """Decide every candidate pair over intermediate.int_org_mentions (see the module doc).
    What the decisions show is rendered afterwards (`render_shown`). `prepared`:
    _ft_refs and _ft_names are made already, from the same mentions (`_apart`). `replay`:
    the stored decisions by identifier and exact name stand (`_Apart.names_kept`), and the
    references they left ambiguous by name: they are taken as stored, and only the fuzzy ones
    decided. `ambiguous`: filled with the references ambiguous by name. `fuzzy_pairs`: the
    stored pairs and the new references' (`Matcher.pairs_with`), to decide the fuzzy ones on
    instead of pairing every name again. `pairs_out`: filled with the pairs decided on."""
    with gc_paused():
        install_macros(con)
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        m = Matcher(con, config, prepared)
        timings["load_refs_s"] = time.perf_counter() - t0
        t = time.perf_counter()
        m.apply_overrides(overrides)
        timings["overrides_s"] = time.perf_counter() - t
        t = time.perf_counter()
        if replay is not None:
            timings["replayed_rows"] = m.replay_stored(replay)
            timings["replayed_s"] = time.perf_counter() - t
        else:
            m.match_identifiers()
            timings["shared_identifier_s"] = time.perf_counter() - t
        t = time.perf_counter()
        keys = m._name_keys()
        if replay is None:  # replayed with the identifiers
            m.match_exact_names(keys)
        timings["exact_name_s"] = time.perf_counter() - t
        t = time.perf_counter()
        pairs = None
        if fuzzy_pairs is not None:
            pairs = m.pairs_with(*fuzzy_pairs)
            timings["fuzzy_pairs_stored"] = len(fuzzy_pairs[0])
        timings["fuzzy_pairs_near"] = m.match_fuzzy_names(keys, pairs)
        timings["fuzzy_name_s"] = time.perf_counter() - t
        if ambiguous is not None:
            ambiguous.update(m.ambiguous)
        if pairs_out is not None:
            pairs_out.extend(m.fuzzy_pairs)
        return m.rows, timings


_NAMED = f"method IN ({', '.join(map(sql_literal, NAME_METHODS))})"
# What the rows of _ft_basis not yet in _ft_shown show, from the mentions of their references,
# into _ft_shown: names, evidence and source systems. Only the files of the names and
# identifiers the rows rest on are read. In SQL rather than per row in Python: 0.9 s less at
# scale 1 for the 76k rows of a full match (docs/scaling.md, item 26).
RENDER_SHOWN_SQL = f"""
INSERT INTO _ft_shown
WITH todo AS MATERIALIZED (
  SELECT * FROM _ft_basis b WHERE NOT EXISTS (SELECT 1 FROM _ft_shown s WHERE s.step = b.step)
),
name_keys AS (
  SELECT ref_a AS org_ref, coalesce(key_a, '') AS k FROM todo WHERE {_NAMED}
  UNION SELECT ref_b, coalesce(key_b, '') FROM todo WHERE {_NAMED}
),
by_name AS MATERIALIZED (
  SELECT org_ref, name_key AS k, min(name) AS name,
         list_sort(list(DISTINCT source_system)) AS systems,
         list_sort(list_distinct(flatten(list(source_files)))) AS files
  FROM {INT_ORG_MENTIONS.qualified} m
  SEMI JOIN name_keys n ON n.org_ref = m.org_ref AND n.k = m.name_key
  WHERE name IS NOT NULL AND kind = 'organisation'
  GROUP BY org_ref, name_key
),
id_pairs AS (
  SELECT key_a AS key, ref_a AS org_ref FROM todo WHERE method = 'shared_identifier'
  UNION SELECT key_a, ref_b FROM todo WHERE method = 'shared_identifier'
),
id_keys AS (
  SELECT org_ref, unnest(identifiers) AS key, source_system, source_files
  FROM {INT_ORG_MENTIONS.qualified} SEMI JOIN id_pairs USING (org_ref)
  UNION ALL
  -- an identifier-bearing reference is published under its own id
  SELECT org_ref, org_ref, source_system, source_files
  FROM {INT_ORG_MENTIONS.qualified} m
  SEMI JOIN id_pairs n ON n.org_ref = m.org_ref AND n.key = m.org_ref
  WHERE ft_ref_rank(org_ref) <= 2
),
by_id AS MATERIALIZED (
  SELECT key, org_ref, list_sort(list(DISTINCT source_system)) AS systems,
         list_sort(list_distinct(flatten(list(source_files)))) AS files
  FROM id_keys SEMI JOIN id_pairs n
    ON n.key IS NOT DISTINCT FROM id_keys.key AND n.org_ref = id_keys.org_ref
  GROUP BY key, org_ref
),
-- the other rows show each reference with its name (_REF_NAME)
named_refs AS (
  SELECT ref_a AS org_ref FROM todo WHERE NOT {_NAMED}
  UNION SELECT ref_b FROM todo WHERE NOT {_NAMED}
),
ref_names AS MATERIALIZED (
  SELECT org_ref, {_REF_NAME} AS name FROM (
    SELECT org_ref, kind, country, name, sum(records) AS records
    FROM {INT_ORG_MENTIONS.qualified} SEMI JOIN named_refs USING (org_ref)
    GROUP BY ALL)
  GROUP BY org_ref
)
SELECT t.step,
  CASE
    WHEN t.method = 'exact_name' THEN
      'normalised name "' || t.key_a || '" (country ' || t.note || '): "' || na.name || '" ('
      || {_files_sql("na")} || ') = "' || nb.name || '" (' || {_files_sql("nb")} || ')'
    WHEN t.method = 'fuzzy_name' THEN
      'token_sort_ratio ' || printf('%g', t.score) || ' of "' || t.key_a || '" ("' || na.name
      || '", ' || {_files_sql("na")} || ') and "' || t.key_b || '" ("' || nb.name || '", '
      || {_files_sql("nb")} || ')' || t.note
    WHEN t.method = 'shared_identifier' THEN
      t.key_a || ' published for ' || t.ref_a || ' ('
      || CASE WHEN t.ref_a = t.key_a THEN 'its own id' ELSE {_files_sql("ia")} END
      || ') and ' || t.ref_b || ' ('
      || CASE WHEN t.ref_b = t.key_a THEN 'its own id' ELSE {_files_sql("ib")} END || ')'
    ELSE t.note  -- the overrides: the analyst's row
  END AS evidence,
  CASE WHEN t.{_NAMED} THEN na.name ELSE ra.name END AS name_a,
  CASE WHEN t.{_NAMED} THEN nb.name ELSE rb.name END AS name_b,
  CASE WHEN t.{_NAMED} THEN list_sort(list_distinct(na.systems || nb.systems))
       WHEN t.method = 'shared_identifier' THEN list_sort(list_distinct(ia.systems || ib.systems))
       ELSE ['governance'] END AS source_systems
FROM todo t
LEFT JOIN by_name na ON t.{_NAMED} AND na.org_ref = t.ref_a AND na.k = coalesce(t.key_a, '')
LEFT JOIN by_name nb ON t.{_NAMED} AND nb.org_ref = t.ref_b AND nb.k = coalesce(t.key_b, '')
LEFT JOIN by_id ia ON t.method = 'shared_identifier'
  AND ia.key IS NOT DISTINCT FROM t.key_a AND ia.org_ref = t.ref_a
LEFT JOIN by_id ib ON t.method = 'shared_identifier'
  AND ib.key IS NOT DISTINCT FROM t.key_a AND ib.org_ref = t.ref_b
LEFT JOIN ref_names ra ON NOT t.{_NAMED} AND ra.org_ref = t.ref_a
LEFT JOIN ref_names rb ON NOT t.{_NAMED} AND rb.org_ref = t.ref_b
"""


def render_shown(con: duckdb.DuckDBPyConnection) -> int:
    """Render into _ft_shown what the rows of _ft_basis not in it yet show; returns how many.

    A row whose references' mentions no longer carry what it rests on (a name key, an
    identifier) cannot be shown: that is a bug upstream, reported with the first such rows.
    """
    inserted = con.execute(RENDER_SHOWN_SQL).fetchall()[0][0]
    missing = con.execute(
        "SELECT b.step, b.method, b.ref_a, b.ref_b FROM _ft_basis b JOIN _ft_shown s USING (step) "
        "WHERE s.evidence IS NULL ORDER BY b.step LIMIT 3"
    ).fetchall()
    if missing:
        raise RuntimeError(
            f"{INT_ORG_MATCHES.qualified}: no mentions in {INT_ORG_MENTIONS.qualified} carry "
            f"what these decisions rest on, so their evidence cannot be shown: {missing}"
        )
    return int(inserted)


_STRINGS = ("ref_a", "ref_b", "method", "rejection_reason", "key_a", "key_b", "note")
_ARROW_TYPES = {
    **dict.fromkeys(_STRINGS, pa.string()),
    "score": pa.float64(),
    "accepted": pa.bool_(),
}


def _basis_table(rows: Sequence[MatchRow], steps: Sequence[int]) -> pa.Table:
    """What `rows` rest on (BASIS_COLUMNS), with their steps, as Arrow."""
    return pa.table(
        {
            "step": pa.array(steps, pa.int64()),
            **{c: pa.array(list(map(attrgetter(c), rows)), _ARROW_TYPES[c]) for c in BASIS_COLUMNS},
        }
    )


def _empty_shown(con: duckdb.DuckDBPyConnection) -> None:
    """_ft_shown with no rows (what each step of _ft_basis shows: `render_shown`)."""
    types = {c.name: c.type for c in INT_ORG_MATCHES.columns}
    columns = ", ".join(f"{c} {types[c]}" for c in SHOWN_COLUMNS)
    con.execute(f"CREATE OR REPLACE TEMP TABLE _ft_shown (step BIGINT, {columns})")


# the rows of int_org_matches from the temp tables of their basis and of what they show
_ROWS_SQL = f"""
    SELECT {", ".join(c.name for c in INT_ORG_MATCHES.columns)}
    FROM _ft_basis JOIN _ft_shown USING (step)
"""


# --------------------------------------------------------------------------- build state

# The context of each entity-resolution table (fingerprint of the code and the inputs other
# than the mentions) and its row count are its entry in quality.build_fingerprints under a key
# of its own (`layer.table#...`): skip_unchanged drops the asset's own entry before every
# rebuild, and this state must outlive that to keep the decisions. Written in the build's
# transaction (save_state), with the table and its reference digests.
DECISIONS_KEY = f"{INT_ORG_MATCHES.qualified}#decisions"
# the references ambiguous by exact name after the stored decisions (`Matcher.ambiguous`):
# a deduplicated pair leaves some without a row that says so (`replay_stored`)
AMBIGUOUS_KEY = f"{INT_ORG_MATCHES.qualified}#ambiguous"
# the table of an earlier version, replaced by those entries
_OLD_STATE_TABLE = "quality.entity_resolution_state"
ORG_MATCH_BASIS = TableSpec(
    schema="quality",
    name="org_match_basis",
    grain="one row of intermediate.int_org_matches",
    description="What the decision rests on (the identifier or name keys), to redo its "
    "evidence when only files or names change.",
    columns=(
        Column("step", "BIGINT", "The row's step in intermediate.int_org_matches.", False),
        Column("key_a", "VARCHAR", "Identifier, or name key of ref_a."),
        Column("key_b", "VARCHAR", "Name key of ref_b (name matches)."),
        Column("note", "VARCHAR", "The rest of its basis: the override's evidence, the country an exact name was compared in, or the runner-up score of a fuzzy match.", False),
    ),
)  # fmt: skip
MATCH_BASIS = ORG_MATCH_BASIS.qualified
# the fuzzy candidate pairs the last decisions were taken on, for the next build to add only
# the new references' pairs to (`_Apart.new_pairs`) instead of pairing every name again
FUZZY_PAIRS_KEY = f"{INT_ORG_MATCHES.qualified}#fuzzy_pairs"
ORG_FUZZY_PAIRS = TableSpec(
    schema="quality",
    name="org_fuzzy_pairs",
    grain="one fuzzy candidate pair (a reference that may match by name, one of its name keys, "
    "a candidate and its key) reaching the report floor, as the last matching found it",
    description="The scored fuzzy candidate pairs intermediate.int_org_matches' last decisions "
    "were taken on: a build whose new references change only fuzzy pairs adds theirs to "
    "these instead of pairing every name again (assets/intermediate/int_org_matches.py).",
    columns=(
        Column("ref", "VARCHAR", "The reference that may match (weak, eligible).", False),
        Column("ref_key", "VARCHAR", "Its name key.", False),
        Column("candidate", "VARCHAR", "A candidate not weaker than it.", False),
        Column("candidate_key", "VARCHAR", "The candidate's name key.", False),
        Column("score", "DOUBLE", "token_sort_ratio of the two keys.", False),
    ),
)  # fmt: skip
FUZZY_PAIRS = ORG_FUZZY_PAIRS.qualified


@dataclass
class BuildResult:
    rows: int
    path: str  # which path was taken and why, for the log
    timings: dict[str, float] = field(default_factory=dict)


def ensure_state(con: duckdb.DuckDBPyConnection) -> None:
    ensure_fingerprint_table(con)
    ensure_key_digests(con)
    create_table(con, ORG_MATCH_BASIS, replace=False)
    create_table(con, ORG_FUZZY_PAIRS, replace=False)
    con.execute(f"DROP TABLE IF EXISTS {_OLD_STATE_TABLE}")


def _digests_state(spec: TableSpec, column: str) -> str:
    """The key-digests state of `spec`'s per-reference `column` hashes of _ft_digests."""
    return f"{spec.qualified}#{column}"


def ref_digests(con: duckdb.DuckDBPyConnection, decisions: bool) -> None:
    """The temp table _ft_digests: per reference, hashes of its mentions.

    `mentions` covers every column. `decision` (only with `decisions`) covers what matching
    reads: kinds, countries (not for a registered id, whose register gives them), the name
    keys of named organisation mentions and identifiers, as a set, so a new file that repeats
    them for a known reference, or publishes a company's country, changes nothing.
    """
    cols = ", ".join(table_columns(con, INT_ORG_MENTIONS.qualified) or [])
    mentions = f"""SELECT org_ref, sum(hash({cols})) AS mentions
        FROM {INT_ORG_MENTIONS.qualified} GROUP BY org_ref"""
    if not decisions:
        con.execute(
            "CREATE OR REPLACE TEMP TABLE _ft_digests AS "
            f"SELECT org_ref, NULL::HUGEINT AS decision, mentions FROM ({mentions})"
        )
        return
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE _ft_digests AS
        SELECT org_ref, d.decision, m.mentions
        FROM ({mentions}) m JOIN (
          SELECT org_ref, sum(hash(kind, country, k, identifiers)) AS decision FROM (
            -- a registered id's countries are its register's (_load_refs): the ones its
            -- mentions publish are not read
            SELECT DISTINCT org_ref, kind, identifiers,
              CASE WHEN ft_ref_rank(org_ref) <> {RANK_REGISTRY} THEN country END AS country,
              CASE WHEN name IS NOT NULL AND kind = 'organisation' THEN name_key END AS k
            FROM {INT_ORG_MENTIONS.qualified})
          GROUP BY org_ref) d USING (org_ref)
        """
    )


def stored_state(
    con: duckdb.DuckDBPyConnection, spec: TableSpec, key: str, context: str
) -> str | None:
    """None when `spec`'s table is as its state (stored under `key`) says, else why it is not."""
    ensure_state(con)
    entry = stored_entry(con, key)
    if entry is None:
        return "no state of a previous build"
    if entry[0] != context:
        return "code or other inputs changed"
    if table_columns(con, spec.qualified) != spec.column_names or entry[1] != scalar_int(
        con, f"SELECT count(*) FROM {spec.qualified}"
    ):
        return "the table changed since it was built"
    return None


def save_state(
    con: duckdb.DuckDBPyConnection, spec: TableSpec, key: str, context: str, refs: str | None
) -> int:
    """Record `spec`'s context and row count under `key`, and the digests of `refs` (a query
    of org_refs; None: all), inside the caller's transaction. Returns the row count."""
    n = scalar_int(con, f"SELECT count(*) FROM {spec.qualified}")
    record_in_transaction(con, key, context, n)
    # matching stores both hashes, identity (no decision hash computed) the mentions only
    columns = ("decision", "mentions") if spec is INT_ORG_MATCHES else ("mentions",)
    for column in columns:
        store_digests(
            con,
            _digests_state(spec, column),
            f"SELECT org_ref AS key, {column} AS digest FROM _ft_digests",
            refs,
        )
    return n


def changed_refs(spec: TableSpec, column: str) -> str:
    """SQL of the references whose digest `column` differs from the stored one (new and
    gone references included)."""
    changed = changed_keys_sql(
        f"SELECT org_ref AS key, {column} AS digest FROM _ft_digests", _digests_state(spec, column)
    )
    return f"SELECT key AS org_ref FROM ({changed})"


def _why_rematch(con: duckdb.DuckDBPyConnection, context: str) -> tuple[str | None, bool, int]:
    """(why the decisions must be taken again, or None when the stored ones provably stand;
    whether the stored rows are as last built, in this context; how many references changed
    what matching reads, then).

    They stand when the table and its basis are as last built, in the same context, and
    every reference has the same decision digest: then matching would read exactly what it
    read then, and it is deterministic.
    """
    why = stored_state(con, INT_ORG_MATCHES, DECISIONS_KEY, context)
    if why is not None:
        return why, False, 0
    basis = scalar_int(con, f"SELECT count(*) FROM {MATCH_BASIS}")
    if basis != scalar_int(con, f"SELECT count(*) FROM {INT_ORG_MATCHES.qualified}"):
        return "the table changed since it was built", False, 0
    n = scalar_int(con, f"SELECT count(*) FROM ({changed_refs(INT_ORG_MATCHES, 'decision')})")
    return (f"what matching reads changed for {n} reference(s)" if n else None), True, n


# new references' fuzzy pairs up to this many come back with _apart's one query
_APART_PAIRS_INLINE = 20_000


@dataclass(frozen=True)
class _Apart:
    """What `_apart` found: why the new references' decisions differ (None: they stand), and
    whether the decisions by override, identifier and exact name stand all the same."""

    why: str | None
    names_kept: bool
    # the new references' fuzzy pairs (either side, unscored) when they are all that changed
    # what fuzzy matching pairs: the known references' blocks are as they were
    new_pairs: list[tuple[str, str, str, str]] | None = None


def _apart(
    con: duckdb.DuckDBPyConnection,
    changed: int,
    overrides: list[Override],
    config: MatchConfig,
) -> "_Apart":
    """`why` None when the `changed` references whose decision digest changed are all new ones
    that share nothing matching reads with any other reference: then matching would take
    the stored decisions again, in the same order, and none about them. Else what they
    share, and whether the decisions by override, identifier and exact name stand (only the
    fuzzy pairs can differ: the new references share none of those with others). Leaves
    _ft_refs and _ft_names made (`Matcher(prepared=True)`).

    Matching connects two references only through an override naming them, a shared
    identifier, a shared name key, or a fuzzy pair (a shared block, the same numbers and
    initials, compatible countries, a score at the report floor). A new reference also
    weighs on others' blocks: by the references counted per block (`block_max_refs`) and per
    word (which words of a long name are its rarest). Each is checked, the fuzzy pair from
    either side, whatever the clusters: a superset of what matching would consider.
    """
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _ft_added AS SELECT c.org_ref FROM "
        f"({changed_refs(INT_ORG_MATCHES, 'decision')}) c ANTI JOIN "
        f"({stored_sql(_digests_state(INT_ORG_MATCHES, 'decision'))}) s ON s.key = c.org_ref"
    )
    create_refs_table(con)
    create_names_table(con, config)
    added = scalar_int(con, "SELECT count(*) FROM _ft_added")
    if added != changed:
        return _Apart(f"{changed - added} known reference(s) changed or are gone", False)
    if overrides:
        with registered(
            con, "_ft_tmp", {"ref": [r for o in overrides for r in (o.ref_a, o.ref_b)]}
        ):
            named = con.execute(
                "SELECT first(ref) FROM _ft_tmp WHERE ft_override_ref(ref) IN "
                "(SELECT org_ref FROM _ft_added)"
            ).fetchall()[0][0]
        if named is not None:
            return _Apart(f"an override names the new reference {named}", False)
    shared = con.execute(
        f"""
        WITH keys AS ({_IDENTIFIER_KEYS}),
        added AS (SELECT * FROM keys SEMI JOIN _ft_added USING (org_ref))
        SELECT first(a.org_ref || ' shares the identifier ' || a.key || ' with ' || k.org_ref)
        FROM added a JOIN keys k ON k.key = a.key AND k.org_ref <> a.org_ref
        """
    ).fetchall()[0][0]
    if shared is not None:
        return _Apart(f"the new reference {shared}", False)
    shared = con.execute(
        """
        SELECT first(a.org_ref || ' shares the name key "' || a.k || '" with ' || n.org_ref)
        FROM _ft_names a SEMI JOIN _ft_added USING (org_ref)
        JOIN _ft_names n ON n.k = a.k AND n.org_ref <> a.org_ref
        """
    ).fetchall()[0][0]
    if shared is not None:
        return _Apart(f"the new reference {shared}", False)
    cfg = config
    # the new references' fuzzy pairs, from either side (the side that joins is never a
    # registered id), whatever the clusters
    pairs = f"""
        added_tokens AS MATERIALIZED (
          SELECT * FROM block_tokens SEMI JOIN _ft_added USING (org_ref)
        ),
        pairs AS (
          SELECT DISTINCT a.org_ref AS a, a.k AS ak, b.org_ref AS b, b.k AS bk
          {_candidates_sql(cfg, "added_tokens", f"greatest(a.rank, b.rank) <> {RANK_REGISTRY}")}
        )"""
    # one statement, so the blocks are computed once for the three questions; the pairs come
    # back with it when they are few (as the benchmark's near names: ~100), else streamed
    crossing, long_name, n_pairs, few = con.execute(
        f"""
        WITH {_block_ctes(cfg)},
        theirs AS (SELECT DISTINCT block FROM name_blocks SEMI JOIN _ft_added USING (org_ref)),
        crossing AS (
          SELECT block FROM name_blocks SEMI JOIN theirs USING (block) GROUP BY block
          HAVING count(DISTINCT org_ref) > {cfg.block_max_refs}
             AND count(DISTINCT org_ref) FILTER (
               WHERE org_ref NOT IN (SELECT org_ref FROM _ft_added)) <= {cfg.block_max_refs}
        ),
        their_words AS (SELECT DISTINCT t FROM tokens SEMI JOIN _ft_added USING (org_ref)),
        long_names AS (
          SELECT org_ref FROM ranked SEMI JOIN their_words USING (t)
          WHERE tokens_in_name > {cfg.block_max_tokens}
            AND org_ref NOT IN (SELECT org_ref FROM _ft_added)
        ),
        {pairs}
        SELECT (SELECT first(block) FROM crossing), (SELECT first(org_ref) FROM long_names),
          (SELECT count(*) FROM pairs),
          (SELECT list([a, ak, b, bk] ORDER BY a, ak, b, bk) FROM (
             SELECT * FROM pairs LIMIT {_APART_PAIRS_INLINE}))
        """
    ).fetchall()[0]
    if crossing is not None:
        return _Apart(
            f'the block "{crossing}" of a new name passes {cfg.block_max_refs} references', True
        )
    if long_name is not None:
        return _Apart(
            f"a word of a new name counts among the rarest words of {long_name}'s name", True
        )
    if not n_pairs:
        return _Apart(None, True, [])
    chunks: Iterator[list[list[str]]]
    if n_pairs <= _APART_PAIRS_INLINE:
        chunks = iter([few])
    else:
        cur = con.sql(f"WITH {_block_ctes(cfg)}, {pairs} SELECT * FROM pairs ORDER BY ALL")
        chunks = (
            [list(row) for row in zip(*(c.to_pylist() for c in chunk.columns), strict=True)]
            for chunk in cur.to_arrow_reader(20_000)
        )
    why = None
    new_pairs: list[tuple[str, str, str, str]] = []
    for chunk in chunks:  # scored like the matcher's pairs: does one reach the floor?
        scores = _scores(cfg, [p[1] for p in chunk], [p[3] for p in chunk])
        for (a_ref, a_key, b_ref, b_key), score in zip(chunk, scores, strict=True):
            new_pairs.append((a_ref, a_key, b_ref, b_key))
            if score and why is None:
                why = f'the new reference {a_ref} ("{a_key}") is a fuzzy candidate of {b_ref}'
    return _Apart(why, True, new_pairs)


def _stored_basis_sql(where: str) -> str:
    """SQL of (step, BASIS_COLUMNS...) of the stored rows `where`, in step order: what
    `MatchRow(*row[1:])` takes."""
    return (
        f"SELECT step, {', '.join(BASIS_COLUMNS)} "
        f"FROM {INT_ORG_MATCHES.qualified} JOIN {MATCH_BASIS} USING (step) "
        f"WHERE {where} ORDER BY step"
    )


def _rerender(con: duckdb.DuckDBPyConnection) -> int:
    """The stored rows that involve a reference of _ft_changed into _ft_basis, and what they
    show, rendered again, into _ft_shown. Returns how many."""
    where = (
        "ref_a IN (SELECT org_ref FROM _ft_changed) OR ref_b IN (SELECT org_ref FROM _ft_changed)"
    )
    con.execute(f"CREATE OR REPLACE TEMP TABLE _ft_basis AS {_stored_basis_sql(where)}")
    _empty_shown(con)
    return render_shown(con)


def _temp_table(con: duckdb.DuckDBPyConnection, name: str, table: pa.Table) -> None:
    with registered_table(con, "_ft_arrow", table):
        con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT * FROM _ft_arrow")


def _reuse_display(con: duckdb.DuckDBPyConnection) -> None:
    """Into the temp table _ft_shown, for the decisions of _ft_basis, what the stored rows of
    the same basis show when their two references' mentions are unchanged (not in
    _ft_changed: only the mentions change what a row shows). `render_shown` renders the
    others.

    The join runs in DuckDB, so what the 76k stored rows show never passes through Python
    (0.27 s at scale 1 when it was read into a dict)."""
    basis = ", ".join(BASIS_COLUMNS)
    same = " AND ".join(f"b.{c} IS NOT DISTINCT FROM s.{c}" for c in BASIS_COLUMNS)
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE _ft_shown AS
        SELECT b.step, {", ".join(f"m.{c}" for c in SHOWN_COLUMNS)}
        FROM _ft_basis b JOIN (
          -- the narrow basis first, one stored row per basis (two equal ones show the same)
          SELECT {basis}, max(step) AS stored_step
          FROM {INT_ORG_MATCHES.qualified} JOIN {MATCH_BASIS} USING (step)
          WHERE ref_a NOT IN (SELECT org_ref FROM _ft_changed)
            AND ref_b NOT IN (SELECT org_ref FROM _ft_changed)
          GROUP BY ALL
        ) s ON {same}
        JOIN {INT_ORG_MATCHES.qualified} m ON m.step = s.stored_step
        """
    )


def _store_ambiguous(con: duckdb.DuckDBPyConnection, context: str, refs: set[str]) -> None:
    """The references ambiguous by name after these decisions, in the caller's transaction
    (key_digests rows of AMBIGUOUS_KEY, and an entry with their count and the context)."""
    con.execute(f"DELETE FROM {DIGESTS} WHERE state = ?", [AMBIGUOUS_KEY])
    if refs:
        with registered(con, "_ft_tmp", {"org_ref": sorted(refs)}):
            con.execute(f"INSERT INTO {DIGESTS} SELECT ?, org_ref, 0 FROM _ft_tmp", [AMBIGUOUS_KEY])
    record_in_transaction(con, AMBIGUOUS_KEY, context, len(refs))


def stored_ambiguous(con: duckdb.DuckDBPyConnection, context: str) -> set[str] | None:
    """The references ambiguous by name after the stored decisions, or None when they were
    not stored with them (in this context)."""
    entry = stored_entry(con, AMBIGUOUS_KEY)
    if entry is None or entry[0] != context:
        return None
    found = con.execute(f"SELECT key FROM {DIGESTS} WHERE state = ?", [AMBIGUOUS_KEY])
    refs = {r for (r,) in found.fetchall()}
    return refs if len(refs) == entry[1] else None


def _store_pairs(
    con: duckdb.DuckDBPyConnection,
    context: str,
    pairs: list[tuple[str, str, str, str, float]],
    stored: tuple[list[tuple], list[tuple]] | None = None,
) -> None:
    """The fuzzy pairs the decisions were taken on, in the caller's transaction (ORG_FUZZY_PAIRS
    and an entry with their count and the context). `stored`: the stored pairs and the new
    references' they were taken on (`fuzzy_pairs`): then only the pairs of new references
    are added to the table, which holds the others already."""
    count = len(pairs)
    if stored is not None:
        added = {p[0] for p in stored[1]}  # _apart's pairs start from the new references
        new = [p for p in pairs if p[0] in added or p[2] in added]
        if len(stored[0]) + len(new) == len(pairs):
            pairs = new
        else:  # not the stored ones and theirs: write them all
            stored = None
    if stored is None:
        con.execute(f"DELETE FROM {FUZZY_PAIRS}")
    if pairs:
        names = ORG_FUZZY_PAIRS.column_names
        table = pa.table(
            [pa.array([p[i] for p in pairs], pa.float64() if i == 4 else pa.string())
             for i in range(5)],
            names=list(names),
        )  # fmt: skip
        with registered_table(con, "_ft_arrow", table):
            con.execute(f"INSERT INTO {FUZZY_PAIRS} SELECT * FROM _ft_arrow")
    record_in_transaction(con, FUZZY_PAIRS_KEY, context, count)


def _stored_pairs(
    con: duckdb.DuckDBPyConnection, context: str
) -> list[tuple[str, str, str, str, float]] | None:
    """The fuzzy pairs the stored decisions were taken on, or None when they were not stored
    with them (in this context)."""
    entry = stored_entry(con, FUZZY_PAIRS_KEY)
    if entry is None or entry[0] != context:
        return None
    rows = con.execute(
        f"SELECT ref, ref_key, candidate, candidate_key, score FROM {FUZZY_PAIRS}"
    ).fetchall()
    return rows if len(rows) == entry[1] else None


def build_int_org_matches(
    con: duckdb.DuckDBPyConnection,
    overrides_path: Path | None = None,
    config: MatchConfig = MATCH_CONFIG,
    overrides_label: str | None = None,
) -> BuildResult:
    overrides = read_overrides(overrides_path, overrides_label) if overrides_path else []
    install_macros(con)
    ensure_state(con)
    # what the decisions rest on besides the mentions
    context = input_fingerprint(
        con,
        [DECISIONS_KEY],
        [ORGID_PREFIXES.qualified],
        json.dumps([repr(config), [dataclasses.astuple(o) for o in overrides]]),
    )
    t = time.perf_counter()
    ref_digests(con, decisions=True)
    why, as_built, changed_refs_n = _why_rematch(con, context)
    if as_built:  # the references whose mentions changed: their rows are rendered again
        con.execute(
            "CREATE OR REPLACE TEMP TABLE _ft_changed AS "
            + changed_refs(INT_ORG_MATCHES, "mentions")
        )
    timings = {"digests_s": time.perf_counter() - t}
    kept = "no reference changed what matching reads"
    prepared = False  # _ft_refs and _ft_names made by _apart
    replay: set[str] | None = None  # the decisions by identifier and exact name stand
    # the stored fuzzy pairs and the new references': all the fuzzy decisions rest on
    fuzzy_pairs: tuple[list[tuple[str, str, str, str, float]], list[tuple]] | None = None
    if why is not None and changed_refs_n:
        t = time.perf_counter()
        apart = _apart(con, changed_refs_n, overrides, config)
        prepared = True
        timings["apart_s"] = time.perf_counter() - t
        if apart.why is None:
            why = None
            kept = f"{changed_refs_n} new reference(s) share nothing matching reads with others"
        else:
            why = f"{why}: {apart.why}"
            if apart.names_kept:
                replay = stored_ambiguous(con, context)
            if replay is not None and apart.new_pairs is not None:
                stored = _stored_pairs(con, context)
                if stored is not None:
                    fuzzy_pairs = (stored, apart.new_pairs)
    if why is None:
        t = time.perf_counter()
        rerendered = _rerender(con)
        timings["evidence_s"] = time.perf_counter() - t
        changed = scalar_int(con, "SELECT count(*) FROM _ft_changed")
        path = (
            f"decisions kept ({kept}); evidence redone for "
            f"{rerendered} row(s) of {changed} reference(s) whose mentions changed"
        )
    else:
        ambiguous: set[str] = set()
        decided_pairs: list[tuple[str, str, str, str, float]] = []
        rows, more = match_organisations(
            con, overrides, config, prepared, replay, ambiguous, fuzzy_pairs, decided_pairs
        )
        timings.update(more)
        t = time.perf_counter()
        _temp_table(con, "_ft_basis", _basis_table(rows, range(1, len(rows) + 1)))
        # the table and its basis as last built, by this code: decisions taken again on the
        # same basis show what they showed, unless their references' mentions changed
        if as_built:
            _reuse_display(con)
        else:
            _empty_shown(con)
        timings["rows_rendered"] = render_shown(con)
        timings["evidence_s"] = time.perf_counter() - t
        path = (
            f"fuzzy decisions taken again, those by identifier and exact name as stored: {why}"
            if replay is not None
            else f"all decisions taken again: {why}"
        )
        if fuzzy_pairs is not None:
            path += (
                f"; on the {len(fuzzy_pairs[0]):,} fuzzy pairs stored and the new references' "
                f"{len(fuzzy_pairs[1]):,} candidate pairs"
            )
    t = time.perf_counter()
    try:
        with transaction(con):
            if why is None:
                con.execute(
                    f"DELETE FROM {INT_ORG_MATCHES.qualified} "
                    "WHERE step IN (SELECT step FROM _ft_basis)"
                )
                con.execute(
                    f"INSERT INTO {INT_ORG_MATCHES.qualified} ({INT_ORG_MATCHES.select_list()}) "
                    f"{_ROWS_SQL}"
                )
            else:
                rebuild_table(con, INT_ORG_MATCHES, _ROWS_SQL)
                con.execute(f"DELETE FROM {MATCH_BASIS}")
                con.execute(
                    f"INSERT INTO {MATCH_BASIS} SELECT step, key_a, key_b, note FROM _ft_basis"
                )
                _store_ambiguous(con, context, ambiguous)
                _store_pairs(con, context, decided_pairs, fuzzy_pairs)
            n = save_state(
                con,
                INT_ORG_MATCHES,
                DECISIONS_KEY,
                context,
                "SELECT org_ref FROM _ft_changed" if why is None else None,
            )
    finally:
        for table in ("_ft_basis", "_ft_shown", "_ft_changed", "_ft_added"):
            con.execute(f"DROP TABLE IF EXISTS {table}")
    timings["write_s"] = time.perf_counter() - t
    return BuildResult(n, path, timings)


def resolve_organisations(
    con: duckdb.DuckDBPyConnection,
    overrides_path: Path | None = None,
    config: MatchConfig = MATCH_CONFIG,
) -> None:
    """Mentions, matches and identity in one go (tests, CLI)."""
    from assets.intermediate.int_org_identity import build_int_org_identity

    build_int_org_mentions(con)
    build_int_org_matches(con, overrides_path, config)
    build_int_org_identity(con)


def overrides_path(raw_dir: Path) -> Path:
    """`governance/overrides.csv` under the raw folder (file name case-insensitive)."""
    folder = raw_dir / OVERRIDES_FILE.parent
    if folder.is_dir():
        for p in sorted(folder.iterdir()):
            if p.is_file() and p.name.lower() == OVERRIDES_FILE.name:
                return p
    return raw_dir / OVERRIDES_FILE


def _overrides_version(fundtrace: FundtraceSettings, **_: object) -> str:
    path = overrides_path(fundtrace.raw_path)
    return sha256_file(path) if path.is_file() else "absent"


@dg.asset(
    key=INT_ORG_MATCHES.asset_key,
    group_name="intermediate",
    kinds={"duckdb", "python"},
    description=INT_ORG_MATCHES.doc,
    deps=[INT_ORG_MENTIONS.asset_key, ORGID_PREFIXES.asset_key],
)
@skip_unchanged(extra=_overrides_version)
def int_org_matches(
    context: dg.AssetExecutionContext, duckdb: DuckDBResource, fundtrace: FundtraceSettings
) -> dg.MaterializeResult:
    path = overrides_path(fundtrace.raw_path)
    label = path.relative_to(fundtrace.raw_path).as_posix()
    with duckdb.get_connection() as con:
        built = build_int_org_matches(con, path, MATCH_CONFIG, label)
        timings = built.timings
        summary = con.execute(
            f"SELECT method, accepted, count(*) FROM {INT_ORG_MATCHES.qualified} "
            "GROUP BY ALL ORDER BY ALL"
        ).fetchall()
        context.log.info(f"{built.path}; matches by method/accepted: {summary}; timings {timings}")
        return materialize_result(
            con,
            INT_ORG_MATCHES,
            {
                "build": built.path,
                "overrides_file": label if path.is_file() else f"{label} (absent)",
                "decisions": {f"{m}/{'accepted' if a else 'rejected'}": n for m, a, n in summary},
                "timings": {k: round(v, 3) for k, v in timings.items()},
                "thresholds": {
                    k: v for k, v in MATCH_CONFIG.__dict__.items() if not k.startswith("_")
                },
            },
        )


# the pairs that join two references into one cluster
ACCEPTED_PAIRS_SQL = (
    f"SELECT ref_a, ref_b, method, score, evidence, step FROM {INT_ORG_MATCHES.qualified} "
    "WHERE accepted AND method NOT IN ('override_different', 'override_invalid')"
)


def iter_match_rows(con: duckdb.DuckDBPyConnection) -> Iterator[tuple]:
    """The accepted pairs in decision order (for the identity closure)."""
    yield from con.execute(f"{ACCEPTED_PAIRS_SQL} ORDER BY step").fetchall()
