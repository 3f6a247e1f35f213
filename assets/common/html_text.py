"""HTML character references left in published text, decoded once (SQL macro).

Procurement publishers often escape names twice (`Smith &amp;amp; Sons` in the XML is
`Smith &amp; Sons` once parsed). `ft_html_unescape(x)` decodes, in one pass like Python's
`html.unescape`, the references written with a closing `;`: the HTML 4 named entities
(`&amp;`, `&eacute;`, `&nbsp;`... from the standard library's table, plus `&apos;`) and decimal
or hexadecimal ones (`&#38;`, `&#x26;`). One pass means `&amp;lt;` becomes `&lt;`, not `<`.
References without `;`, unknown names and code points that are not characters are left as
written.

Install with `install_macros(con)`; needs nothing else.
"""

from __future__ import annotations

import html.entities

import duckdb

from assets.common.macros import install_macro_script
from assets.common.tables import sql_literal

_NAMED = {name: chr(cp) for name, cp in html.entities.name2codepoint.items()}
_NAMED["apos"] = "'"
_NAMES_SQL = (
    "MAP {" + ", ".join(f"'{n}': {sql_literal(c)}" for n, c in sorted(_NAMED.items())) + "}"
)
_PATTERN = r"&(#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{1,8});"

MACROS = rf"""
-- no subqueries in these macros: they are expanded inside a lambda and inside other macros
CREATE OR REPLACE TEMP MACRO ft_html_code_int(ref) AS
  CASE WHEN starts_with(lower(ref), '&#x')
         THEN TRY_CAST('0x' || substr(ref, 4, length(ref) - 4) AS INTEGER)
       WHEN starts_with(ref, '&#') THEN TRY_CAST(substr(ref, 3, length(ref) - 3) AS INTEGER)
  END;
CREATE OR REPLACE TEMP MACRO ft_html_code_point(ref) AS
  CASE WHEN ft_html_code_int(ref) BETWEEN 1 AND 1114111
        AND NOT ft_html_code_int(ref) BETWEEN 55296 AND 57343
       THEN chr(ft_html_code_int(ref)) END;
CREATE OR REPLACE TEMP MACRO ft_html_reference(ref) AS
  coalesce(
    CASE WHEN starts_with(ref, '&#') THEN ft_html_code_point(ref)
         ELSE {_NAMES_SQL}[substr(ref, 2, length(ref) - 2)] END,
    ref);
CREATE OR REPLACE TEMP MACRO ft_html_unescape(x) AS
  CASE
    WHEN x IS NULL OR NOT regexp_matches(CAST(x AS VARCHAR), '{_PATTERN}') THEN CAST(x AS VARCHAR)
    ELSE array_to_string(
      list_transform(
        list_zip(regexp_split_to_array(CAST(x AS VARCHAR), '{_PATTERN}'),
                 regexp_extract_all(CAST(x AS VARCHAR), '{_PATTERN}')),
        lambda p: p[1] || coalesce(ft_html_reference(p[2]), '')),
      '')
  END;
"""


def install_macros(con: duckdb.DuckDBPyConnection) -> None:
    install_macro_script(con, __name__, MACROS)


def html_unescape(text: str | None) -> str | None:
    """`ft_html_unescape` for one value (tests)."""
    con = duckdb.connect()
    install_macros(con)
    row = con.execute("SELECT ft_html_unescape(?)", [text]).fetchone()
    con.close()
    return row[0] if row else None
