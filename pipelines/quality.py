"""Great Expectations suites run as blocking Dagster asset checks, in place in DuckDB.

Layout: one GX 1.x ExpectationSuite JSON per checked table, ``expectations/<layer>__<table>.json``,
checks the DuckDB table ``<layer>.<table>`` whose Dagster asset key is ``[layer, table]``.

Severity mapping (GX ``severity`` field, missing = critical):
- a GX error (any expectation whose result carries ``exception_info.raised_exception``, or a suite
  that cannot be run at all: missing table, unsupported expectation) raises
  :class:`GXValidationError`: the check step fails and blocking stops downstream assets. A broken
  validator is never reported as data passing or as data failing.
- failed critical -> ``AssetCheckResult(passed=False, severity=ERROR)``: downstream is blocked.
- failed warning -> ``passed=False, severity=WARN``: shown, downstream runs.
- failed info -> the check passes; the failure is counted in metadata and in ``quality.gx_results``.

Why the bridge needs more than ``batch.validate`` (GX 1.24.1 on duckdb-engine 0.17):
- GX only keeps one persisted connection for the dialects in the private tuple
  ``sqlalchemy_execution_engine._PERSISTED_CONNECTION_DIALECTS``; for any other dialect it closes
  the connection before reading query results, so on DuckDB every metric errors
  ("list index out of range") while ``validate()`` returns normally. :func:`ensure_gx_duckdb_patch`
  adds DuckDB to that tuple, which is why great-expectations must stay pinned.
- duckdb-engine issues BEGIN on SQLAlchemy's autobegin, so on that single connection the first
  failing query (e.g. a missing column) aborts the transaction and every later expectation errors
  with "Current transaction is aborted". The connections handed to GX therefore ignore
  begin/commit/rollback: validation only reads, each statement is its own DuckDB transaction.
  (Measured: this alone also cures the "list index out of range" above, since the lost results
  came from SQLAlchemy's rollback on returning a connection to the pool; the patch is kept so
  GX runs on one connection, and fails loudly if GX changes.)
- ``expect_column_values_to_(not_)match_regex`` ("Regex is not supported for dialect duckdb") and
  ``expect_column_values_to_be_of_type`` / ``..._in_type_list`` (``KeyError: 'type'``) do not run
  on DuckDB. :func:`translate_for_duckdb` rewrites them into ``unexpected_rows_expectation`` SQL
  (see the function's docstring for the exact semantics) keeping severity, meta and, under
  ``meta["translated_from"]``, the expectation as written, so results name what the author wrote.
- ``unexpected_rows_expectation`` computes its query's rows and their count whatever the result
  format: every such query ran twice, to the end of the table when it passes. A suite's first
  validation runs them as :data:`UNEXPECTED_ROW_COUNT` (the count alone); one that fails is
  validated again as written, with COMPLETE, for its sample rows.
- Connections: DuckDB refuses, within one process, a second open of a file with a different
  configuration (duckdb-engine always sets its own ``custom_user_agent``, DuckDBResource sets
  ``"dagster"``), and another process cannot open the file read-write while we hold it. So GX never
  opens the file itself: its SQLAlchemy engine gets a ``creator`` that hands out cursors of one
  DuckDB connection we own (or of the caller's connection, e.g. the DuckDBResource's). Closing
  those cursors (and our connection) after validation releases the file whatever GX still
  references, and sharing the caller's connection cannot clash with its configuration. The
  cursors' ``search_path`` is set to the checked schema, because GX deprecates
  ``add_table_asset(schema_name=...)``. The Dagster check validates on the DuckDBResource's
  connection and writes ``quality.gx_results`` with it once GX's cursors are closed.

A suite whose queries read other tables lists them as ``meta.depends_on: ["layer/table"]``; they
become the check's ``additional_deps`` so the check waits for them in a run that builds them.

Suites validate the whole table unless they say otherwise: ``meta.sample: {"percent": 10,
"seed": 1}`` evaluates the suite's row-wise expectations (:data:`SAMPLEABLE`: nulls, sets, ranges,
lengths, patterns, column pairs; each row judged on its own) on a seeded Bernoulli sample of the
table, the same rows for every expectation and every run of the same table. Everything else (unique
values, row counts, aggregates, custom ``unexpected_rows_expectation`` SQL) still sees the whole
table; an expectation opts out with ``meta.sample: false``, and an ``unexpected_rows_expectation``
whose query is row-wise opts in with ``meta.sample: true``. A sample finds a rare bad row only by
chance, so it is for expensive checks on large tables (a regex over 100M rows), not for rules that
must hold on every row. Results name the sample they were evaluated on (``sample``).

Results are also written, one row per expectation, to ``quality.gx_results`` in the build
database (see :func:`write_gx_results`) so marts can report them. Great Expectations is imported
lazily (it takes seconds); importing this module stays cheap for Dagster definitions.
"""

import contextlib
import copy
import functools
import hashlib
import json
import math
import os
import sys
import threading
import time
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import dagster as dg
import duckdb
from dagster_duckdb import DuckDBResource

