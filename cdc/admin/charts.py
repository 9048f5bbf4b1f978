"""The budget chart: a line of use over 24 h against the limit, as inline SVG drawn on the server.

Pure: points in, markup out; no script, no external file, so it renders where scripts are off and in a
screenshot. Every text in it is escaped; the numbers are formatted here.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from html import escape

__all__ = ["usage_chart"]

WIDTH, HEIGHT = 640, 200
LEFT, RIGHT, TOP, BOTTOM = 56, 8, 10, 24
DAY_S = 86_400.0


def _short(value: float) -> str:
    for size, unit in ((1e6, "M"), (1e3, "k")):
        if value >= size:
            return f"{value / size:.3g}{unit}"
    return f"{value:.3g}"


def usage_chart(points: Sequence[tuple[float, float]], *, limit: float, now: float, title: str) -> str:
    """``points`` (epoch seconds, used) of the last 24 h up to ``now``, scaled so the limit shows."""
    top = max([limit, *(used for _, used in points)]) * 1.05 or 1.0
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(at: float) -> float:
        return LEFT + plot_w * min(1.0, max(0.0, (at - (now - DAY_S)) / DAY_S))

    def y(value: float) -> float:
        return TOP + plot_h * (1 - value / top)

    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(title)}" '
        'xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
        f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" class="plot"/>',
    ]
    for fraction in (0.0, 0.5, 1.0):
        value = top / 1.05 * fraction
        label, at_y = _short(value), y(value) + 4
        parts.append(f'<text x="{LEFT - 4}" y="{at_y:.1f}" text-anchor="end" class="axis">{label}</text>')
    for hours_ago in (24, 18, 12, 6, 0):
        at = now - hours_ago * 3600
        label = datetime.fromtimestamp(at, UTC).strftime("%H:%M")
        parts.append(
            f'<text x="{x(at):.1f}" y="{HEIGHT - 6}" text-anchor="middle" class="axis">{label}</text>'
        )
    parts.append(
        f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(limit):.1f}" y2="{y(limit):.1f}" class="limit"/>'
        f'<text x="{WIDTH - RIGHT - 4}" y="{y(limit) - 4:.1f}" text-anchor="end" class="axis">'
        f"limit {_short(limit)}</text>"
    )
    shown = [(at, used) for at, used in points if at >= now - DAY_S]
    if shown:
        line = " ".join(f"{x(at):.1f},{y(used):.1f}" for at, used in shown)
        parts.append(f'<polyline points="{line}" class="use"/>')
    else:
        parts.append(
            f'<text x="{LEFT + plot_w / 2}" y="{TOP + plot_h / 2}" text-anchor="middle" class="axis">'
            "no reports in the last 24 h</text>"
        )
    parts.append("</svg>")
    return "".join(parts)
