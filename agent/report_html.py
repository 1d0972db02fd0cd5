"""HTML building blocks shared by the auditor report and the protocol sheet.

Split from agent/report.py so agent/report_protocol.py and agent/report_losses.py render tables,
numbers and inline PNG images exactly like the main report, without importing it (the report
imports them). Everything here produces self-contained HTML: images are base64 PNG, styles inline.
"""

from __future__ import annotations

import base64
import html
import io
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from numbers import Number

from matplotlib.figure import Figure

from common.values import to_utc


def esc(v: object) -> str:
    return html.escape(str(v))


def num(v: object, digits: int = 1) -> str:
    """A table cell's text: floats with ``digits`` decimals and thousands separators, times in UTC."""
    if v is None:
        return "–"
    if isinstance(v, float):
        if math.isnan(v):
            return "–"
        return f"{v:,.{digits}f}"
    if isinstance(v, datetime):
        return f"{to_utc(v):%Y-%m-%d %H:%M}"
    return html.escape(str(v))


_NUMBER_TEXT = re.compile(r"[-+−]?[\d,]*\.?\d+ ?%?")


@dataclass(frozen=True)
class Raw:
    """A table cell that is already HTML; ``numeric`` right-aligns its column."""

    html: str
    numeric: bool = False


def is_number(v: object) -> bool:
    """Numbers and numbers already formatted as text (``"1,234"``, ``"0.9876"``) are right-aligned."""
    if isinstance(v, Raw):
        return v.numeric
    if isinstance(v, bool):
        return False
    return isinstance(v, Number) or (
        isinstance(v, str) and _NUMBER_TEXT.fullmatch(v) is not None
    )  # Number: Decimal too


def table(headers: Sequence[str], rows: Sequence[Sequence[object]], *, digits: int = 1, cls: str = "") -> str:
    """An HTML table; a column whose filled cells are all numbers is right-aligned (class ``num``),
    any other column (text, times, days) left-aligned (class ``txt``)."""
    numeric = [
        any(v is not None for v in col) and all(v is None or is_number(v) for v in col)
        for col in zip(*rows, strict=True)
    ] or [False] * len(headers)
    align = ["num" if n else "txt" for n in numeric]
    head = "".join(f'<th class="{a}">{esc(h)}</th>' for a, h in zip(align, headers, strict=True))
    body = "\n".join(
        "<tr>"
        + "".join(
            f'<td class="{a}">{v.html if isinstance(v, Raw) else num(v, digits)}</td>'
            for a, v in zip(align, r, strict=True)
        )
        + "</tr>"
        for r in rows
    )
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>\n{body}\n</tbody></table>'


def png_img(fig: Figure, alt: str) -> str:
    """``fig`` as an ``<img>`` with the PNG inline (base64): the page needs no other file."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return f'<img alt="{esc(alt)}" src="data:image/png;base64,{data}">'


CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:1100px;color:#222;padding:0 1em}
h1{font-size:1.5em;margin-bottom:0} h2{border-bottom:2px solid #ddd;padding-bottom:.2em;margin-top:2em}
h3{font-size:1.05em;margin-top:1.4em} p.meta{color:#666;margin-top:.2em}
table{border-collapse:collapse;margin:.6em 0;font-size:.85em}
th,td{border:1px solid #ddd;padding:.25em .6em;text-align:left;vertical-align:top} th{background:#f4f4f4}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums} img{max-width:100%;display:block;margin:.8em 0}
.g1{color:#2e7d32;font-weight:600}.g2{color:#b28704;font-weight:600}.g3{color:#e65100;font-weight:600}
.g0{color:#c62828;font-weight:700} ul.warn{color:#8a6d00;font-size:.9em} nav a{margin-right:1em}
"""