from assets.common.tables import (
    database_cursor,
    sql_identifier,
    sql_literal,
    table_columns,
    transaction,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
EXPECTATIONS_DIR = REPO_ROOT / "expectations"
LAYERS: tuple[str, ...] = ("raw", "staging", "intermediate", "marts")
SEVERITIES: tuple[str, ...] = ("critical", "warning", "info")
SAMPLE_SIZE = 10
RESULTS_SCHEMA = "quality"
RESULTS_TABLE = f"{RESULTS_SCHEMA}.gx_results"

UNEXPECTED_ROWS = "unexpected_rows_expectation"
MATCH_REGEX = "expect_column_values_to_match_regex"
NOT_MATCH_REGEX = "expect_column_values_to_not_match_regex"
OF_TYPE = "expect_column_values_to_be_of_type"
IN_TYPE_LIST = "expect_column_values_to_be_in_type_list"
UNIQUE = "expect_column_values_to_be_unique"

# Common spellings -> the name DuckDB reports in information_schema.columns.data_type.
_TYPE_ALIASES: dict[str, str] = {
    "STRING": "VARCHAR",
    "TEXT": "VARCHAR",
    "CHAR": "VARCHAR",
    "BPCHAR": "VARCHAR",
    "INT": "INTEGER",
    "INT4": "INTEGER",
    "SIGNED": "INTEGER",
    "INT8": "BIGINT",
    "LONG": "BIGINT",
    "INT2": "SMALLINT",
    "SHORT": "SMALLINT",
    "INT1": "TINYINT",
    "FLOAT8": "DOUBLE",
    "DOUBLE PRECISION": "DOUBLE",
    "FLOAT4": "FLOAT",
    "REAL": "FLOAT",
    "NUMERIC": "DECIMAL",
    "BOOL": "BOOLEAN",
    "LOGICAL": "BOOLEAN",
    "DATETIME": "TIMESTAMP",
    "TIMESTAMPTZ": "TIMESTAMP WITH TIME ZONE",
}


# Expectations that judge each row on its own: on a Bernoulli sample they count the sample's bad
# rows and estimate the table's share. Uniqueness, ordering, row counts and aggregates are not here:
# on a sample they would answer another question.
SAMPLEABLE: frozenset[str] = frozenset(
    {
        "expect_column_values_to_not_be_null",
        "expect_column_values_to_be_null",
        "expect_column_values_to_be_in_set",
        "expect_column_values_to_not_be_in_set",
        "expect_column_values_to_be_between",
        "expect_column_value_lengths_to_be_between",
        "expect_column_value_lengths_to_equal",
        "expect_column_values_to_match_like_pattern",
        "expect_column_values_to_not_match_like_pattern",
        MATCH_REGEX,
        NOT_MATCH_REGEX,
        "expect_column_pair_values_to_be_equal",
        "expect_column_pair_values_a_to_be_greater_than_b",
    }
)
_SAMPLE_KEYS = frozenset({"percent", "seed", "reason"})


@dataclass(frozen=True)
class SamplePlan:
    """A suite's ``meta.sample``: a seeded Bernoulli sample of ``percent`` of the rows."""

    percent: float
    seed: int

    @property
    def label(self) -> str:
        return f"{self.percent:g}% Bernoulli sample, seed {self.seed}"

    def select_sql(self, schema: str, table: str) -> str:
        # bernoulli with a seed: the same rows on every run and for every expectation (system
        # sampling is faster but, multi-threaded, not repeatable)
        return (
            f"SELECT * FROM {sql_identifier(schema)}.{sql_identifier(table)} "
            f"USING SAMPLE {self.percent!r} PERCENT (bernoulli, {self.seed})"
        )


class GXValidationError(Exception):
    """GX could not evaluate one or more expectations: an error of the check, not of the data."""


class UnsupportedExpectationError(ValueError):
    """An expectation the DuckDB translation cannot run faithfully."""


# --------------------------------------------------------------------------- suites and keys


def suite_files(expectations_dir: Path = EXPECTATIONS_DIR) -> list[Path]:
    """The suite files in ``expectations_dir``, sorted by name."""
    directory = Path(expectations_dir)
    if not directory.is_dir():
        raise FileNotFoundError(f"expectations directory not found: {directory}")
    return sorted(p for p in directory.glob("*.json") if p.is_file())


def asset_key_for_suite(path: Path | str) -> dg.AssetKey:
    """``staging__stg_x.json`` -> ``AssetKey(["staging", "stg_x"])``."""
    path = Path(path)
    layer, sep, table = path.stem.partition("__")
    if path.suffix != ".json" or not sep or layer not in LAYERS or not table:
        raise ValueError(
            f"suite file {path.name!r} must be named '<layer>__<table>.json' with layer one of "
            f"{', '.join(LAYERS)}"
        )
    return dg.AssetKey([layer, table])


def load_suite(path: Path | str) -> dict[str, Any]:
    """Read and sanity-check one suite file (``name``, if given, must match the file name)."""
    path = Path(path)
    asset_key_for_suite(path)
    try:
        suite = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"suite file {path}: invalid JSON: {exc}") from exc
    if not isinstance(suite, dict) or not isinstance(suite.get("expectations"), list):
        raise ValueError(f"suite file {path}: expected an object with an 'expectations' list")
    name = suite.setdefault("name", path.stem)
    if name != path.stem:
        raise ValueError(f"suite file {path}: suite name {name!r} must equal {path.stem!r}")
    try:
        sampled_expectations(suite)
    except UnsupportedExpectationError as exc:
        raise ValueError(f"suite file {path}: {exc}") from exc
    return suite


def sample_plan(suite: Mapping[str, Any]) -> SamplePlan | None:
    """The suite's ``meta.sample``, checked; None when it validates whole tables (the default)."""
    spec = (suite.get("meta") or {}).get("sample")
    if spec is None:
        return None
    if not isinstance(spec, Mapping):
        raise UnsupportedExpectationError(
            'meta.sample must be an object such as {"percent": 10, "seed": 1}'
        )
    unknown = sorted(set(spec) - _SAMPLE_KEYS)
    percent, seed = spec.get("percent"), spec.get("seed", 0)
    if unknown:
        raise UnsupportedExpectationError(f"meta.sample: unknown key(s) {', '.join(unknown)}")
    if not isinstance(percent, int | float) or isinstance(percent, bool) or not 0 < percent < 100:
        raise UnsupportedExpectationError(
            f"meta.sample.percent must be a number above 0 and below 100, not {percent!r}"
        )
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise UnsupportedExpectationError(
            f"meta.sample.seed must be a whole number >= 0, not {seed!r}"
        )
    return SamplePlan(percent=float(percent), seed=seed)


def sampled_expectations(suite: Mapping[str, Any]) -> set[int]:
    """Indexes of the expectations evaluated on the suite's sample (see the module doc)."""
    plan = sample_plan(suite)
    chosen: set[int] = set()
    problems: list[str] = []
    for index, exp in enumerate(suite.get("expectations") or []):
        if not isinstance(exp, Mapping):
            continue
        exp_type = str(exp.get("type"))
        wanted = (exp.get("meta") or {}).get("sample")
        if wanted is None:
            if plan is not None and exp_type in SAMPLEABLE:
                chosen.add(index)
        elif not isinstance(wanted, bool):
            problems.append(f"expectation #{index} ({exp_type}): meta.sample must be true or false")
        elif wanted:
            if plan is None:
                problems.append(
                    f"expectation #{index} ({exp_type}): meta.sample is true but the suite has "
                    "no meta.sample"
                )
            elif exp_type not in SAMPLEABLE and exp_type != UNEXPECTED_ROWS:
                problems.append(
                    f"expectation #{index} ({exp_type}): cannot be evaluated on a sample (it "
                    "does not judge each row on its own)"
                )
            else:
                chosen.add(index)
    if problems:
        raise UnsupportedExpectationError("; ".join(problems))
    return chosen


# --------------------------------------------------------------------------- translation


def _escape_for_gx(sql: str) -> str:
    # GX str.format()s the query ({batch}) and then runs it through sqlalchemy.text(), which
    # would read ":name" as a bind parameter; "\:" is text()'s escape for a literal colon.
    return sql.replace("{", "{{").replace("}", "}}").replace(":", "\\:")


def _sql_literal(value: str) -> str:
    return _escape_for_gx(sql_literal(value))


def _sql_ident(name: str) -> str:
    return _escape_for_gx(sql_identifier(name))


