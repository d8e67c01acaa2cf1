"""Subreconciler: what the operator asks of Patroni through its REST API, once bootstrapped.

- `spec.patroni.dynamicConfiguration` (with the operator's parts laid over it, as at bootstrap)
  reaches the DCS through PATCH /config only when it differs from what Patroni holds: the
  operator remembers what it confirmed, so a converged cluster costs no call at all, and after
  an operator restart one GET /config per cluster replaces the PATCH PGO sends every time.
- A switchover or failover runs when `spec.patroni.switchover.enabled` and the annotation
  `postgres-operator.crunchydata.com/trigger-switchover` holds a value not yet recorded in
  `status.patroni.switchover` (PGO's contract). An impossible request becomes a Warning Event
  and the condition `SwitchoverRefused`, which settles that trigger: it is never carried out
  later, when an edit of the spec would make it possible (PGO keeps retrying it, so a fixed
  `targetInstance` switches over at once, before the user asks again). A new annotation value
  asks again.
- A standby cluster (`spec.standby`) gets Patroni's `standby_cluster` section through the same
  configuration; `enabled: false` removes it, and Patroni promotes the standby leader. While
  the cluster is a standby, the condition `StandbyReplaying` says what the standby leader
  received and replayed (Patroni's GET /patroni, at most every 15 s) and whether
  `spec.standby.host` can be reached; the Event `StandbyPromoted` marks the promotion.
- Members Patroni reports with `pending_restart` (a parameter that needs one changed) restart
  one at a time, replicas first, the primary last, and only while every member is running.
  This is looked at after the operator patched the configuration, and once per operator start.
- Whatever moves or restarts the primary runs with pgBouncer's pools paused (`pooling`).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

import structlog

from reconciler import naming
from reconciler.patroni.client import PatroniClient, PatroniError
from reconciler.postgres.connection import client_tls
from reconciler.postgrescluster import configuration, pooling, standby
from reconciler.postgrescluster.context import Context
from reconciler.postgrescluster.observed import outdated
from reconciler.runtime import conditions
from reconciler.runtime.client import JSON
from reconciler.runtime.controller import Result

log = structlog.get_logger(__name__)

# How often a standby leader's replay is looked at: at most every MIN_INTERVAL, at least every
# POLL_SECONDS.
MIN_INTERVAL = 15.0
POLL_SECONDS = 30.0


class InvalidSwitchover(ValueError):
    """A switchover request that cannot be carried out as written."""


def switchover_request(
    request: Mapping[str, Any] | None,
    trigger: str | None,
    handled: str | None,
    instances_: Sequence[str],
    primary: str | None,
    *,
    refused: bool = False,
) -> tuple[str, str | None] | None:
    """(type, target instance) when a switchover is asked for and neither done nor `refused`
    yet, else None."""
    if not (request or {}).get("enabled") or not trigger or trigger == handled or refused:
        return None
    assert request is not None
    kind = str(request.get("type") or "Switchover")
    target = request.get("targetInstance")
    if target and target not in instances_:
        known = ", ".join(sorted(instances_)) or "none yet"
        raise InvalidSwitchover(
            f'spec.patroni.switchover.targetInstance "{target}" is not an instance of this '
            f"cluster (instances: {known}); name one of them"
        )
    if kind == "Failover" and not target:
        raise InvalidSwitchover(
            "spec.patroni.switchover.type Failover needs targetInstance: set it to the "
            "instance to promote"
        )
    if kind == "Switchover" and len(instances_) < 2:
        raise InvalidSwitchover(
            "a switchover needs at least two instances; add a replica (spec.instances[].replicas)"
        )
    return kind, str(target) if target else None


def _refusal(trigger: str) -> str:
    # The condition's message starts by naming the trigger it settles: a refusal outlives an
    # operator restart without a status field PGO's CRD does not have.
    return f"Trigger {json.dumps(trigger)} refused: "


def refusal_message(trigger: str, error: InvalidSwitchover) -> str:
    """The `SwitchoverRefused` message (and Event) for `trigger`."""
    return (
        f"{_refusal(trigger)}{error}. It is not carried out later: correct the spec, then "
        "change the annotation again"
    )


def refuses(condition: Mapping[str, Any], trigger: str | None) -> bool:
    """Whether the `SwitchoverRefused` condition settles this trigger."""
    return bool(trigger) and str(condition.get("message", "")).startswith(_refusal(trigger or ""))


def config_patch(desired: Mapping[str, Any], current: Mapping[str, Any]) -> JSON:
    """The merge patch that brings `current` to `desired` for every key `desired` sets (values
    compared as text: Patroni reports some parameters as numbers); empty when it holds them."""
    patch: JSON = {}
    for key, value in desired.items():
        have = current.get(key)
        if isinstance(value, Mapping) and isinstance(have, Mapping):
            nested = config_patch(value, have)
            if nested:
                patch[key] = nested
        elif isinstance(value, Mapping) or _text(value) != _text(have):
            patch[key] = value
    return patch


def _text(value: Any) -> str:
    return json.dumps(value, sort_keys=True) if isinstance(value, list | dict) else str(value)


async def reconcile(ctx: Context) -> Result | None:
    """Bring the DCS configuration in line, carry out a pending switchover, and report a
    standby cluster's replay."""
    if ctx.spec.get("shutdown"):
        return None
    primary = ctx.instances.ready_primary
    if not ctx.bootstrapped or primary is None:
        return await _standby(ctx, None, None)
    host = naming.instance_pod_dns(primary["metadata"]["name"], ctx.name, ctx.namespace)
    client = PatroniClient(host, ctx.spec["patroni"]["port"], client_tls(ctx.root_ca))
    try:
        await _configure(ctx, client)
        await _restart_pending(ctx, client)
        await _switchover(ctx, client, primary)
        return await _standby(ctx, client, primary)
    except PatroniError as error:
        log.info("Patroni not reachable or refused; retrying later", error=str(error))
    return Result(requeue_after=POLL_SECONDS) if standby.enabled(ctx.spec) else None


