"""Per-key digests: stored as computed, rewriting only the keys whose digest differs."""

import duckdb

from assets.common.key_digests import DIGESTS, ensure_key_digests, store_digests
from assets.common.tables import ensure_schemas

STATE = "marts.test#keys"
CURRENT = "SELECT key, digest FROM cur"


def _con() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    ensure_schemas(con)
    ensure_key_digests(con)
    con.execute("CREATE TABLE cur (key VARCHAR, digest HUGEINT)")
    con.execute("INSERT INTO cur SELECT 'k' || i, i FROM range(10) t(i)")
    store_digests(con, STATE, CURRENT)
    return con


def _stored(con: duckdb.DuckDBPyConnection) -> dict[str, tuple[int, int]]:
    """key -> (digest, rowid): a rewritten key gets a new row id."""
    rows = con.execute(f"SELECT key, digest, rowid FROM {DIGESTS} WHERE state = ?", [STATE])
    return {k: (int(d), int(r)) for k, d, r in rows.fetchall()}


def test_only_keys_whose_digest_differs_are_rewritten() -> None:
    con = _con()
    before = _stored(con)
    con.execute("UPDATE cur SET digest = 99 WHERE key = 'k3'")
    con.execute("DELETE FROM cur WHERE key = 'k4'")
    con.execute("INSERT INTO cur VALUES ('k10', 10)")
    store_digests(con, STATE, CURRENT)
    after = _stored(con)
    assert {k: d for k, (d, _) in after.items()} == dict(
        con.execute("SELECT key, digest FROM cur").fetchall()
    )
    assert {k for k in after if k in before and after[k] == before[k]} == set(before) - {
        "k3",
        "k4",
    }


def test_a_restricted_store_touches_only_those_keys() -> None:
    con = _con()
    con.execute("UPDATE cur SET digest = digest + 100 WHERE key IN ('k1', 'k2')")
    con.execute("DELETE FROM cur WHERE key = 'k5'")
    store_digests(con, STATE, CURRENT, "SELECT 'k1' UNION ALL SELECT 'k5'")
    after = {k: d for k, (d, _) in _stored(con).items()}
    assert after["k1"] == 101 and after["k2"] == 2 and "k5" not in after and len(after) == 9
