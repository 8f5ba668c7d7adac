"""The pieces of a container build: the Dockerfile template, `docker build`, `docker commit`.

The recipe's template is rendered and split at ``{{{ imagebuilder:components }}}``: the part
before is built as an image, the components run in a container of that image (so each step's
output and failure is ours to report, not buried in a RUN), the container is committed, and the
part after is built on top of the commit. See workers/executors/docker.py for the sequence.
"""

from __future__ import annotations

import json
import os
import queue
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import docker
import docker.errors
import docker.utils

from workers.errors import InfrastructureError, StepFailed
from workers.executors.base import StepRuntime

_PLACEHOLDER = re.compile(r"\{\{\{\s*imagebuilder:([A-Za-z]+)\s*\}\}\}")
_SENTINEL = "\0imagebuilder-components\0"
#: What `docker commit` must give back: the config the image had before the components ran.
#: (The container ran with its entrypoint replaced, and commit would otherwise keep that.)
COMMIT_CONFIG_KEYS = (
    "Cmd",
    "Entrypoint",
    "Env",
    "WorkingDir",
    "User",
    "ExposedPorts",
    "Labels",
    "Volumes",
    "StopSignal",
    "Healthcheck",
    "OnBuild",
    "Shell",
)
#: Keeps a container alive while we exec into it; tail exists in every image with coreutils or busybox.
KEEPALIVE = ["tail", "-f", "/dev/null"]
HEARTBEAT_EVERY = 2.0

T = TypeVar("T")


@dataclass(frozen=True)
class RenderedDockerfile:
    before: str
    #: The part after the components placeholder; None when the template has none.
    after: str | None


def render_dockerfile(template: str, parent_image: str, working_directory: str) -> RenderedDockerfile:
    """Fill the placeholders; the components one becomes the split point."""
    unknown: list[str] = []

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        if name == "parentImage":
            return parent_image
        if name == "environments":
            return f"WORKDIR {working_directory}"
        if name == "components":
            return _SENTINEL
        unknown.append(name)
        return match.group(0)

    text = _PLACEHOLDER.sub(fill, template)
    if unknown:
        raise StepFailed(f"the Dockerfile template has unknown placeholders: {', '.join(sorted(set(unknown)))}")
    parts = text.split(_SENTINEL)
    if len(parts) > 2:
        raise StepFailed("the Dockerfile template has the {{{ imagebuilder:components }}} placeholder more than once")
    return RenderedDockerfile(parts[0], parts[1] if len(parts) == 2 else None)


def commit_config(stage1_config: dict[str, Any]) -> dict[str, Any]:
    """The config a commit of the components container must have: stage 1's, exactly."""
    conf = {k: stage1_config.get(k) for k in COMMIT_CONFIG_KEYS}
    # The engine fills a null Entrypoint in a commit's config from the container's (our
    # keep-alive command); an empty list is kept as "none".
    if not conf["Entrypoint"]:
        conf["Entrypoint"] = []
    return conf


def final_dockerfile(committed_image: str, after: str) -> str:
    """FROM the committed image, then what the template had after the components."""
    return f"FROM {committed_image}\n{after}"


#: Instructions that only change the image config: `docker commit --change` applies them with the
#: engine's own Dockerfile dispatcher (same variable expansion, same ENTRYPOINT-resets-CMD rule).
#: WORKDIR is left out: as a commit change it does not create the directory.
COMMIT_INSTRUCTIONS = frozenset({"ENV", "CMD", "ENTRYPOINT", "EXPOSE", "LABEL", "USER", "STOPSIGNAL", "VOLUME"})
_DIRECTIVE = re.compile(r"^#\s*(syntax|escape|check)\s*=", re.IGNORECASE)


def _instructions(part: str) -> list[str] | None:
    """The part's instruction lines; None when it has what a line scan cannot follow (continuations,
    parser directives, heredocs)."""
    lines = []
    for raw in part.splitlines():
        text = raw.strip()
        if _DIRECTIVE.match(text):
            return None
        if not text or text.startswith("#"):
            continue
        if text.endswith(("\\", "`")) or "<<" in text:
            return None
        lines.append(text)
    return lines