def _require_kwargs(
    exp_type: str, kwargs: Mapping[str, Any], required: Sequence[str], optional: Sequence[str]
) -> None:
    missing = [k for k in required if kwargs.get(k) in (None, "")]
    unknown = sorted(set(kwargs) - set(required) - set(optional))
    if missing:
        raise UnsupportedExpectationError(f"{exp_type}: missing {', '.join(missing)}")
    if unknown:
        raise UnsupportedExpectationError(
            f"{exp_type}: argument(s) {', '.join(unknown)} not supported on DuckDB by the bridge"
        )


def _regex_query(exp_type: str, kwargs: Mapping[str, Any]) -> str:
    _require_kwargs(exp_type, kwargs, ["column", "regex"], ["mostly"])
    col = _sql_ident(str(kwargs["column"]))
    matches = f"regexp_matches(CAST({col} AS VARCHAR), {_sql_literal(str(kwargs['regex']))})"
    bad = f"NOT {matches}" if exp_type == MATCH_REGEX else matches
    query = f"SELECT {col} FROM {{batch}} WHERE {col} IS NOT NULL AND {bad}"
    mostly = kwargs.get("mostly")
    if mostly is not None:
        if not isinstance(mostly, int | float) or isinstance(mostly, bool) or not 0 <= mostly <= 1:
            raise UnsupportedExpectationError(f"{exp_type}: mostly must be a number in [0, 1]")
        # GX: success when the share of non-null values that are expected is >= mostly.
        good_share = (
            f"(SELECT avg(CASE WHEN {bad} THEN 0.0 ELSE 1.0 END) "
            f"FROM {{batch}} WHERE {col} IS NOT NULL)"
        )
        query += f" AND {good_share} < {float(mostly)!r}"
    return query + " ORDER BY 1"


def _unique_query(kwargs: Mapping[str, Any]) -> str:
    col = _sql_ident(str(kwargs["column"]))
    # a hash aggregate of the values; GX counts them with a window partitioned by the
    # column, which sorts the table (marts.money_flows' 1.2M ids: 0.27 -> 0.13 s)
    duplicated = (
        f"SELECT {col} FROM {{batch}} WHERE {col} IS NOT NULL GROUP BY {col} HAVING count(*) > 1"
    )
    return f"SELECT {col} FROM {{batch}} WHERE {col} IN ({duplicated}) ORDER BY 1"


def _duckdb_type_name(type_name: str) -> str:
    name = " ".join(str(type_name).upper().split())
    return _TYPE_ALIASES.get(name, name)


def _type_query(exp_type: str, kwargs: Mapping[str, Any], schema: str, table: str) -> str:
    if exp_type == OF_TYPE:
        _require_kwargs(exp_type, kwargs, ["column", "type_"], [])
        wanted = [kwargs["type_"]]
    else:
        _require_kwargs(exp_type, kwargs, ["column", "type_list"], [])
        wanted = kwargs["type_list"]
        if not isinstance(wanted, list) or not wanted:
            raise UnsupportedExpectationError(f"{exp_type}: type_list must be a non-empty list")
    names = sorted({_duckdb_type_name(t) for t in wanted})
    accepted = [f"data_type IN ({', '.join(_sql_literal(n) for n in names)})"]
    # A bare parametrised type (DECIMAL) accepts any parameters (DECIMAL(18,3)).
    accepted += [f"starts_with(data_type, {_sql_literal(n + '(')})" for n in names if "(" not in n]
    column = str(kwargs["column"])
    return (
        "SELECT data_type FROM information_schema.columns"
        " WHERE table_catalog = current_database()"
        f" AND lower(table_schema) = lower({_sql_literal(schema)})"
        f" AND lower(table_name) = lower({_sql_literal(table)})"
        f" AND lower(column_name) = lower({_sql_literal(column)})"
        f" AND NOT ({' OR '.join(accepted)})"
        # Binds the column against the batch: a missing column is a query error, not a pass.
        f" AND NOT EXISTS (SELECT {_sql_ident(column)} FROM {{batch}} WHERE false)"
    )


def translate_for_duckdb(suite: Mapping[str, Any], schema: str, table: str) -> dict[str, Any]:
    """Return a copy of ``suite`` that GX 1.24 can evaluate on DuckDB.

    - ``expect_column_values_to_match_regex`` -> ``unexpected_rows_expectation`` selecting the
      non-null values for which DuckDB's ``regexp_matches`` (RE2) is false.
      ``regexp_matches`` searches anywhere in the value, which is GX's own semantics (Python
      ``re.search`` / SQL ``~``), so ``^``/``$`` anchors in the pattern work as written; a
      pattern RE2 rejects (e.g. look-arounds) becomes an error of the check.
      ``..._to_not_match_regex`` is the mirror image. Nulls are ignored, as in GX. ``mostly`` keeps
      GX's rule (fail when the share of non-null matching values is below ``mostly``); when the
      threshold is met no rows are returned, so ``unexpected_count`` is then 0.
    - ``expect_column_values_to_be_of_type`` / ``..._in_type_list`` -> a query on
      ``information_schema.columns`` returning the column's DuckDB ``data_type`` when it is not
      one of the wanted types (common aliases such as STRING/TEXT/INT/BOOL/DATETIME are mapped to
      DuckDB's names; a bare DECIMAL accepts any precision). Empty tables are still checked, and
      a missing column is an error of the check (the query binds the column against the batch).
    - ``expect_column_values_to_be_unique`` with no argument but ``column`` ->
      ``unexpected_rows_expectation`` selecting the non-null values held by more than one row,
      every such row counted as GX counts them (a value in three rows is three unexpected
      rows); with other arguments (``mostly``...) it is left to GX.
    - anything else is passed through unchanged.

    Every expectation gets an explicit ``severity`` (missing = critical). Translated ones keep
    ``meta``/``notes``/``description`` and record ``meta["translated_from"]``.
    Raises :class:`UnsupportedExpectationError` listing every expectation it cannot translate.
    """
    expectations = suite.get("expectations")
    if not isinstance(expectations, list):
        raise UnsupportedExpectationError("suite has no 'expectations' list")
    translated: list[dict[str, Any]] = []
    problems: list[str] = []
    for index, original in enumerate(expectations):
        try:
            translated.append(_translate_one(original, schema, table))
        except UnsupportedExpectationError as exc:
            problems.append(f"expectation #{index}: {exc}")
    if problems:
        raise UnsupportedExpectationError("; ".join(problems))
    out = copy.deepcopy(dict(suite))
    out["expectations"] = translated
    return out


