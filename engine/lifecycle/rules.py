"""Which images a lifecycle policy acts on, and how: pure functions over image facts.

The order follows Image Builder's lifecycle execution: select the policy's images (recipes with
version selectors, or tags) newest first, leave out builds still running, evaluate the rules
deprecate -> disable -> delete, and give each image at most one action per run: the most severe
one that moves it forward (an image already DISABLED is never "deprecated"). Delete rules keep
the newest images of each recipe version (retainAtLeast, or the COUNT value); FAILED and
CANCELLED images never take a retention slot, nor do images spared by the exclusion tagMap.
AMI-level exclusions do not stop the image's action: the AMIs they match are SKIPPED.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from engine.resources import arns, versions

#: Actions by severity: a later one wins when several rules match the same image.
SEVERITY = {"DEPRECATE": 1, "DISABLE": 2, "DELETE": 3}
IN_PROGRESS = frozenset({"PENDING", "CREATING", "BUILDING", "TESTING", "DISTRIBUTING", "INTEGRATING"})
UNFINISHED = frozenset({"FAILED", "CANCELLED"})
#: The states each action may move an image from.
MOVES_FROM = {
    "DEPRECATE": frozenset({"AVAILABLE"}),
    "DISABLE": frozenset({"AVAILABLE", "DEPRECATED"}),
    "DELETE": frozenset({"AVAILABLE", "DEPRECATED", "DISABLED", "FAILED", "CANCELLED"}),
}
TYPE_FOR_POLICY = {"AMI_IMAGE": "AMI", "CONTAINER_IMAGE": "DOCKER"}


@dataclass(frozen=True)
class Ami:
    """One output AMI of a machine image, as exclusion rules see it."""

    image_id: str
    region: str
    account: str
    public: bool = False
    shared_with: frozenset[str] = frozenset()
    tags: Mapping[str, str] = field(default_factory=dict)
    last_launched: datetime | None = None  # nothing records launches on-prem yet: None


@dataclass(frozen=True)
class ImageFacts:
    arn: str
    name: str  # the recipe's name, normalized as in ARNs
    version: str  # semantic version of the recipe
    build: int
    created: datetime
    status: str
    image_type: str  # AMI or DOCKER
    tags: Mapping[str, str] = field(default_factory=dict)
    amis: tuple[Ami, ...] = ()


@dataclass(frozen=True)
class Decision:
    image_arn: str
    action: str  # DEPRECATE, DISABLE or DELETE
    reason: str
    #: The rule's includeResources (amis, snapshots, containers).
    include: Mapping[str, bool] = field(default_factory=dict)
    #: AMIs an exclusion rule keeps out of the action: (image id, why).
    skipped_amis: tuple[tuple[str, str], ...] = ()


def cutoff(now: datetime, value: int, unit: str) -> datetime:
    """The moment an image must be older than to pass an AGE filter of `value` `unit`s.
    Months and years are calendar months (the 31st minus one month is the 30th or the 28th)."""
    if unit == "DAYS":
        return now - timedelta(days=value)
    if unit == "WEEKS":
        return now - timedelta(weeks=value)
    months = value * (12 if unit == "YEARS" else 1)
    if unit not in ("MONTHS", "YEARS"):
        raise ValueError(f"unknown time unit {unit!r}")
    total = now.year * 12 + (now.month - 1) - months
    year, month = divmod(total, 12)
    day = min(now.day, calendar.monthrange(year, month + 1)[1])
    return now.replace(year=year, month=month + 1, day=day)


def _has_any_tag(tags: Mapping[str, str], wanted: Mapping[str, str] | None) -> bool:
    return bool(wanted) and any(tags.get(k) == v for k, v in (wanted or {}).items())


def selects(selection: Mapping[str, Any], image: ImageFacts) -> bool:
    """resourceSelection: a listed recipe (name and version selector), or any one of the tags."""
    for recipe in selection.get("recipes") or []:
        pattern = str(recipe["semanticVersion"])
        if arns.normalize_name(str(recipe["name"])) == image.name and (
            pattern == image.version or versions.matches(pattern, image.version)
        ):
            return True
    return _has_any_tag(image.tags, selection.get("tagMap"))


def select(policy: Mapping[str, Any], images: Iterable[ImageFacts]) -> list[ImageFacts]:
    """The policy's images, newest first; running builds and deleted images are left out."""
    wanted_type = TYPE_FOR_POLICY.get(str(policy.get("resourceType")), "")
    chosen = [
        i
        for i in images
        if i.image_type == wanted_type
        and i.status not in IN_PROGRESS
        and i.status != "DELETED"
        and selects(policy.get("resourceSelection") or {}, i)
    ]
    return sorted(chosen, key=lambda i: (i.created, versions.key(i.version), i.build), reverse=True)


