"""MkDocs hook: a page that still shows reStructuredText maths is a build warning.

The docs write maths as ``$...$`` and ``$$...$$`` (pymdownx.arithmatex, typeset by KaTeX);
a ``:math:`` role or a ``.. math::`` block reaches the page as literal text. Under
``mkdocs build --strict`` (``make docs``) the warning fails the build. Code spans and
blocks are skipped, so a page may still show the syntax as an example.
"""

from __future__ import annotations

import re

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.plugins import get_plugin_logger
from mkdocs.structure.pages import Page

log = get_plugin_logger(__name__)

_CODE = re.compile(r"<(code|pre)\b[^>]*>.*?</\1>", re.S | re.I)
_RST_MATH = re.compile(r":math:|\.\. math::")


def rst_math(html: str) -> list[str]:
    """The literal ``:math:`` roles and ``.. math::`` blocks in ``html``, outside code,
    each with the text around it."""
    text = _CODE.sub("", html)
    return [text[max(0, m.start() - 30) : m.end() + 30] for m in _RST_MATH.finditer(text)]


def on_post_page(output: str, page: Page, config: MkDocsConfig) -> str:
    found = rst_math(output)
    if found:
        log.warning(
            "%s shows %d reStructuredText math markup(s) as text (write $...$ or $$...$$), "
            "e.g. %r",
            page.file.src_uri,
            len(found),
            found[0],
        )
    return output
