"""The job lifecycle drawn as an inline SVG, server-side, from the shared machine's table.

Every edge comes from :data:`~expert_jobs.domain.lifecycle.TRANSITIONS` (the table the Mermaid
diagram of :func:`~expert_jobs.domain.lifecycle.mermaid_diagram` is read from too); only where each
status sits on the page is laid out by hand, in :data:`LAYOUT`. The current status is filled, the
moves the job can make from it are drawn in the accent colour with their trigger's name, and the
statuses the job went through are outlined.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from html import escape

from expert_jobs.domain.lifecycle import TRANSITIONS
from expert_jobs.domain.status import JobStatus

__all__ = ["LAYOUT", "lifecycle_svg"]

S = JobStatus

LAYOUT: dict[JobStatus, tuple[int, int]] = {
    S.QUEUED: (80, 190),
    S.PROCESSING: (300, 190),
    S.COMPLETED: (600, 40),
    S.EXCEEDED_MAX_STEPS: (600, 100),
    S.FAILED: (600, 160),
    S.REQUEST_INTERACTIVE_TOOL_RESULT: (600, 230),
    S.REQUEST_DELEGATE_RESULT: (600, 290),
    S.CANCELING: (300, 370),
    S.CANCELED: (80, 370),
    S.EXPIRED: (880, 290),
}
"""Where each status's box is centred (SVG user units)."""

_WIDTH, _HEIGHT = 960, 400
_BOX_HEIGHT = 28
_CHAR_WIDTH = 7.0  # 12px system-ui, generous enough for the longest status name

_CONTROL: dict[tuple[str, JobStatus], tuple[float, float]] = {
    ("requeue", S.PROCESSING): (190, 222),
    ("fail", S.QUEUED): (380, 140),
    ("follow_up", S.COMPLETED): (300, 0),
    ("follow_up", S.EXCEEDED_MAX_STEPS): (310, 40),
    ("follow_up", S.FAILED): (320, 75),
    ("resume", S.REQUEST_INTERACTIVE_TOOL_RESULT): (330, 285),
    ("resume", S.REQUEST_DELEGATE_RESULT): (330, 330),
    ("expire", S.QUEUED): (560, 470),
}
"""The control point of the edges drawn as curves (the others are straight), so that edges
between the same boxes, or around others, stay apart."""


def _half_width(status: JobStatus) -> float:
    return (len(status.value) * _CHAR_WIDTH + 24) / 2


def _border(status: JobStatus, toward: tuple[float, float]) -> tuple[float, float]:
    """Where the line from the box's centre toward ``toward`` leaves the box."""
    x, y = LAYOUT[status]
    dx, dy = toward[0] - x, toward[1] - y
    if dx == 0 and dy == 0:
        return x, y
    scale = min(
        _half_width(status) / abs(dx) if dx else math.inf,
        (_BOX_HEIGHT / 2) / abs(dy) if dy else math.inf,
    )
    return x + dx * scale, y + dy * scale


def _edge(trigger: str, source: JobStatus, target: JobStatus) -> tuple[str, tuple[float, float]]:
    """The SVG path of one edge and the point to put its label at."""
    (x1, y1), (x2, y2) = LAYOUT[source], LAYOUT[target]
    cx, cy = _CONTROL.get((trigger, source), ((x1 + x2) / 2, (y1 + y2) / 2))
    start = _border(source, (cx, cy))
    end = _border(target, (cx, cy))
    label = (0.25 * start[0] + 0.5 * cx + 0.25 * end[0], 0.25 * start[1] + 0.5 * cy + 0.25 * end[1])
    path = f"M{start[0]:.1f},{start[1]:.1f} Q{cx:.1f},{cy:.1f} {end[0]:.1f},{end[1]:.1f}"
    return path, label


def lifecycle_svg(current: JobStatus, visited: Iterable[JobStatus] = ()) -> str:
    """The lifecycle as an SVG element (safe to embed as is): ``current`` highlighted, with the
    moves it allows labelled, and the ``visited`` statuses outlined."""
    seen = set(visited)
    parts = [
        f'<svg class="lifecycle" viewBox="0 0 {_WIDTH} {_HEIGHT}" role="img" '
        f'aria-label="Job lifecycle, current status {escape(current.value)}" '
        'xmlns="http://www.w3.org/2000/svg">',
        "<defs>"
        '<marker id="lc-arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
        'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" class="lc-head"/></marker>'
        '<marker id="lc-arrow-next" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" class="lc-head-next"/>'
        "</marker></defs>",
    ]
    labels: list[str] = []
    for trigger, sources, target in TRANSITIONS:
        for source in sources:
            path, (lx, ly) = _edge(trigger, source, target)
            nxt = source == current
            edge_class = "lc-edge lc-next" if nxt else "lc-edge"
            marker = "lc-arrow-next" if nxt else "lc-arrow"
            title = f"{source.value} → {target.value}: {trigger}"
            parts.append(
                f'<path class="{edge_class}" d="{path}" marker-end="url(#{marker})" '
                f'data-trigger="{trigger}" data-from="{source.value}" data-to="{target.value}">'
                f"<title>{escape(title)}</title></path>"
            )
            if nxt:
                width = len(trigger) * 6.2 + 8
                labels.append(
                    f'<g class="lc-label"><rect x="{lx - width / 2:.1f}" y="{ly - 8:.1f}" '
                    f'width="{width:.1f}" height="16" rx="4"/>'
                    f'<text x="{lx:.1f}" y="{ly + 4:.1f}" text-anchor="middle">{escape(trigger)}</text></g>'
                )
    for status, (x, y) in LAYOUT.items():
        half = _half_width(status)
        css = ["lc-node"]
        if status == current:
            css.append("lc-current")
        elif status in seen:
            css.append("lc-visited")
        parts.append(
            f'<g class="{" ".join(css)}" data-status="{status.value}">'
            f'<rect x="{x - half:.1f}" y="{y - _BOX_HEIGHT / 2}" width="{2 * half:.1f}" '
            f'height="{_BOX_HEIGHT}" rx="14"/>'
            f'<text x="{x}" y="{y + 4}" text-anchor="middle">{escape(status.value)}</text></g>'
        )
    parts.extend(labels)  # last, so that they sit above the boxes and edges
    parts.append("</svg>")
    return "".join(parts)
