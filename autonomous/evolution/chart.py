"""SVG bar chart of baseline vs candidate latency percentiles (no plotting dependency)."""

from __future__ import annotations

from html import escape

import numpy as np

__all__ = ["comparison_svg"]

_PCTS = (50, 90, 99)


def comparison_svg(baseline_ms: tuple[float, ...], candidate_ms: tuple[float, ...],
                   caption: str, width: int = 480, height: int = 200) -> str:
    b = [float(np.percentile(baseline_ms, p)) for p in _PCTS]
    c = [float(np.percentile(candidate_ms, p)) for p in _PCTS]
    top = max(b + c) or 1.0
    plot_h = height - 60
    group_w = (width - 40) / len(_PCTS)
    bar_w = group_w / 3
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img">',
             f'<title>{escape(caption)}</title>']
    for i, p in enumerate(_PCTS):
        x0 = 20 + i * group_w
        for j, (vals, colour, label) in enumerate(((b, "#4878a8", "baseline"),
                                                   (c, "#d9822b", "candidate"))):
            h = plot_h * vals[i] / top
            x = x0 + bar_w * (j + 0.5)
            y = 20 + plot_h - h
            parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{h:.1f}" '
                         f'fill="{colour}"><title>{label} p{p}: {vals[i]:.2f} ms</title></rect>')
        parts.append(f'<text x="{x0 + group_w / 2:.1f}" y="{height - 28}" font-size="12" '
                     f'text-anchor="middle">p{p}</text>')
    parts.append(f'<text x="20" y="{height - 8}" font-size="12">{escape(caption)}</text>')
    parts.append("</svg>")
    return "\n".join(parts)
