"""The Grafana dashboards of `manifests/monitoring` as tests read them: every PromQL query,
and the metric names each one reads."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

DASHBOARDS = Path(__file__).parents[1] / "manifests" / "monitoring" / "dashboards"

# PromQL words that are not metrics: aggregations, their modifiers, keywords, functions
# (these are followed by "(" anyway), and Grafana's interval variables.
_KEYWORDS = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right", "bool"})
_IDENTIFIER = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


def dashboards() -> dict[str, dict[str, object]]:
    """Every dashboard by file name."""
    return {path.name: json.loads(path.read_text()) for path in sorted(DASHBOARDS.glob("*.json"))}


def queries(dashboard: dict[str, object]) -> Iterator[str]:
    """The PromQL of every panel's targets and of the template variables."""
    for panel in dashboard.get("panels") or []:  # type: ignore[attr-defined]
        for target in panel.get("targets") or []:
            yield str(target["expr"])
    for variable in (dashboard.get("templating") or {}).get("list") or []:  # type: ignore[attr-defined]
        query = variable.get("query")
        if isinstance(query, dict):
            yield str(query["query"])


def metric_names(expr: str) -> set[str]:
    """The metrics a PromQL expression (or a `label_values(...)` variable query) reads."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # range selectors
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    if text.lstrip().startswith("label_values("):  # Grafana: label_values(metric, label)
        text = text.split("(", 1)[1].rsplit(",", 1)[0]
    names = set()
    for match in _IDENTIFIER.finditer(text):
        word, rest = match.group(0), text[match.end() :].lstrip()
        if rest.startswith("(") or word in _KEYWORDS or word.startswith("$"):
            continue
        if text[max(match.start() - 1, 0)] == "$":  # $__rate_interval and the like
            continue
        names.add(word)
    return names


def exposed_names(exposition: str) -> set[str]:
    """Every series name a /metrics page declares or holds: its samples, and for each
    `# TYPE` the names that type is queried by (`_total`, `_bucket`, `_sum`, `_count`)."""
    suffixes = {
        "counter": ("_total",),
        "histogram": ("_bucket", "_sum", "_count"),
        "summary": ("_sum", "_count"),
    }
    names = set()
    for line in exposition.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(maxsplit=3)
            names.add(name)
            names.update(name.removesuffix("_total") + s for s in suffixes.get(kind, ()))
        elif line and not line.startswith("#"):
            names.add(_IDENTIFIER.match(line).group(0))  # type: ignore[union-attr]
    return names
