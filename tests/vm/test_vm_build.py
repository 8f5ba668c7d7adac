"""A machine image built end to end through the API on real QEMU guests (TCG here).

One build carries most of the checks, because every boot costs a minute or two under TCG: a
component that reboots the guest in the middle of its build phase, the test stage on a fresh
instance of the captured disk, the package inventory, three distribution targets exporting
VMDK, RAW and VHD, and afterwards no domain, QEMU process or workspace left. Then one exported
disk is booted, and ImportVmImage turns another into a parent image.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from typing import Any

import pytest

from tests.vm.conftest import VmStack

pytestmark = [pytest.mark.vm, pytest.mark.timeout(2400)]

REBOOTING_COMPONENT = """name: reboot-in-the-middle
schemaVersion: 1.0
phases:
  - name: build
    steps:
      - name: Before
        action: ExecuteBash
        inputs:
          commands:
            - mkdir -p /opt/built
            - cat /proc/sys/kernel/random/boot_id > /opt/built/first-boot
      - name: RebootNow
        action: Reboot
      - name: After
        action: ExecuteBash
        inputs:
          commands:
            # A different boot id: the guest really restarted between the steps.
            - test "$(cat /proc/sys/kernel/random/boot_id)" != "$(cat /opt/built/first-boot)"
            - echo golden > /opt/built/marker
  - name: test
    steps:
      - name: MarkerIsThere
        action: ExecuteBash
        inputs:
          commands:
            - grep -qx golden /opt/built/marker
            - grep -Eqx '[0-9a-f]{32}' /etc/machine-id
"""

CHECK_MARKER = """name: check-marker
schemaVersion: 1.0
phases:
  - name: build
    steps:
      - name: MarkerIsThere
        action: ExecuteBash
        inputs:
          commands:
            - grep -qx golden /opt/built/marker