def commit_changes(after: str) -> list[str] | None:
    """The template's part after the components as commit changes, when all of it is config only.

    Then no second `docker build` is needed (each of its steps is a container and a commit of
    its own, most of a second for ENV + CMD): the commit of the components container applies it.
    """
    lines = _instructions(after)
    if lines is None or any(line.split(None, 1)[0].upper() not in COMMIT_INSTRUCTIONS for line in lines):
        return None
    return lines


def simple_stage1(before: str) -> tuple[str, str] | None:
    """(parent image, working directory) when the part before the components is only
    ``FROM <image>`` and absolute WORKDIRs (what the default template renders to); None otherwise.

    Such a stage needs no `docker build`: a container of the parent image with that working
    directory (the engine creates it on start, as WORKDIR would) is the same starting point.
    """
    lines = _instructions(before)
    if not lines:
        return None
    first = lines[0].split()
    if len(first) != 2 or first[0].upper() != "FROM" or "$" in first[1] or first[1].startswith("-"):
        return None
    workdir = ""
    for line in lines[1:]:
        words = line.split()
        if len(words) != 2 or words[0].upper() != "WORKDIR" or not words[1].startswith("/") or "$" in words[1]:
            return None
        workdir = words[1]
    return first[1], workdir


@dataclass
class BuildOutcome:
    image_id: str = ""
    error: str = ""
    #: Every image id the build reported (intermediate layers too), for cleanup on failure.
    seen: list[str] = field(default_factory=list)
    step_is_from: bool = False


_STEP_ID = re.compile(r"^ ---> ([0-9a-f]{12,64})\s*$")
_STEP = re.compile(r"^Step \d+/\d+ : (\w+)")


def build_image(
    api: docker.APIClient,
    dockerfile: str,
    context_dir: Path,
    labels: dict[str, str],
    log_path: Path,
    runtime: StepRuntime,
    stage: str,
) -> BuildOutcome:
    """`docker build` (the engine's own builder, no cache) with the output logged to log_path.

    Cancellation closes the connection, which makes the engine stop the build and remove its
    RUN container; the image layers it made so far are removed here.
    """
    context_dir.mkdir(parents=True, exist_ok=True)
    (context_dir / "Dockerfile").write_text(dockerfile)
    context = docker.utils.tar(str(context_dir))
    params = {
        "dockerfile": "Dockerfile",
        "q": False,
        # Every build runs the user's RUN instructions again, as a fresh build host would, and
        # no two builds share a layer that one of them may remove while the other uses it.
        "nocache": True,
        "rm": True,
        "forcerm": True,
        "pull": False,
        "labels": json.dumps(labels),
    }
    outcome = BuildOutcome()
    try:
        response = api.post(
            api._url("/build"),
            params=params,
            data=context,
            headers={"Content-Type": "application/tar"},
            stream=True,
            timeout=None,
        )
    except docker.errors.DockerException as exc:
        raise InfrastructureError(f"{stage}: the docker engine did not take the build: {exc}") from exc
    except OSError as exc:
        raise InfrastructureError(f"{stage}: the docker engine did not take the build: {exc}") from exc
    finally:
        context.close()
    if response.status_code >= 400:
        message = _error_text(response.content)
        response.close()
        with log_path.open("a") as log:
            log.write(f"{stage}: {message}\n")
        outcome.error = message
        return outcome

    lines: queue.Queue[dict[str, Any] | BaseException | None] = queue.Queue()

    def pump() -> None:
        try:
            for raw in response.iter_lines():
                if raw:
                    lines.put(json.loads(raw))
        except BaseException as exc:  # handed to the consumer below
            lines.put(exc)
        lines.put(None)

    reader = threading.Thread(target=pump, daemon=True, name=f"docker-build-{stage}")
    reader.start()
    last_beat = 0.0
    with log_path.open("a") as log:
        log.write(f"--- {stage}: docker build\n{dockerfile}\n---\n")
        while True:
            if time.monotonic() - last_beat > HEARTBEAT_EVERY:
                runtime.heartbeat({"stage": stage})
                last_beat = time.monotonic()
            if runtime.cancel.is_set():
                _abort(response)
                reader.join(timeout=60)
                log.write(f"--- {stage}: cancelled\n")
                break
            try:
                item = lines.get(timeout=0.5)
            except queue.Empty:
                continue
            if item is None:
                break
            if isinstance(item, BaseException):
                if runtime.cancel.is_set():
                    break
                outcome.error = f"the build stream broke: {item}"
                break
            _consume(item, outcome, log)
    response.close()
    if not outcome.image_id and not outcome.error and not runtime.cancel.is_set():
        outcome.error = "the build ended without an image"
    return outcome


