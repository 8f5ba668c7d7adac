"""`imagebuilder follow ARN`: follow one image build live through the API.

It polls GetImage, ListWorkflowExecutions and ListWorkflowStepExecutions with SigV4-signed
requests (botocore: the standard credential chain, ``--profile``, ``--endpoint-url``), prints
each change of the image, its stages (workflow executions) and their steps, and tails the
running step's log files when the step's log folder (``logs: ...`` in the step's message) is on
this machine; otherwise the step messages are all there is to show. It exits when the image
reaches a final state: 0 AVAILABLE, 1 FAILED, 3 any other final state (CANCELLED, ...),
4 when the build cannot be followed (unknown image, credentials, API unreachable at the start).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

DEFAULT_ENDPOINT = "http://127.0.0.1:8080"
FINAL = {"AVAILABLE", "FAILED", "CANCELLED", "DEPRECATED", "DISABLED", "DELETED"}
STEP_FINAL = {"COMPLETED", "FAILED", "SKIPPED", "CANCELLED"}
EXIT_AVAILABLE, EXIT_FAILED, EXIT_OTHER, EXIT_CANNOT_FOLLOW = 0, 1, 3, 4
#: The step's log folder in its message (engine/observability/log_locations.py writes it).
LOGS_IN_MESSAGE = re.compile(r"(?:^|; )logs: (.+?)(?=; s3Logs: |$)")


def log_folder(message: str | None) -> str:
    match = LOGS_IN_MESSAGE.search(message or "")
    return match.group(1) if match else ""


def _seconds(start: str | None, end: str | None) -> str:
    try:
        took = datetime.fromisoformat(str(end).replace("Z", "+00:00")) - datetime.fromisoformat(
            str(start).replace("Z", "+00:00")
        )
    except ValueError:
        return ""
    return f" ({took.total_seconds():.1f} s)"


@dataclass
class StepTail:
    """New complete lines of a step's log files since the last read (offsets per file)."""

    folder: Path
    offsets: dict[Path, int] = field(default_factory=dict)
    current: Path | None = None

    def lines(self) -> Iterator[str]:
        if not self.folder.is_dir():
            return
        # Text logs only: detailedoutput.json repeats what the console logs say.
        for path in sorted(p for p in self.folder.rglob("*") if p.is_file() and p.suffix != ".json"):
            try:
                with path.open("rb") as f:
                    f.seek(self.offsets.get(path, 0))
                    data = f.read()
            except OSError:
                continue
            complete = data[: data.rfind(b"\n") + 1]
            if not complete:
                continue
            self.offsets[path] = self.offsets.get(path, 0) + len(complete)
            if path != self.current:
                self.current = path
                yield f"── {path.relative_to(self.folder)}"
            for line in complete.decode(errors="replace").splitlines():
                yield f"│ {line}"


class Follower:
    def __init__(self, client: Any, arn: str, out: TextIO, show_logs: bool = True) -> None:
        self.client = client
        self.arn = arn
        self.out = out
        self.show_logs = show_logs
        self.image_status = ""
        self.stages: dict[str, str] = {}
        self.steps: dict[str, str] = {}
        self.tails: dict[str, StepTail] = {}
        self.remote_noted: set[str] = set()
        self.first_poll = True

    def say(self, text: str) -> None:
        print(f"{time.strftime('%H:%M:%S')} {text}", file=self.out, flush=True)

    def poll(self) -> str:
        """One round: print what changed; the image's status."""
        image = self.client.get_image(imageBuildVersionArn=self.arn)["image"]
        state = image.get("state") or {}
        status = str(state.get("status") or "")
        for execution in self._paged("list_workflow_executions", "workflowExecutions", imageBuildVersionArn=self.arn):
            self._stage(execution)
        if status != self.image_status:
            reason = f": {state['reason']}" if state.get("reason") else ""
            self.say(f"image {status}{reason}" if self.image_status else f"image {self.arn} {status}{reason}")
            self.image_status = status
        self.first_poll = False
        return status

    def _paged(self, method: str, key: str, **params: Any) -> Iterator[dict[str, Any]]:
        token = None
        while True:
            page = getattr(self.client, method)(**params, **({"nextToken": token} if token else {}))
            yield from page.get(key) or []
            token = page.get("nextToken")
            if not token:
                return

    def _stage(self, execution: dict[str, Any]) -> None:
        ident, status, kind = execution["workflowExecutionId"], execution.get("status", ""), execution.get("type", "")
        before = self.stages.get(ident)
        if before == status and status in STEP_FINAL:
            return  # a finished stage whose steps were all reported
        if before != status:
            counts = ""
            if status in STEP_FINAL:
                counts = (
                    f": {execution.get('totalStepsSucceeded', 0)} succeeded, "
                    f"{execution.get('totalStepsFailed', 0)} failed, {execution.get('totalStepsSkipped', 0)} skipped"
                )
            self.say(f"{kind} {status}{counts} ({ident})")
            self.stages[ident] = status
        for step in self._paged("list_workflow_step_executions", "steps", workflowExecutionId=ident):
            self._step(kind, step)

    def _step(self, stage: str, step: dict[str, Any]) -> None:
        ident, status = step["stepExecutionId"], step.get("status", "")
        watch = self.show_logs and not (self.first_poll and status in STEP_FINAL)
        folder = log_folder(step.get("message"))
        if watch and folder and ident not in self.tails:
            self.tails[ident] = StepTail(Path(folder))
        if self.steps.get(ident) != status:
            took = _seconds(step.get("startTime"), step.get("endTime")) if status in STEP_FINAL else ""
            self.say(f"  {stage} {step.get('name')} [{step.get('action')}] {status}{took}")
        tail = self.tails.get(ident)
        if tail is not None:
            if tail.folder.is_dir():
                for line in tail.lines():
                    print(f"      {line}", file=self.out, flush=True)
            elif folder not in self.remote_noted:
                self.remote_noted.add(folder)
                self.say(f"    (logs in {folder}: not on this machine; showing step messages)")
        if self.steps.get(ident) != status:
            # The step's own words (its result or error), without the log location shown above.
            shown = LOGS_IN_MESSAGE.sub("", step.get("message") or "").strip("; ")
            if status in STEP_FINAL and shown:
                self.say(f"    {shown}")
            self.steps[ident] = status
        if status in STEP_FINAL:
            self.tails.pop(ident, None)


