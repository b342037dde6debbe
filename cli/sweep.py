"""`lorag eval answers --sweep`: which retrieval settings answer a QA file best, for one mode.

Every question is asked once per point of a small grid of retrieval settings, sent as the
request's `lorag.retrieval` (so the mode itself is not changed while it runs). A request can
only narrow a mode (`lorag.retrieval_policy`): a point the mode does not allow (a top_k above
the mode's, a cut-off below it) is answered with the mode's value and marked "clipped" in
the table, and never wins. Sweep a mode with a large top_k and no cut-off to try them all.

The winner is the setting with the best accuracy, then citation accuracy, then latency;
`lorag tenants set-retrieval` sets the mode to it in one command (printed at the end).
"""

from __future__ import annotations

import itertools
import json
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cli.mode_report import ModeSummary, bar_chart, percent
from service.errors import InvalidRequest

__all__ = [
    "DEFAULT_GRID",
    "SweepRow",
    "apply_command",
    "chart",
    "parse_vary",
    "points",
    "setting_text",
    "table",
    "value_text",
    "winner",
]

Grid = dict[str, list[Any]]

DEFAULT_GRID: Grid = {
    "top_k": [3, 5],
    "relative_cutoff": [None, 0.8],
    "search": ["hybrid"],
    "template": ["v1", "v2"],
}

_KINDS: dict[str, type] = {
    "top_k": int,
    "min_k": int,
    "relative_cutoff": float,
    "search": str,
    "template": str,
    "collapse_near_duplicates": bool,
    "source_order": str,
    "on_degenerate": str,
}


def _value(name: str, text: str) -> Any:
    kind = _KINDS[name]
    text = text.strip()
    if text.lower() in ("none", "off") and name == "relative_cutoff":
        return None
    if kind is bool:
        if text.lower() not in ("true", "false"):
            raise InvalidRequest(f"--vary {name}: {text!r} is not true or false", param="vary")
        return text.lower() == "true"
    try:
        return kind(text)
    except ValueError:
        raise InvalidRequest(
            f"--vary {name}: {text!r} is not a {kind.__name__}", param="vary"
        ) from None


def parse_vary(texts: list[str] | None) -> Grid:
    """`--vary NAME=V1,V2` options on top of `DEFAULT_GRID` (a NAME given replaces its row)."""
    grid = {name: list(values) for name, values in DEFAULT_GRID.items()}
    for text in texts or []:
        name, sep, values = text.partition("=")
        name = name.strip()
        if not sep or not values.strip():
            raise InvalidRequest(f"--vary {text!r}: expected NAME=VALUE[,VALUE...]", param="vary")
        if name not in _KINDS:
            known = ", ".join(sorted(_KINDS))
            raise InvalidRequest(f"--vary {name!r}: not a setting to vary ({known})", param="vary")
        grid[name] = [_value(name, v) for v in values.split(",")]
    return grid


def points(grid: Grid) -> list[dict[str, Any]]:
    """Every combination of the grid's values, in the grid's order."""
    names = list(grid)
    return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*grid.values())]


@dataclass
class SweepRow:
    setting: dict[str, Any]
    summary: ModeSummary

    @property
    def clipped(self) -> list[str]:
        """The settings the mode answered with other values than asked (it allows only
        narrowing); empty when the point was tried as asked."""
        answered = next((o.settings for o in self.summary.outcomes if o.settings), None) or {}
        return [name for name, value in self.setting.items() if answered.get(name, value) != value]

    @property
    def label(self) -> str:
        return setting_text(self.setting)


def value_text(value: Any) -> str:
    """A setting's value as `--vary` takes it (none, true/false)."""
    return (
        "none" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
    )


def setting_text(setting: dict[str, Any]) -> str:
    return " ".join(f"{name}={value_text(value)}" for name, value in setting.items())


def winner(rows: list[SweepRow]) -> SweepRow | None:
    tried = [row for row in rows if not row.clipped]
    return max(
        tried,
        key=lambda r: (r.summary.accuracy, r.summary.citation_accuracy or 0.0, -r.summary.latency),
        default=None,
    )


def table(rows: list[SweepRow]) -> str:
    names = list(rows[0].setting) if rows else []
    best = winner(rows)
    head = "| " + " | ".join(names) + " | accuracy | citation accuracy | degenerate |"
    head += " mean latency (s) | retrieval (ms) | |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for row in rows:
        s = row.summary
        cells = [value_text(row.setting[name]) for name in names]
        cells += [percent(s.accuracy), percent(s.citation_accuracy), str(s.degenerate)]
        note = (
            "winner" if row is best else f"clipped: {', '.join(row.clipped)}" if row.clipped else ""
        )
        cells += [f"{s.latency:.2f}", f"{s.retrieval_ms:.0f}", note]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def apply_command(tenant: str, mode: str, setting: dict[str, Any]) -> str:
    """The one command that sets the mode's retrieval to `setting` (the rest kept)."""
    settings = json.dumps(setting, separators=(",", ":"))
    return f"lorag tenants set-retrieval {shlex.quote(tenant)} {shlex.quote(mode)} " + (
        shlex.quote(settings)
    )


def chart(rows: list[SweepRow], path: Path) -> None:
    labels = [row.label.replace(" ", "\n") for row in rows]
    summaries = [row.summary for row in rows]
    bar_chart(
        labels,
        summaries,
        path,
        title="Answers by retrieval setting",
        bar_width=1.3,
        height=5,
        tick_size=7,
        legend="lower right",
    )