def _age_text(value: int, unit: str) -> str:
    return f"{value} {unit.lower()[:-1]}{'s' if value != 1 else ''}"


def _state_rule_targets(rule: Mapping[str, Any], images: list[ImageFacts], now: datetime) -> dict[str, str]:
    """DEPRECATE and DISABLE: AGE, then the exclusion tagMap."""
    flt = rule["filter"]
    limit = cutoff(now, int(flt["value"]), str(flt["unit"]))
    excluded = (rule.get("exclusionRules") or {}).get("tagMap")
    return {
        i.arn: f"older than {_age_text(int(flt['value']), str(flt['unit']))}"
        for i in images
        if i.created < limit and not _has_any_tag(i.tags, excluded)
    }


def _delete_targets(rule: Mapping[str, Any], images: list[ImageFacts], now: datetime) -> dict[str, str]:
    """DELETE: per recipe version, newest first, the newest images are retained; the rest go
    when they pass the threshold (AGE) or simply (COUNT)."""
    flt = rule["filter"]
    excluded = (rule.get("exclusionRules") or {}).get("tagMap")
    by_age = flt["type"] == "AGE"
    keep = int(flt.get("retainAtLeast") or 0) if by_age else int(flt["value"])
    limit = cutoff(now, int(flt["value"]), str(flt["unit"])) if by_age else None
    groups: dict[tuple[str, str], list[ImageFacts]] = {}
    for image in images:  # already newest first
        groups.setdefault((image.name, image.version), []).append(image)
    targets: dict[str, str] = {}
    for group in groups.values():
        kept = 0
        for image in group:
            if _has_any_tag(image.tags, excluded):
                continue  # spared, and takes no retention slot
            old = limit is None or image.created < limit
            if image.status in UNFINISHED:
                if old:
                    targets[image.arn] = f"a {image.status} build (never retained)"
                continue
            if kept < keep:
                kept += 1
                continue
            if not old:
                continue
            if by_age:
                retained = f", beyond the newest {keep} retained" if keep else ""
                targets[image.arn] = f"older than {_age_text(int(flt['value']), str(flt['unit']))}{retained}"
            else:
                targets[image.arn] = f"beyond the newest {keep} of {image.name} {image.version}"
    return targets


def ami_exclusion(rules: Mapping[str, Any] | None, ami: Ami, now: datetime) -> str | None:
    """Why an exclusionRules.amis entry keeps this AMI out of the action, or None."""
    if not rules:
        return None
    if rules.get("isPublic") and ami.public:
        return "the AMI is public"
    if ami.region in (rules.get("regions") or []):
        return f"the AMI is in excluded region {ami.region}"
    shared = set(rules.get("sharedAccounts") or []) & (ami.shared_with | {ami.account})
    if shared:
        return f"the AMI is shared with excluded account {sorted(shared)[0]}"
    if _has_any_tag(ami.tags, rules.get("tagMap")):
        return "the AMI has an excluded tag"
    last = rules.get("lastLaunched")
    if (
        last
        and ami.last_launched is not None
        and ami.last_launched >= cutoff(now, int(last["value"]), str(last["unit"]))
    ):
        return f"the AMI was launched within the last {_age_text(int(last['value']), str(last['unit']))}"
    return None


def evaluate(policy: Mapping[str, Any], images: Iterable[ImageFacts], now: datetime) -> list[Decision]:
    """The actions one run of the policy takes, newest image first."""
    selected = select(policy, images)
    rules = sorted(policy.get("policyDetails") or [], key=lambda r: SEVERITY[r["action"]["type"]])
    chosen: dict[str, tuple[Mapping[str, Any], str]] = {}
    for rule in rules:  # deprecate -> disable -> delete: the most severe match is the one kept
        action = rule["action"]["type"]
        movable = [i for i in selected if i.status in MOVES_FROM[action]]
        found = _delete_targets(rule, movable, now) if action == "DELETE" else _state_rule_targets(rule, movable, now)
        for arn, reason in found.items():
            chosen[arn] = (rule, reason)
    decisions = []
    for image in selected:
        if image.arn not in chosen:
            continue
        rule, reason = chosen[image.arn]
        include = dict(rule["action"].get("includeResources") or {})
        amis_rules = (rule.get("exclusionRules") or {}).get("amis")
        skipped = tuple(
            (ami.image_id, why)
            for ami in image.amis
            if include.get("amis") and (why := ami_exclusion(amis_rules, ami, now)) is not None
        )
        decisions.append(Decision(image.arn, rule["action"]["type"], reason, include, skipped))
    return decisions
