"""The README's quickstart runs as written."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_quickstart_runs_as_written(capsys):
    text = README.read_text()
    block = re.search(r"## Quickstart\n\n```python\n(.*?)```", text, re.S)
    assert block, "README.md has no Quickstart python block"
    exec(compile(block.group(1), "README.md:quickstart", "exec"), {})
    out = capsys.readouterr().out
    assert "L_GW:" in out and "MMD:" in out
