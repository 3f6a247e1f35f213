"""Install every shared SQL macro on a DuckDB connection; SQL for reading JSON documents."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import duckdb

from assets.common import dates, money, orgids
from assets.common.tables import sql_literal


def install_macros(con: duckdb.DuckDBPyConnection) -> None:
    money.install_macros(con)
    dates.install_macros(con)
    orgids.install_macros(con)


@dataclass(frozen=True)
class JsonPaths:
    """Several paths of one JSON document read in one parse: DuckDB's JSON functions keep what
    each call allocates until the query ends, and each call parses the document again, so one
    call with a list of paths is ~8x faster and holds ~13x less than a call per path
    (docs/scaling.md, item 23).

    `extract(doc)` is the select item (a list column named `column`); `self[name]` the SQL of
    one path's value in it. `function` is `json_extract_string` (text) or `json_extract` (JSON).
    """

    column: str
    paths: Mapping[str, str]
    function: str = "json_extract_string"

    def extract(self, doc: str) -> str:
        listed = ", ".join(sql_literal(path) for path in self.paths.values())
        return f"{self.function}({doc}, [{listed}]) AS {self.column}"

    def __getitem__(self, name: str) -> str:
        return f"{self.column}[{list(self.paths).index(name) + 1}]"
