"""The informer's pure parts: the indexed store and the reflector's backoff."""

from __future__ import annotations

from reconciler.runtime.client import JSON
from reconciler.runtime.informer import (
    CONTROLLER_INDEX,
    NAMESPACE_INDEX,
    Backoff,
    Store,
    strip_managed_fields,
)


def _obj(namespace: str, name: str, owner: str | None = None, app: str = "x") -> JSON:
    meta: JSON = {"namespace": namespace, "name": name, "labels": {"app": app}}
    if owner:
        meta["ownerReferences"] = [{"uid": owner, "controller": True, "kind": "K", "name": "o"}]
    return {"metadata": meta}


def test_indices_follow_updates_and_removals() -> None:
    store = Store({"app": lambda o: [o["metadata"]["labels"]["app"]]})
    store.put(_obj("ns1", "a", owner="u1"))
    store.put(_obj("ns2", "b", owner="u1", app="y"))
    assert {o["metadata"]["name"] for o in store.by_index(CONTROLLER_INDEX, "u1")} == {"a", "b"}
    assert [o["metadata"]["name"] for o in store.by_index(NAMESPACE_INDEX, "ns2")] == ["b"]
    old = store.put(_obj("ns1", "a", owner="u2", app="y"))
    assert old is not None
    assert old["metadata"]["ownerReferences"][0]["uid"] == "u1"
    assert [o["metadata"]["name"] for o in store.by_index(CONTROLLER_INDEX, "u1")] == ["b"]
    assert len(store.by_index("app", "y")) == 2
    store.remove("ns2/b")
    assert store.by_index(CONTROLLER_INDEX, "u1") == []
    assert store.list_keys() == ["ns1/a"]
    store.add_indexer("name", lambda o: [o["metadata"]["name"]])
    assert len(store.by_index("name", "a")) == 1, "a new index covers stored objects"


def test_managed_fields_are_stripped() -> None:
    obj = _obj("ns", "a")
    obj["metadata"]["managedFields"] = [{"manager": "kubectl"}]
    assert "managedFields" not in strip_managed_fields(obj)["metadata"]


def test_reflector_backoff_doubles_to_the_cap_and_resets_after_two_healthy_minutes() -> None:
    now = [0.0]
    backoff = Backoff(jitter=0.0, clock=lambda: now[0])
    delays = []
    for _ in range(8):
        delays.append(backoff.next())
        now[0] += 1
    assert delays == [0.8, 1.6, 3.2, 6.4, 12.8, 25.6, 30.0, 30.0]
    now[0] += 121
    assert backoff.next() == 0.8
    jittered = Backoff(clock=lambda: now[0])
    assert 0.8 <= jittered.next() <= 1.6
