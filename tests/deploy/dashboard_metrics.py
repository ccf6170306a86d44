"""The metric names the Grafana dashboard queries, for the chart tests and for a live check
that every one of them is exported (an integration test scraping a running app):

    sys.path.insert(0, "tests/deploy"); from dashboard_metrics import dashboard_metrics
    missing = dashboard_metrics() - names_seen_in_the_scrape

Names are the full exported Prometheus names as the PromQL uses them (a histogram's
``_bucket``, ``_sum`` and ``_count`` series by their own names). Standard library only.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "ray-gan-serve.json"
CHART_DASHBOARD = ROOT / "helm" / "ray-gan" / "dashboards" / "ray-gan-serve.json"  # a copy of DASHBOARD
# A metric name in a PromQL expression: Ray's exports all start with ray_ (ray_gan_*, ray_serve_*).
METRIC_RE = re.compile(r"\b(ray_[a-z0-9_]+)")


def dashboard_exprs(path: Path = DASHBOARD) -> list[str]:
    """The PromQL expression of every panel target, rows' nested panels included."""
    dash = json.loads(Path(path).read_text())
    exprs = []

    def walk(panels):
        for panel in panels:
            exprs.extend(t["expr"] for t in panel.get("targets", []) if t.get("expr"))
            walk(panel.get("panels", []))

    walk(dash["panels"])
    return exprs


def dashboard_metrics(path: Path = DASHBOARD) -> set[str]:
    """Every metric name the dashboard's panels query."""
    return {name for expr in dashboard_exprs(path) for name in METRIC_RE.findall(expr)}
