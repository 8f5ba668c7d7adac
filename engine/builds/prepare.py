"""From a CreateImage request to an image record and the build workflow's input.

The input is one frozen snapshot: the recipe, configurations, resolved component versions and
workflow documents as they are now, so later edits never change a running build. Component
documents go to the blob store (by content) and travel as references.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from temporalio.api.common.v1 import Payload
from temporalio.converter import DataConverter

from engine.api import errors
from engine.api.errors import ApiError
from engine.builds.model import BuildInput, WorkflowRun
from engine.resources import arns
from engine.resources.common import lookup, lookup_plain
from engine.store import Record, Tx
from engine.workflow_docs import WorkflowDocumentError, parse_workflow
from engine.workflow_docs.managed import DEFAULTS, managed_workflow
from workers.blobstore import BlobStore, BlobStoreError
from workers.contracts import BuildContext, ComponentRef

EXECUTOR_FOR_TYPE = {"DOCKER": "docker", "AMI": "libvirt"}


@dataclass(frozen=True)
class Caller:
    """Who starts the build and where: what a handler's context or a CLI-started build knows."""

    account: str
    region: str
    tx: Tx
    blobs: BlobStore
    registry: str

    @property
    def accounts(self) -> list[str]:
        """Whose resources a build may use: the caller's and the managed ones."""
        return [self.account, arns.MANAGED_ACCOUNT]


def _resolve(caller: Caller, kind: str, arn_text: str) -> Record:
    return lookup(caller.tx, caller.region, caller.accounts, kind, arn_text)


def _plain(caller: Caller, kind: str, arn_text: str) -> Record:
    return lookup_plain(caller.tx, caller.region, caller.accounts, kind, arn_text)


def _components(caller: Caller, recipe: dict[str, Any]) -> tuple[ComponentRef, ...]:
    refs = []
    for entry in recipe.get("components") or []:
        rec = _resolve(caller, "component", entry["componentArn"])
        document = _put(caller.blobs, rec.body["data"])
        params = {p["name"]: list(p.get("value") or []) for p in entry.get("parameters") or []}
        phases = tuple(str(p) for p in rec.body.get("_phases") or ())
        refs.append(
            ComponentRef(arn=rec.arn, name=rec.body["name"], document=document, parameters=params, phases=phases)
        )
    return tuple(refs)


def _workflow_runs(caller: Caller, image_type: str, params: dict[str, Any]) -> list[WorkflowRun]:
    runs: list[WorkflowRun] = []
    attached = params.get("workflows") or []
    for conf in attached:
        rec = _resolve(caller, "workflow", conf["workflowArn"])
        wtype = rec.body["type"]
        try:
            doc = parse_workflow(rec.body["data"], wtype)
        except WorkflowDocumentError as exc:
            raise errors.invalid(f"workflow {rec.arn}: {exc}") from None
        values = {p["name"]: list(p.get("value") or []) for p in conf.get("parameters") or []}
        runs.append(WorkflowRun(rec.arn, wtype, doc, values, conf.get("parallelGroup"), conf.get("onFailure")))
    types = {r.type for r in runs}
    defaults = DEFAULTS[image_type]
    for wtype, name in defaults.items():
        if attached and wtype.value != "DISTRIBUTION":
            continue  # attached workflows replace the default build and test stages
        if wtype.value in types:
            continue
        managed = managed_workflow(name)
        runs.append(WorkflowRun(managed.arn(caller.region), wtype.value, managed.document()))
    order = {"BUILD": 0, "TEST": 1, "DISTRIBUTION": 2}
    return sorted(runs, key=lambda r: order[r.type])


def _parent_image(caller: Caller, parent: str, image_type: str) -> str:
    """A local reference as it is; an image ARN of ours becomes what it produced: the container
    image, or the disk of the machine image in the caller's region."""
    if not parent.startswith("arn:"):
        return parent
    rec = _resolve(caller, "image", parent)
    outputs = rec.body.get("outputResources") or {}
    if image_type == "AMI":
        amis = outputs.get("amis") or []
        for ami in sorted(amis, key=lambda a: a.get("region") != caller.region):
            if ami.get("_disk"):
                return str(ami["_disk"])
        raise errors.invalid(f"parent image {parent} has no machine image disk to build from")
    for container in outputs.get("containers") or []:
        for uri in container.get("imageUris") or []:
            return str(uri)
    local = rec.body.get("_localImage")
    if local:
        return str(local)
    raise errors.invalid(f"parent image {parent} has no output to build from (state {rec.body.get('state')})")


def resolved_dependencies(caller: Caller, params: dict[str, Any]) -> dict[str, str]:
    """What the request's references resolve to now, keyed by the reference as written: the
    recipe, an image ARN parent and each component (`x` wildcards pick the newest usable). Kept
    on the image record (``_resolved``); a pipeline builds on dependency updates only when this
    differs from its last build's."""
    ref = params.get("containerRecipeArn") or params.get("imageRecipeArn")
    kind = "container-recipe" if params.get("containerRecipeArn") else "image-recipe"
    recipe = _resolve(caller, kind, str(ref))
    resolved = {str(ref): recipe.arn}
    parent = str(recipe.body.get("parentImage") or "")
    if parent.startswith("arn:"):
        resolved[parent] = _resolve(caller, "image", parent).arn
    for entry in recipe.body.get("components") or []:
        resolved[entry["componentArn"]] = _resolve(caller, "component", entry["componentArn"]).arn
    return resolved


