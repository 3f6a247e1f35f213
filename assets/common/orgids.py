"""Organisation identifiers: org-id.guide style `SCHEME-identifier`, normalised once.

`GB-COH-01234567`, `gb-coh-1234567` and company number `1234567` are one company; Scottish
`SC311560` stays as written but upper-cased. Empty and placeholder identifiers (`N/A`,
`GB-CHC-000000`, a bare `GB-COH-`) never become ids: they would merge unrelated
organisations. All rules live in the SQL macros below so set-based transforms and the Python
helpers (used by tests) share one implementation.
"""

from __future__ import annotations

import duckdb

from assets.common.macros import install_macro_script

PLACEHOLDERS = (
    "N/A", "NA", "N.A.", "NONE", "NULL", "NIL", "-", "--", "0", "X", "UNKNOWN", "TBC", "TBA",
    "NOTAPPLICABLE", "NOTKNOWN", "NOT-APPLICABLE", "REDACTED",
)  # fmt: skip
_PLACEHOLDER_LIST = ", ".join(f"'{p}'" for p in PLACEHOLDERS)

# Legal-form words removed when comparing names (not when displaying them).
LEGAL_FORMS = (
    "limited", "ltd", "plc", "llp", "lp", "cic", "cio", "inc", "incorporated", "llc", "corp",
    "corporation", "co", "company", "gmbh", "ag", "sa", "sas", "sarl", "spa", "srl", "bv",
    "nv", "ab", "oy", "as", "aps", "sl", "sp z oo", "kg", "the",
)  # fmt: skip
_LEGAL_FORM_RE = r"\b(" + "|".join(f.replace(" ", r"\s") for f in LEGAL_FORMS) + r")\b"

MACROS = rf"""
-- The regexes below cost ~0.4 us a value and rarely change one: they run only on text that
-- holds what they replace (contains() is ~10x cheaper); the argument goes through a
-- one-element list so that, however costly, it is evaluated once.
CREATE OR REPLACE TEMP MACRO ft_squash_spaces(t) AS CASE
  WHEN contains(t, '  ') OR contains(t, chr(9)) OR contains(t, chr(10))
    OR contains(t, chr(12)) OR contains(t, chr(13))
  THEN regexp_replace(t, '\s+', ' ', 'g') ELSE t END;
CREATE OR REPLACE TEMP MACRO ft_drop_spaces(t) AS CASE
  WHEN contains(t, ' ') OR contains(t, chr(9)) OR contains(t, chr(10))
    OR contains(t, chr(12)) OR contains(t, chr(13))
  THEN regexp_replace(t, '\s+', '', 'g') ELSE t END;
CREATE OR REPLACE TEMP MACRO ft_id_text(x) AS
  upper(list_transform([trim(CAST(x AS VARCHAR))], lambda t: ft_drop_spaces(t))[1]);
CREATE OR REPLACE TEMP MACRO ft_is_placeholder_id(s) AS
  s IS NULL OR s = '' OR s IN ({_PLACEHOLDER_LIST}) OR regexp_full_match(s, '[-_./0]*');
-- no subqueries (see money.py): the cleaned text is bound once through a one-element list
CREATE OR REPLACE TEMP MACRO ft_company_number(x) AS
  list_transform([ft_id_text(x)], lambda ft_cn: CASE
    WHEN ft_is_placeholder_id(ft_cn) OR regexp_full_match(ft_cn, '[A-Z]{{2}}0+') THEN NULL
    WHEN regexp_full_match(ft_cn, '[0-9]{{1,8}}') THEN lpad(ft_cn, 8, '0')
    WHEN regexp_full_match(ft_cn, '[A-Z]{{2}}[0-9]{{1,6}}')
      THEN left(ft_cn, 2) || lpad(substr(ft_cn, 3), 6, '0')
    ELSE ft_cn
  END)[1];
CREATE OR REPLACE TEMP MACRO ft_org_id(x) AS
  list_transform([ft_id_text(x)], lambda ft_oid: CASE
    WHEN ft_is_placeholder_id(ft_oid) THEN NULL
    -- NULL when the number is a placeholder: || propagates NULL (one evaluation, no CASE)
    WHEN starts_with(ft_oid, 'GB-COH-') THEN 'GB-COH-' || ft_company_number(substr(ft_oid, 8))
    -- a scheme with an empty or all-zero identifier is a placeholder
    WHEN regexp_full_match(ft_oid, '[A-Z0-9]{{2,}}-[A-Z0-9]+-[-0]*') THEN NULL
    ELSE ft_oid
  END)[1];
CREATE OR REPLACE TEMP MACRO ft_org_id_from_company_number(x) AS 'GB-COH-' || ft_company_number(x);
CREATE OR REPLACE TEMP MACRO ft_org_id_from_charity_number(x) AS
  CASE WHEN NOT ft_is_placeholder_id(ft_id_text(x)) THEN 'GB-CHC-' || ft_id_text(x) END;
CREATE OR REPLACE TEMP MACRO ft_clean_name(x) AS
  nullif(list_transform([trim(CAST(x AS VARCHAR))], lambda t: ft_squash_spaces(t))[1], '');
CREATE OR REPLACE TEMP MACRO ft_name_key(x) AS
  nullif(trim(regexp_replace(regexp_replace(regexp_replace(
    regexp_replace(replace(replace(lower(ft_clean_name(x)), '&amp;', '&'), '.', ''),
                   '([a-z])-([a-z])', '\1\2', 'g'),
    '[^a-z0-9& ]+', ' ', 'g'),
    '{_LEGAL_FORM_RE}', ' ', 'g'),
    '\s+', ' ', 'g')), '');
-- identifier-less organisations get a stable id from their normalised name (NULL without
-- one: md5 and || propagate NULL; a CASE guard would evaluate the regexes twice, ~1.5x slower)
CREATE OR REPLACE TEMP MACRO ft_name_org_id(x) AS 'FTNAME-' || upper(left(md5(ft_name_key(x)), 12));
"""


def install_macros(con: duckdb.DuckDBPyConnection) -> None:
    install_macro_script(con, __name__, MACROS)


def _eval(sql: str, *args: object) -> str | None:
    con = duckdb.connect()
    install_macros(con)
    row = con.execute(sql, list(args)).fetchone()
    con.close()
    return row[0] if row else None


def normalise_org_id(text: str | None) -> str | None:
    """`ft_org_id` for one value (tests, CLI)."""
    return _eval("SELECT ft_org_id(?)", text)


def company_number_org_id(text: str | None) -> str | None:
    return _eval("SELECT ft_org_id_from_company_number(?)", text)


def name_key(text: str | None) -> str | None:
    return _eval("SELECT ft_name_key(?)", text)