def _translate_one(original: Any, schema: str, table: str) -> dict[str, Any]:
    if not isinstance(original, dict) or not isinstance(original.get("type"), str):
        raise UnsupportedExpectationError(f"not an expectation object with a 'type': {original!r}")
    exp = copy.deepcopy(original)
    severity = exp.get("severity") or "critical"
    if severity not in SEVERITIES:
        raise UnsupportedExpectationError(
            f"{exp['type']}: severity {severity!r} is not one of {', '.join(SEVERITIES)}"
        )
    exp["severity"] = severity
    exp_type: str = exp["type"]
    kwargs: dict[str, Any] = exp.get("kwargs") or {}
    if exp_type in (MATCH_REGEX, NOT_MATCH_REGEX):
        query = _regex_query(exp_type, kwargs)
    elif exp_type in (OF_TYPE, IN_TYPE_LIST):
        query = _type_query(exp_type, kwargs, schema, table)
    elif exp_type == UNIQUE and kwargs.get("column") and set(kwargs) == {"column"}:
        query = _unique_query(kwargs)
    else:
        return exp
    new: dict[str, Any] = {
        "type": UNEXPECTED_ROWS,
        "kwargs": {"unexpected_rows_query": query},
        "severity": severity,
        "meta": {
            **(exp.get("meta") or {}),
            "translated_from": {"type": exp_type, "kwargs": copy.deepcopy(kwargs)},
        },
    }
    for key in ("notes", "description"):
        if key in exp:
            new[key] = exp[key]
    return new


# --------------------------------------------------------------------------- GX runtime


class _DuckDBDialect(str):
    """Stands in for the missing ``GXSqlDialect.DUCKDB``: GX reads both ``.value`` and the str."""

    __slots__ = ()

    @property
    def value(self) -> str:
        return str(self)


def _defer_scipy_stats() -> None:
    """Load ``scipy.stats`` only when something uses it (idempotent).

    GX imports it for the KL-divergence expectation alone (``from scipy import stats``): 0.6 of
    the 2.1 s GX takes to import, spent beside the first steps of every run that changes data.
    The module is registered with the standard library's ``LazyLoader`` and bound on the
    ``scipy`` package, so that import finds it without executing it; the first attribute read
    (a suite using a distribution expectation) loads it in full.
    """
    if "scipy.stats" in sys.modules:
        return
    import importlib.util

    import scipy

    spec = importlib.util.find_spec("scipy.stats")
    if spec is None or spec.loader is None:
        return
    loader = importlib.util.LazyLoader(spec.loader)
    spec.loader = loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["scipy.stats"] = module
    loader.exec_module(module)
    scipy.stats = module  # type: ignore[attr-defined]  # what `from scipy import stats` reads


def _import_gx() -> Any:
    if _warm_up is not None:
        _warm_up.join()  # never two threads importing GX at once
    _defer_scipy_stats()
    with warnings.catch_warnings():
        # GX 1.24 imports the deprecated sre_* modules; not ours to fix.
        warnings.simplefilter("ignore", DeprecationWarning)
        import great_expectations as gx
    return gx


# the thread importing GX ahead; None until data changes in this process
_warm_up: threading.Thread | None = None


def _import_gx_modules() -> None:
    _defer_scipy_stats()
    import duckdb_engine  # noqa: F401
    import great_expectations  # noqa: F401
    from great_expectations.core import ExpectationSuite  # noqa: F401
    from great_expectations.execution_engine import sqlalchemy_execution_engine  # noqa: F401


# The interpreter's thread switch interval while the warm-up imports (CPython's default is
# 5 ms). The import is ~2 s of Python that holds the GIL; the run's steps beside it hand the
# GIL back at every DuckDB call and waited up to the interval to get it again on return. A
# sensor's one-file run at scale 1, replayed alternately: 16.2 -> 15.6 s (median of five).
WARM_UP_SWITCH_INTERVAL = 0.0005


def _start_warm_up() -> None:
    global _warm_up
    if _warm_up is not None or "great_expectations" in sys.modules:
        return

    def run() -> None:
        before = sys.getswitchinterval()
        sys.setswitchinterval(min(before, WARM_UP_SWITCH_INTERVAL))
        try:
            with contextlib.suppress(Exception):  # the check imports it again and reports errors
                _import_gx_modules()
        finally:
            sys.setswitchinterval(before)

    _warm_up = threading.Thread(target=run, name="gx-warm-up", daemon=True)
    _warm_up.start()


def warm_up_gx_when_data_changes() -> None:
    """Import Great Expectations in a background thread once data changes in this process
    (`fingerprint.when_data_changes`: a raw file parsed, an asset rebuilt), so the first
    check that validates does not wait ~2 s for it. A run where nothing changed never imports
    it, and a process that only loads the definitions (webserver, `definitions validate`)
    starts no thread. Idempotent."""
    from assets.common.fingerprint import when_data_changes

    if "great_expectations" in sys.modules:
        return
    with warnings.catch_warnings():
        # the deprecated stdlib shims GX imports warn once, on first import: take that here,
        # where the filter can be set (warning filters are not thread-safe)
        warnings.simplefilter("ignore", DeprecationWarning)
        import sre_compile  # noqa: F401
        import sre_constants  # noqa: F401
        import sre_parse  # noqa: F401
    when_data_changes(_start_warm_up)


def ensure_gx_duckdb_patch() -> None:
    """Make GX keep one persisted connection for DuckDB (idempotent)."""
    _import_gx()
    from great_expectations.execution_engine import sqlalchemy_execution_engine as engine_module

    current = getattr(engine_module, "_PERSISTED_CONNECTION_DIALECTS", None)
    if not isinstance(current, tuple):
        raise RuntimeError(
            "great_expectations.execution_engine.sqlalchemy_execution_engine."
            "_PERSISTED_CONNECTION_DIALECTS is gone: pipelines/quality.py patches this private "
            "name to run GX on DuckDB, so great-expectations must stay pinned at 1.24.1 "
            "(see pyproject.toml) until the bridge is re-verified against the new version"
        )
    if any(str(getattr(d, "value", d)) == "duckdb" for d in current):
        return
    engine_module._PERSISTED_CONNECTION_DIALECTS = (*current, _DuckDBDialect("duckdb"))


# what a suite's first validation runs in place of an unexpected_rows_expectation (module doc)
UNEXPECTED_ROW_COUNT = "unexpected_row_count_expectation"


@functools.cache
def register_row_count_expectation() -> str:
    """Register UNEXPECTED_ROW_COUNT with GX (once per process) and return its type name."""
    gx = _import_gx()

    class UnexpectedRowCountExpectation(gx.expectations.UnexpectedRowsExpectation):
        """unexpected_rows_expectation from the count of its rows alone (no rows fetched)."""

        metric_dependencies: ClassVar[tuple[str, ...]] = ("unexpected_rows_query.row_count",)

        def _validate(
            self,
            metrics: dict,
            runtime_configuration: dict | None = None,
            execution_engine: Any = None,
        ) -> dict[str, Any]:
            count = metrics["unexpected_rows_query.row_count"]
            return {"success": count == 0, "result": {"observed_value": count}}

    from great_expectations.expectations.registry import get_expectation_impl

    if get_expectation_impl(UNEXPECTED_ROW_COUNT) is not UnexpectedRowCountExpectation:
        raise RuntimeError(f"GX did not register {UNEXPECTED_ROW_COUNT} (great-expectations API)")
    return UNEXPECTED_ROW_COUNT