def prepare_build(
    caller: Caller, params: dict[str, Any], build_type: str = "USER_INITIATED"
) -> tuple[Record, BuildInput]:
    """Validate a CreateImage request, insert the image record (PENDING) and return it with
    the workflow input. Raises ApiError in the caller's terms."""
    image_recipe_arn, container_recipe_arn = params.get("imageRecipeArn"), params.get("containerRecipeArn")
    if (image_recipe_arn is None) == (container_recipe_arn is None):
        raise ApiError(
            "InvalidParameterCombinationException", "give exactly one of imageRecipeArn and containerRecipeArn"
        )
    if container_recipe_arn:
        recipe_rec, image_type = _resolve(caller, "container-recipe", container_recipe_arn), "DOCKER"
    else:
        recipe_rec, image_type = _resolve(caller, "image-recipe", str(image_recipe_arn)), "AMI"
    recipe = {k: v for k, v in recipe_rec.body.items() if not k.startswith("_")}
    infra = _plain(caller, "infrastructure-configuration", params["infrastructureConfigurationArn"]).body
    dist = None
    if params.get("distributionConfigurationArn"):
        dist = _plain(caller, "distribution-configuration", params["distributionConfigurationArn"]).body
    name, version = recipe["name"], recipe["version"]
    norm = arns.normalize_name(name)
    build_no = caller.tx.next_build("image", caller.account, norm, version)
    image_arn = arns.build(caller.region, caller.account, "image", name, version, build_no)
    platform = recipe.get("platform") or recipe.get("platformOverride") or "Linux"
    tests = params.get("imageTestsConfiguration") or {}
    scanning = params.get("imageScanningConfiguration") or {}
    body: dict[str, Any] = {
        "arn": image_arn,
        "type": image_type,
        "name": name,
        "version": f"{version}/{build_no}",
        "platform": platform,
        "state": {"status": "PENDING"},
        "imageRecipe" if image_type == "AMI" else "containerRecipe": recipe,
        "infrastructureConfiguration": {k: v for k, v in infra.items() if not k.startswith("_")},
        "distributionConfiguration": {k: v for k, v in dist.items() if not k.startswith("_")} if dist else None,
        "imageTestsConfiguration": {
            "imageTestsEnabled": tests.get("imageTestsEnabled", True),
            "timeoutMinutes": tests.get("timeoutMinutes", 720),
        },
        "imageScanningConfiguration": scanning or None,
        "enhancedImageMetadataEnabled": params.get("enhancedImageMetadataEnabled", True),
        "buildType": build_type,
        "imageSource": "CUSTOM",
        "workflows": params.get("workflows"),
        "executionRole": params.get("executionRole"),
        "loggingConfiguration": params.get("loggingConfiguration"),
        "tags": params.get("tags") or {},
        "sourcePipelineArn": params.get("_pipelineArn"),
        "_resolved": resolved_dependencies(caller, params),
    }
    executor = EXECUTOR_FOR_TYPE[image_type]
    context = BuildContext(
        image_arn=image_arn,
        image_name=name,
        version=version,
        build_number=build_no,
        image_type=image_type,
        platform=platform,
        executor=executor,
        recipe=recipe,
        infrastructure=body["infrastructureConfiguration"],
        distribution=body["distributionConfiguration"],
        components=_components(caller, recipe),
        parent_image=_parent_image(caller, str(recipe.get("parentImage", "")), image_type),
        log_prefix=f"logs/{norm}/{version}/{build_no}",
        registry=caller.registry,
    )
    runs = _workflow_runs(caller, image_type, params)
    system = {
        "imageType": image_type,
        "platform": platform,
        "imageName": name,
        "imageVersionNumber": version,
        "imageBuildNumber": build_no,
        "sourceImageARN": recipe.get("parentImage"),
        "collectImageMetadata": bool(params.get("enhancedImageMetadataEnabled", True)),
        "collectImageScanFindings": bool(scanning.get("imageScanningEnabled", False)),
        "instanceProfileName": infra.get("instanceProfileName"),
        "terminateInstanceOnFailure": bool(infra.get("terminateInstanceOnFailure", True)),
        "workingDirectory": recipe.get("workingDirectory") or "/tmp",
        "cloudWatchLogGroup": f"/aws/imagebuilder/{name}",
        "cloudWatchLogStream": f"{version}/{build_no}",
    }
    record = caller.tx.insert(
        Record(
            arn=image_arn,
            kind="image",
            account=caller.account,
            name=norm,
            version=version,
            build=build_no,
            parent=params.get("_pipelineArn"),
            body=body,
        )
    )
    build = BuildInput(
        context=context,
        workflows=tuple(runs),
        system=system,
        account=caller.account,
        tests_enabled=bool(tests.get("imageTestsEnabled", True)),
    )
    body["dateCreated"] = record.created
    body["_buildInput"] = store_build_input(caller.blobs, build)
    record = record.with_body(body)
    caller.tx.update(record)
    return record, build


def store_build_input(blobs: BlobStore, build: BuildInput) -> str:
    """The frozen input as Temporal's own JSON, so RetryImage reruns exactly this build even
    after its recipe, components or configurations changed or were deleted."""
    payload = DataConverter.default.payload_converter.to_payloads([build])[0]
    return _put(blobs, payload.data.decode(), suffix=".json")


def _put(blobs: BlobStore, text: str, suffix: str = ".yaml") -> str:
    """A document into the (maybe shared) store; a store the server cannot reach is the
    service's trouble, not the caller's: ServiceUnavailableException, with the reason."""
    try:
        return blobs.put_document(text, suffix)
    except BlobStoreError as exc:
        raise ApiError(
            "ServiceUnavailableException", f"the image store cannot take the build's documents: {exc}"
        ) from None


def load_build_input(blobs: BlobStore, ref: str) -> BuildInput:
    payload = Payload(metadata={"encoding": b"json/plain"}, data=blobs.read_text(ref).encode())
    build: BuildInput = DataConverter.default.payload_converter.from_payloads([payload], [BuildInput])[0]
    return build
