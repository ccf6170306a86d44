"""Small HTML helpers shared by the self-contained reports (evaluation, batch contact
sheet): value formatting, tables, embedded PNGs and one stylesheet."""

from __future__ import annotations

import base64
import html
from typing import Any

CSS = """body{font-family:system-ui,sans-serif;margin:2em;max-width:72em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}.px{image-rendering:pixelated;zoom:2}
.grid{image-rendering:pixelated}.styles{display:flex;flex-wrap:wrap;gap:1.5em}.note{color:#555}figure{margin:0}"""


def fmt(v: Any) -> str:
    """A table cell: – for None, yes/no, 4 significant digits, escaped text."""
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.4g}"
    return html.escape(str(v))


def table(header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{fmt(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def img(png: bytes, alt: str, cls: str = "px") -> str:
    """An embedded PNG (class ``px``: pixelated, zoomed ×2; ``grid``: pixelated)."""
    return (f'<img alt="{html.escape(alt)}" class="{cls}" '
            f'src="data:image/png;base64,{base64.b64encode(png).decode()}">')
