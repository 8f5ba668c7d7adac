"""The Docker executor: container recipes built, tested and pushed on this host's Docker engine.

An instance is a workspace on this host (docker_workspace.py), not a VM: the engine is already
here, so "launch" makes a folder and "bootstrap" checks the engine answers. ExecuteComponents
in the build stage builds the image in four stages (docker_build.py):

1. `docker build` of the rendered template up to ``{{{ imagebuilder:components }}}``;
2. a container of that image (kept alive by an overridden entrypoint) runs each component's
   build and validate phases through the component engine (DockerTarget), in recipe order;
3. `docker commit` of that container with the stage-1 image config restored;
4. `docker build` of ``FROM <commit>`` plus the template's remainder.

Two shortcuts skip a `docker build` where it would only cost time (each build step is a
container and a commit of its own): a stage 1 that is only FROM + absolute WORKDIRs (what the
default template renders to) starts the components container from the parent image with that
working directory, and a remainder of config-only instructions (ENV, CMD, LABEL, ...) is applied
by the commit itself (`--change`, the engine's own Dockerfile dispatcher).

Running the components through our own runner instead of a RUN line is what lets a failed
component name its step, and a cancellation stop between (or during) steps. The test stage runs
the test phases in a container of the new image. LaunchInstance creates the container a step
will work in when it can (the test container; the components container when stage 1 needs no
docker build) and starts it on a thread: it boots while the build moves on, and the step that
needs it waits for it then.
DistributeContainerImage pushes to the loopback registry. Every container and image made carries
the instance's labels, so cleanup finds them even after a worker restart that lost the workspace
folder.

The test container, once its tests passed, is removed on a background thread: the engine's
teardown (kill, unmount, delete) need not hold up the build. The instance still lists it;
TerminateInstance and cleanup wait for that removal.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import re
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import docker
import docker.errors

from components.errors import ToeError
from components.runner import run_document
from components.targets.docker import DockerTarget
from workers.contracts import (
    Artifact,
    CleanupRequest,
    CleanupResult,
    ComponentRef,
    StepRequest,
    StepResult,
    host_queue,
)
from workers.errors import InfrastructureError, NotSupported, StepFailed
from workers.executors import docker_inventory
from workers.executors.base import Executor, ExecutorSettings, StepRuntime, raise_if_component_failed
from workers.executors.docker_build import (
    KEEPALIVE,
    BuildOutcome,
    build_image,
    commit_changes,
    commit_config,
    final_dockerfile,
    remove_images,
    render_dockerfile,
    run_cancellable,
    simple_stage1,
)
from workers.executors.docker_workspace import (
    IMAGE_ARN_LABEL,
    INSTANCE_LABEL,
    InstanceState,
    Workspaces,
)

BUILD_PHASES = ("build", "validate")
TEST_PHASES = ("test",)
log = logging.getLogger(__name__)
#: How long TerminateInstance waits for a background removal before removing again itself.
REMOVAL_WAIT = 120.0


def region_of(image_arn: str) -> str:
    parts = image_arn.split(":")
    return parts[3] if len(parts) > 3 and parts[3] else "local"


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9._-]+", "-", name.lower()).strip("-._") or "image"


class DockerExecutor(Executor, kind="docker"):
    def __init__(self, settings: ExecutorSettings) -> None:
        super().__init__(settings)
        self.workspaces = Workspaces(settings.state_dir)
        self._client: docker.DockerClient | None = None
        # Container starts and removals that run beside the steps, by instance.
        self._background = ThreadPoolExecutor(max_workers=4, thread_name_prefix="docker-background")
        self._pending: dict[str, list[Future[Any]]] = {}
        self._pending_lock = threading.Lock()

    @property
    def client(self) -> docker.DockerClient:
        if self._client is None:
            try:
                # Commits and pushes of large images take longer than the SDK's 60 s default.
                self._client = docker.from_env(timeout=600)
            except docker.errors.DockerException as exc:
                raise InfrastructureError(f"the docker engine is not reachable: {exc}") from exc
        return self._client

    @property
    def queue(self) -> str:
        return host_queue("docker", self.settings.host_id)

    # -- instances ----------------------------------------------------------------------------

    def launch_instance(self, request: StepRequest, runtime: StepRuntime) -> StepResult:
        purpose = "build" if request.workflow_type == "BUILD" else "test"
        test_image = ""
        if purpose == "test":
            if request.artifact is None:
                raise StepFailed("there is no image to test: the build stage produced none")
            test_image = request.artifact.image_ref
            with _engine():
                try:
                    self.client.images.get(test_image)
                except docker.errors.ImageNotFound:
                    raise StepFailed(
                        f"the image to test ({test_image}) is not on docker host {self.settings.host_id}"
                    ) from None
        state = self.workspaces.create(purpose, request.context.image_arn)
        state.test_image = test_image
        self.workspaces.save(state)
        # The container ExecuteComponents works in boots from now on, on a thread (the build
        # goes on meanwhile); the steps that use the instance wait for it (_settle).
        self._beside(state.instance_id, self._boot, request, state)
        return StepResult(
            outputs={"instanceId": state.instance_id},
            instance_queue=self.queue,
            message=f"{purpose} workspace {state.instance_id} on docker host {self.settings.host_id}",
        )

    def _boot(self, request: StepRequest, state: InstanceState) -> None:
        """Create and start the container a step will work in, when it can be known now: the
        test instance's is a container of the new image, the build instance's one of the parent
        when stage 1 needs no docker build. Otherwise (or if this fails) the step makes its own."""
        if state.purpose == "test":
            plan: tuple[str, str | None] | None = (state.test_image, None) if request.context.components else None
        else:
            plan = self._components_container_plan(request)
        if plan is not None:
            name = _instance_container(state.instance_id)
            self.client.api.start(self._create_container(plan[0], state, [], working_dir=plan[1], name=name))

    def _components_container_plan(self, request: StepRequest) -> tuple[str, str | None] | None:
        """(image, working directory) of the build's components container when stage 1 is only
        FROM + WORKDIR of a parent that is here (what _build then starts it from), else None."""
        template = request.context.recipe.get("dockerfileTemplateData")
        if request.context.image_type != "DOCKER" or not isinstance(template, str):
            return None
        try:
            rendered = render_dockerfile(
                template, request.context.parent_image, str(request.context.recipe.get("workingDirectory") or "/tmp")
            )
        except StepFailed:
            return None  # ExecuteComponents reports it
        simple = simple_stage1(rendered.before) if rendered.after is not None else None
        if simple is None:
            return None
        try:
            parent_config = self.client.api.inspect_image(simple[0])["Config"] or {}
        except docker.errors.ImageNotFound:
            return None
        return simple[0], simple[1] or parent_config.get("WorkingDir") or None

    def bootstrap_instance(self, request: StepRequest, runtime: StepRuntime) -> StepResult:
        self._state(request)
        with _engine():
            self.client.ping()
        return StepResult(outputs={"status": "Success"}, message="the docker engine answers")

    def terminate_instance(self, request: StepRequest, runtime: StepRuntime) -> StepResult:
        instance_id = str(request.inputs.get("instanceId") or "")
        if not instance_id:
            raise StepFailed("TerminateInstance needs an instanceId")
        removed = self._remove_instance(instance_id, remove_artifact=False)
        return StepResult(
            outputs={"instanceId": instance_id, "status": "Success"},
            message=f"removed {len(removed)} containers, images and folders of {instance_id}",
        )

    # -- components ---------------------------------------------------------------------------

    def execute_components(self, request: StepRequest, runtime: StepRuntime) -> StepResult:
        if request.context.image_type != "DOCKER":
            raise NotSupported(f"the docker executor builds container images, not {request.context.image_type}")
        # The container LaunchInstance is booting is in the instance's state once that is done.
        t0 = time.monotonic()
        self._settle(str(request.inputs.get("instanceId") or ""))
        state = self._state(request)
        booting = time.monotonic() - t0
        run = self._test if state.purpose == "test" else self._build
        result = run(request, state, runtime)
        # How long the step waited for the container LaunchInstance started (to see the overlap).
        return dataclasses.replace(result, message=f"{result.message} (waited {booting:.2f}s for its container)")

    def _build(self, request: StepRequest, state: InstanceState, runtime: StepRuntime) -> StepResult:
        recipe = request.context.recipe
        template = recipe.get("dockerfileTemplateData")
        if not isinstance(template, str) or not template.strip():
            raise StepFailed("the container recipe has no dockerfileTemplateData")
        rendered = render_dockerfile(
            template, request.context.parent_image, str(recipe.get("workingDirectory") or "/tmp")
        )
        api = self.client.api
        folder = self.workspaces.folder(state.instance_id)
        log_dir = runtime.log_dir
        log_dir.mkdir(parents=True, exist_ok=True)
        build_log = log_dir / "docker-build.log"
        # What this step made, removed again if it does not finish (cancel or failure).
        step_images: list[str] = []
        step_containers: list[str] = []
        timings: dict[str, float] = {}
        finished = False
        try:
            t0 = time.monotonic()
            simple = simple_stage1(rendered.before) if rendered.after is not None else None
            if simple is not None and not self._image_exists(simple[0]):
                simple = None  # the build names the missing parent in its own words
            if simple is not None:
                # FROM + WORKDIR only: start the components container from the parent itself.
                image, workdir = simple
                parent_config = api.inspect_image(image)["Config"] or {}
                stage1_config = {
                    **parent_config,
                    "WorkingDir": workdir or parent_config.get("WorkingDir") or "",
                    "Labels": {**(parent_config.get("Labels") or {}), **state.labels},
                }
            else:
                image = self._build_stage(
                    rendered.before, folder / "stage1", state, build_log, runtime, "stage 1", step_images
                )
                stage1_config = api.inspect_image(image)["Config"] or {}
            timings["stage1"] = time.monotonic() - t0
            if rendered.after is None:
                final, message = image, "the Dockerfile template has no components placeholder: components were not run"
            else:
                runtime.check_cancelled()
                t0 = time.monotonic()
                # Without a stage-1 image the container gets the WORKDIR itself (the engine creates it).
                cwd = (stage1_config.get("WorkingDir") or None) if simple is not None else None
                launched = self._claim_container(state, step_containers) if simple is not None else None
                container = launched or self._start_container(image, state, step_containers, working_dir=cwd)
                ran = self._run_components(container, request.context.components, BUILD_PHASES, runtime, "build")
                timings["components"] = time.monotonic() - t0
                runtime.check_cancelled()
                t0 = time.monotonic()
                changes = commit_changes(rendered.after)
                committed = str(
                    api.commit(
                        container,
                        conf=commit_config(stage1_config),
                        changes=changes or None,
                        message=f"imagebuilder components of {state.instance_id}",
                    )["Id"]
                )
                step_images.append(committed)
                self._track(state, images=[committed])
                self._remove_containers([container])
                step_containers.remove(container)
                timings["commit"] = time.monotonic() - t0
                if changes is not None:
                    final = committed
                else:
                    runtime.check_cancelled()
                    t0 = time.monotonic()
                    final = self._build_stage(
                        final_dockerfile(committed, rendered.after),
                        folder / "stage2",
                        state,
                        build_log,
                        runtime,
                        "stage 2",
                        step_images,
                    )
                    timings["stage2"] = time.monotonic() - t0
                message = f"built {final[:19]} with {ran} components"
            ctx = request.context
            repository, version = f"imagebuilder/{_slug(ctx.image_name)}", f"{ctx.version}-{ctx.build_number}"
            tag = f"{repository}:{version}"
            api.tag(final, repository, version)
            state.artifact_image = final
            state.images = [i for i in state.images if i != final]
            self.workspaces.save(state)
            finished = True
        except docker.errors.APIError as exc:
            if runtime.cancel.is_set():
                runtime.check_cancelled()
            raise InfrastructureError(f"the docker engine failed the build: {exc.explanation or exc}") from exc
        finally:
            if not finished:
                self._remove_containers(step_containers)
                remove_images(api, list(reversed(step_images)), force=True)
        timing = ", ".join(f"{k} {v:.1f}s" for k, v in timings.items())
        return StepResult(
            outputs={"imageId": final},
            artifact=Artifact(
                image_ref=final, queue=self.queue, details={"tags": [tag], "instanceId": state.instance_id}
            ),
            message=f"{message} ({timing})",
        )

    def _build_stage(
        self,
        dockerfile: str,
        context_dir: Path,
        state: InstanceState,
        log_path: Path,
        runtime: StepRuntime,
        stage: str,
        step_images: list[str],
    ) -> str:
        outcome: BuildOutcome = build_image(
            self.client.api, dockerfile, context_dir, state.labels, log_path, runtime, stage
        )
        if outcome.error or runtime.cancel.is_set():
            # The layers of a build that did not finish are nobody's parents: remove them now.
            remove_images(self.client.api, list(reversed(outcome.seen)), wait=20)
            runtime.check_cancelled()
            raise StepFailed(f"docker build ({stage}) failed: {outcome.error}")
        step_images.append(outcome.image_id)
        self._track(state, images=[outcome.image_id])
        return outcome.image_id

    def _test(self, request: StepRequest, state: InstanceState, runtime: StepRuntime) -> StepResult:
        components = request.context.components
        if not components:
            return StepResult(outputs={"status": "Success"}, message="the recipe has no components to test")
        containers: list[str] = []
        done = False
        try:
            t0 = time.monotonic()
            with _engine():
                container = self._claim_container(state, containers) or self._start_container(
                    state.test_image, state, containers
                )
            t1 = time.monotonic()
            ran = self._run_components(container, components, TEST_PHASES, runtime, "test")
            done = True
        finally:
            if done:
                self._beside(state.instance_id, self._remove_containers, containers)
            else:
                self._remove_containers(containers)
        timing = f"container {t1 - t0:.2f}s, components {time.monotonic() - t1:.2f}s"
        return StepResult(outputs={"status": "Success"}, message=f"ran the test phase of {ran} components ({timing})")

    def _claim_container(self, state: InstanceState, step_containers: list[str]) -> str | None:
        """The container LaunchInstance started (None if there is none), renamed so that a rerun
        of the step (after a worker restart) never works in a container an earlier run already
        used: it makes a new one."""
        self._settle(state.instance_id)
        name = _instance_container(state.instance_id)
        try:
            self.client.api.rename(name, f"{name}-used")
        except docker.errors.NotFound:
            return None
        step_containers.append(f"{name}-used")
        self._running(f"{name}-used")
        return f"{name}-used"

    def _create_container(
        self,
        image: str,
        state: InstanceState,
        step_containers: list[str],
        working_dir: str | None = None,
        name: str | None = None,
    ) -> str:
        container = self.client.api.create_container(
            image,
            entrypoint=KEEPALIVE,
            command=[],
            labels=state.labels,
            detach=True,
            working_dir=working_dir,
            name=name,
        )
        cid = str(container["Id"])
        step_containers.append(cid)
        self._track(state, containers=[cid])
        return cid

    def _start_container(
        self, image: str, state: InstanceState, step_containers: list[str], working_dir: str | None = None
    ) -> str:
        container = self._create_container(image, state, step_containers, working_dir=working_dir)
        self.client.api.start(container)
        return container

    def _running(self, container: str) -> None:
        """Start the container unless it runs (a worker restart lost the start begun at launch)."""
        if not (self.client.api.inspect_container(container).get("State") or {}).get("Running"):
            self.client.api.start(container)

    # -- work beside the steps ----------------------------------------------------------------

    def _beside(self, instance_id: str, fn: Any, *args: Any) -> None:
        """Run fn on a background thread; _settle(instance_id) waits for it."""
        future = self._background.submit(fn, *args)
        with self._pending_lock:
            self._pending.setdefault(instance_id, []).append(future)

    def _settle(self, instance_id: str) -> None:
        """Wait for the instance's background work; its errors are for the caller's own retry
        (a start that failed is started again, a removal that failed is removed again)."""
        with self._pending_lock:
            futures = self._pending.pop(instance_id, [])
        for future in futures:
            try:
                future.result(timeout=REMOVAL_WAIT)
            except Exception as exc:  # logged: what follows does the work again
                log.warning("background docker work of %s failed: %s", instance_id, exc)

    def _run_components(
        self,
        container: str,
        components: tuple[ComponentRef, ...],
        phases: tuple[str, ...],
        runtime: StepRuntime,
        stage: str,
    ) -> int:
        """Each component in recipe order, in its own run (its own parameters and log folder)."""
        target = DockerTarget(container, client=self.client)
        try:
            for index, ref in enumerate(components):
                runtime.check_cancelled()
                document = self.settings.blobs.fetch(ref.document)
                parameters = {name: ",".join(values) for name, values in ref.parameters.items()}
                log_directory = runtime.log_dir / "components" / f"{index + 1:02d}-{_slug(ref.name)}"

                def one(
                    document: Path = document, parameters: dict[str, str] = parameters, logs: Path = log_directory
                ) -> Any:
                    return run_document(
                        [document], target=target, log_directory=logs, parameters=parameters, phases=phases
                    )

                try:
                    summary = run_cancellable(
                        one, runtime, lambda: self._remove_containers([container]), f"{stage}: {ref.name}"
                    )
                except ToeError as exc:
                    raise StepFailed(f"component {ref.name}: {exc}") from None
                runtime.check_cancelled()
                raise_if_component_failed(ref.name, summary)
            return len(components)
        finally:
            target.close()

    # -- distribution -------------------------------------------------------------------------

    def distribute_container_image(self, request: StepRequest, runtime: StepRuntime) -> StepResult:
        ctx = request.context
        state = self._state(request) if request.inputs.get("instanceId") else None
        image = request.artifact.image_ref if request.artifact else (state.artifact_image if state else "")
        if not image:
            raise StepFailed("there is no container image to distribute")
        region = region_of(ctx.image_arn)
        repository, extra_tags = _target(ctx.recipe, ctx.distribution, region)
        if not repository:
            raise StepFailed("no target repository: the recipe and the distribution configuration name none")
        registry = self.settings.registry or ctx.registry or "127.0.0.1:5000"
        remote = f"{registry}/{repository}"
        tags = _tags(ctx.image_name, ctx.version, ctx.build_number, extra_tags)
        uris: list[str] = []
        log = runtime.log_dir / "push.log"
        runtime.log_dir.mkdir(parents=True, exist_ok=True)
        with _engine(), log.open("a") as out:
            for tag in tags:
                runtime.check_cancelled()
                runtime.heartbeat({"stage": "push", "tag": tag})
                self.client.api.tag(image, remote, tag)
                for line in self.client.api.push(remote, tag=tag, stream=True, decode=True):
                    out.write(f"{line}\n")
                    if "error" in line or "errorDetail" in line:
                        detail = line.get("errorDetail") or {}
                        raise InfrastructureError(
                            f"push of {remote}:{tag} failed: {detail.get('message') or line.get('error')}"
                        )
                uris.append(f"{remote}:{tag}")
        if state is not None:
            state.pushed = [*state.pushed, *uris]
            self.workspaces.save(state)
        return StepResult(
            outputs={"status": "Success", "succeededRegions": [region], "failedRegions": []},
            output_resources={"containers": [{"region": region, "imageUris": uris}]},
            message=f"pushed {', '.join(uris)}",
        )

    # -- steps that have no meaning for containers ---------------------------------------------

    def create_image(self, request: StepRequest, runtime: StepRuntime) -> StepResult:
        raise NotSupported("CreateImage is for machine images; ExecuteComponents already built the container image")

    def collect_image_metadata(self, request: StepRequest, runtime: StepRuntime) -> StepResult:
        return docker_inventory.collect_image_metadata(self, request)

    def sanitize_instance(self, request: StepRequest, runtime: StepRuntime) -> StepResult:
        raise NotSupported("SanitizeInstance is for machine images only")

    # -- cleanup ------------------------------------------------------------------------------

    def cleanup(self, request: CleanupRequest) -> CleanupResult:
        removed: list[str] = []
        for instance_id in request.instance_ids:
            removed += self._remove_instance(instance_id, remove_artifact=request.remove_artifacts)
        arn = request.context.image_arn
        with _engine():
            # Whatever this build left that the workflow never heard of (a launch whose result
            # was lost): everything labelled with its image ARN.
            stray = self.client.containers.list(all=True, filters={"label": f"{IMAGE_ARN_LABEL}={arn}"})
            removed += self._remove_containers([c.id for c in stray])
            if request.remove_artifacts:
                images = self.client.api.images(all=True, filters={"label": f"{IMAGE_ARN_LABEL}={arn}"})
                ids = [i["Id"] for i in sorted(images, key=lambda i: i.get("Created", 0), reverse=True)]
                if request.artifact is not None:
                    ids.insert(0, request.artifact.image_ref)
                removed += remove_images(self.client.api, ids, force=True)
        for instance_id in self.workspaces.ids():
            state = self.workspaces.load(instance_id)
            if state is not None and state.image_arn == arn and request.remove_artifacts:
                removed += self._remove_instance(instance_id, remove_artifact=True)
        return CleanupResult(removed=tuple(removed))

    def live_instances(self) -> list[str]:
        found = set(self.workspaces.ids())
        with _engine():
            for container in self.client.containers.list(all=True, filters={"label": INSTANCE_LABEL}):
                found.add(container.labels.get(INSTANCE_LABEL, ""))
        return sorted(i for i in found if i)

    def _remove_instance(self, instance_id: str, remove_artifact: bool) -> list[str]:
        """Containers, then images (newest first), then the folder. Idempotent.

        Kept unless remove_artifact or pushed: the final image with its local tag, for a later
        stage on this host; its parent layers stay with it because the engine refuses to remove
        a parent of a kept image. Once pushed, the registry holds the image and this host keeps
        nothing: a build host does not fill up with every image it ever built.
        """
        self._settle(instance_id)
        state = self.workspaces.load(instance_id)
        removed: list[str] = []
        with _engine():
            labelled = self.client.containers.list(all=True, filters={"label": f"{INSTANCE_LABEL}={instance_id}"})
            removed += self._remove_containers([*(state.containers if state else []), *(c.id for c in labelled)])
            images = self.client.api.images(all=True, filters={"label": f"{INSTANCE_LABEL}={instance_id}"})
            ids = [i["Id"] for i in sorted(images, key=lambda i: i.get("Created", 0), reverse=True)]
            ids += list(reversed(state.images)) if state else []
            pushed = bool(state and state.pushed)
            keep = state.artifact_image if state and not remove_artifact and not pushed else ""
            if pushed and state and state.artifact_image:
                # Untag first: an image with several tags is only removed tag by tag.
                with contextlib.suppress(docker.errors.APIError):
                    for tag in self.client.api.inspect_image(state.artifact_image).get("RepoTags") or []:
                        self.client.api.remove_image(tag)
            candidates = [i for i in dict.fromkeys(ids) if not keep or not _same_image(i, keep)]
            if (remove_artifact or pushed) and state and state.artifact_image:
                candidates.insert(0, state.artifact_image)
            # Non-forced for the kept image's parents (409 keeps them); forced otherwise.
            removed += remove_images(self.client.api, candidates, force=not keep)
        if self.workspaces.remove(instance_id):
            removed.append(str(self.workspaces.folder(instance_id)))
        return removed

    def _remove_containers(self, ids: list[str]) -> list[str]:
        removed = []
        for cid in dict.fromkeys(ids):
            try:
                self.client.api.remove_container(cid, force=True, v=True)
                removed.append(cid)
            except docker.errors.NotFound:
                continue
            except docker.errors.APIError as exc:
                if exc.status_code == 409 and "already in progress" in str(exc):
                    continue
                raise
        return removed

    # -- helpers ------------------------------------------------------------------------------

    def _image_exists(self, image: str) -> bool:
        try:
            self.client.api.inspect_image(image)
        except docker.errors.ImageNotFound:
            return False
        return True

    def _state(self, request: StepRequest) -> InstanceState:
        instance_id = str(request.inputs.get("instanceId") or "")
        try:
            state = self.workspaces.load(instance_id) if instance_id else None
        except ValueError:
            state = None
        if state is None:
            raise StepFailed(
                f"instance {instance_id or '(none given)'} does not exist on docker host {self.settings.host_id}"
            )
        return state

    def _track(self, state: InstanceState, containers: Sequence[str] = (), images: Sequence[str] = ()) -> None:
        """Record before anything can fail, so a crashed worker's successor finds it."""
        state.containers = [*state.containers, *containers]
        state.images = [*state.images, *images]
        self.workspaces.save(state)


