"""Builds started straight from Temporal, e.g. by the temporal CLI:

    temporal workflow start --task-queue imagebuilder-control --type StartImageBuild \
        --input '{"containerRecipeArn": "arn:...", "infrastructureConfigurationArn": "arn:..."}'

The workflow creates the image record itself (as CreateImage would) and runs the build as a
child workflow with the same id scheme, so the build shows up in the API like any other.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from temporalio import activity, workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from engine.api.errors import ApiError
    from engine.builds.model import BuildInput, BuildResult, workflow_id
    from engine.builds.prepare import Caller, prepare_build
    from engine.store import Store
    from workers.blobstore import BlobStore
    from workers.contracts import CONTROL_QUEUE


@dataclass(frozen=True)
class StartImageBuildRequest:
    """The members of CreateImage, spelled as the API spells them (so CLI JSON reads the same)."""

    infrastructureConfigurationArn: str
    containerRecipeArn: str | None = None
    imageRecipeArn: str | None = None
    distributionConfigurationArn: str | None = None
    imageTestsEnabled: bool = True


class CliStartActivities:
    def __init__(self, store: Store, blobs: BlobStore, region: str, account: str, registry: str) -> None:
        self.store, self.blobs = store, blobs
        self.region, self.account, self.registry = region, account, registry

    @activity.defn(name="CreateImageRecord")
    async def create_image_record(self, request: StartImageBuildRequest) -> BuildInput:
        return await asyncio.to_thread(self._create, request)

    def _create(self, request: StartImageBuildRequest) -> BuildInput:
        params: dict[str, Any] = {
            "infrastructureConfigurationArn": request.infrastructureConfigurationArn,
            "imageTestsConfiguration": {"imageTestsEnabled": request.imageTestsEnabled},
        }
        for key in ("containerRecipeArn", "imageRecipeArn", "distributionConfigurationArn"):
            if getattr(request, key):
                params[key] = getattr(request, key)
        try:
            with self.store.transaction(write=True) as tx:
                caller = Caller(self.account, self.region, tx, self.blobs, self.registry)
                _, build = prepare_build(caller, params)
        except ApiError as exc:
            raise ApplicationError(f"{exc.code}: {exc.message}", type=exc.code, non_retryable=True) from None
        return build

    def all(self) -> list[Any]:
        return [self.create_image_record]


@workflow.defn(name="StartImageBuild")
class StartImageBuildWorkflow:
    @workflow.run
    async def run(self, request: StartImageBuildRequest) -> BuildResult:
        from datetime import timedelta

        build: BuildInput = await workflow.execute_activity(
            "CreateImageRecord",
            request,
            start_to_close_timeout=timedelta(minutes=2),
            result_type=BuildInput,
        )
        result: BuildResult = await workflow.execute_child_workflow(
            "ImageBuild",
            build,
            id=workflow_id(build.context.image_arn),
            task_queue=CONTROL_QUEUE,
            result_type=BuildResult,
        )
        return result
