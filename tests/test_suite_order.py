"""The suite's own scheduling: the longest files named in conftest.py exist and come first."""

from pathlib import Path

import pytest

from tests.conftest import LONGEST_FILES


def test_longest_files_exist() -> None:
    here = Path(__file__).parent
    missing = [name for name in LONGEST_FILES if not (here / name).is_file()]
    assert not missing, f"conftest.LONGEST_FILES names files that are gone: {missing}"


def test_longest_files_are_collected_first(request: pytest.FixtureRequest) -> None:
    files = list(dict.fromkeys(item.path.name for item in request.session.items))
    listed = [name for name in files if name in LONGEST_FILES]
    assert files[: len(listed)] == listed
    assert listed == [name for name in LONGEST_FILES if name in listed]