def exit_code(status: str) -> int:
    return EXIT_AVAILABLE if status == "AVAILABLE" else EXIT_FAILED if status == "FAILED" else EXIT_OTHER


def make_client(endpoint_url: str, profile: str, region: str) -> Any:
    import botocore.config
    import botocore.session

    session = botocore.session.Session(profile=profile or None)
    endpoint = (
        endpoint_url
        or os.environ.get("AWS_ENDPOINT_URL_IMAGEBUILDER")
        or os.environ.get("AWS_ENDPOINT_URL")
        or DEFAULT_ENDPOINT
    )
    return session.create_client(
        "imagebuilder",
        endpoint_url=endpoint,
        region_name=region or session.get_config_variable("region") or "us-east-1",
        config=botocore.config.Config(retries={"mode": "standard", "total_max_attempts": 2}, read_timeout=30),
    )


def follow(client: Any, arn: str, out: TextIO, interval: float = 1.0, show_logs: bool = True) -> int:
    import botocore.exceptions

    follower = Follower(client, arn, out, show_logs)
    unreachable_since: float | None = None
    while True:
        try:
            status = follower.poll()
            unreachable_since = None
        except botocore.exceptions.ClientError as exc:
            error = exc.response.get("Error", {})
            print(f"imagebuilder follow: {error.get('Code')}: {error.get('Message')}", file=sys.stderr)
            return EXIT_CANNOT_FOLLOW
        except botocore.exceptions.NoCredentialsError:
            print(
                "imagebuilder follow: no AWS credentials: use --profile, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, "
                "or the credentials file `imagebuilder up` names (AWS_SHARED_CREDENTIALS_FILE)",
                file=sys.stderr,
            )
            return EXIT_CANNOT_FOLLOW
        except botocore.exceptions.EndpointConnectionError as exc:
            if follower.first_poll:
                print(f"imagebuilder follow: {exc}", file=sys.stderr)
                return EXIT_CANNOT_FOLLOW
            # The build goes on while the API restarts: keep following.
            if unreachable_since is None:
                unreachable_since = time.monotonic()
                follower.say(f"(API unreachable, retrying: {exc})")
            time.sleep(interval)
            continue
        if status in FINAL:
            return exit_code(status)
        time.sleep(interval)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="imagebuilder follow",
        description="Follow an image build live: stages, steps and the running step's output.",
        epilog="Exit status: 0 AVAILABLE, 1 FAILED, 3 another final state (CANCELLED, ...), 4 cannot follow.",
    )
    parser.add_argument("arn", help="image build version ARN (arn:aws:imagebuilder:REGION:ACCOUNT:image/NAME/X.Y.Z/N)")
    parser.add_argument(
        "--endpoint-url",
        default="",
        help=f"the API (default: AWS_ENDPOINT_URL_IMAGEBUILDER, AWS_ENDPOINT_URL, else {DEFAULT_ENDPOINT})",
    )
    parser.add_argument("--profile", default="", help="named profile of the AWS config and credentials files")
    parser.add_argument("--region", default="", help="signing region (default: the profile's, else us-east-1)")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between polls (default 1)")
    parser.add_argument("--no-logs", action="store_true", help="do not tail the running step's log files")
    args = parser.parse_args(argv)
    if not re.fullmatch(r"arn:aws[a-z-]*:imagebuilder:[^:]+:[^:]+:image/[^/]+/\d+\.\d+\.\d+/\d+", args.arn):
        parser.error(f"{args.arn!r} is not an image build version ARN (.../image/NAME/X.Y.Z/BUILD)")
    try:
        client = make_client(args.endpoint_url, args.profile, args.region)
    except Exception as exc:  # botocore's ProfileNotFound and friends: say it in one line
        print(f"imagebuilder follow: {exc}", file=sys.stderr)
        return EXIT_CANNOT_FOLLOW
    try:
        return follow(client, args.arn, sys.stdout, max(args.interval, 0.1), not args.no_logs)
    except KeyboardInterrupt:
        return 130
