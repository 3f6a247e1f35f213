"""`python -m bench.compare`: benchmark results over time, and two of them side by side."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bench import compare
from bench.run import RESULTS_DIR, SCHEMA


def _result(
    full: float,
    *,
    date: str = "2026-11-27",
    scale: float = 1.0,
    commit: str = "abcdef0123",
    repeats: list[float] | None = None,
    steps: dict[str, float] | None = None,
    ocds: float | None = None,
) -> dict[str, Any]:
    runs: dict[str, Any] = {
        "full": {
            "wall_seconds": full,
            "steps": [{"step": k, "seconds": v} for k, v in (steps or {}).items()],
        },
        "no_change": {"wall_seconds": 3.0, "steps": []},
    }
    if repeats:
        runs["full"]["repeats"] = [{"wall_seconds": w} for w in repeats]
    if ocds is not None:
        runs["one_file_ocds"] = {"wall_seconds": ocds, "steps": []}
    return {
        "schema": SCHEMA,
        "date": date,
        "scale": scale,
        "seed": 42,
        "generator_version": "8",
        "code": {"commit": commit},
        "machine": {"duckdb": "2.0.1"},
        "floor": {"seconds": 10.0},
        "runs": runs,
        "ratios": {"build_over_floor": full / 10.0, "no_change_over_full": 3.0 / full},
        "peak_rss_mib": 1500.0,
        "targets": {"build_within_3x_floor": full <= 30, "no_change_within_10pct": True},
    }


def _write(folder: Path, name: str, data: Any) -> Path:
    path = folder / f"{name}.json"
    path.write_text(json.dumps(data))
    return path


def test_every_shipped_result_reads_and_the_history_lists_them() -> None:
    shipped = [p for p in RESULTS_DIR.glob("*.json") if json.loads(p.read_text()).get("schema")]
    results = compare.history()
    assert len(results) == len(shipped) > 80
    text = compare.format_history(results)
    assert "2026-11-27-scale1-session17" in text and "298e728" in text
    assert len(text.splitlines()) == len(results) + 2


def test_history_is_oldest_first_with_session_numbers_in_order(tmp_path: Path) -> None:
    _write(tmp_path, "2026-11-26-scale1-session10", _result(90, date="2026-11-26"))
    _write(tmp_path, "2026-11-26-scale1-session9", _result(95, date="2026-11-26"))
    _write(tmp_path, "2026-11-25-scale1", _result(150, date="2026-11-25"))
    _write(tmp_path, "2026-11-26-scale0.01-session9", _result(20, date="2026-11-26", scale=0.01))
    _write(tmp_path, "2026-11-25-overhead", {"in_process_ms_per_step": 11})  # not a result
    names = [r.name for r in compare.history(tmp_path, scale=1.0)]
    assert names == [
        "2026-11-25-scale1",
        "2026-11-26-scale1-session9",
        "2026-11-26-scale1-session10",
    ]
    assert len(compare.history(tmp_path)) == 4


def test_comparison_gives_changes_and_marks_only_those_beyond_the_noise(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = _write(
        tmp_path, "old", _result(100.0, repeats=[96.0, 100.0, 104.0], steps={"a": 10.0, "b": 5.0})
    )
    within = _write(tmp_path, "within", _result(94.0, steps={"a": 9.0, "b": 5.5}))
    _write(tmp_path, "beyond", _result(80.0, commit="1234567xyz", steps={"a": 2.0}))
    assert compare.main([str(old), str(within), "--dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    full = next(line for line in out.splitlines() if line.startswith("full build"))
    assert full.split()[2:6] == ["100.00", "94.00", "-6.00", "-6.0%"]
    assert not full.rstrip().endswith("*")  # 6 s is within the old run's 8 s spread
    steps = out[out.index("steps that moved the most") :].splitlines()[2:4]
    assert [s.split()[0] for s in steps] == ["a", "b"]
    # by file name in --dir, without .json
    assert compare.main(["old", "beyond", "--dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    full = next(line for line in out.splitlines() if line.startswith("full build"))
    assert full.split()[4:7] == ["-20.00", "-20.0%", "*"]
    assert "new: beyond (commit 1234567" in out
    assert "steps in one of the two only: b" in out
    assert "ratios from" not in out  # both from their median runs
    # a result whose ratios pair the runs of each round says so beside an older one
    _write(tmp_path, "rounds", {**_result(90.0), "ratios_from": "rounds"})
    assert compare.main(["old", "rounds", "--dir", str(tmp_path)]) == 0
    assert "(ratios from: old median runs, new rounds)" in capsys.readouterr().out


def test_results_of_other_data_are_compared_only_when_forced(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _write(tmp_path, "big", _result(90.0))
    _write(tmp_path, "small", _result(12.0, scale=0.01))
    assert compare.main(["big", "small", "--dir", str(tmp_path)]) == 2
    assert "measure other data" in capsys.readouterr().err
    assert compare.main(["big", "small", "--dir", str(tmp_path), "--force"]) == 0
    assert "full build" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("{not json", "cannot read it as JSON"),
        (json.dumps({"schema": "other/1"}), "not a `make bench` result"),
        (json.dumps({"schema": SCHEMA, "runs": {}, "floor": {}}), "no 'ratios' object"),
    ],
)
def test_a_bad_result_file_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, needle: str
) -> None:
    (tmp_path / "bad.json").write_text(content)
    _write(tmp_path, "good", _result(90.0))
    assert compare.main(["good", "bad", "--dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "bad.json" in err and needle in err
    assert compare.main(["good", "missing", "--dir", str(tmp_path)]) == 2
    assert "missing: no such result file" in capsys.readouterr().err
