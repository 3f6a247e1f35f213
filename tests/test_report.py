"""The static "who controls" HTML report (assets/marts/report.py)."""

import shutil
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import duckdb
import pytest

from assets.common.tables import TableSpec
from assets.marts import report
from assets.marts.core import FUNDING_STREAMS, MONEY_FLOWS
from assets.marts.publish import PUBLISHED_MARTS
from assets.marts.red_flags import RED_FLAGS


class _Page(HTMLParser):
    """Tags with their attributes, and the text a reader sees without JavaScript."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag in ("script", "style")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if not self._in_script:
            self.text.append(data)


def _parse(html_text: str) -> _Page:
    page = _Page()
    page.feed(html_text)
    return page


def _external_refs(page: _Page) -> list[str]:
    """URLs the browser would fetch on opening the page (scripts, styles, images, frames)."""
    refs = []
    for tag, attrs in page.tags:
        for attr in ("src", "href"):
            value = (attrs.get(attr) or "").strip().lower()
            loads = tag in ("script", "img", "iframe", "source", "embed", "link") or (
                tag == "object" and attr == "data"
            )
            if loads and value.startswith(("http:", "https:", "//")):
                refs.append(f"<{tag} {attr}={value}>")
    return refs


@pytest.fixture(scope="module")
def demo_report(demo_build: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> str:
    out = tmp_path_factory.mktemp("report") / "report.html"
    report.render_report(demo_build["marts"], out)
    return out.read_text(encoding="utf-8")


def test_the_pipeline_renders_the_report_next_to_the_marts(demo_build: dict[str, Path]) -> None:
    path = report.report_path(demo_build["marts"])
    assert path == demo_build["marts"].parent / "report.html"
    assert path.is_file() and path.stat().st_size > 0


def test_report_names_the_demo_related_party_flag(demo_report: str) -> None:
    text = " ".join(_parse(demo_report).text)
    # the finding the product exists for: the street-lighting supplier is controlled by a board
    # member of the buying partnership (tests/test_end_to_end.py) -- readable without JavaScript
    assert "related_party_award" in text
    assert "HBT-PERSON-0006" in text
    assert (
        "GB-COH-09990003 <- GB-COH-09990004 <- HBT-PERSON-0006 "
        "(a board member of Harbourton Smart City Ltd)" in text
    )
    # with its evidence: the BODS statements and the governance register row
    assert "bods/" in text and "governance/partnership_members.csv" in text


def test_report_has_every_section_and_the_sankey(demo_report: str) -> None:
    page = _parse(demo_report)
    ids = {attrs.get("id") for _, attrs in page.tags}
    assert {"flows", "streams", "projects", "owners", "flags", "quality", "sankey"} <= ids
    assert '"type":"sankey"' in demo_report
    text = " ".join(page.text)
    for expected in ("Harbourton City Council", "managing_authority", "360giving", "bods"):
        assert expected in text
    assert "fundtrace.duckdb" in text


def test_report_opens_offline_and_names_no_machine_path(
    demo_report: str, demo_build: dict[str, Path]
) -> None:
    page = _parse(demo_report)
    assert _external_refs(page) == []
    # plotly.js itself is embedded, not fetched
    scripts = [attrs for tag, attrs in page.tags if tag == "script"]
    assert scripts and all(not attrs.get("src") for attrs in scripts)
    assert "plotly.js" in demo_report and len(demo_report) > 1_000_000
    assert str(demo_build["marts"].parent) not in demo_report


def test_make_report_entry_point_renders_next_to_the_marts(
    demo_build: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # named like the schema: opened directly, its `marts.<table>` would be ambiguous
    marts = tmp_path / "out" / "marts.duckdb"
    marts.parent.mkdir()
    shutil.copyfile(demo_build["marts"], marts)
    monkeypatch.setenv("FUNDTRACE_MARTS_DB", str(marts))
    assert report.main([]) == 0
    assert (marts.parent / "report.html").is_file()
    assert "report.html" in capsys.readouterr().out


def test_missing_marts_file_is_a_clear_error(tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    with pytest.raises(report.MartsNotFoundError, match="make run"):
        report.render_report(tmp_path / "nope.duckdb", out)
    assert not out.exists()
    assert issubclass(report.MartsNotFoundError, FileNotFoundError)


# --- a tiny hand-made marts file ------------------------------------------------------------

_DEFAULTS = {"VARCHAR": "'x'", "DATE": "DATE '2024-01-01'", "BOOLEAN": "false"}


def _insert(con: duckdb.DuckDBPyConnection, spec: TableSpec, **values: Any) -> None:
    """One row with `values`; other NOT NULL columns get a placeholder of their type."""
    names, params, exprs = [], [], []
    for col in spec.columns:
        names.append(col.name)
        if col.name in values:
            exprs.append(f"CAST(? AS {col.type})")
            params.append(values[col.name])
        elif col.nullable:
            exprs.append("NULL")
        elif col.type.endswith("[]"):
            exprs.append(f"[]::{col.type}")
        else:
            exprs.append(_DEFAULTS.get(col.type, f"CAST(0 AS {col.type})"))
    con.execute(
        f"INSERT INTO {spec.qualified} ({', '.join(names)}) VALUES ({', '.join(exprs)})", params
    )


EVIL = '<script>pwned()</script>"><img src=x onerror=pwned()>'


def _tiny_marts(path: Path, recipients: int = 1) -> Path:
    con = duckdb.connect(str(path))
    con.execute("CREATE SCHEMA marts")
    for spec in PUBLISHED_MARTS:
        con.execute(spec.ddl())
    for i in range(recipients):
        _insert(
            con,
            MONEY_FLOWS,
            flow_id=f"t:{i}",
            flow_type="grant",
            from_org_id="GB-LAE-T",
            from_name="Test Council",
            to_org_id=f"GB-COH-{i:08d}",
            to_name=EVIL if i == 0 else f"Recipient {i}",
            stream_id="FS-T",
            funding_level="local",
            amount_eur=1000 * (recipients - i),
            source_file="360giving/t.json",
        )
    _insert(
        con,
        FUNDING_STREAMS,
        stream_id="FS-T",
        funder_org_id="GB-LAE-T",
        funder_name=EVIL,
        programme=EVIL,
        funding_level="local",
        total_eur=1000,
    )
    _insert(
        con,
        RED_FLAGS,
        flag_id="related_party_award:c1:p1",
        flag_type="related_party_award",
        severity="high",
        subject_type="contract",
        subject_id="c1",
        related_party_id="p1",
        related_party_name=EVIL,
        description=f"Supplier {EVIL} is controlled by a board member",
        path=f"c1 <- {EVIL}",
        evidence=["bods:bods/t.json:stmt-1", "t:0"],
    )
    # a kind the report has never heard of is still shown
    _insert(
        con,
        RED_FLAGS,
        flag_id="brand_new_kind:x:",
        flag_type="brand_new_kind",
        severity="medium",
        subject_type="organisation",
        subject_id="x",
        description="a finding of a new kind",
        evidence=["governance:governance/t.csv:3"],
    )
    con.close()
    return path


def test_text_from_the_marts_is_escaped(tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    report.render_report(_tiny_marts(tmp_path / "tiny.duckdb"), out)
    html_text = out.read_text(encoding="utf-8")
    assert "<script>pwned()" not in html_text
    assert "<img src=x" not in html_text
    assert "&lt;script&gt;pwned()&lt;/script&gt;&quot;&gt;&lt;img src=x" in html_text
    page = _parse(html_text)
    assert not any(tag == "img" for tag, _ in page.tags)
    # the escaped name reads as the literal text it was published as
    assert EVIL in " ".join(page.text)
    # flags of any kind are shown, with evidence resolved to source file and record
    text = " ".join(page.text)
    assert "brand_new_kind" in text and "a finding of a new kind" in text
    assert "bods/t.json" in text and "stmt-1" in text
    assert "360giving/t.json" in text  # flow id t:0 resolved through marts.money_flows


def test_small_flows_are_grouped_so_the_sankey_stays_readable(tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    report.render_report(
        _tiny_marts(tmp_path / "many.duckdb", recipients=12), out, sankey_max_orgs=4
    )
    html_text = out.read_text(encoding="utf-8")
    assert "Other recipients (9)" in html_text  # 13 organisations, the 4 largest by name
    assert "Recipient 2" in html_text and "Recipient 11" not in html_text


def test_empty_marts_render_a_report(tmp_path: Path) -> None:
    # an empty raw folder is a successful run (tests/test_end_to_end.py): the report follows it
    marts = tmp_path / "empty.duckdb"
    con = duckdb.connect(str(marts))
    con.execute("CREATE SCHEMA marts")
    for spec in PUBLISHED_MARTS:
        con.execute(spec.ddl())
    con.close()
    out = tmp_path / "report.html"
    sizes = report.render_report(marts, out)
    assert sizes["rows/money_flows"] == 0
    text = " ".join(_parse(out.read_text(encoding="utf-8")).text)
    assert "No money flows with an EUR value." in text and "No red flags." in text


def test_a_sankey_node_is_named_by_most_of_its_flows_not_by_row_order(tmp_path: Path) -> None:
    con = duckdb.connect(str(tmp_path / "names.duckdb"))
    con.execute("CREATE SCHEMA marts")
    con.execute(MONEY_FLOWS.ddl())
    # the spelling on one flow comes first in the table; the one on two flows wins
    for i, name in enumerate(["ALPHA TRUST", "Alpha Trust", "Alpha Trust"]):
        _insert(
            con,
            MONEY_FLOWS,
            flow_id=f"n:{i}",
            flow_type="grant",
            from_org_id="GB-LAE-N",
            from_name="Name Council",
            to_org_id="GB-CHC-1",
            to_name=name,
            stream_id="FS-N",
            funding_level="local",
            amount_eur=100,
        )
    data = report._sankey_data(con, max_orgs=5)
    assert data["names"] == {"GB-CHC-1": "Alpha Trust", "GB-LAE-N": "Name Council"}
