"""The distribution builds, passes ``twine check``, and its sdist carries what its tests need."""

from __future__ import annotations

import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent


def test_sdist_and_wheel_build_and_pass_twine_check(tmp_path: Path) -> None:
    pytest.importorskip("build")
    pytest.importorskip("twine")
    subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
    )
    [sdist] = tmp_path.glob("*.tar.gz")
    [wheel] = tmp_path.glob("*.whl")
    checked = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", str(sdist), str(wheel)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    for needed in (
        "LICENSE",
        "tests/conftest.py",
        "tests/_aioresponses_compat.py",
        "tests/samples/observed.json",
        "tests/samples/seeds/list_leads_a.json",
        "examples/demo.py",
        "requirements/minimum.txt",
        "dialnexa_async/py.typed",
    ):
        assert needed in names, needed
    with zipfile.ZipFile(wheel) as archive:
        wheel_names = archive.namelist()
        metadata = next(n for n in wheel_names if n.endswith(".dist-info/METADATA"))
        text = archive.read(metadata).decode()
    assert "dialnexa_async/py.typed" in wheel_names
    assert not any(name.startswith("tests/") for name in wheel_names)
    assert "License-Expression: MIT" in text
    assert "Requires-Dist: aiohttp>=3.11" in text
    # Development tools are dependency groups, not extras a user could install.
    assert "Provides-Extra: dev" not in text
    assert "Provides-Extra: bench" not in text
