"""ImportVmImage and ImportDiskImage as builds: the image record (PENDING, buildType IMPORT) and
a build input whose one BUILD step, ImportDisk, converts the named disk on a libvirt worker.

The step is made here rather than parsed from a managed workflow document: ImportDisk is not an
action users may put in their own workflows.
"""

from __future__ import annotations

from typing import Any

from engine.builds.model import BuildInput, WorkflowRun
from engine.builds.prepare import Caller
from engine.resources import arns
from engine.store import Record
from engine.workflow_docs import Step, WorkflowDocument
from workers.contracts import BuildContext

IMPORT_TIMEOUT_SECONDS = 3600


def _document() -> WorkflowDocument:
    step = Step(
        name="ImportDisk",
        action="ImportDisk",
        description="Convert the named disk into the image store as this image's disk.",
        inputs={"source.$": "$.imagebuilder.importSource"},
        timeout_seconds=IMPORT_TIMEOUT_SECONDS,
    )
    return WorkflowDocument("import-disk", "Imports a disk file as a machine image.", "1.0", (), (step,))


def prepare_import(caller: Caller, params: dict[str, Any], source: str, operation: str) -> tuple[Record, BuildInput]:
    name, version = params["name"], params["semanticVersion"]
    norm = arns.normalize_name(name)
    build_no = caller.tx.next_build("image", caller.account, norm, version)
    image_arn = arns.build(caller.region, caller.account, "image", name, version, build_no)
    platform = params["platform"]
    body: dict[str, Any] = {
        "arn": image_arn,
        "type": "AMI",
        "name": name,
        "version": f"{version}/{build_no}",
        "platform": platform,
        "osVersion": params.get("osVersion"),
        "description": params.get("description"),
        "state": {"status": "PENDING"},
        "buildType": "IMPORT",
        "imageSource": "IMPORTED",
        "infrastructureConfiguration": None,
        "loggingConfiguration": params.get("loggingConfiguration"),
        "tags": params.get("tags") or {},
        "_importSource": source,
    }
    record = caller.tx.insert(
        Record(
            arn=image_arn, kind="image", account=caller.account, name=norm, version=version, build=build_no, body=body
        )
    )
    record = record.with_body({**body, "dateCreated": record.created})
    caller.tx.update(record)
    context = BuildContext(
        image_arn=image_arn,
        image_name=name,
        version=version,
        build_number=build_no,
        image_type="AMI",
        platform=platform,
        executor="libvirt",
        recipe={},
        infrastructure={},
        distribution=None,
        components=(),
        parent_image="",
        log_prefix=f"logs/{norm}/{version}/{build_no}",
        registry=caller.registry,
    )
    workflow_arn = f"arn:aws:imagebuilder:{caller.region}:aws:workflow/build/import-disk/1.0.0/1"
    run = WorkflowRun(workflow_arn, "BUILD", _document())
    system = {"imageType": "AMI", "platform": platform, "imageName": name, "imageVersionNumber": version,
              "imageBuildNumber": build_no, "importSource": source, "importOperation": operation}  # fmt: skip
    return record, BuildInput(context, (run,), system, caller.account, tests_enabled=False)
