"""Compare benchmark results over time (the files `make bench` writes to `bench/results/`).

    python -m bench.compare                    every result, oldest first, one line each
    python -m bench.compare --scale 1          only those of one scale
    python -m bench.compare OLD NEW            two results side by side, run by run, and the
                                               full build's steps that moved the most
    (OLD/NEW: a path, or a file name in bench/results/, with or without `.json`)

A shared VM moves by 5-10% from one run to the next, so a difference is marked as beyond the
noise (`*`) only when it is larger than the spread of the repeats of both runs (files written
with `--repeat N` keep every repeat) and, in any case, larger than 5%. Results of another scale,
seed or generator version measure other data: comparing them is refused unless `--force`.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.run import RESULTS_DIR, RUNS, SCHEMA

NOISE_SHARE = 0.05  # below this a difference is never called a change
LABELS = {
    "full": "full build",
    "no_change": "no change",
    "one_file": "one file (sensor run)",
    "one_file_job": "one file, whole job",
    "one_file_new_orgs": "new organisations",
    "one_file_ocds": "OCDS file",
    "one_file_near_names": "misspelt names",
}
RATIOS = {  # printed name -> key in a result's "ratios"
    "build/floor": "build_over_floor",
    "nochg/full": "no_change_over_full",
    "1file/full": "one_file_over_full",
    "ocds/full": "one_file_ocds_over_full",
}


class ResultError(ValueError):
    """A result file that cannot be read as a `make bench` result."""


@dataclass(frozen=True)
class Result:
    path: Path
    data: dict[str, Any]

    @property
    def name(self) -> str:
        return self.path.stem

    @property
    def commit(self) -> str:
        return str((self.data.get("code") or {}).get("commit") or "?")[:7]

    @property
    def dataset(self) -> tuple[Any, Any, Any]:
        d = self.data
        return d.get("scale"), d.get("seed"), d.get("generator_version")

    def run(self, name: str) -> dict[str, Any] | None:
        return (self.data.get("runs") or {}).get(name)

    def wall(self, name: str) -> float | None:
        run = self.run(name)
        return None if run is None else run.get("wall_seconds")

    def spread(self, name: str) -> float:
        """Max - min wall time of the run's repeats (0 for a file of one repeat)."""
        run = self.run(name) or {}
        walls = [r["wall_seconds"] for r in run.get("repeats") or [] if "wall_seconds" in r]
        return max(walls) - min(walls) if len(walls) > 1 else 0.0

    def floor_spread(self) -> float:
        runs = self.data["floor"].get("all_seconds") or []
        return max(runs) - min(runs) if len(runs) > 1 else 0.0

    def steps(self, name: str = "full") -> dict[str, dict[str, Any]]:
        run = self.run(name) or {}
        return {s["step"]: s for s in run.get("steps") or [] if "step" in s}

    def targets_met(self) -> str:
        judged = [v for v in (self.data.get("targets") or {}).values() if v is not None]
        return f"{sum(bool(v) for v in judged)}/{len(judged)}"


def resolve(ref: str, results_dir: Path = RESULTS_DIR) -> Path:
    """A result named by path, or by file name (with or without .json) in `results_dir`."""
    path = Path(ref)
    for candidate in (path, results_dir / ref, results_dir / f"{ref}.json"):
        if candidate.is_file():
            return candidate
    raise ResultError(f"{ref}: no such result file (looked in {results_dir} too)")


def load(path: Path) -> Result:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ResultError(f"{path}: cannot read it as JSON: {exc}") from exc
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        found = data.get("schema") if isinstance(data, dict) else type(data).__name__
        raise ResultError(f"{path}: not a `make bench` result (schema {found!r}, want {SCHEMA!r})")
    for key in ("runs", "floor", "ratios"):
        if not isinstance(data.get(key), dict):
            raise ResultError(f"{path}: no {key!r} object")
    return Result(path, data)


def _natural(name: str) -> list[Any]:
    # session9 before session10; a file's time is no guide (a clone sets them all alike)
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def history(results_dir: Path = RESULTS_DIR, scale: float | None = None) -> list[Result]:
    """Every benchmark result in `results_dir`, oldest first (by date, then name)."""
    found = []
    for path in sorted(results_dir.glob("*.json")):
        try:
            result = load(path)
        except ResultError:
            continue  # other measurements live here too (bench.overhead)
        if scale is None or result.data.get("scale") == scale:
            found.append(result)
    return sorted(found, key=lambda r: (str(r.data.get("date")), _natural(r.name)))


