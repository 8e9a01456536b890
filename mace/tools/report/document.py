"""The report as a list of blocks (heading, paragraph, table, code, image) and its two
renderings: Markdown (plots as files beside it) and self-contained HTML (plots embedded)."""
from __future__ import annotations

import base64
import html as _html
from pathlib import Path


def H(level, text):
    return ("h", level, text)


def P(text):
    return ("p", text)


def T(headers, rows):
    return ("table", headers, rows)


def CODE(text):
    return ("code", text)


def IMG(path, alt):
    return ("img", path, alt)


def _fmt(v, digits=3):
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        if v != v:
            return "nan"
        if abs(v) >= 1000:
            return f"{v:,.0f}"
        return f"{v:.{digits}f}"
    return str(v)


def human(n) -> str:
    from mace.programcache.report import human_bytes
    return human_bytes(int(n)) if n is not None else "-"


def _md_cell(v) -> str:
    return str(v).replace("|", "\\|").replace("\n", " ")


def to_markdown(blocks, out_dir: Path) -> str:
    lines = []
    for b in blocks:
        if b[0] == "h":
            lines += ["#" * b[1] + " " + b[2], ""]
        elif b[0] == "p":
            lines += [b[1], ""]
        elif b[0] == "table":
            lines.append("| " + " | ".join(_md_cell(h) for h in b[1]) + " |")
            lines.append("|" + "|".join("---" for _ in b[1]) + "|")
            for r in b[2]:
                lines.append("| " + " | ".join(_md_cell(c) for c in r) + " |")
            lines.append("")
        elif b[0] == "code":
            lines += ["```bash", b[1], "```", ""]
        elif b[0] == "img":
            lines += [f"![{b[2]}]({Path(b[1]).relative_to(out_dir).as_posix()})", ""]
    return "\n".join(lines)


_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1100px;margin:24px auto;
padding:0 20px;color:#1c2833;line-height:1.45}
h1{border-bottom:3px solid #2e86c1;padding-bottom:6px}h2{border-bottom:1px solid #d5d8dc;margin-top:32px}
table{border-collapse:collapse;margin:8px 0 16px;font-size:13px}
th,td{border:1px solid #d5d8dc;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#eaf2f8}tr:nth-child(even) td{background:#f8f9f9}
pre{background:#f4f6f6;border:1px solid #d5d8dc;padding:10px;white-space:pre-wrap;word-break:break-all;font-size:12.5px}
code{font-family:SFMono-Regular,Consolas,Menlo,monospace}
img{max-width:100%;border:1px solid #eaecee;margin:6px 0 14px}
.pass{color:#1e8449;font-weight:600}.fail{color:#c0392b;font-weight:600}
nav ul{columns:2}
"""


def _inline(text: str) -> str:
    """Escaped text with `code` spans and **bold** (the little Markdown the blocks use)."""
    import re
    out = _html.escape(text)
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
    out = re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", out)
    out = out.replace("PASS", '<span class="pass">PASS</span>').replace("FAIL", '<span class="fail">FAIL</span>')
    return out


def to_html(blocks, title: str) -> str:
    body = []
    toc = []
    for b in blocks:
        if b[0] == "h":
            anchor = "s" + str(len(body))
            if b[1] == 2:
                toc.append(f'<li><a href="#{anchor}">{_html.escape(b[2])}</a></li>')
            body.append(f'<h{b[1]} id="{anchor}">{_inline(b[2])}</h{b[1]}>')
        elif b[0] == "p":
            body.append(f"<p>{_inline(b[1])}</p>")
        elif b[0] == "table":
            head = "".join(f"<th>{_html.escape(str(h))}</th>" for h in b[1])
            rows = "".join("<tr>" + "".join(f"<td>{_inline(str(c))}</td>" for c in r) + "</tr>" for r in b[2])
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
        elif b[0] == "code":
            body.append(f"<pre><code>{_html.escape(b[1])}</code></pre>")
        elif b[0] == "img":
            data = base64.b64encode(Path(b[1]).read_bytes()).decode("ascii")
            body.append(f'<figure><img alt="{_html.escape(b[2])}" src="data:image/png;base64,{data}">'
                        f"<figcaption>{_html.escape(b[2])}</figcaption></figure>")
    nav = f"<nav><strong>Contents</strong><ul>{''.join(toc)}</ul></nav>" if toc else ""
    first_h1 = body.index(next(x for x in body if x.startswith("<h1"))) + 1 if any(
        x.startswith("<h1") for x in body) else 0
    body.insert(first_h1, nav)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{_html.escape(title)}</title><style>{_CSS}</style></head>\n<body>\n"
            + "\n".join(body) + "\n</body></html>\n")