"""

EXPORTS = {"us-east-1": "VMDK", "us-west-2": "RAW", "eu-west-1": "VHD"}
QEMU_FORMAT = {"VMDK": "vmdk", "RAW": "raw", "VHD": "vpc"}


@pytest.fixture(scope="module")
def built(vm_stack: VmStack) -> dict[str, Any]:
    ib = vm_stack.client()
    suffix = uuid.uuid4().hex[:6]
    component = ib.create_component(
        name=f"reboot-{suffix}", semanticVersion="1.0.0", platform="Linux", data=REBOOTING_COMPONENT,
        clientToken=str(uuid.uuid4()),
    )["componentBuildVersionArn"]  # fmt: skip
    recipe = ib.create_image_recipe(
        name=f"golden-{suffix}",
        semanticVersion="1.0.0",
        parentImage="arn:aws:imagebuilder:us-east-1:aws:image/debian-12/x.x.x",
        components=[{"componentArn": component}],
        clientToken=str(uuid.uuid4()),
    )["imageRecipeArn"]
    infra = ib.create_infrastructure_configuration(
        name=f"vm-{suffix}", instanceProfileName="default", instanceTypes=["t3.small"],
        clientToken=str(uuid.uuid4()),
    )["infrastructureConfigurationArn"]  # fmt: skip
    dist = ib.create_distribution_configuration(
        name=f"exports-{suffix}",
        distributions=[
            {
                "region": region,
                "amiDistributionConfiguration": {"name": f"golden-{region}-{{{{ imagebuilder:buildDate }}}}"},
                "s3ExportConfiguration": {
                    "roleName": "vmimport",
                    "diskImageFormat": fmt,
                    "s3Bucket": "golden",
                    "s3Prefix": f"{region}/",
                },
            }
            for region, fmt in EXPORTS.items()
        ],
        clientToken=str(uuid.uuid4()),
    )["distributionConfigurationArn"]
    arn = ib.create_image(
        imageRecipeArn=recipe,
        infrastructureConfigurationArn=infra,
        distributionConfigurationArn=dist,
        clientToken=str(uuid.uuid4()),
    )["imageBuildVersionArn"]
    image = vm_stack.wait_image(arn, {"AVAILABLE", "FAILED", "CANCELLED"})
    return {"arn": arn, "image": image, "component": component}


def test_the_build_succeeds_with_a_reboot_and_a_test_stage(vm_stack: VmStack, built: dict[str, Any]) -> None:
    image = built["image"]
    assert image["state"]["status"] == "AVAILABLE", str(image["state"])
    assert image["type"] == "AMI"
    ib = vm_stack.client()
    executions = ib.list_workflow_executions(imageBuildVersionArn=built["arn"])["workflowExecutions"]
    assert {e["type"] for e in executions} == {"BUILD", "TEST", "DISTRIBUTION"}
    assert all(e["status"] == "COMPLETED" for e in executions)
    test_run = next(e for e in executions if e["type"] == "TEST")
    steps = ib.list_workflow_step_executions(workflowExecutionId=test_run["workflowExecutionId"])["steps"]
    assert {s["name"]: s["status"] for s in steps}["ApplyTestComponents"] == "COMPLETED"
    # The build left /boot alone, so the test instance booted the captured disk as directly as
    # the build instance booted the parent.
    for execution in executions:
        if execution["type"] in ("BUILD", "TEST"):
            assert "booted directly" in launch_message(ib, execution["workflowExecutionId"])


def launch_message(ib: Any, workflow_execution_id: str) -> str:
    steps = ib.list_workflow_step_executions(workflowExecutionId=workflow_execution_id)["steps"]
    return str(next(s for s in steps if s["action"] == "LaunchInstance").get("message", ""))


def test_every_distribution_target_has_its_ami(built: dict[str, Any]) -> None:
    amis = built["image"]["outputResources"]["amis"]
    assert sorted(a["region"] for a in amis) == sorted(EXPORTS)
    for ami in amis:
        assert ami["image"].startswith("ami-") and len(ami["image"]) == 21
        assert ami["name"].startswith(f"golden-{ami['region']}-") and "imagebuilder" not in ami["name"]
    assert len({a["image"] for a in amis}) == 3


def test_exports_are_what_other_hypervisors_import(vm_stack: VmStack, built: dict[str, Any]) -> None:
    for ami in built["image"]["outputResources"]["amis"]:
        fmt = EXPORTS[ami["region"]]
        path = vm_stack.data_dir / "exports" / "golden" / ami["region"] / f"{ami['image']}.{fmt.lower()}"
        # -f: a fixed VHD has only a footer, so qemu-img's probe would call it raw.
        info = json.loads(subprocess.run(
            ["qemu-img", "info", "-f", QEMU_FORMAT[fmt], "--output=json", str(path)],
            check=True, capture_output=True, text=True,
        ).stdout)  # fmt: skip
        assert info["format"] == QEMU_FORMAT[fmt]
        assert info["virtual-size"] >= 4 << 30
        if fmt == "VMDK":
            assert info["format-specific"]["data"]["create-type"] == "streamOptimized"
        if fmt == "RAW":
            assert path.stat().st_size == info["virtual-size"]
        if fmt == "VHD":
            assert path.stat().st_size == info["virtual-size"] + 512  # fixed: the whole disk and a footer


def test_the_package_inventory_is_listed(vm_stack: VmStack, built: dict[str, Any]) -> None:
    ib = vm_stack.client()
    names = set()
    for page in ib.get_paginator("list_image_packages").paginate(imageBuildVersionArn=built["arn"]):
        names |= {p["packageName"] for p in page["imagePackageList"]}
    assert {"openssh-server", "cloud-init", "systemd"} <= names


def test_nothing_is_left_running(vm_stack: VmStack, built: dict[str, Any]) -> None:
    assert vm_stack.leftovers() == []


def test_an_exported_disk_boots(vm_stack: VmStack, built: dict[str, Any]) -> None:
    """The VMDK, booted as a new build's parent through ImportVmImage + a recipe on it."""
    ami = next(a for a in built["image"]["outputResources"]["amis"] if a["region"] == "us-east-1")
    ib = vm_stack.client()
    # The export's own URI: a bucket is a folder of the export directory when no S3 endpoint is set.
    imported = ib.import_vm_image(
        name="imported-golden", semanticVersion="1.0.0", platform="Linux",
        vmImportTaskId=f"s3://golden/us-east-1/{ami['image']}.vmdk", clientToken=str(uuid.uuid4()),
    )["imageArn"]  # fmt: skip
    image = vm_stack.wait_image(imported, {"AVAILABLE", "FAILED"}, timeout=300)
    assert image["state"]["status"] == "AVAILABLE", image["state"]
    assert image["buildType"] == "IMPORT"
    # Booting it: a build on the imported image finds what the first build put there.
    marker = ib.create_component(
        name=f"check-{uuid.uuid4().hex[:6]}", semanticVersion="1.0.0", platform="Linux", data=CHECK_MARKER,
        clientToken=str(uuid.uuid4()),
    )["componentBuildVersionArn"]  # fmt: skip
    recipe = ib.create_image_recipe(
        name=f"on-imported-{uuid.uuid4().hex[:6]}",
        semanticVersion="1.0.0",
        parentImage=imported,
        components=[{"componentArn": marker}],
        clientToken=str(uuid.uuid4()),
    )["imageRecipeArn"]
    infra = ib.list_infrastructure_configurations()["infrastructureConfigurationSummaryList"][0]["arn"]
    arn = ib.create_image(
        imageRecipeArn=recipe,
        infrastructureConfigurationArn=infra,
        imageTestsConfiguration={"imageTestsEnabled": False},
        clientToken=str(uuid.uuid4()),
    )["imageBuildVersionArn"]
    rebuilt = vm_stack.wait_image(arn, {"AVAILABLE", "FAILED", "CANCELLED"})
    assert rebuilt["state"]["status"] == "AVAILABLE", rebuilt["state"]
    # As on a cloud: the exported disk booted through its own loader and cloud-init configured it
    # from the NoCloud seed (the image ships with cloud-init on).
    build_run = ib.list_workflow_executions(imageBuildVersionArn=arn)["workflowExecutions"][0]
    assert "booted by its own loader, cloud-init done" in launch_message(ib, build_run["workflowExecutionId"])
    assert vm_stack.leftovers() == []
