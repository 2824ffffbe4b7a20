"""The README's quickstart runs as written, and its install commands install this library:
the wheel that ``make dist`` builds installs ``otloss`` and runs the quickstart; the sdist
holds what its tests need to collect."""

from __future__ import annotations

import email
import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
#: The name on the package index (``otloss`` there is an unrelated project).
DISTRIBUTION = "torch-otloss"
_NOT_SOURCE = shutil.ignore_patterns(
    ".git", ".venv", "runs", "site", "dist", "build", "*.egg-info", "__pycache__",
    ".pytest_cache", ".ruff_cache", ".hypothesis",
)


def _quickstart() -> str:
    block = re.search(r"## Quickstart\n\n```python\n(.*?)```", README.read_text(), re.S)
    assert block, "README.md has no Quickstart python block"
    return block.group(1)


def test_readme_quickstart_runs_as_written(capsys):
    exec(compile(_quickstart(), "README.md:quickstart", "exec"), {})
    out = capsys.readouterr().out
    assert "L_GW:" in out and "MMD:" in out


def test_readme_installs_this_distribution_not_the_index_namesake() -> None:
    readme = README.read_text()
    commands = re.findall(r"^pip install (.+?)(?:\s+#.*)?$", readme, re.M)
    assert commands, "README.md gives no pip install command"
    for command in commands:
        target = command.strip("'\"")
        assert not re.match(r"otloss\b", target), f"pip install {command}: another project"
    assert "pip install ." in readme and "make dist" in readme and "git+https://" in readme


@pytest.mark.slow
def test_built_wheel_installs_otloss_and_runs_the_readme_quickstart(tmp_path) -> None:
    pytest.importorskip("build")
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, ignore=_NOT_SOURCE)
    subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(tmp_path / "dist"), "."],
        cwd=source, check=True, capture_output=True,
    )
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    (sdist,) = (tmp_path / "dist").glob("*.tar.gz")

    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        (meta,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        metadata = email.message_from_bytes(archive.read(meta))
    assert metadata["Name"] == DISTRIBUTION
    assert "otloss/py.typed" in names and not any(n.startswith("tests/") for n in names)
    assert {"examples", "compare", "tensorboard"} <= set(metadata.get_all("Provides-Extra"))
    assert {u.split(",")[0] for u in metadata.get_all("Project-URL")} >= {"Source", "Issues"}

    with tarfile.open(sdist) as archive:
        members = {Path(*Path(m).parts[1:]).as_posix() for m in archive.getnames()}
        archive.extractall(tmp_path / "sdist", filter="data")
    assert {"tests/conftest.py", "tests/__init__.py", "LICENSE", "README.md"} <= members

    # The wheel alone (no checkout on the path), with the torch already installed here.
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--quiet",
         "--target", str(site), str(wheel)],
        check=True, capture_output=True,
    )
    script = "import otloss; print('FROM', otloss.__file__)\n" + _quickstart()
    env = {**os.environ, "PYTHONPATH": str(site)}
    run = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr
    assert f"FROM {site}" in run.stdout and "L_GW:" in run.stdout and "MMD:" in run.stdout

    # The sdist's tests collect (conftest.py and tests/__init__.py are shipped).
    (unpacked,) = (tmp_path / "sdist").iterdir()
    collect = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"],
        cwd=unpacked, capture_output=True, text=True,
    )
    assert collect.returncode == 0, collect.stdout[-3000:] + collect.stderr[-3000:]
    assert re.search(r"\d+ tests? collected", collect.stdout)