async def _configure(ctx: Context, client: PatroniClient) -> None:
    desired = configuration.dynamic_configuration(ctx.spec)
    digest = hashlib.sha256(json.dumps(desired, sort_keys=True).encode()).hexdigest()
    if ctx.memory.patroni_configuration == digest:
        return
    current = await client.config()
    patch = config_patch(desired, current) | standby.dcs_patch(desired, current)
    if patch:
        await client.patch_config(patch)
        log.info("patched Patroni's dynamic configuration", keys=sorted(patch))
        # Patroni applies a new configuration in its next loop: pending restarts appear only
        # after the PATCH.
        ctx.memory.restarts_watch_until = (
            time.monotonic() + 3 * ctx.spec["patroni"]["syncPeriodSeconds"]
        )
    ctx.memory.patroni_configuration = digest


def next_restart(members: Sequence[Mapping[str, Any]]) -> str | None:
    """The member to restart next: a replica with a pending restart, else the leader; none
    while any member is not running (one restart at a time)."""
    if any(m.get("state") not in ("running", "streaming") for m in members):
        return None
    pending = [m for m in members if m.get("pending_restart")]
    replicas = sorted(str(m["name"]) for m in pending if m.get("role") != "leader")
    if replicas:
        return replicas[0]
    return next((str(m["name"]) for m in pending), None)


async def _restart_pending(ctx: Context, client: PatroniClient) -> None:
    until = ctx.memory.restarts_watch_until
    if until is None:
        return
    members = (await client.cluster()).get("members") or []
    if not any(m.get("pending_restart") for m in members):
        if time.monotonic() > until:
            ctx.memory.restarts_watch_until = None
        return
    # A pod about to be replaced by the rollout starts with the new parameters anyway: no
    # restart before that (a template and a parameter that changed together, e.g. monitoring).
    statefulsets = ctx.instances.statefulsets_by_name()
    rolling = {p["metadata"]["name"] for p in ctx.instances.pods if outdated(p, statefulsets)}
    member = next_restart(
        [{**m, "pending_restart": False} if m.get("name") in rolling else m for m in members]
    )
    if member is None:
        return  # a member is (re)starting: its pod's events bring us back
    # Patroni clears the flag in its next loop: until then, the member it restarted shows it.
    last, when = ctx.memory.last_restart
    if member == last and time.monotonic() - when < 2 * ctx.spec["patroni"]["syncPeriodSeconds"]:
        return
    target = client.member(naming.instance_pod_dns(member, ctx.name, ctx.namespace))
    leader = any(m.get("name") == member and m.get("role") == "leader" for m in members)
    if leader:
        await pooling.primary_moves(ctx, target.restart)
    else:
        await target.restart()
    ctx.memory.last_restart = (member, time.monotonic())
    log.info("restarted PostgreSQL for a pending parameter change", member=member)


