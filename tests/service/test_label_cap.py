"""Metric labels from users stay bounded: past the cap, new values read `other`."""

from __future__ import annotations

from service.label_cap import OTHER, CappedLabel
from service.metrics import Metrics


def test_values_past_the_cap_read_other() -> None:
    label = CappedLabel(2)
    assert [label(v) for v in ("a", "b", "c", "a", "b", "d")] == ["a", "b", OTHER, "a", "b", OTHER]


def test_served_counter_caps_each_label() -> None:
    metrics = Metrics(label_values_cap=1)
    metrics.record_served("t1", "support", "support@v1", 200)
    metrics.record_served("t2", "support", "support@v2", 200)
    text = metrics.render().decode()
    assert (
        'lorag_served_total{adapter_version="support@v1",mode="support",status="200",tenant="t1"}'
        " 1.0" in text
    )
    assert (
        'lorag_served_total{adapter_version="other",mode="support",status="200",tenant="other"}'
        " 1.0" in text
    )
