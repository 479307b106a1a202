"""Small inline SVG line charts: no JavaScript, no external assets."""

from __future__ import annotations

from html import escape

from markupsafe import Markup

_W, _H = 560, 200
_PAD_L, _PAD_R, _PAD_T, _PAD_B = 48, 12, 28, 28
_COLORS = ("#2563eb", "#dc2626", "#059669", "#d97706")


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    magnitude = 10 ** len(str(int(value))) / 10
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * magnitude:
            return step * magnitude
    return value


def line_chart(title: str, unit: str, series: list[tuple[str, list[tuple[float, float]]]]) -> Markup:
    """A titled chart of one or more (x, y) series sharing axes; x is seconds since the start."""
    xs = [x for _, pts in series for x, _ in pts]
    ys = [y for _, pts in series for _, y in pts]
    x_max = max(xs) if xs else 1.0
    x_max = x_max if x_max > 0 else 1.0
    y_max = _nice_max(max(ys) if ys else 1.0)
    plot_w, plot_h = _W - _PAD_L - _PAD_R, _H - _PAD_T - _PAD_B

    def sx(x: float) -> float:
        return _PAD_L + plot_w * x / x_max

    def sy(y: float) -> float:
        return _PAD_T + plot_h * (1 - y / y_max)

    parts = [f'<svg class="chart" viewBox="0 0 {_W} {_H}" role="img" aria-label="{escape(title)}" '
             f'xmlns="http://www.w3.org/2000/svg">',
             f'<text x="{_PAD_L}" y="16" class="chart-title">{escape(title)}'
             f'{" (" + escape(unit) + ")" if unit else ""}</text>']
    for i in range(5):
        value = y_max * i / 4
        y = sy(value)
        parts.append(f'<line x1="{_PAD_L}" x2="{_W - _PAD_R}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>')
        parts.append(f'<text x="{_PAD_L - 6}" y="{y + 4:.1f}" class="tick" text-anchor="end">{value:g}</text>')
    parts.append(f'<text x="{_W - _PAD_R}" y="{_H - 8}" class="tick" text-anchor="end">{x_max:g} s</text>')
    parts.append(f'<text x="{_PAD_L}" y="{_H - 8}" class="tick">0 s</text>')
    for index, (name, pts) in enumerate(series):
        color = _COLORS[index % len(_COLORS)]
        if pts:
            path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in sorted(pts))
            parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{path}"/>')
        lx = _W - _PAD_R - (len(series) - index) * 110  # legends right-aligned, clear of the title
        parts.append(f'<rect x="{lx}" y="8" width="10" height="10" fill="{color}"/>'
                     f'<text x="{lx + 14}" y="17" class="legend">{escape(name)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))