async def _switchover(ctx: Context, client: PatroniClient, primary: JSON) -> None:
    annotations = ctx.raw["metadata"].get("annotations") or {}
    trigger = annotations.get(naming.ANNOTATION_SWITCHOVER)
    status = ctx.status.setdefault("patroni", {})
    refusal = conditions.find(
        ctx.status.get("conditions") or [], naming.CONDITION_SWITCHOVER_REFUSED
    )
    if refusal is not None and not refuses(refusal, trigger):
        ctx.clear_condition(
            naming.CONDITION_SWITCHOVER_REFUSED
        )  # the annotation changed or went away
        refusal = None
    if trigger and trigger == ctx.memory.switchover_trigger:
        status["switchover"] = trigger
    names = ctx.instances.names
    leader = primary["metadata"]["name"]
    current = primary["metadata"]["labels"].get(naming.LABEL_INSTANCE)
    try:
        request = switchover_request(
            (ctx.spec.get("patroni") or {}).get("switchover"),
            trigger,
            status.get("switchover"),
            names,
            current,
            refused=refusal is not None,
        )
    except InvalidSwitchover as error:
        assert trigger is not None
        message = refusal_message(trigger, error)
        ctx.set_condition(
            naming.CONDITION_SWITCHOVER_REFUSED, "True", naming.REASON_SWITCHOVER_INVALID, message
        )
        await ctx.warn(naming.REASON_SWITCHOVER_INVALID, message)
        return
    if request is None:
        return
    kind, target = request
    timeline = _timeline(await client.cluster(), leader)
    candidate = naming.instance_pod(target) if target else None
    if kind == "Switchover" and target == current:
        message = f"instance {target} is already the primary"
    elif kind == "Failover":
        assert candidate is not None
        message = await pooling.primary_moves(ctx, lambda: client.failover(candidate))
    else:
        message = await pooling.primary_moves(ctx, lambda: client.switchover(leader, candidate))
    status["switchover"] = trigger
    ctx.memory.switchover_trigger = str(trigger)
    if timeline is not None:
        status["switchoverTimeline"] = timeline
    await ctx.recorder.event(ctx.raw, "Normal", kind, f"{kind} (trigger {trigger!r}): {message}")


def _timeline(cluster: JSON, leader: str) -> int | None:
    for member in cluster.get("members") or []:
        if member.get("name") == leader and member.get("timeline") is not None:
            return int(member["timeline"])
    return None


async def _standby(
    ctx: Context, client: PatroniClient | None, leader: JSON | None
) -> Result | None:
    """`StandbyReplaying` while the cluster is a standby; its promotion, once asked for."""
    previous = conditions.find(ctx.status.get("conditions") or [], naming.CONDITION_STANDBY)
    if not standby.enabled(ctx.spec):
        if previous is None:
            return None
        promoted = ctx.instances.writable_primary
        if promoted is None:
            ctx.set_condition(
                naming.CONDITION_STANDBY,
                "False",
                "Promoting",
                "spec.standby.enabled is false: Patroni promotes the standby leader",
            )
            return Result(requeue_after=MIN_INTERVAL)
        ctx.clear_condition(naming.CONDITION_STANDBY)
        name = promoted["metadata"]["name"]
        await ctx.recorder.event(
            ctx.raw,
            "Normal",
            "StandbyPromoted",
            f"The standby cluster was promoted: {name} is its primary and accepts writes",
        )
        return None
    now = time.monotonic()
    if now - ctx.memory.standby_observed < MIN_INTERVAL and previous is not None:
        return Result(requeue_after=POLL_SECONDS)
    ctx.memory.standby_observed = now
    source = standby.source(ctx.spec)
    if client is None or leader is None:
        state = (
            "False",
            "StandbyLeaderNotReady",
            f"No standby leader is ready yet ({source}); the instance pods' logs tell what it "
            "waits for",
        )
    else:
        name = leader["metadata"]["name"]
        member = await client.status()
        if member.get("role") == "standby_leader":
            state = ("True", "Replaying", standby.replay_message(name, member))
        else:
            state = (
                "False",
                "Demoting",
                f"{name} is still a primary: Patroni turns it into the standby leader ({source})",
            )
    unreachable = await _unreachable(ctx.spec.get("standby") or {})
    if unreachable:
        state = ("False", "StandbySourceUnreachable", f"{unreachable}; {state[2]}")
        if previous is None or previous.get("reason") != "StandbySourceUnreachable":
            await ctx.warn("StandbySourceUnreachable", unreachable)
    ctx.set_condition(naming.CONDITION_STANDBY, *state)
    return Result(requeue_after=POLL_SECONDS)


async def _unreachable(spec: Mapping[str, Any]) -> str | None:
    """Why `spec.standby.host` cannot be reached from the operator (a TCP connection), else
    None. Not an error of the spec: the other cluster may be down, which is what a standby is
    for; the condition makes it visible."""
    host = spec.get("host")
    if not host:
        return None
    port = int(spec.get("port") or 5432)
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout=5)
    except (OSError, TimeoutError) as error:
        return f"spec.standby.host {host}:{port} is not reachable from the operator: {error!r}"
    writer.close()
    return None