def _instance_container(instance_id: str) -> str:
    """The name of the container LaunchInstance starts: found again by name, without listing."""
    return f"ib-{instance_id}"


def _same_image(a: str, b: str) -> bool:
    a, b = a.removeprefix("sha256:"), b.removeprefix("sha256:")
    return a.startswith(b) or b.startswith(a)


def _target(recipe: dict[str, Any], distribution: dict[str, Any] | None, region: str) -> tuple[str, list[str]]:
    """The repository and extra tags for this region: the distribution's, else the recipe's."""
    repository = str((recipe.get("targetRepository") or {}).get("repositoryName") or "")
    tags: list[str] = []
    for dist in (distribution or {}).get("distributions") or []:
        if dist.get("region") != region:
            continue
        config = dist.get("containerDistributionConfiguration") or {}
        repository = str((config.get("targetRepository") or {}).get("repositoryName") or repository)
        tags = [str(t) for t in config.get("containerTags") or []]
    return repository, tags


def _tags(name: str, version: str, build: int, extra: Sequence[str]) -> list[str]:
    """Image Builder's two fixed tags, `<version>-<build>` and `<name>-<version>-<build>`, then
    the distribution's containerTags (each once)."""
    fixed = f"{version}-{build}"
    return list(dict.fromkeys([fixed, f"{_slug(name)}-{fixed}", *extra]))


@contextlib.contextmanager
def _engine() -> Iterator[None]:
    """Engine trouble is the host's, not the user's: retryable."""
    try:
        yield
    except docker.errors.ImageNotFound:
        raise
    except (docker.errors.APIError, docker.errors.DockerException, ConnectionError) as exc:
        if isinstance(exc, docker.errors.APIError) and exc.status_code is not None and exc.status_code < 500:
            raise StepFailed(f"the docker engine refused: {exc.explanation or exc}") from exc
        raise InfrastructureError(f"the docker engine failed: {exc}") from exc
