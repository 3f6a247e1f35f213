"""Name-based organisation ids for names written without Latin letters.

`ft_name_org_id` keys a name on its ASCII letters and digits, so a name written only in another
script (Bulgarian `БИСТРА МИЦЕВА ЕООД`, Greek...) gets no id at all. `ft_name_org_id_any` keeps
`ft_name_org_id`'s id for every name that has one and falls back, for the others only, to a
Unicode-aware key: letters and digits of any script, lower-cased, everything else one space.
The fallback id has the same `FTNAME-` form, so downstream code treats both alike.
"""

from __future__ import annotations

import duckdb

from assets.common.macros import install_macro_script
from assets.common.sql import install_macros as install_shared_macros

MACROS = r"""
CREATE OR REPLACE TEMP MACRO ft_name_key_unicode(x) AS
  nullif(trim(regexp_replace(lower(ft_clean_name(x)), '[^\p{L}\p{N}&]+', ' ', 'g')), '');
CREATE OR REPLACE TEMP MACRO ft_name_org_id_any(x) AS
  coalesce(ft_name_org_id(x), 'FTNAME-' || upper(left(md5(ft_name_key_unicode(x)), 12)));
"""


def install_macros(con: duckdb.DuckDBPyConnection) -> None:
    """The shared macros (`assets.common.sql`) plus the two above, which build on them."""
    install_shared_macros(con)
    install_macro_script(con, __name__, MACROS)


def name_org_id_any(text: str | None) -> str | None:
    """`ft_name_org_id_any` for one value (tests)."""
    con = duckdb.connect()
    install_macros(con)
    row = con.execute("SELECT ft_name_org_id_any(?)", [text]).fetchone()
    con.close()
    return row[0] if row else None