def _num(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def format_history(results: Sequence[Result]) -> str:
    header = (
        f"{'result':46} {'commit':7} {'scale':>5} {'floor s':>7} {'full s':>7} "
        + " ".join(f"{name:>11}" for name in RATIOS)
        + f" {'peak MiB':>8} {'targets':>7}"
    )
    lines = [header, "-" * len(header)]
    for r in results:
        ratios = r.data["ratios"]
        lines.append(
            f"{r.name[:46]:46} {r.commit:7} {_num(r.data.get('scale'), 'g'):>5} "
            f"{_num(r.data['floor'].get('seconds'), '.2f'):>7} {_num(r.wall('full'), '.1f'):>7} "
            + " ".join(f"{_num(ratios.get(key), '.3f'):>11}" for key in RATIOS.values())
            + f" {_num(r.data.get('peak_rss_mib'), '.0f'):>8} {r.targets_met():>7}"
        )
    if not results:
        lines.append("(no results)")
    return "\n".join(lines)


def _change(old: float, new: float, noise: float) -> str:
    delta = new - old
    share = delta / old if old else 0.0
    beyond = abs(delta) > noise and abs(share) > NOISE_SHARE
    return f"{delta:+8.2f} {share:+7.1%}{' *' if beyond else '  '}"


def format_comparison(old: Result, new: Result, top: int = 10) -> str:
    lines = [
        f"old: {old.name} (commit {old.commit}, {old.data.get('date')}, "
        f"duckdb {(old.data.get('machine') or {}).get('duckdb', '?')})",
        f"new: {new.name} (commit {new.commit}, {new.data.get('date')}, "
        f"duckdb {(new.data.get('machine') or {}).get('duckdb', '?')})",
        "",
        f"{'run':22} {'old s':>8} {'new s':>8} {'change':>8} {'share':>7}",
    ]
    floor_old, floor_new = old.data["floor"].get("seconds"), new.data["floor"].get("seconds")
    if floor_old is not None and floor_new is not None:
        lines.append(
            f"{'floor':22} {floor_old:8.2f} {floor_new:8.2f} "
            f"{_change(floor_old, floor_new, max(old.floor_spread(), new.floor_spread()))}"
        )
    for name in RUNS:
        a, b = old.wall(name), new.wall(name)
        if a is None or b is None:
            continue
        noise = max(old.spread(name), new.spread(name))
        lines.append(f"{LABELS[name]:22} {a:8.2f} {b:8.2f} {_change(a, b, noise)}")
    lines += ["", f"{'ratio':22} {'old':>8} {'new':>8}"]
    # since session 24 repeats run in rounds and a ratio is the median of each round's own
    froms = [r.data.get("ratios_from", "median runs") for r in (old, new)]
    if froms[0] != froms[1]:
        lines.append(f"  (ratios from: old {froms[0]}, new {froms[1]})")
    for label, key in RATIOS.items():
        a, b = old.data["ratios"].get(key), new.data["ratios"].get(key)
        if a is not None or b is not None:
            lines.append(f"{label:22} {_num(a, '8.3f'):>8} {_num(b, '8.3f'):>8}")
    peak_old, peak_new = old.data.get("peak_rss_mib"), new.data.get("peak_rss_mib")
    lines.append(f"{'peak RSS MiB':22} {_num(peak_old, '8.0f'):>8} {_num(peak_new, '8.0f'):>8}")

    steps_old, steps_new = old.steps(), new.steps()
    both = sorted(
        set(steps_old) & set(steps_new),
        key=lambda s: -abs(steps_new[s]["seconds"] - steps_old[s]["seconds"]),
    )
    if both:
        lines += ["", f"full build: the {min(top, len(both))} steps that moved the most"]
        lines.append(f"{'step':60} {'old s':>7} {'new s':>7} {'change':>8}")
        for step in both[:top]:
            a, b = steps_old[step]["seconds"], steps_new[step]["seconds"]
            lines.append(f"{step[:60]:60} {a:7.2f} {b:7.2f} {b - a:+8.2f}")
    only = sorted(set(steps_old) ^ set(steps_new))
    if only:
        lines.append(f"steps in one of the two only: {', '.join(only)}")
    lines += ["", "* beyond the noise: larger than both runs' repeat spread and than 5%"]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.compare", description=(__doc__ or "").split("\n\n")[0]
    )
    parser.add_argument("results", nargs="*", metavar="RESULT", help="none (history) or OLD NEW")
    parser.add_argument("--scale", type=float, help="history: only results of this scale")
    parser.add_argument("--dir", type=Path, default=RESULTS_DIR, help="where results are")
    parser.add_argument("--top", type=int, default=10, help="steps listed in a comparison")
    parser.add_argument("--force", action="store_true", help="compare results of other data")
    args = parser.parse_args(argv)
    try:
        if not args.results:
            print(format_history(history(args.dir, args.scale)))
            return 0
        if len(args.results) != 2:
            parser.error("give no result (history) or two (OLD NEW)")
        old, new = (load(resolve(ref, args.dir)) for ref in args.results)
    except ResultError as exc:
        print(f"bench.compare: {exc}", file=sys.stderr)
        return 2
    if old.dataset != new.dataset and not args.force:
        print(
            f"bench.compare: {old.name} and {new.name} measure other data "
            f"(scale, seed, generator version: {old.dataset} against {new.dataset}); "
            "--force compares them anyway",
            file=sys.stderr,
        )
        return 2
    print(format_comparison(old, new, args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
