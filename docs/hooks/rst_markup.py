"""MkDocs hook: a page that still shows reStructuredText markup is a build warning.

The docs write maths as ``$...$`` and ``$$...$$`` (pymdownx.arithmatex, typeset by KaTeX)
and names as code spans; a ``:math:`` role, a ``.. math::`` block or a cross-reference
role (``:func:``, ``:class:``, ...) reaches the page as literal text. Under
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
_RST = re.compile(r":math:|\.\. math::|:(?:py:)?(?:func|class|meth|attr|mod|data|exc|obj):")


def rst_markup(html: str) -> list[str]:
    """The literal reStructuredText roles and ``.. math::`` blocks in ``html``, outside
    code, each with the text around it."""
    text = _CODE.sub("", html)
    return [text[max(0, m.start() - 30) : m.end() + 30] for m in _RST.finditer(text)]


def on_post_page(output: str, page: Page, config: MkDocsConfig) -> str:
    found = rst_markup(output)
    if found:
        log.warning(
            "%s shows %d reStructuredText markup(s) as text (write maths as $...$ or "
            "$$...$$, names as `code`), e.g. %r",
            page.file.src_uri,
            len(found),
            found[0],
        )
    return output
