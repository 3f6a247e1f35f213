"""Every query of the README's analyst guide runs against the demo marts and answers."""

import re
from pathlib import Path

import duckdb
import pytest

from tests.test_end_to_end import run_all

pytestmark = pytest.mark.e2e

README = Path(__file__).resolve().parent.parent / "README.md"


def guide_queries() -> list[str]:
    text = README.read_text()
    section = text.split("## Analyst guide", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sql\n(.*?)```", section, re.S)


def test_guide_has_twelve_queries() -> None:
    assert len(guide_queries()) == 12


def test_every_guide_query_answers_on_the_demo(fundtrace_env: dict[str, Path]) -> None:
    assert run_all().success
    con = duckdb.connect(str(fundtrace_env["marts"]), read_only=True)
    answers = [con.execute(q).fetchall() for q in guide_queries()]
    con.close()
    empty = [i + 1 for i, rows in enumerate(answers) if not rows]
    assert empty == [], f"guide queries without an answer on the demo: {empty}"
    # question 1: the board member behind the street-lighting supplier is named
    assert any(row[1] == "Simon Achterberg" for row in answers[0])
    # questions 11 and 12: the demo's shared owner of competing bidders, the late-registered winner
    assert {(row[0], row[1]) for row in answers[10]} == {
        ("ocds-hbt999-DATA-2023-001", "Tidewater Group B.V."),
        ("ocds-hbt999-DATA-2024-002", "Tidewater Group B.V."),
    }
    assert [(row[1], row[2]) for row in answers[11]] == [
        ("Quaymark Charging Ltd", "Harbourton City Council")
    ]
