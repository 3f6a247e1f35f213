"""Countries and VAT numbers as EU sources publish them, normalised once (SQL macros).

- `ft_country_code(x)`: ISO 3166-1 alpha-2 from a code (`DE`, EU-style `UK`/`EL`) or an English
  country name (`Germany`, FTS style); NULL when unknown.
- `ft_vat_number(vat, country)`: upper case, no spaces or punctuation, with the VAT country
  prefix (`EL` for Greece, `GB` for the UK, `CHE` for Switzerland). A number published without
  a prefix gets the prefix of `country`; placeholders (`-`, `N/A`, zeros) become NULL. Used to
  match the same organisation across CORDIS, FTS and company registers.

Install with `install_macros(con)` after `assets.common.sql.install_macros` (uses
`ft_is_placeholder_id`).
"""

from __future__ import annotations

import duckdb

from assets.common.macros import install_macro_script
from assets.common.tables import sql_literal

# English names (lower case) used by FTS `Beneficiary country` and similar columns.
COUNTRY_NAMES: dict[str, str] = {
    "austria": "AT", "belgium": "BE", "bulgaria": "BG", "croatia": "HR", "cyprus": "CY",
    "czechia": "CZ", "czech republic": "CZ", "denmark": "DK", "estonia": "EE",
    "finland": "FI", "france": "FR", "germany": "DE", "greece": "GR", "hungary": "HU",
    "ireland": "IE", "italy": "IT", "latvia": "LV", "lithuania": "LT", "luxembourg": "LU",
    "malta": "MT", "netherlands": "NL", "the netherlands": "NL", "poland": "PL",
    "portugal": "PT", "romania": "RO", "slovakia": "SK", "slovenia": "SI", "spain": "ES",
    "sweden": "SE", "united kingdom": "GB", "great britain": "GB", "norway": "NO",
    "iceland": "IS", "liechtenstein": "LI", "switzerland": "CH", "turkey": "TR",
    "türkiye": "TR", "serbia": "RS", "albania": "AL", "north macedonia": "MK",
    "montenegro": "ME", "bosnia and herzegovina": "BA", "kosovo": "XK", "ukraine": "UA",
    "moldova": "MD", "georgia": "GE", "armenia": "AM", "israel": "IL", "tunisia": "TN",
    "morocco": "MA", "egypt": "EG", "united states": "US", "united states of america": "US",
    "canada": "CA", "japan": "JP", "china": "CN", "india": "IN", "brazil": "BR",
    "south africa": "ZA", "australia": "AU", "new zealand": "NZ", "russia": "RU",
    "russian federation": "RU", "tanzania": "TZ", "kenya": "KE",
}  # fmt: skip

# VAT number prefixes (EU VIES, plus the UK, Northern Ireland, Norway, Switzerland).
VAT_PREFIXES = (
    "AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "EL", "ES", "FI", "FR", "HR", "HU", "IE",
    "IT", "LT", "LU", "LV", "MT", "NL", "PL", "PT", "RO", "SE", "SI", "SK", "XI", "GB", "NO",
)  # fmt: skip

_NAMES_SQL = "MAP {" + ", ".join(f"{sql_literal(k)}: '{v}'" for k, v in COUNTRY_NAMES.items()) + "}"
_PREFIX_LIST = ", ".join(f"'{p}'" for p in VAT_PREFIXES)

MACROS = rf"""
-- no subqueries (see money.py): values are bound once through one-element lists
CREATE OR REPLACE TEMP MACRO ft_country_code(x) AS
  list_transform([upper(trim(CAST(x AS VARCHAR)))], lambda ft_cc: CASE
    WHEN ft_cc IS NULL OR ft_cc = '' THEN NULL
    WHEN ft_cc = 'UK' THEN 'GB'
    WHEN ft_cc = 'EL' THEN 'GR'
    WHEN regexp_full_match(ft_cc, '[A-Z]{{2}}') THEN ft_cc
    ELSE {_NAMES_SQL}[lower(regexp_replace(trim(CAST(x AS VARCHAR)), '\s+', ' ', 'g'))]
  END)[1];
CREATE OR REPLACE TEMP MACRO ft_vat_prefix(country) AS
  list_transform([ft_country_code(country)], lambda ft_vc: CASE
    WHEN ft_vc = 'GR' THEN 'EL' WHEN ft_vc = 'CH' THEN 'CHE'
    WHEN ft_vc IN ({_PREFIX_LIST}) THEN ft_vc END)[1];
CREATE OR REPLACE TEMP MACRO ft_vat_number(vat, country) AS
  list_transform(
    [upper(regexp_replace(coalesce(CAST(vat AS VARCHAR), ''), '[^A-Za-z0-9]', '', 'g'))],
    lambda ft_v: CASE
      WHEN ft_v = '' OR ft_is_placeholder_id(ft_v) OR regexp_full_match(ft_v, '[A-Z]{{0,3}}0*')
        THEN NULL
      WHEN regexp_full_match(ft_v, 'CHE[0-9]{{9}}[A-Z]*') THEN ft_v
      WHEN regexp_full_match(ft_v, '(UK|GR)[0-9A-Z]{{2,14}}')
        THEN CASE left(ft_v, 2) WHEN 'UK' THEN 'GB' ELSE 'EL' END || substr(ft_v, 3)
      WHEN regexp_full_match(ft_v, '[A-Z]{{2}}[0-9A-Z]{{2,14}}') AND left(ft_v, 2) IN ({_PREFIX_LIST})
        THEN ft_v
      WHEN regexp_full_match(ft_v, '[0-9][0-9A-Z]{{1,14}}') AND ft_vat_prefix(country) IS NOT NULL
        THEN ft_vat_prefix(country) || ft_v
      ELSE ft_v
    END)[1];
"""


def install_macros(con: duckdb.DuckDBPyConnection) -> None:
    install_macro_script(con, __name__, MACROS)


def _eval(sql: str, *args: object) -> str | None:
    from assets.common.sql import install_macros as install_shared

    con = duckdb.connect()
    install_shared(con)
    install_macros(con)
    row = con.execute(sql, list(args)).fetchone()
    con.close()
    return row[0] if row else None


def vat_number(vat: str | None, country: str | None = None) -> str | None:
    """`ft_vat_number` for one value (tests)."""
    return _eval("SELECT ft_vat_number(?, ?)", vat, country)


def country_code(text: str | None) -> str | None:
    """`ft_country_code` for one value (tests)."""
    return _eval("SELECT ft_country_code(?)", text)
