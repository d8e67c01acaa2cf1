"""Volume auto-grow: PGO's sizing rules as pure decisions."""

from __future__ import annotations

from typing import Any

from reconciler import naming
from reconciler.postgrescluster import autogrow
from reconciler.runtime import quantity


def _set(request: str, limit: str | None = None) -> dict[str, Any]:
    resources: dict[str, Any] = {"requests": {"storage": request}}
    if limit is not None:
        resources["limits"] = {"storage": limit}
    return {"name": "instance1", "dataVolumeClaimSpec": {"resources": resources}}


def _pod(instance: str, suggested: str | None) -> dict[str, Any]:
    annotations = {naming.ANNOTATION_SUGGESTED_PGDATA_SIZE: suggested} if suggested else {}
    labels = {naming.LABEL_INSTANCE: instance, naming.LABEL_INSTANCE_SET: "instance1"}
    return {"metadata": {"labels": labels, "annotations": annotations}}


def test_format_binary_uses_the_largest_exact_suffix() -> None:
    assert quantity.format_binary(1536 * 2**20) == "1536Mi"
    assert quantity.format_binary(2 * 2**30) == "2Gi"
    assert quantity.format_binary(1000) == "1000"


def test_limit_absent_zero_or_invalid_means_no_growth() -> None:
    assert autogrow.limit_of(_set("1Gi")) is None
    assert autogrow.limit_of(_set("1Gi", "0")) is None
    assert autogrow.limit_of(_set("1Gi", "lots")) is None
    assert autogrow.data_volume_size("hippo", _set("1Gi"), ["3Gi"], enabled=True).request is None


def test_grows_to_the_largest_suggestion_of_the_set() -> None:
    sizing = autogrow.data_volume_size(
        "hippo", _set("1Gi", "4Gi"), ["1536Mi", "2304Mi", "bad"], enabled=True
    )
    assert sizing == autogrow.Sizing("2304Mi")


def test_gate_off_keeps_the_request() -> None:
    sizing = autogrow.data_volume_size("hippo", _set("1Gi", "4Gi"), ["3Gi"], enabled=False)
    assert sizing.request is None


def test_a_smaller_suggestion_never_shrinks() -> None:
    sizing = autogrow.data_volume_size("hippo", _set("2Gi", "4Gi"), ["1536Mi"], enabled=True)
    assert sizing == autogrow.Sizing("2Gi")


def test_growth_stops_at_the_limit_with_events() -> None:
    at = autogrow.data_volume_size("hippo", _set("1Gi", "2Gi"), ["2Gi"], enabled=True)
    assert at.request == "2Gi"
    assert [e.reason for e in at.events] == [naming.REASON_VOLUME_LIMIT_REACHED]
    above = autogrow.data_volume_size("hippo", _set("1Gi", "2Gi"), ["3Gi"], enabled=True)
    assert above.request == "2Gi"
    assert [(e.type, e.reason) for e in above.events] == [
        ("Normal", naming.REASON_VOLUME_LIMIT_REACHED),
        ("Warning", naming.REASON_DESIRED_VOLUME_ABOVE_LIMIT),
    ]
    assert "3Gi" in above.events[1].message
    assert "hippo/instance1" in above.events[1].message


def test_a_request_above_the_limit_uses_the_limit_even_without_the_gate() -> None:
    sizing = autogrow.data_volume_size("hippo", _set("5Gi", "2Gi"), [], enabled=False)
    assert sizing.request == "2Gi"
    assert [e.reason for e in sizing.events] == [naming.REASON_VOLUME_REQUEST_OVER_LIMIT]


def test_desired_sizes_prefer_the_pod_then_status_for_existing_instances() -> None:
    previous = {"instance1": {"a": "1536Mi", "b": "2Gi", "gone": "9Gi"}}
    pods = [_pod("a", "2304Mi"), _pod("b", None), _pod("c", "not-a-size")]
    desired = autogrow.desired_sizes(pods, previous, ["a", "b", "c"])
    assert desired == {"instance1": {"a": "2304Mi", "b": "2Gi"}}


def test_growth_events_only_when_a_suggestion_grows_in_a_limited_set() -> None:
    previous = {"instance1": {"a": "1536Mi"}}
    grown = {"instance1": {"a": "2304Mi"}}
    events = autogrow.growth_events("hippo", [_set("1Gi", "4Gi")], grown, previous)
    assert [e.reason for e in events] == [naming.REASON_VOLUME_AUTO_GROW]
    assert "2304Mi" in events[0].message
    assert autogrow.growth_events("hippo", [_set("1Gi", "4Gi")], previous, previous) == []
    assert autogrow.growth_events("hippo", [_set("1Gi")], grown, previous) == []


def test_status_keeps_desired_sizes_per_set() -> None:
    observed = [{"name": "instance1", "replicas": 1}, {"name": "instance2", "replicas": 1}]
    status = autogrow.with_desired(observed, {"instance1": {"a": "2Gi"}})
    assert status[0]["desiredPGDataVolume"] == {"a": "2Gi"}
    assert "desiredPGDataVolume" not in status[1]
    assert autogrow.stored_sizes(status) == {"instance1": {"a": "2Gi"}}
