"""How staging models declare themselves to the marts.

A staging module exports:
- `STAGING_PAIRS`: (source_system, raw table, staging table) triples; `marts.data_quality`
  reconciles, per source file, raw rows = staged rows + rows quarantined by that staging table.
- `AWARDS_SQL` (sources that carry money): a SELECT returning exactly the columns of
  `intermediate.int_funding_awards` (see `AWARD_COLUMNS`), in that order.
"""

from dataclasses import dataclass

from assets.common.tables import TableSpec


@dataclass(frozen=True)
class StagingPair:
    source_system: str
    raw: TableSpec
    staging: TableSpec
