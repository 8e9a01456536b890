"""Text from a file, made safe to print.

Program keys, writer strings, tensor and model names come from files anyone may have written.
Printed raw, an escape sequence in them drives the terminal (retitles it, hides lines, rewrites
what was printed before) and a `[/tag]` in them crashes rich's markup parser. `plain` escapes
every control and bidirectional-override character (so a message also stays on one line);
`markup` additionally escapes rich markup.
"""
from __future__ import annotations

import re

# C0 and C1 controls, DEL, and the bidi embeddings/overrides/isolates that reorder what is shown
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _escape(m: re.Match) -> str:
    c = ord(m.group())
    return f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}"


def plain(text) -> str:
    """`text` (any object, via str) with control characters shown as \\xNN / \\uNNNN."""
    return _UNSAFE.sub(_escape, str(text))


def markup(text) -> str:
    """`plain(text)` with rich markup escaped, for console.print and table cells."""
    from rich.markup import escape
    return escape(plain(text))


__all__ = ["plain", "markup"]