@dataclass(frozen=True)
class ExpectationOutcome:
    """The result of one expectation, named as the author wrote it."""

    index: int
    expectation: str
    kwargs: dict[str, Any]
    severity: str
    success: bool
    errored: bool = False
    exception_message: str | None = None
    unexpected_count: int | None = None
    unexpected_percent: float | None = None
    unexpected_sample: list[str] = field(default_factory=list)
    observed_value: Any = None
    translated_query: str | None = None
    sample: str | None = None  # SamplePlan.label when evaluated on the suite's sample

    @property
    def column(self) -> str | None:
        column = self.kwargs.get("column")
        return None if column is None else str(column)

    @property
    def failed(self) -> bool:
        return not self.errored and not self.success

    @property
    def label(self) -> str:
        """``expect_x(column=a, regex='^b$')`` — short, for messages and tables."""
        args = ", ".join(
            f"{k}={v}" if k == "column" else f"{k}={v!r}"
            for k, v in self.kwargs.items()
            if k not in ("batch_id", "result_format")
        )
        return f"{self.expectation}({_shorten(args, 120)})"

    @property
    def message(self) -> str | None:
        if self.errored:
            return f"error: {self.exception_message}"
        if self.success:
            return None
        if self.unexpected_count is not None:
            pct = (
                f" ({self.unexpected_percent:.4g}%)" if self.unexpected_percent is not None else ""
            )
            found = f"{self.unexpected_count} unexpected{pct}"
        else:
            found = f"observed {json.dumps(self.observed_value, default=str)}"
        return f"{found} in a {self.sample}" if self.sample else found

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "expectation": self.expectation,
            "kwargs": self.kwargs,
            "severity": self.severity,
            "success": self.success,
            "errored": self.errored,
            "exception_message": self.exception_message,
            "unexpected_count": self.unexpected_count,
            "unexpected_percent": self.unexpected_percent,
            "unexpected_sample": self.unexpected_sample,
            "observed_value": self.observed_value,
            "translated_query": self.translated_query,
            "sample": self.sample,
        }


@dataclass
class SuiteOutcome:
    """All expectation results of one suite run against one table."""

    suite: str
    schema: str
    table: str
    expectations: list[ExpectationOutcome]
    duration_s: float = 0.0
    exception: BaseException | None = field(default=None, repr=False, compare=False)

    @property
    def asset_key(self) -> dg.AssetKey:
        return dg.AssetKey([self.schema, self.table])

    @property
    def errors(self) -> list[ExpectationOutcome]:
        return [e for e in self.expectations if e.errored]

    def _failed(self, severity: str) -> list[ExpectationOutcome]:
        return [e for e in self.expectations if e.failed and e.severity == severity]

    @property
    def critical_failures(self) -> list[ExpectationOutcome]:
        return self._failed("critical")

    @property
    def warning_failures(self) -> list[ExpectationOutcome]:
        return self._failed("warning")

    @property
    def info_failures(self) -> list[ExpectationOutcome]:
        return self._failed("info")

    @property
    def passed(self) -> bool:
        """No errors, no failed critical or warning expectation (info failures don't count)."""
        return not (self.errors or self.critical_failures or self.warning_failures)

    def error_summary(self) -> str:
        lines = [f"{e.label}: {e.exception_message}" for e in self.errors]
        return (
            f"GX suite {self.suite!r} on {self.schema}.{self.table}: "
            f"{len(self.errors)} of {len(self.expectations)} expectation(s) could not be "
            "evaluated (an error of the check, not of the data):\n  " + "\n  ".join(lines)
        )


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _first_line(message: Any) -> str:
    lines = str(message or "").strip().splitlines()
    return lines[0].strip() if lines else "unknown error"


def _raised_messages(exception_info: Any) -> list[str]:
    """Messages of every raised exception in a GX ``exception_info`` (flat or keyed by metric)."""
    if not isinstance(exception_info, Mapping):
        return []
    if "raised_exception" in exception_info:
        if not exception_info.get("raised_exception"):
            return []
        return [_first_line(exception_info.get("exception_message"))]
    messages: list[str] = []
    for nested in exception_info.values():
        messages.extend(m for m in _raised_messages(nested) if m not in messages)
    return messages


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return str(value)


