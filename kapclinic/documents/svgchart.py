"""A score trajectory as inline SVG, drawn on the server for PDFs (WeasyPrint renders SVG; no script).

The screen uses Chart.js (static/vendor/chart.umd.min.js) in the browser; a PDF has no browser, so the
same points (date, total) are drawn here: time on the x axis in proportion, the instrument's whole score
range on the y axis, a dot per response, the first and last dates and the y range labelled. Every text
is escaped; the result is marked safe only after escaping.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from html import escape

from django.utils.safestring import SafeString, mark_safe

WIDTH, HEIGHT = 640, 200
LEFT, RIGHT, TOP, BOTTOM = 40, 16, 12, 30


def trajectory_svg(title: str, points: Sequence[tuple[dt.date, int]], max_total: int) -> SafeString:
    """An SVG line chart of `points` (date, total), oldest first, on a 0..max_total scale."""
    plot_w = WIDTH - LEFT - RIGHT
    plot_h = HEIGHT - TOP - BOTTOM
    top = max(max_total, max((p[1] for p in points), default=0), 1)

    def y(value: int) -> float:
        return TOP + plot_h - plot_h * value / top

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(title)} scores over time">',
        f"<title>{escape(title)} scores over time</title>",
    ]
    for tick in sorted({0, top // 2, top}):
        ty = y(tick)
        parts.append(
            f'<line x1="{LEFT}" y1="{ty:.1f}" x2="{WIDTH - RIGHT}" y2="{ty:.1f}" '
            'stroke="#ccc" stroke-width="0.6"/>'
            f'<text x="{LEFT - 6}" y="{ty + 3:.1f}" font-size="9" text-anchor="end" fill="#333">{tick}</text>'
        )
    if points:
        first, last = points[0][0], points[-1][0]
        span = max((last - first).days, 0)

        def x(day: dt.date) -> float:
            if span == 0:
                return LEFT + plot_w / 2
            return LEFT + plot_w * (day - first).days / span

        coords = [(x(d), y(v)) for d, v in points]
        path = " ".join(f"{'M' if i == 0 else 'L'}{cx:.1f},{cy:.1f}" for i, (cx, cy) in enumerate(coords))
        parts.append(f'<path d="{path}" fill="none" stroke="#1f5f8b" stroke-width="1.6"/>')
        for (cx, cy), (_d, v) in zip(coords, points, strict=True):
            parts.append(
                f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="2.6" fill="#1f5f8b"><title>{v}</title></circle>'
            )
        base = HEIGHT - BOTTOM + 14
        parts.append(f'<text x="{LEFT}" y="{base}" font-size="9" fill="#333">{first.isoformat()}</text>')
        if span:
            parts.append(
                f'<text x="{WIDTH - RIGHT}" y="{base}" font-size="9" text-anchor="end" fill="#333">'
                f"{last.isoformat()}</text>"
            )
    parts.append("</svg>")
    return mark_safe("".join(parts))  # every interpolated text is escaped or a number
