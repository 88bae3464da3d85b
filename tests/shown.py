"""What a person reads in a Markdown body the pages escaped with ui.plain: the backslashes
before punctuation taken away. Tests compare message text through this, so they assert what
is on the screen rather than the escaping."""

from __future__ import annotations

import re
import string

_ESCAPED = re.compile("\\\\([" + re.escape(string.punctuation) + "])")


def shown(body: str) -> str:
    return _ESCAPED.sub(r"\1", body)