def _stringify(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(_jsonable(value), ensure_ascii=False)


def _sample(exp_type: str, result: Mapping[str, Any]) -> list[str]:
    if exp_type == UNEXPECTED_ROWS:
        rows = (result.get("details") or {}).get("unexpected_rows") or []
        values = [
            next(iter(row.values())) if isinstance(row, Mapping) and len(row) == 1 else row
            for row in rows
        ]
    else:
        values = result.get("partial_unexpected_list") or []
    return [_stringify(v) for v in list(values)[:SAMPLE_SIZE]]


def _outcome_from_result(
    index: int,
    original: Mapping[str, Any],
    ran: Mapping[str, Any],
    evr: Mapping[str, Any],
    sample: str | None = None,
) -> ExpectationOutcome:
    exp_type = str(original["type"])
    kwargs = _jsonable(dict(original.get("kwargs") or {}))
    severity = str(ran.get("severity") or "critical")
    translated_query = ran["kwargs"]["unexpected_rows_query"] if ran["type"] != exp_type else None
    errors = _raised_messages(evr.get("exception_info"))
    success = evr.get("success")
    if errors or not isinstance(success, bool):
        return ExpectationOutcome(
            index=index,
            expectation=exp_type,
            kwargs=kwargs,
            severity=severity,
            success=False,
            errored=True,
            exception_message="; ".join(errors) or "GX returned no success flag",
            translated_query=translated_query,
            sample=sample,
        )
    result: Mapping[str, Any] = evr.get("result") or {}
    if ran["type"] == UNEXPECTED_ROWS:
        unexpected_count = result.get("observed_value")
        unexpected_percent = None
        observed = unexpected_count
    else:
        unexpected_count = result.get("unexpected_count")
        unexpected_percent = result.get("unexpected_percent")
        observed = result.get("observed_value")
    return ExpectationOutcome(
        index=index,
        expectation=exp_type,
        kwargs=kwargs,
        severity=severity,
        success=success,
        unexpected_count=None if unexpected_count is None else int(unexpected_count),
        unexpected_percent=None if unexpected_percent is None else float(unexpected_percent),
        unexpected_sample=[] if success else _sample(ran["type"], result),
        observed_value=_jsonable(observed),
        translated_query=translated_query,
        sample=sample,
    )


def _errored_outcome(
    suite: Mapping[str, Any], schema: str, table: str, exc: BaseException, started: float
) -> SuiteOutcome:
    message = f"{type(exc).__name__}: {_first_line(exc)}"
    expectations = [
        ExpectationOutcome(
            index=i,
            expectation=str(e.get("type")) if isinstance(e, Mapping) else repr(e),
            kwargs=_jsonable(dict(e.get("kwargs") or {})) if isinstance(e, Mapping) else {},
            severity=str(e.get("severity") or "critical") if isinstance(e, Mapping) else "critical",
            success=False,
            errored=True,
            exception_message=message,
        )
        for i, e in enumerate(suite.get("expectations") or [])
    ]
    if not expectations:  # still report the suite itself as broken
        expectations = [
            ExpectationOutcome(
                index=0,
                expectation="<suite>",
                kwargs={},
                severity="critical",
                success=False,
                errored=True,
                exception_message=message,
            )
        ]
    return SuiteOutcome(
        suite=str(suite.get("name") or f"{schema}__{table}"),
        schema=schema,
        table=table,
        expectations=expectations,
        duration_s=time.perf_counter() - started,
        exception=exc,
    )


def run_suite(
    database: str | os.PathLike[str] | duckdb.DuckDBPyConnection,
    schema: str,
    table: str,
    suite: Mapping[str, Any],
) -> SuiteOutcome:
    """Validate the DuckDB table ``schema.table`` in place against a GX suite dict.

    ``database`` is a DuckDB file path (opened and closed here) or an open connection (GX then
    runs on cursors of it; they are closed before returning, the connection stays open).
    GX problems never raise: they come back as errored expectations (``outcome.errors``), with
    ``outcome.exception`` set when the suite could not run at all.
    """
    started = time.perf_counter()
    name = str(suite.get("name") or f"{schema}__{table}")
    try:
        translated = translate_for_duckdb(suite, schema, table)
        plan, sampled = sample_plan(suite), sampled_expectations(suite)
    except UnsupportedExpectationError as exc:
        return _errored_outcome(suite, schema, table, exc, started)

    owned: duckdb.DuckDBPyConnection | None = None
    cursors: list[duckdb.DuckDBPyConnection] = []
    try:
        if isinstance(database, duckdb.DuckDBPyConnection):
            base = database
        else:
            owned = base = duckdb.connect(os.fspath(database))
        with warnings.catch_warnings():
            # GX reflects every column; duckdb-engine cannot name LIST/STRUCT/MAP types. Harmless:
            # expectations on such columns still run (or error) as SQL in DuckDB.
            warnings.filterwarnings("ignore", message="Did not recognize type '")
            results = _validate(base, cursors, name, schema, table, translated, plan, sampled)
    except Exception as exc:
        return _errored_outcome(suite, schema, table, exc, started)
    finally:
        for cursor in cursors:
            cursor.close()
        if owned is not None:
            owned.close()

    originals = suite["expectations"]
    outcomes = [
        _outcome_from_result(
            i,
            originals[i],
            translated["expectations"][i],
            results[i],
            plan.label if plan is not None and i in sampled else None,
        )
        for i in range(len(originals))
    ]
    return SuiteOutcome(
        suite=name,
        schema=schema,
        table=table,
        expectations=outcomes,
        duration_s=time.perf_counter() - started,
    )


_INDEX_META = "fundtrace_index"


def _validate(
    base: duckdb.DuckDBPyConnection,
    cursors: list[duckdb.DuckDBPyConnection],
    name: str,
    schema: str,
    table: str,
    translated: Mapping[str, Any],
    plan: SamplePlan | None = None,
    sampled: set[int] | frozenset[int] = frozenset(),
) -> dict[int, dict[str, Any]]:
    """Run the translated suite through GX; results keyed by expectation index.

    The expectations in ``sampled`` run on a query asset selecting ``plan``'s sample."""
    gx = _import_gx()
    ensure_gx_duckdb_patch()
    import duckdb_engine
    from great_expectations.core import ExpectationSuite
    from great_expectations.data_context.types.base import ProgressBarsConfig

    from pipelines import gx_reflection

    class _ReadOnlyAutocommit(duckdb_engine.ConnectionWrapper):
        # duckdb-engine BEGINs on SQLAlchemy's autobegin, so on GX's single persisted connection
        # one failing expectation query would abort the transaction and every later query would
        # fail too ("Current transaction is aborted"). Validation only reads: let each statement
        # run in its own DuckDB transaction.
        def begin(self) -> None:
            pass

        def commit(self) -> None:
            pass

        def rollback(self) -> None:
            pass

    search_path = sql_literal(f"{sql_identifier(schema)},main")

    def creator() -> Any:
        cursor = database_cursor(base)
        cursors.append(cursor)
        # GX deprecates add_table_asset(schema_name=...) in favour of the connection's default
        # schema; our cursors are private, so set it there.
        cursor.execute(f"SET search_path = {search_path}")
        return _ReadOnlyAutocommit(cursor)

    probe = database_cursor(base)
    cursors.append(probe)
    found = probe.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_catalog = current_database()"
        " AND table_schema = ? AND table_name = ?",
        [schema, table],
    ).fetchone()
    if not found or not found[0]:
        raise LookupError(f"table {schema}.{table} does not exist in the database")

    context = gx.get_context(mode="ephemeral")
    # An ephemeral context's configuration lives in the object itself, yet each add_* below
    # serialises it to YAML into an in-memory store nothing reads back: ~20 ms a suite
    context._save_project_config = lambda: None  # type: ignore[method-assign]
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    datasource = context.data_sources.add_sql(
        name=f"fundtrace_{name}",
        # the URL only selects the dialect (and, with the patch, GX's single-connection pool)
        connection_string="duckdb:///:memory:",
        kwargs={"creator": creator},
    )
    # columns from DuckDB's catalog, not duckdb-engine's pg_catalog queries (~30 ms a table)
    gx_reflection.install(datasource.get_execution_engine().engine)
    asset = datasource.add_table_asset(name=table, table_name=table)
    batch = asset.add_batch_definition_whole_table("whole_table").get_batch()
    sample_batch = None
    if plan is not None and sampled:
        sample_asset = datasource.add_query_asset(
            name=f"{table}__sample", query=plan.select_sql(schema, table)
        )
        sample_batch = sample_asset.add_batch_definition_whole_table("sample").get_batch()

    expectations = []
    for index, exp in enumerate(translated["expectations"]):
        exp = copy.deepcopy(exp)
        exp["meta"] = {**(exp.get("meta") or {}), _INDEX_META: index}
        expectations.append(exp)
    # One validation per batch, SUMMARY: map expectations fetch SAMPLE_SIZE values rather than
    # every unexpected value, row queries are counted (UNEXPECTED_ROW_COUNT). Row samples of
    # unexpected_rows_expectation only come with COMPLETE, and only a failed one has rows to
    # show: those few are validated again as written with COMPLETE (a second validation for
    # every suite cost ~40 ms of GX's own work each).
    summary = {"result_format": "SUMMARY", "partial_unexpected_count": SAMPLE_SIZE}
    complete = {"result_format": "COMPLETE"}
    on_batch = [(batch, set(range(len(expectations))) - set(sampled))]
    if sample_batch is not None:
        on_batch.append((sample_batch, set(sampled)))
    results: dict[int, dict[str, Any]] = {}

    counted = register_row_count_expectation()

    def validate(
        on: Any, members: Iterable[int], result_format: Mapping[str, Any], first: bool
    ) -> None:
        group = [expectations[i] for i in sorted(members)]
        if not group:
            return
        if first:  # row queries counted only (UNEXPECTED_ROW_COUNT)
            group = [{**e, "type": counted} if e["type"] == UNEXPECTED_ROWS else e for e in group]
        gx_suite = ExpectationSuite(name=name, expectations=group, meta=translated.get("meta"))
        validation = on.validate(gx_suite, result_format=dict(result_format))
        for evr in validation.results:
            evr_dict = evr.to_json_dict()
            index = (evr_dict.get("expectation_config") or {}).get("meta", {}).get(_INDEX_META)
            results[int(index)] = evr_dict

    for on, members in on_batch:
        validate(on, members, summary, first=True)
        failed_rows = [
            i
            for i in members
            if expectations[i]["type"] == UNEXPECTED_ROWS
            and i in results
            and results[i].get("success") is False
            and not _raised_messages(results[i].get("exception_info"))
        ]
        validate(on, failed_rows, complete, first=False)
    missing = [i for i in range(len(expectations)) if i not in results]
    if missing:
        raise RuntimeError(f"GX returned no result for expectation(s) #{missing}")
    datasource.get_execution_engine().close()
    return results


