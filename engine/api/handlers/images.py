"""Images: the records builds produce (get, list, build versions, delete, policies, packages),
and the operations that start or steer builds on Temporal (CreateImage, CancelImageCreation,
SendWorkflowStepAction). Operations whose work arrives later validate everything they can and
then answer ServiceUnavailable, writing nothing.

An image record is kind "image", ARN image/NAME/VERSION/BUILD, parent = the pipeline ARN
when a pipeline built it; its body is shaped like the API's Image plus internal keys:
``_packages`` (ImagePackage entries) and ``_policy`` (the resource policy).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from engine.api import errors
from engine.api.context import RequestContext
from engine.api.errors import ApiError
from engine.api.handlers.executions import LIFECYCLE_EXECUTION, STEP_EXECUTION, WORKFLOW_EXECUTION
from engine.api.handlers.workflows import check_workflow_configurations
from engine.api.registry import operation
from engine.resources import arns, filters, paging, policies, versions
from engine.resources.common import get_plain, listed, public, readable, resolve, visible_accounts
from engine.store import Record

if TYPE_CHECKING:
    from engine.builds.model import BuildInput

KIND = "image"
#: States of an image whose build is still running.
IN_PROGRESS = frozenset({"PENDING", "CREATING", "BUILDING", "TESTING", "DISTRIBUTING", "INTEGRATING"})
NOT_YET = "builds run on Temporal, which arrives with the build orchestration (issue 4)"

#: Called (after the record is gone and the transaction committed) for each deleted image, to
#: remove what the build left outside the store: disk images, registry tags, logs.
ImageDeletionHook = Callable[[Record], None]
DELETION_HOOKS: list[ImageDeletionHook] = []


def not_yet(operation_name: str) -> ApiError:
    return ApiError("ServiceUnavailableException", f"{operation_name} is not available yet: {NOT_YET}")


def status_of(rec: Record) -> str | None:
    state = rec.body.get("state") or {}
    return state.get("status") if isinstance(state, dict) else None


def get_image(ctx: RequestContext, arn_text: str) -> Record:
    """An image by build ARN, version ARN (its newest build, whatever its state) or wildcard
    (the newest usable one)."""
    arn = arns.parse(arn_text, KIND)
    if arn.build is None and arn.version and not versions.is_wildcard(arn.version):
        found = [
            r
            for r in ctx.tx.find(KIND, accounts=[arn.account], name=arn.name, version=arn.version)
            if readable(r, visible_accounts(ctx))
        ]
        if not found or arn.region != ctx.region:
            raise errors.not_found(f"image {arn_text} does not exist")
        return found[-1]
    return resolve(ctx, KIND, arn_text)


def _own_image(ctx: RequestContext, arn_text: str) -> Record:
    rec = get_image(ctx, arn_text)
    if rec.account != ctx.account:
        raise ApiError("ForbiddenException", f"{rec.arn} is not owned by this account")
    return rec


@operation("GetImage")
def get_image_op(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    rec = get_image(ctx, params["imageBuildVersionArn"])
    image = {**public(rec.body), "arn": rec.arn, "dateCreated": rec.body.get("dateCreated") or rec.created}
    result: dict[str, Any] = {"image": image}
    if rec.version:
        from engine.api.handlers.workflows import latest_references

        result["latestVersionReferences"] = latest_references(arns.parse(rec.arn).version_arn(), rec.version)
    return result


_FILTERS: dict[str, filters.Getter] = {
    "name": lambda i: i.get("name"),
    "osVersion": lambda i: i.get("osVersion"),
    "platform": lambda i: i.get("platform"),
    "type": lambda i: i.get("type"),
    "version": lambda i: (i.get("version") or "").split("/")[0],
}


def summary(rec: Record) -> dict[str, Any]:
    """ImageSummary: one build version."""
    b = rec.body
    return {
        "arn": rec.arn,
        "name": b.get("name"),
        "type": b.get("type"),
        "version": b.get("version") or f"{rec.version}/{rec.build}",
        "platform": b.get("platform"),
        "osVersion": b.get("osVersion"),
        "state": b.get("state"),
        "owner": b.get("owner") or rec.account,
        "dateCreated": b.get("dateCreated") or rec.created,
        "outputResources": b.get("outputResources"),
        "tags": b.get("tags"),
        "buildType": b.get("buildType"),
        "imageSource": b.get("imageSource"),
        "deprecationTime": b.get("deprecationTime"),
        "lifecycleExecutionId": b.get("lifecycleExecutionId"),
        "loggingConfiguration": b.get("loggingConfiguration"),
    }


@operation("ListImages")
def list_images(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    owner = params.get("owner") or "Self"
    newest: dict[tuple[str, str, str], Record] = {}
    for rec in listed(ctx, KIND, owner):  # oldest first: the last build wins
        if status_of(rec) == "DELETED":
            continue
        # Deprecated managed images are hidden unless asked for; the caller's own always show.
        if rec.account != ctx.account and status_of(rec) == "DEPRECATED" and not params.get("includeDeprecated"):
            continue
        newest[(rec.account, rec.name, rec.version)] = rec
    entries = []
    for rec in newest.values():
        b = rec.body
        entries.append(
            {
                "arn": arns.parse(rec.arn).version_arn(),
                "name": b.get("name"),
                "type": b.get("type"),
                "version": rec.version,
                "platform": b.get("platform"),
                "osVersion": b.get("osVersion"),
                "owner": b.get("owner") or rec.account,
                "dateCreated": b.get("dateCreated") or rec.created,
                "buildType": b.get("buildType"),
                "imageSource": b.get("imageSource"),
            }
        )
    if params.get("byName"):
        by_name: dict[tuple[Any, Any], dict[str, Any]] = {}
        for e in entries:  # ordered by version, so the newest version of each name stays
            by_name[(e["owner"], e["name"])] = e
        entries = list(by_name.values())
    entries = filters.apply(entries, params.get("filters"), _FILTERS)
    chunk, token = paging.page(entries, params)
    return {"imageVersionList": chunk, "nextToken": token}


@operation("ListImageBuildVersions")
def list_image_build_versions(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    version_arn = params.get("imageVersionArn")
    if version_arn:
        arn = arns.parse(version_arn, KIND)
        records = [
            r
            for r in ctx.tx.find(KIND, accounts=[arn.account], name=arn.name)
            if readable(r, visible_accounts(ctx))
            and (r.version == arn.version or versions.matches(arn.version, r.version))
        ]
    else:
        records = ctx.tx.find(KIND, accounts=[ctx.account])
    summaries = filters.apply([summary(r) for r in records], params.get("filters"), _FILTERS)
    chunk, token = paging.page(summaries, params)
    return {"imageSummaryList": chunk, "nextToken": token}


def image_users(ctx: RequestContext, rec: Record) -> list[str]:
    """Recipes of this account whose parent image is this image build (by its build ARN, its
    version ARN or a wildcard matching it)."""
    users = []
    for kind in ("image-recipe", "container-recipe"):
        for recipe in ctx.tx.find(kind, accounts=[ctx.account]):
            ref = recipe.body.get("parentImage") or ""
            if not ref.startswith("arn:"):
                continue
            try:
                other = arns.parse(ref)
            except ApiError:
                continue
            if other.kind != KIND or other.name != rec.name or other.account != rec.account:
                continue
            if other.build is not None and other.build != rec.build:
                continue
            if other.version == rec.version or versions.matches(other.version, rec.version):
                users.append(recipe.arn)
    return users


@operation("DeleteImage")
def delete_image(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    rec = _own_image(ctx, params["imageBuildVersionArn"])
    if status_of(rec) in IN_PROGRESS:
        raise ApiError(
            "ResourceDependencyException",
            f"{rec.arn} is still being built ({status_of(rec)}); cancel it with CancelImageCreation first",
        )
    users = image_users(ctx, rec)
    if users:
        raise ApiError("ResourceDependencyException", f"{rec.arn} is the parent image of {', '.join(users[:5])}")
    # The build's own records go with it; lifecycle executions stay as the history of what ran.
    for execution in ctx.tx.find(WORKFLOW_EXECUTION, accounts=[ctx.account], parent=rec.arn):
        for step in ctx.tx.find(STEP_EXECUTION, accounts=[ctx.account], parent=execution.arn):
            ctx.tx.delete(step.arn)
        ctx.tx.delete(execution.arn)
    ctx.tx.delete(rec.arn)
    for hook in DELETION_HOOKS:
        ctx.after_commit.append(lambda hook=hook: hook(rec))
    return {"imageBuildVersionArn": rec.arn}


@operation("PutImagePolicy")
def put_image_policy(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    rec = _own_image(ctx, params["imageArn"])
    policies.put(ctx, rec, params["policy"])
    return {"imageArn": rec.arn}


@operation("GetImagePolicy")
def get_image_policy(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    return {"policy": policies.get(ctx, get_image(ctx, params["imageArn"]))}


@operation("ListImagePackages")
def list_image_packages(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    rec = get_image(ctx, params["imageBuildVersionArn"])
    # Written by the build's metadata collection (CollectImageMetadata) when it ran.
    packages = list(rec.body.get("_packages") or [])
    chunk, token = paging.page(packages, params)
    return {"imagePackageList": chunk, "nextToken": token}


# --- operations that run builds: validated now, carried out by the build orchestration ----------


def check_build_inputs(ctx: RequestContext, params: dict[str, Any]) -> None:
    """What CreateImage and image pipelines share: one recipe that resolves, an infrastructure
    configuration, an optional distribution configuration, and the attached workflows."""
    image_recipe, container_recipe = params.get("imageRecipeArn"), params.get("containerRecipeArn")
    if (image_recipe is None) == (container_recipe is None):
        raise ApiError(
            "InvalidParameterCombinationException", "give exactly one of imageRecipeArn and containerRecipeArn"
        )
    if image_recipe is not None:
        resolve(ctx, "image-recipe", image_recipe)
    else:
        resolve(ctx, "container-recipe", str(container_recipe))
    get_plain(ctx, "infrastructure-configuration", params["infrastructureConfigurationArn"])
    if params.get("distributionConfigurationArn"):
        get_plain(ctx, "distribution-configuration", params["distributionConfigurationArn"])
    scanning = params.get("imageScanningConfiguration") or {}
    if scanning.get("ecrConfiguration") and container_recipe is None:
        raise errors.invalid("imageScanningConfiguration.ecrConfiguration applies to container recipes only")
    check_workflow_configurations(ctx, params.get("workflows"), params.get("executionRole"))


def start_build(ctx: RequestContext, params: dict[str, Any], build_type: str = "USER_INITIATED") -> str:
    """Insert the image record and start its build once the record is committed.

    Shared by CreateImage and pipeline runs. If Temporal cannot take the build, the record is
    marked FAILED with the reason instead of staying PENDING forever.
    """
    from engine.builds.prepare import Caller, prepare_build

    check_build_inputs(ctx, params)
    services = ctx.services
    caller = Caller(ctx.account, ctx.region, ctx.tx, services.blobs, ctx.config.registry)
    record, build = prepare_build(caller, params, build_type)
    if not ctx.dry_run:
        start_after_commit(ctx, build)
    return record.arn


def start_after_commit(ctx: RequestContext, build: BuildInput, rerun: bool = False) -> None:
    """Start the workflow once the record is committed; if Temporal cannot take it, the record
    is marked FAILED with the reason instead of staying PENDING forever."""
    services, arn = ctx.services, build.context.image_arn

    def start() -> None:
        try:
            services.temporal.start_build(build, rerun=rerun)
        except ApiError as exc:
            with services.store.transaction(write=True) as tx:
                rec = tx.get(arn, KIND)
                if rec is not None:
                    body = {**rec.body, "state": {"status": "FAILED", "reason": exc.message}}
                    tx.update(rec.with_body(body))
            raise

    ctx.after_commit.append(start)


@operation("CreateImage")
def create_image(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    arn = start_build(ctx, params)
    return {"clientToken": params["clientToken"], "imageBuildVersionArn": arn}


@operation("CancelImageCreation")
def cancel_image_creation(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    rec = _own_image(ctx, params["imageBuildVersionArn"])
    if status_of(rec) not in IN_PROGRESS:
        raise ApiError(
            "ResourceInUseException", f"{rec.arn} is {status_of(rec)}; only a running build can be cancelled"
        )
    if not ctx.dry_run:
        services = ctx.services
        ctx.after_commit.append(lambda: services.temporal.cancel_build(rec.arn))
    return {"clientToken": params["clientToken"], "imageBuildVersionArn": rec.arn}


@operation("RetryImage")
def retry_image(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    """Rerun a FAILED or CANCELLED build in place: same image ARN, same frozen input.

    The input the build started with (``_buildInput``, in the blob store) runs again as a new
    run of the same workflow id, so later edits or deletions of its recipe, components and
    configurations change nothing. The earlier workflow executions stay, marked ``retried``.
    The whole build reruns from its first stage, container images included: a failed or
    cancelled build removes everything it made (containers, intermediate images), so there is
    no partial result to resume from, and a rerun from scratch is what a user would get anyway.
    """
    rec = _own_image(ctx, params["imageBuildVersionArn"])
    if status_of(rec) not in ("FAILED", "CANCELLED"):
        raise ApiError(
            "ResourceInUseException", f"{rec.arn} is {status_of(rec)}; only FAILED or CANCELLED images retry"
        )
    ref = rec.body.get("_buildInput")
    if not ref:
        raise errors.invalid(f"{rec.arn} was built before builds kept their input; create a new image instead")
    from engine.builds.prepare import load_build_input

    try:
        build = load_build_input(ctx.services.blobs, str(ref))
    except (OSError, ValueError) as exc:
        raise errors.invalid(f"the build input of {rec.arn} cannot be read: {exc}") from None
    if ctx.dry_run:
        return {"clientToken": params["clientToken"], "imageBuildVersionArn": rec.arn}
    for execution in ctx.tx.find(WORKFLOW_EXECUTION, accounts=[ctx.account], parent=rec.arn):
        if not execution.body.get("retried"):
            ctx.tx.update(execution.with_body({**execution.body, "retried": True}))
    body = {k: v for k, v in rec.body.items() if k not in ("outputResources", "buildExecutionEnded")}
    ctx.tx.update(rec.with_body({**body, "state": {"status": "PENDING"}}))
    start_after_commit(ctx, build, rerun=True)
    return {"clientToken": params["clientToken"], "imageBuildVersionArn": rec.arn}


@operation("DistributeImage")
def distribute_image(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    source = params["sourceImage"]
    if source.startswith("arn:"):
        get_image(ctx, source)
    get_plain(ctx, "distribution-configuration", params["distributionConfigurationArn"])
    raise not_yet("DistributeImage")


@operation("SendWorkflowStepAction")
def send_workflow_step_action(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    step = ctx.tx.get(params["stepExecutionId"], STEP_EXECUTION)
    if step is None or step.account != ctx.account:
        raise errors.not_found(f"workflow step execution {params['stepExecutionId']} does not exist")
    if step.body.get("imageBuildVersionArn") != params["imageBuildVersionArn"]:
        raise errors.bad_parameter(
            f"step {step.name} belongs to {step.body.get('imageBuildVersionArn')}, not {params['imageBuildVersionArn']}"
        )
    if not step.body.get("_waiting"):
        raise ApiError("ResourceInUseException", f"step {step.name} is not waiting for an action")
    from engine.builds.model import StepActionSignal

    signal = StepActionSignal(step.name, params["action"], params.get("reason") or "")
    if not ctx.dry_run:
        services, image_arn = ctx.services, params["imageBuildVersionArn"]
        ctx.after_commit.append(lambda: services.temporal.send_step_action(image_arn, signal))
    return {
        "stepExecutionId": step.name,
        "imageBuildVersionArn": params["imageBuildVersionArn"],
        "clientToken": params["clientToken"],
    }


@operation("StartResourceStateUpdate")
def start_resource_state_update(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    rec = _own_image(ctx, params["resourceArn"])
    current, wanted = status_of(rec), params["state"].get("status")
    if current in IN_PROGRESS:
        raise ApiError("ResourceInUseException", f"{rec.arn} is still being built ({current})")
    if current in ("FAILED", "CANCELLED") and wanted != "DELETED":
        raise errors.invalid(f"{rec.arn} is {current}; it can only be set to DELETED")
    if rec.body.get("type") == "DOCKER" and wanted != "DELETED":
        raise errors.invalid(f"{rec.arn} is a container image; it can only be set to DELETED")
    if (params.get("executionRole") is None) != (params.get("includeResources") is None):
        raise errors.invalid("executionRole and includeResources go together")
    if wanted == "DELETED" and params.get("includeResources") is None:
        raise errors.invalid("setting an image to DELETED needs includeResources; DeleteImage removes only the record")
    if params.get("updateAt") is not None and wanted != "DEPRECATED":
        raise errors.invalid("updateAt applies to the DEPRECATED state only")
    from engine.api.handlers.lifecycle import start_state_update

    return start_state_update(ctx, rec, params)


@operation("CancelLifecycleExecution")
def cancel_lifecycle_execution(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    rec = ctx.tx.get(params["lifecycleExecutionId"], LIFECYCLE_EXECUTION)
    if rec is None or rec.account != ctx.account:
        raise errors.not_found(f"lifecycle execution {params['lifecycleExecutionId']} does not exist")
    status = (rec.body.get("state") or {}).get("status")
    if status not in ("IN_PROGRESS", "PENDING"):
        raise ApiError("ResourceInUseException", f"lifecycle execution {rec.name} is {status}; nothing to cancel")
    from engine.api.handlers.lifecycle import cancel_execution

    return cancel_execution(ctx, rec, params)
