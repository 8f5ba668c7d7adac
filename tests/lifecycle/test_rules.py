"""Rule evaluation over a set of images with various ages, counts, states and tags."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from engine.lifecycle.rules import Ami, ImageFacts, ami_exclusion, cutoff, evaluate, select

NOW = datetime(2025, 3, 31, 12, 0, tzinfo=UTC)
ARN = "arn:aws:imagebuilder:us-east-1:123456789012:image"


def image(
    build: int,
    days: float,
    status: str = "AVAILABLE",
    name: str = "base",
    version: str = "1.0.0",
    tags: dict[str, str] | None = None,
    image_type: str = "AMI",
    amis: tuple[Ami, ...] = (),
) -> ImageFacts:
    return ImageFacts(
        arn=f"{ARN}/{name}/{version}/{build}",
        name=name,
        version=version,
        build=build,
        created=NOW - timedelta(days=days),
        status=status,
        image_type=image_type,
        tags=tags or {},
        amis=amis,
    )


def rule(action: str, ftype: str, value: int, unit: str | None = None, **extra: Any) -> dict[str, Any]:
    flt: dict[str, Any] = {"type": ftype, "value": value}
    if unit:
        flt["unit"] = unit
    if "retain" in extra:
        flt["retainAtLeast"] = extra.pop("retain")
    out: dict[str, Any] = {"action": {"type": action, "includeResources": extra.pop("include", {"amis": True})}}
    out["filter"] = flt
    if extra:
        out["exclusionRules"] = extra
    return out


def policy(*rules: dict[str, Any], resource_type: str = "AMI_IMAGE", **selection: Any) -> dict[str, Any]:
    return {
        "resourceType": resource_type,
        "policyDetails": list(rules),
        "resourceSelection": selection or {"recipes": [{"name": "base", "semanticVersion": "1.x.x"}]},
    }


def actions(decisions: list[Any]) -> dict[int, str]:
    return {int(d.image_arn.rsplit("/", 1)[1]): d.action for d in decisions}


def test_cutoff_units() -> None:
    assert cutoff(NOW, 3, "DAYS") == NOW - timedelta(days=3)
    assert cutoff(NOW, 2, "WEEKS") == NOW - timedelta(days=14)
    # Calendar months: March 31st minus one month is the last day of February.
    assert cutoff(NOW, 1, "MONTHS") == datetime(2025, 2, 28, 12, 0, tzinfo=UTC)
    assert cutoff(NOW, 13, "MONTHS") == datetime(2024, 2, 29, 12, 0, tzinfo=UTC)
    assert cutoff(NOW, 2, "YEARS") == datetime(2023, 3, 31, 12, 0, tzinfo=UTC)


def test_deprecate_disable_delete_most_severe_wins() -> None:
    images = [
        image(1, 1),
        image(2, 10),
        image(3, 40),
        image(4, 100),
        image(5, 200),
        image(6, 120, tags={"keep": "yes"}),
        image(7, 100, status="FAILED"),
        image(8, 0.1, status="BUILDING"),
    ]
    got = evaluate(
        policy(
            rule("DEPRECATE", "AGE", 7, "DAYS", tagMap={"keep": "yes"}),
            rule("DISABLE", "AGE", 30, "DAYS", tagMap={"keep": "yes"}),
            rule("DELETE", "AGE", 90, "DAYS", retain=1, tagMap={"keep": "yes"}),
        ),
        images,
        NOW,
    )
    # 1 is young; 6 is tagged to keep; 8 is still building; a FAILED build never counts as retained.
    assert actions(got) == {2: "DEPRECATE", 3: "DISABLE", 4: "DELETE", 5: "DELETE", 7: "DELETE"}
    # Newest first; on equal creation times the higher build first.
    assert [d.image_arn.rsplit("/", 1)[1] for d in got] == ["2", "3", "7", "4", "5"]
    by_build = {int(d.image_arn.rsplit("/", 1)[1]): d for d in got}
    assert by_build[2].reason == "older than 7 days"
    assert by_build[7].reason == "a FAILED build (never retained)"
    assert by_build[4].include == {"amis": True}


def test_actions_only_move_images_forward() -> None:
    images = [image(1, 50, status="DISABLED"), image(2, 50, status="DEPRECATED"), image(3, 50)]
    got = evaluate(policy(rule("DEPRECATE", "AGE", 7, "DAYS")), images, NOW)
    assert actions(got) == {3: "DEPRECATE"}
    got = evaluate(policy(rule("DEPRECATE", "AGE", 7, "DAYS"), rule("DISABLE", "AGE", 30, "DAYS")), images, NOW)
    assert actions(got) == {2: "DISABLE", 3: "DISABLE"}


def test_retain_at_least_keeps_the_newest_even_when_old() -> None:
    images = [image(b, 100 + b) for b in range(1, 5)]
    got = evaluate(policy(rule("DELETE", "AGE", 30, "DAYS", retain=2)), images, NOW)
    assert actions(got) == {3: "DELETE", 4: "DELETE"}
    assert "beyond the newest 2 retained" in got[0].reason


def test_count_keeps_n_per_recipe_version_and_tagged_images_take_no_slot() -> None:
    images = [
        image(1, 5),
        image(2, 4, tags={"pin": "true"}),
        image(3, 3),
        image(4, 2, status="CANCELLED"),
        image(5, 1),
        image(1, 9, version="1.1.0"),
        image(2, 8, version="1.1.0"),
    ]
    got = evaluate(policy(rule("DELETE", "COUNT", 2, tagMap={"pin": "true"})), images, NOW)
    # 1.0.0 keeps 5 and 3 (2 is pinned and takes no slot, 4 was cancelled); 1.1.0 keeps both.
    assert {d.image_arn.split(":image/")[1] for d in got} == {"base/1.0.0/1", "base/1.0.0/4"}
    assert all(d.action == "DELETE" for d in got)


def test_selection_by_recipe_version_by_tag_and_type() -> None:
    images = [
        image(1, 50, version="1.2.0"),
        image(1, 50, version="2.0.0"),
        image(1, 50, name="other", tags={"team": "web"}),
        image(1, 50, name="web", image_type="DOCKER", tags={"team": "web"}),
        image(2, 50, status="DELETED"),
    ]
    chosen = select(policy(rule("DEPRECATE", "AGE", 1, "DAYS")), images)
    assert [i.version for i in chosen] == ["1.2.0"]
    exact = policy(rule("DEPRECATE", "AGE", 1, "DAYS"), recipes=[{"name": "Base", "semanticVersion": "2.0.0"}])
    assert [i.version for i in select(exact, images)] == ["2.0.0"]
    by_tag = policy(rule("DELETE", "AGE", 1, "DAYS"), tagMap={"team": "web", "x": "y"})
    assert [i.name for i in select(by_tag, images)] == ["other"]
    containers = policy(rule("DELETE", "COUNT", 1), resource_type="CONTAINER_IMAGE", tagMap={"team": "web"})
    assert [i.name for i in select(containers, images)] == ["web"]


def test_ami_exclusions_skip_amis_not_the_image() -> None:
    amis = (
        Ami("ami-public", "us-east-1", "123456789012", public=True),
        Ami("ami-west", "us-west-2", "123456789012"),
        Ami("ami-shared", "us-east-1", "123456789012", shared_with=frozenset({"210987654321"})),
        Ami("ami-tagged", "eu-west-1", "123456789012", tags={"golden": "1"}),
        Ami("ami-launched", "eu-west-1", "123456789012", last_launched=NOW - timedelta(days=2)),
        Ami("ami-plain", "eu-west-1", "123456789012"),
        Ami("ami-never-launched", "eu-central-1", "123456789012"),
    )
    exclusions = {
        "isPublic": True,
        "regions": ["us-west-2"],
        "sharedAccounts": ["210987654321"],
        "tagMap": {"golden": "1"},
        "lastLaunched": {"value": 7, "unit": "DAYS"},
    }
    got = evaluate(policy(rule("DELETE", "AGE", 10, "DAYS", amis=exclusions)), [image(1, 30, amis=amis)], NOW)
    assert actions(got) == {1: "DELETE"}
    skipped = dict(got[0].skipped_amis)
    assert set(skipped) == {"ami-public", "ami-west", "ami-shared", "ami-tagged", "ami-launched"}
    assert skipped["ami-west"] == "the AMI is in excluded region us-west-2"
    assert skipped["ami-launched"] == "the AMI was launched within the last 7 days"
    assert ami_exclusion(None, amis[0], NOW) is None
    # Without includeResources.amis the AMIs are not touched, so none is reported skipped.
    got = evaluate(
        policy(rule("DELETE", "AGE", 10, "DAYS", include={}, amis=exclusions)), [image(1, 30, amis=amis)], NOW
    )
    assert got[0].skipped_amis == ()


@pytest.mark.parametrize(("days", "expected"), [(6.9, {}), (7.1, {1: "DELETE"})])
def test_age_threshold_is_strict(days: float, expected: dict[int, str]) -> None:
    assert actions(evaluate(policy(rule("DELETE", "AGE", 1, "WEEKS")), [image(1, days)], NOW)) == expected