# --------------------------------------------------------------------------- persistence

_RESULTS_COLUMNS: dict[str, tuple[str, str]] = {
    "asset_key": ("VARCHAR", "Dagster asset key of the checked table, e.g. staging/stg_x"),
    "suite": ("VARCHAR", "Suite name = expectations/<suite>.json"),
    "expectation": ("VARCHAR", "Expectation type as written in the suite"),
    "kwargs": ("VARCHAR", "Expectation arguments as written, JSON"),
    "severity": ("VARCHAR", "critical | warning | info"),
    "success": ("BOOLEAN", "True when the data met the expectation; false when failed or errored"),
    "errored": ("BOOLEAN", "True when GX could not evaluate it (an error of the check itself)"),
    "unexpected_count": ("BIGINT", "Unexpected rows/values, when the expectation counts them"),
    "unexpected_sample": ("VARCHAR", "JSON list of up to 10 unexpected values, as strings"),
    "message": ("VARCHAR", "Failure or error summary; NULL when successful"),
    "checked_at": ("TIMESTAMP", "UTC time the suite was validated"),
    "sample": (
        "VARCHAR",
        "The sample the expectation was evaluated on (the suite's meta.sample), e.g. '10% "
        "Bernoulli sample, seed 1'; NULL for the whole table",
    ),
}


def ensure_results_table(conn: duckdb.DuckDBPyConnection) -> None:
    """Create ``quality.gx_results`` (with its comments) if it does not exist yet."""
    columns = ", ".join(f"{name} {sql_type}" for name, (sql_type, _) in _RESULTS_COLUMNS.items())
    conn.execute(f"CREATE SCHEMA IF NOT EXISTS {RESULTS_SCHEMA}")
    conn.execute(f"CREATE TABLE IF NOT EXISTS {RESULTS_TABLE} ({columns})")
    # a build database from before a column was added gets it (columns are only ever appended)
    present = set(table_columns(conn, RESULTS_TABLE) or [])
    for name, (sql_type, _) in _RESULTS_COLUMNS.items():
        if name not in present:
            conn.execute(f"ALTER TABLE {RESULTS_TABLE} ADD COLUMN {name} {sql_type}")
    conn.execute(
        f"COMMENT ON TABLE {RESULTS_TABLE} IS 'Great Expectations results. Grain: one "
        "expectation of one suite, latest validation of that suite (rows replaced per suite)'"
    )
    for name, (_, comment) in _RESULTS_COLUMNS.items():
        escaped = comment.replace("'", "''")
        conn.execute(f"COMMENT ON COLUMN {RESULTS_TABLE}.{name} IS '{escaped}'")


def write_gx_results(
    conn: duckdb.DuckDBPyConnection,
    outcome: SuiteOutcome,
    checked_at: datetime | None = None,
) -> int:
    """Replace the rows of ``outcome.suite`` in ``quality.gx_results``; returns rows written."""
    checked_at = checked_at or datetime.now(UTC).replace(tzinfo=None)
    rows = [
        (
            outcome.asset_key.to_user_string(),
            outcome.suite,
            e.expectation,
            json.dumps(e.kwargs, sort_keys=True, ensure_ascii=False),
            e.severity,
            e.success,
            e.errored,
            e.unexpected_count,
            json.dumps(e.unexpected_sample, ensure_ascii=False),
            e.message,
            checked_at,
            e.sample,
        )
        for e in outcome.expectations
    ]
    with transaction(conn):
        ensure_results_table(conn)
        conn.execute(f"DELETE FROM {RESULTS_TABLE} WHERE suite = ?", [outcome.suite])
        if rows:
            placeholders = ", ".join("?" * len(_RESULTS_COLUMNS))
            names = ", ".join(_RESULTS_COLUMNS)
            conn.executemany(f"INSERT INTO {RESULTS_TABLE} ({names}) VALUES ({placeholders})", rows)
    return len(rows)


# --------------------------------------------------------------------------- Dagster checks


def _md_cell(value: Any) -> str:
    return _shorten(str(value), 200).replace("|", "\\|").replace("\n", " ")


def failures_markdown(outcome: SuiteOutcome) -> str:
    """Markdown table of errored and failed expectations (or a one-line all-clear)."""
    bad = [e for e in outcome.expectations if e.errored or e.failed]
    if not bad:
        return f"All {len(outcome.expectations)} expectations of `{outcome.suite}` passed."
    lines = [
        "| expectation | severity | unexpected | sample | message |",
        "|---|---|---|---|---|",
    ]
    for e in bad:
        sample = ", ".join(e.unexpected_sample)
        count = "" if e.unexpected_count is None else e.unexpected_count
        lines.append(
            f"| {_md_cell(e.label)} | {e.severity} | {count} | {_md_cell(sample)} "
            f"| {_md_cell(e.message or '')} |"
        )
    return "\n".join(lines)


def suite_dependencies(suite: Mapping[str, Any], key: dg.AssetKey) -> list[dg.AssetKey]:
    """The assets listed in the suite's ``meta.depends_on`` (``"layer/table"``), minus ``key``.

    They become the check's ``additional_deps``. Deliberately not guessed from query texts: a
    blocking check that reads an asset downstream of its own asset is a dependency cycle.
    """
    refs = (suite.get("meta") or {}).get("depends_on") or []
    if isinstance(refs, str) or not isinstance(refs, list):
        raise ValueError(f"suite {suite.get('name')!r}: meta.depends_on must be a list")
    found = {dg.AssetKey(str(ref).replace(".", "/").split("/")) for ref in refs}
    found.discard(key)
    return sorted(found, key=lambda k: k.to_user_string())


