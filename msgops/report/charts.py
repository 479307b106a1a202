"""Small inline SVG line charts: no JavaScript, no external assets."""

from __future__ import annotations

from html import escape

from markupsafe import Markup

_W, _H = 560, 200
_PAD_L, _PAD_R, _PAD_T, _PAD_B = 48, 12, 28, 28
_COLORS = ("#2563eb", "#dc2626", "#059669", "#d97706")
_LIMIT_COLOR = "#7c2d12"
_OFF_CHART = 3.0  # a threshold above 3x the highest point is named at the top instead of squashing the data


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    magnitude = 10 ** len(str(int(value))) / 10
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * magnitude:
            return step * magnitude
    return value


def line_chart(title: str, unit: str, series: list[tuple[str, list[tuple[float, float]]]],
               thresholds: list[tuple[str, float]] | None = None) -> Markup:
    """A titled chart of one or more (x, y) series sharing axes; x is seconds since the start.

    `thresholds` are (label, y) pairs drawn as dashed horizontal lines: the profile's limits for
    what the chart shows. One far above the data is named at the top edge rather than drawn."""
    xs = [x for _, pts in series for x, _ in pts]
    ys = [y for _, pts in series for _, y in pts]
    x_max = max(xs) if xs else 1.0
    x_max = x_max if x_max > 0 else 1.0
    data_max = max(ys) if ys else 0.0
    limits = thresholds or []
    drawn = [(label, y) for label, y in limits if y >= 0 and (data_max <= 0 or y <= data_max * _OFF_CHART)]
    above = [(label, y) for label, y in limits if (label, y) not in drawn]
    y_max = _nice_max(max([data_max, *(y for _, y in drawn)]) or 1.0)
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
    for label, value in drawn:
        y = sy(value)
        parts.append(f'<line x1="{_PAD_L}" x2="{_W - _PAD_R}" y1="{y:.1f}" y2="{y:.1f}" class="limit" '
                     f'stroke="{_LIMIT_COLOR}" stroke-width="1.5" stroke-dasharray="6 4"/>'
                     f'<text x="{_W - _PAD_R - 4}" y="{max(y - 4, _PAD_T + 10):.1f}" class="limit-label" '
                     f'text-anchor="end" fill="{_LIMIT_COLOR}">threshold: {escape(label)}</text>')
    for index, (label, _) in enumerate(above):
        parts.append(f'<text x="{_W - _PAD_R - 4}" y="{_PAD_T + 10 + 12 * index}" class="limit-label" '
                     f'text-anchor="end" fill="{_LIMIT_COLOR}">threshold: {escape(label)} '
                     '(\u2191 far above the chart)</text>')
    parts.append("</svg>")
    return Markup("".join(parts))
