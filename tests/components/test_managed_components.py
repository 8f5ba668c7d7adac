"""The built-in managed component documents parse, validate and have the phases they promise."""

from __future__ import annotations

import pytest
import yaml

from components.document import load_document
from components.managed import managed_component, managed_components

EXPECTED_PHASES = {
    "hello-world-linux": ["build", "validate", "test"],
    "reboot-linux": ["build"],
    "update-linux": ["build", "validate"],
    "simple-boot-test-linux": ["test"],
    "cis-hardening-baseline-linux": ["build", "validate", "test"],
}


def test_listing() -> None:
    listed = {c.name: c for c in managed_components()}
    assert set(listed) == set(EXPECTED_PHASES)
    for component in listed.values():
        assert component.version == "1.0.0"
        assert component.platform == "Linux"
        assert component.owner == "Amazon"
        assert component.description
        assert component.data().startswith("name: ")
    assert managed_component("update-linux") is listed["update-linux"]
    assert managed_component("nope") is None


@pytest.mark.parametrize("name", sorted(EXPECTED_PHASES))
def test_document(name: str) -> None:
    component = managed_component(name)
    assert component is not None
    raw = yaml.safe_load(component.data())
    assert raw["name"] == name
    assert [p["name"] for p in raw["phases"]] == EXPECTED_PHASES[name]
    doc = load_document(component.path)  # full validation: structure, action schemas, references
    assert [p.name for p in doc.phases] == EXPECTED_PHASES[name]


def test_cis_baseline_checks_what_it_sets() -> None:
    component = managed_component("cis-hardening-baseline-linux")
    assert component is not None
    raw = yaml.safe_load(component.data())
    actions = {p["name"]: [s["action"] for s in p["steps"]] for p in raw["phases"]}
    assert "Assert" in actions["validate"]
    text = component.data()
    for setting in (
        "net.ipv4.conf.all.send_redirects = 0",
        "/etc/shadow",
        "install cramfs /bin/false",
        "X11Forwarding no",
    ):
        assert setting in text
