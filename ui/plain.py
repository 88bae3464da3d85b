"""Text from people and from outside services, made safe to put inside a Markdown-rendering
widget (st.markdown, st.caption, st.info/warning/error/success, st.subheader/title, labels).

Streamlit renders those bodies as GitHub-flavoured Markdown with LaTeX and its own directives, so
a customer named `[Pay here](https://evil.example) ![x](https://evil.example/pixel)` would show a
live link and load an outside image. `plain` backslash-escapes every ASCII punctuation character
(CommonMark lets any of them be escaped, and an escaped one is shown as itself), which takes away
links, images, emphasis, headings, lists, HTML, entities, `$…$` maths, `:red[…]` directives and
GFM's bare-URL and email autolinks; line breaks become spaces, so no line can start a block.
Pure: no Streamlit calls.
"""

from __future__ import annotations

import re
import string

_ESCAPES = str.maketrans({c: "\\" + c for c in string.punctuation})
_LINE_BREAKS = re.compile(r"[\r\n\u2028\u2029\x0b\x0c\x85]+")


def plain(text: object) -> str:
    """`text` as Markdown that renders to exactly that text (line breaks read as spaces); None -> ''."""
    if text is None:
        return ""
    return _LINE_BREAKS.sub(" ", str(text)).translate(_ESCAPES)
