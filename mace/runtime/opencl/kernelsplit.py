"""One kernel's program: a `.cl` file with its other kernels left out.

A program holds only the kernel the model launches from it, so neither its build nor the
harvest of its binary (PoCL compiles a work-group function for every kernel of a program when
asked for `CL_PROGRAM_BINARIES`) spends time on kernels the model never runs. Helper functions,
macros and preprocessor lines stay (unused helpers cost the compiler next to nothing), also
those inside a removed definition (a macro defined there may serve a later kernel); the rest of
a removed definition becomes empty lines, so compiler messages keep their line numbers.
"""
from __future__ import annotations

import re

_KERNEL = re.compile(r"^[ \t]*(?:__)?kernel\s+(?:__attribute__\s*\(\(.*?\)\)\s*)*void\s+(\w+)\s*\(", re.M | re.S)


def kernels(source: str) -> list[str]:
    """Names of the kernels defined in `source` (`kernel [__attribute__((...))] void name(` definitions)."""
    return [m.group(1) for m in _KERNEL.finditer(_blank_comments(source))]


def only(source: str, kernel: str) -> str | None:
    """`source` with every kernel definition but `kernel`'s left out; None when `kernel` is not
    among its plain definitions or a definition does not parse (the caller keeps the file)."""
    text = _blank_comments(source)
    spans, found = [], False
    for m in _KERNEL.finditer(text):
        end = _definition_end(text, m.end())
        if end is None:
            return None
        if m.group(1) == kernel:
            found = True
        else:
            spans.append((m.start(), end))
    if not found:
        return None
    out, pos = [], 0
    for start, end in spans:
        out += [source[pos:start], _directives(source[start:end])]
        pos = end
    out.append(source[pos:])
    return "".join(out)


_DIRECTIVE = re.compile(r"#\s*(define|undef|if|ifdef|ifndef|elif|else|endif)\b")


def _directives(text: str) -> str:
    """A removed definition's preprocessor lines (a macro a later kernel uses, the arms of an
    #if), every other line left empty; #pragma lines go with the code they applied to."""
    out, keep = [], False
    for line in text.split("\n"):
        keep = keep or bool(_DIRECTIVE.match(line.lstrip()))
        out.append(line if keep else "")
        keep = keep and line.rstrip().endswith("\\")     # a continued directive
    return "\n".join(out)


def _blank_comments(source: str) -> str:
    """`source` with comments and string literals replaced by spaces (same length, newlines
    kept), so brackets inside them do not count."""
    def blank(m: re.Match) -> str:
        return re.sub(r"[^\n]", " ", m.group(0))
    return re.sub(r'/\*.*?\*/|//[^\n]*|"(?:\\.|[^"\\\n])*"', blank, source, flags=re.S)


def _definition_end(text: str, i: int) -> int | None:
    """Index just past the body of the definition whose parameter list opens before `i`."""
    depth = 1
    while i < len(text) and depth:          # the parameter list
        depth += {"(": 1, ")": -1}.get(text[i], 0)
        i += 1
    while i < len(text) and text[i] != "{":
        if text[i] == ";":                  # a declaration, not a definition
            return None
        i += 1
    depth = 0
    while i < len(text):
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        i += 1
        if depth == 0:
            return i
    return None