def _consume(item: dict[str, Any], outcome: BuildOutcome, log: Any) -> None:
    text = item.get("stream")
    if isinstance(text, str):
        log.write(text)
        for line in text.splitlines():
            step = _STEP.match(line)
            if step:
                outcome.step_is_from = step.group(1).upper() == "FROM"
            m = _STEP_ID.match(line)
            # A FROM step reports the parent's id: never ours to remove.
            if m and not outcome.step_is_from:
                outcome.seen.append(m.group(1))
            if line.startswith("Successfully built "):
                outcome.image_id = outcome.image_id or line.split()[-1]
    aux = item.get("aux")
    if isinstance(aux, dict) and isinstance(aux.get("ID"), str):
        outcome.image_id = aux["ID"]
    if "error" in item or "errorDetail" in item:
        detail = item.get("errorDetail") or {}
        outcome.error = str(detail.get("message") or item.get("error") or "the build failed")
        log.write(f"ERROR: {outcome.error}\n")
    log.flush()


def _abort(response: Any) -> None:
    """Shut the build's socket down: that wakes the reader and tells the engine to stop."""
    try:
        fd = response.raw.fileno()
    except (AttributeError, OSError, ValueError):
        response.close()
        return
    sock = socket.socket(fileno=os.dup(fd))
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    finally:
        sock.close()


def _error_text(content: bytes) -> str:
    try:
        data = json.loads(content)
    except ValueError:
        return content.decode(errors="replace").strip() or "the build failed"
    return str(data.get("message") or data)


def run_cancellable(
    fn: Callable[[], T], runtime: StepRuntime, on_cancel: Callable[[], object], stage: str, grace: float = 60
) -> T:
    """Run fn on a thread; heartbeat while it runs; on cancellation call on_cancel (which must make
    fn end, e.g. by removing its container), wait for fn, then raise the cancellation."""
    result: list[T] = []
    error: list[BaseException] = []

    def target() -> None:
        try:
            result.append(fn())
        except BaseException as exc:  # re-raised on the caller's thread
            error.append(exc)

    worker = threading.Thread(target=target, daemon=True, name=f"docker-{stage}")
    worker.start()
    while worker.is_alive():
        runtime.heartbeat({"stage": stage})
        if runtime.cancel.is_set():
            on_cancel()
            worker.join(timeout=grace)
            runtime.check_cancelled()
        worker.join(timeout=HEARTBEAT_EVERY)
    if error:
        raise error[0]
    return result[0]


def remove_images(
    api: docker.APIClient, image_ids: Iterator[str] | list[str], force: bool = False, wait: float = 0
) -> list[str]:
    """Remove what can be removed; images still needed (a child image, a container) stay.

    wait: keep retrying images in use for this long (a cancelled build's RUN container is
    removed by the engine a moment after the build stream ends).
    """
    removed = []
    pending = list(image_ids)
    deadline = time.monotonic() + wait
    while pending:
        in_use = []
        for image_id in pending:
            try:
                api.remove_image(image_id, force=force)
                removed.append(image_id)
            except docker.errors.NotFound:
                continue
            except docker.errors.APIError as exc:
                if exc.status_code == 409:  # a parent of an image that is kept, or in use
                    in_use.append(image_id)
                    continue
                raise
        if not in_use or time.monotonic() >= deadline:
            break
        pending = in_use
        time.sleep(0.5)
    return removed