def _display_path(path: Path) -> str:
    try:
        return path.resolve().relative_to(REPO_ROOT).as_posix()
    except ValueError:
        return str(path)


def _describe_suite(suite: Mapping[str, Any], key: dg.AssetKey) -> str:
    description = (suite.get("meta") or {}).get("description")
    if description:
        return str(description)
    types = [str(e.get("type")) for e in suite["expectations"] if isinstance(e, Mapping)]
    listing = ", ".join(types) if types else "no expectations"
    return f"Great Expectations suite {suite['name']} on {key.to_user_string()}: {listing}"


def _check_metadata(outcome: SuiteOutcome) -> dict[str, Any]:
    return {
        "suite": outcome.suite,
        "evaluated": len(outcome.expectations),
        "errored": len(outcome.errors),
        "failed_critical": len(outcome.critical_failures),
        "failed_warning": len(outcome.warning_failures),
        "failed_info": len(outcome.info_failures),
        "duration_s": round(outcome.duration_s, 3),
        "failures": dg.MetadataValue.md(failures_markdown(outcome)),
        "expectations": dg.MetadataValue.json([e.to_dict() for e in outcome.expectations]),
    }


def result_for_outcome(outcome: SuiteOutcome) -> dg.AssetCheckResult:
    """Map a suite outcome without errors to a Dagster check result (see module docstring)."""
    if outcome.errors:
        raise GXValidationError(outcome.error_summary()) from outcome.exception
    metadata = _check_metadata(outcome)
    if outcome.critical_failures:
        return dg.AssetCheckResult(
            passed=False, severity=dg.AssetCheckSeverity.ERROR, metadata=metadata
        )
    if outcome.warning_failures:
        return dg.AssetCheckResult(
            passed=False, severity=dg.AssetCheckSeverity.WARN, metadata=metadata
        )
    return dg.AssetCheckResult(passed=True, metadata=metadata)


# A check whose table (and meta.depends_on tables), suite and bridge are unchanged since its
# last evaluation re-emits that result instead of validating again: same data, same outcome,
# and no GX import (seconds) in a run where nothing changed. Blocking still holds: a stored
# critical failure blocks downstream exactly as the first evaluation did.
_BRIDGE_VERSION = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()


def _check_fingerprint(
    conn: duckdb.DuckDBPyConnection, suite: Mapping[str, Any], key: dg.AssetKey
) -> str:
    from assets.common.fingerprint import input_fingerprint, table_name

    tables = [table_name(k) for k in (key, *suite_dependencies(suite, key))]
    version = json.dumps([_BRIDGE_VERSION, suite], sort_keys=True, default=str)
    return input_fingerprint(conn, [f"check:{suite['name']}"], tables, version)


def _previous_result(
    conn: duckdb.DuckDBPyConnection, suite: Mapping[str, Any], fingerprint: str
) -> dg.AssetCheckResult | None:
    from assets.common.fingerprint import SKIPPED, unchanged_payload

    stored = unchanged_payload(conn, f"check:{suite['name']}", fingerprint)
    if stored is None:
        return None
    previous = dg.deserialize_value(stored, dict)
    metadata = {
        **previous["metadata"],
        SKIPPED: "table and suite unchanged: result of the last run",
    }
    severity = dg.AssetCheckSeverity(previous["severity"])
    return dg.AssetCheckResult(passed=previous["passed"], severity=severity, metadata=metadata)


def _remember_result(
    conn: duckdb.DuckDBPyConnection,
    suite: Mapping[str, Any],
    fingerprint: str,
    result: dg.AssetCheckResult,
) -> None:
    from assets.common.fingerprint import remember

    payload = {
        "passed": result.passed,
        "severity": result.severity.value,
        "metadata": dict(result.metadata or {}),
    }
    remember(conn, f"check:{suite['name']}", fingerprint, None, dg.serialize_value(payload))


def _build_check(path: Path) -> dg.AssetChecksDefinition:
    key = asset_key_for_suite(path)
    suite = load_suite(path)
    schema, table = key.path

    @dg.asset_check(
        asset=key,
        name=f"gx_{table}",
        blocking=True,
        description=_describe_suite(suite, key),
        additional_deps=suite_dependencies(suite, key),
        metadata={"suite_file": _display_path(path)},
    )
    def _gx_check(
        context: dg.AssetCheckExecutionContext, duckdb: DuckDBResource
    ) -> dg.AssetCheckResult:
        context.log.info(
            f"GX suite {suite['name']}: {len(suite['expectations'])} expectations "
            f"on {schema}.{table}"
        )
        from assets.common.fingerprint import catalog_snapshot

        with duckdb.get_connection() as conn:
            try:
                with catalog_snapshot(conn):
                    fingerprint = _check_fingerprint(conn, suite, key)
                    previous = _previous_result(conn, suite, fingerprint)
                if previous is not None:
                    context.log.info(f"GX suite {suite['name']}: table unchanged, not re-run")
                    return previous
                outcome = run_suite(conn, schema, table, suite)
                write_gx_results(conn, outcome)
                if not outcome.errors:  # a broken validator is re-run, never remembered
                    _remember_result(conn, suite, fingerprint, result_for_outcome(outcome))
            finally:
                # get_connection() skips its close() when the body raises
                conn.close()
        summary = (
            f"GX suite {outcome.suite}: {len(outcome.expectations)} evaluated in "
            f"{outcome.duration_s:.2f}s, {len(outcome.errors)} errored, "
            f"{len(outcome.critical_failures)} critical / {len(outcome.warning_failures)} "
            f"warning / {len(outcome.info_failures)} info failed"
        )
        if outcome.errors:
            context.log.error(summary + "\n" + outcome.error_summary())
        elif outcome.passed:
            context.log.info(summary)
        else:
            context.log.warning(summary)
        return result_for_outcome(outcome)

    return _gx_check


def build_gx_asset_checks(
    expectations_dir: Path = EXPECTATIONS_DIR,
) -> list[dg.AssetChecksDefinition]:
    """One blocking ``gx_<table>`` asset check per suite file in ``expectations_dir``."""
    warm_up_gx_when_data_changes()
    return [_build_check(path) for path in suite_files(expectations_dir)]


__all__ = [
    "EXPECTATIONS_DIR",
    "RESULTS_TABLE",
    "ExpectationOutcome",
    "GXValidationError",
    "SuiteOutcome",
    "UnsupportedExpectationError",
    "asset_key_for_suite",
    "build_gx_asset_checks",
    "ensure_gx_duckdb_patch",
    "ensure_results_table",
    "failures_markdown",
    "load_suite",
    "result_for_outcome",
    "run_suite",
    "suite_dependencies",
    "suite_files",
    "translate_for_duckdb",
    "write_gx_results",
]
