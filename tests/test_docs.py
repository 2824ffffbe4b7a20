"""The docs site typesets its maths offline and refuses reStructuredText markup."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
HOOK = DOCS / "hooks" / "rst_markup.py"

yaml = pytest.importorskip("yaml")
pytest.importorskip("mkdocs")


def _mkdocs_config() -> dict:
    # mkdocs.yml has no custom YAML tags, so the plain loader reads it.
    return yaml.safe_load((ROOT / "mkdocs.yml").read_text())


def _hook():
    spec = importlib.util.spec_from_file_location("rst_markup_hook", HOOK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_math_renderer_assets_ship_with_the_docs() -> None:
    config = _mkdocs_config()
    assets = [*config["extra_css"], *config["extra_javascript"]]
    assert any("katex" in a for a in assets), "no math renderer is loaded"
    for asset in assets:
        assert "://" not in asset and not asset.startswith("//"), f"{asset} needs the network"
        assert (DOCS / asset).is_file(), f"{asset} is not in docs/"
    extensions = [e if isinstance(e, str) else next(iter(e)) for e in config["markdown_extensions"]]
    assert "pymdownx.arithmatex" in extensions


def test_every_font_the_katex_style_sheet_loads_is_shipped() -> None:
    css = DOCS / "assets" / "katex" / "katex.min.css"
    urls = set(re.findall(r"url\(([^)]+)\)", css.read_text()))
    assert len(urls) >= 20  # KaTeX's font families
    missing = sorted(u for u in urls if not (css.parent / u).is_file())
    assert not missing, f"katex.min.css loads fonts that are not shipped: {missing}"


def test_rst_markup_is_found_outside_code_only() -> None:
    rst_markup = _hook().rst_markup
    assert rst_markup("<p>the kernel :math:<code>k_c</code> and</p>")
    assert rst_markup("<p>.. math::</p>\n<p>x = y</p>")
    assert rst_markup("<p>see :func:<code>otloss.mmd</code></p>")
    assert not rst_markup('<p><span class="arithmatex">\\(k_c\\)</span></p>')
    assert not rst_markup("<p>write <code>:math:`x`</code> as <code>$x$</code></p>")
    assert not rst_markup("<pre><code>.. math::\n    x</code></pre>")
    assert not rst_markup("<p>see <code>otloss.mmd</code>: the loss</p>")


def test_strict_build_fails_on_a_literal_math_role(tmp_path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "index.md").write_text("# Page\n\nThe kernel :math:`k_c` here.\n")
    (tmp_path / "mkdocs.yml").write_text(f"site_name: t\nhooks:\n  - {HOOK.as_posix()}\n")
    build = [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", "site"]
    failed = subprocess.run(build, cwd=tmp_path, capture_output=True, text=True)
    assert failed.returncode != 0
    assert "index.md shows 1 reStructuredText markup" in failed.stderr
    (tmp_path / "docs" / "index.md").write_text("# Page\n\nThe kernel $k_c$ here.\n")
    passed = subprocess.run(build, cwd=tmp_path, capture_output=True, text=True)
    assert passed.returncode == 0, passed.stderr
