"""`fundtrace who-controls` against the demo marts: controllers, chains, no match, no marts."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines import cli
from pipelines.who_controls import EXIT_NO_MARTS, EXIT_NO_MATCH, format_share

REPO_ROOT = Path(__file__).resolve().parent.parent
LAUNCHER = REPO_ROOT / ".venv" / "bin" / "fundtrace"
# the demo's red flag: a board member of the buying partnership owns the street-lighting
# supplier through a holding company (data/raw/README.md, "Cast of the demo city")
LUMENWAVE_CHAIN = "Lumenwave Systems Ltd <- Achterberg Holdings Ltd <- Simon Achterberg"


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = cli.main(["who-controls", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_format_share() -> None:
    from decimal import Decimal as D

    assert format_share(D("60.0000"), D("60.0000")) == "60%"
    assert format_share(D("9.5"), D("14.25"), True, True) == ">9.5% to <14.25%"
    assert format_share(None, None) == ""
    assert format_share(D("25"), None) == "25% to ?"


@pytest.mark.e2e
def test_supplier_names_its_ultimate_owner_and_chain(
    demo_build: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    marts = demo_build["marts"]
    before = marts.stat().st_mtime_ns
    code, out, _ = _run(capsys, "lumenwave", "--marts", str(marts))
    assert code == 0
    assert "Lumenwave Systems Ltd [organisation GB-COH-09990003]" in out
    assert "Simon Achterberg [person HBT-PERSON-0006]: 60% (indirect, 2 links)" in out
    assert f"chain: {LUMENWAVE_CHAIN}" in out
    assert marts.stat().st_mtime_ns == before  # read-only


@pytest.mark.e2e
def test_a_marts_file_named_like_the_schema_is_read(
    demo_build: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    marts = tmp_path / "marts.duckdb"  # opened directly, `marts.<table>` would be ambiguous
    shutil.copyfile(demo_build["marts"], marts)
    code, out, err = _run(capsys, "lumenwave", "--marts", str(marts))
    assert (code, err) == (0, "")
    assert f"chain: {LUMENWAVE_CHAIN}" in out


@pytest.mark.e2e
def test_project_by_id_lists_control_rows_and_chains(
    demo_build: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _run(capsys, "hbt-prj-light", "--marts", str(demo_build["marts"]))
    assert code == 0
    assert "(by id)" in out and "== Smart street lighting rollout [project HBT-PRJ-LIGHT]" in out
    control = out.split("Control (marts.project_control", 1)[1].split("Ownership chains", 1)[0]
    assert "board_member         Simon Achterberg [person HBT-PERSON-0006]" in control
    assert "ownership            Harbourton City Council [organisation GB-LAE-HBT]  51%" in control
    assert "supplier             Lumenwave Systems Ltd" in control
    chains = out.split("Ownership chains behind these controllers", 1)[1]
    assert f"chain: {LUMENWAVE_CHAIN}" in chains
    assert (
        "chain: Harbourton Smart City Ltd <- Tidewater Digital Ltd <- Tidewater Group B.V."
        in chains
    )


@pytest.mark.e2e
def test_partnership_company_and_person_and_stream(
    demo_build: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    marts = str(demo_build["marts"])
    code, out, _ = _run(capsys, "Harbourton", "Smart", "City", "--marts", marts)
    assert code == 0
    assert "== Harbourton Smart City Ltd [organisation GB-COH-09990001]" in out
    assert (
        "Harbourton Smart City Ltd <- Harbourton City Council [organisation GB-LAE-HBT]: 51%" in out
    )
    assert "University of Harbourton [organisation GB-UKPRN-19990001]: 30% (direct)" in out
    # the person is a controller, not an owned entity
    code, out, _ = _run(capsys, "Simon Achterberg", "--marts", marts)
    assert code == 0
    assert "board_member of project Harbourton Open Data Platform" in out
    assert "ultimate owner of Achterberg Holdings Ltd, Lumenwave Systems Ltd" in out
    code, out, _ = _run(capsys, "Smart Cities Fund", "--marts", marts)
    assert code == 0 and "[stream FS-" in out and "Control (marts.funding_stream_control" in out


@pytest.mark.e2e
def test_fuzzy_match_and_partnership_id(
    demo_build: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    marts = str(demo_build["marts"])
    code, out, _ = _run(capsys, "Lumenwav Sytems", "--marts", marts)
    assert code == 0 and "(by fuzzy name match)" in out and LUMENWAVE_CHAIN in out
    code, out, _ = _run(capsys, "HBT-PART-SCL", "--marts", marts)
    assert code == 0 and "[project HBT-PRJ-LIGHT]" in out and "[project HBT-PRJ-DATA]" in out


@pytest.mark.e2e
def test_no_match_is_an_error(
    demo_build: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _run(capsys, "Qwxyzzy Holdings", "--marts", str(demo_build["marts"]))
    assert code == EXIT_NO_MATCH
    assert out == "" and "nothing in" in err and "'Qwxyzzy Holdings'" in err


def test_missing_marts_file_says_run_make_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nowhere" / "fundtrace.duckdb"
    monkeypatch.setenv("FUNDTRACE_MARTS_DB", str(missing))
    code, out, err = _run(capsys, "Lumenwave")
    assert code == EXIT_NO_MARTS
    assert out == "" and str(missing) in err and "make run" in err
    assert not missing.exists() and not missing.parent.exists()


@pytest.mark.e2e
def test_module_and_launcher_use_fundtrace_marts_db(demo_build: dict[str, Path]) -> None:
    env = {**os.environ, "FUNDTRACE_MARTS_DB": str(demo_build["marts"])}
    commands = [[sys.executable, "-m", "pipelines.cli"]]
    if LAUNCHER.exists():  # written by `make setup`
        commands.append([str(LAUNCHER)])
    for command in commands:
        done = subprocess.run(
            [*command, "who-controls", "Achterberg Holdings"],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert "Simon Achterberg [person HBT-PERSON-0006]: 100% (direct)" in done.stdout


def test_exit_process_flushes_output_and_skips_finalisation() -> None:
    # the CLI ends without Python's last collections (~1.5 s after a scale-1 run)
    code = (
        "import atexit, sys\n"
        "from pipelines.cli import exit_process\n"
        "atexit.register(lambda: print('exit handler ran'))\n"
        "sys.stdout.write('buffered, no newline')\n"
        "sys.stderr.write('and an error line')\n"
        "exit_process(3)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60
    )
    assert (done.returncode, done.stdout, done.stderr) == (
        3,
        "buffered, no newline",
        "and an error line",
    )
