"""Each Linux action run for real on the local target, inside pytest's tmp_path.

Network actions use loopback servers: http.server for WebDownload and moto's standalone S3
server for S3Download/S3Upload (real AWS S3 cannot exist offline; moto speaks its protocol).
UpdateOS runs fake package-manager executables placed first on PATH, because upgrading the
test machine's own packages is neither safe nor possible offline.
"""

from __future__ import annotations

import hashlib
import http.server
import os
import pwd
import stat
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from components.actions import _transfer
from components.actions.base import (
    ActionContext,
    ActionFailed,
    ActionResult,
    RebootRequested,
    S3Settings,
    registry,
)
from components.targets.local import LocalTarget


class Log:
    """A StepLog that keeps everything in memory."""

    def __init__(self) -> None:
        self.out = bytearray()
        self.err = bytearray()
        self.messages: list[str] = []

    def stdout(self, data: bytes) -> None:
        self.out += data

    def stderr(self, data: bytes) -> None:
        self.err += data

    def info(self, message: str) -> None:
        self.messages.append(message)


@pytest.fixture
def ctx(tmp_path: Path) -> ActionContext:
    return ActionContext(
        target=LocalTarget(),
        log=Log(),
        phase="build",
        step="Step One",
        timeout=60,
        work_dir=str(tmp_path / "work"),
        log_dir=tmp_path / "logs",
    )


@pytest.fixture(autouse=True)
def _fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    # Keep the transport-error retry path quick; the backoff shape is unchanged.
    monkeypatch.setattr(_transfer, "BACKOFF_SECONDS", 0.01)


def run(ctx: ActionContext, name: str, inputs: Any) -> ActionResult:
    return registry()[name].run(ctx, inputs)


def log_of(ctx: ActionContext) -> Log:
    assert isinstance(ctx.log, Log)
    return ctx.log


# -- execution --------------------------------------------------------------------------------


def test_execute_bash_runs_commands_as_one_script(ctx: ActionContext) -> None:
    result = run(
        ctx, "ExecuteBash", {"commands": ["X=hello", "cd /", 'echo "$X from $(pwd)"', "echo oops >&2"]}
    )
    assert result.outputs == {"stdout": "hello from /"}
    assert bytes(log_of(ctx).out) == b"hello from /\n"
    assert bytes(log_of(ctx).err) == b"oops\n"
    assert list(Path(ctx.work_dir).glob("*.sh"))  # the script lives in the run's work dir


def test_execute_bash_multiline_command(ctx: ActionContext) -> None:
    result = run(ctx, "ExecuteBash", {"commands": ["for i in 1 2; do\n  echo $i\ndone"]})
    assert result.outputs["stdout"] == "1\n2"


def test_execute_bash_failure_reports_exit_code_and_stderr(ctx: ActionContext) -> None:
    with pytest.raises(ActionFailed) as info:
        run(ctx, "ExecuteBash", {"commands": ["echo first >&2", "echo last words >&2", "exit 7"]})
    assert info.value.exit_code == 7
    assert "exit code 7" in str(info.value)
    assert "last words" in str(info.value)


def test_execute_bash_194_requests_reboot(ctx: ActionContext) -> None:
    with pytest.raises(RebootRequested):
        run(ctx, "ExecuteBash", {"commands": ["exit 194"]})


def test_execute_bash_timeout(ctx: ActionContext) -> None:
    ctx.timeout = 0.5
    with pytest.raises(ActionFailed, match=r"timed out after 0\.5 seconds"):
        run(ctx, "ExecuteBash", {"commands": ["sleep 30"]})


def test_execute_binary(ctx: ActionContext) -> None:
    result = run(ctx, "ExecuteBinary", {"path": "printf", "arguments": ["%s|%s", "a b", True]})
    assert result.outputs == {"stdout": "a b|true"}
    with pytest.raises(ActionFailed, match="exit code 1"):
        run(ctx, "ExecuteBinary", {"path": "false"})
    with pytest.raises(RebootRequested):
        run(ctx, "ExecuteBinary", {"path": "sh", "arguments": ["-c", "exit 194"]})


def test_execute_powershell_runs_with_pwsh_and_says_so_without(ctx: ActionContext) -> None:
    # Debian has no pwsh package, so CI checks the refusal; a host with pwsh checks the run.
    if LocalTarget().exec(["sh", "-c", "command -v pwsh"]).exit_code == 0:
        assert run(ctx, "ExecutePowerShell", {"commands": ["Write-Host hi"]}).outputs["stdout"] == "hi"
        return
    with pytest.raises(ActionFailed, match="pwsh not found on target"):
        run(ctx, "ExecutePowerShell", {"commands": ["Write-Host hi"]})


def test_execute_document_calls_the_runner(ctx: ActionContext) -> None:
    calls: list[tuple[str, dict[str, str], list[str] | None]] = []

    def run_document(document: str, parameters: dict[str, str], phases: list[str] | None) -> dict[str, Any]:
        calls.append((document, parameters, phases))
        return {"status": "success", "executedStepCount": 2}

    ctx.run_document = run_document
    inputs = {
        "document": "inner.yaml",
        "phases": "build, test",
        "parameters": [{"name": "P", "value": True}],
    }
    assert run(ctx, "ExecuteDocument", inputs).outputs["executedStepCount"] == 2
    assert calls == [("inner.yaml", {"P": "true"}, ["build", "test"])]

    ctx.run_document = lambda d, p, ph: {"status": "failed", "failureMessage": "step X failed"}
    with pytest.raises(ActionFailed, match="step X failed"):
        run(ctx, "ExecuteDocument", {"document": "inner.yaml"})


def test_assert(ctx: ActionContext, tmp_path: Path) -> None:
    run(ctx, "Assert", {"stringEquals": "2.1.1", "value": "2.1.1"})
    run(
        ctx,
        "Assert",
        {"and": [{"folderExists": str(tmp_path)}, {"not": {"fileExists": str(tmp_path / "no")}}]},
    )
    with pytest.raises(ActionFailed, match="Assert failed"):
        run(ctx, "Assert", {"numberGreaterThan": 5, "value": 3})


def test_reboot_requests_then_completes(ctx: ActionContext) -> None:
    with pytest.raises(RebootRequested) as info:
        run(ctx, "Reboot", {"delaySeconds": 5})
    assert info.value.delay_seconds == 5
    # The runner reruns the step after the reboot; this time it is done.
    assert run(ctx, "Reboot", {"delaySeconds": 5}) == ActionResult()
    with pytest.raises(RebootRequested):
        run(ctx, "Reboot", None)


@pytest.mark.parametrize("name", ["InstallMSI", "UninstallMSI", "SetRegistry"])
def test_windows_only_actions_refuse(ctx: ActionContext, name: str) -> None:
    with pytest.raises(ActionFailed, match=f"{name} runs only on Windows targets"):
        run(ctx, name, {"path": "a.msi"})


# -- files ------------------------------------------------------------------------------------


def test_create_file(ctx: ActionContext, tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "f.txt"
    run(ctx, "CreateFile", [{"path": str(path), "content": "héllo\n", "permissions": "0640"}])
    assert path.read_text() == "héllo\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    run(ctx, "CreateFile", [{"path": str(path), "content": "x", "encoding": "utf-16", "permissions": 0o600}])
    assert path.read_bytes() == "x".encode("utf-16-le")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with pytest.raises(ActionFailed, match="already exists"):
        run(ctx, "CreateFile", [{"path": str(path), "overwrite": False}])
    with pytest.raises(ActionFailed, match="is a folder"):
        run(ctx, "CreateFile", [{"path": str(tmp_path)}])


def test_create_file_owner(ctx: ActionContext, tmp_path: Path) -> None:
    me = pwd.getpwuid(os.getuid())
    path = tmp_path / "owned"
    run(ctx, "CreateFile", [{"path": str(path), "owner": me.pw_name, "group": me.pw_gid}])
    assert path.stat().st_uid == os.getuid()


def test_append_file(ctx: ActionContext, tmp_path: Path) -> None:
    path = tmp_path / "a.txt"
    path.write_text("one\n")
    run(ctx, "AppendFile", [{"path": str(path), "content": "two\n"}, {"path": str(path), "content": "3"}])
    assert path.read_text() == "one\ntwo\n3"
    with pytest.raises(ActionFailed, match="does not exist"):
        run(ctx, "AppendFile", [{"path": str(tmp_path / "missing"), "content": "x"}])


def test_copy_file(ctx: ActionContext, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for name in ("a.txt", "b.txt", "c.log"):
        (src / name).write_text(name)
    run(ctx, "CopyFile", [{"source": str(src / "a.txt"), "destination": str(tmp_path / "new" / "copy.txt")}])
    assert (tmp_path / "new" / "copy.txt").read_text() == "a.txt"
    run(ctx, "CopyFile", [{"source": str(src / "*.txt"), "destination": str(tmp_path / "out") + "/"}])
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.txt", "b.txt"]
    with pytest.raises(ActionFailed, match="already exists"):
        run(
            ctx,
            "CopyFile",
            [{"source": str(src / "a.txt"), "destination": str(tmp_path / "out/"), "overwrite": False}],
        )
    with pytest.raises(ActionFailed, match="does not exist"):
        run(ctx, "CopyFile", [{"source": str(src / "nope"), "destination": str(tmp_path / "x")}])
    with pytest.raises(ActionFailed, match="no files match"):
        run(ctx, "CopyFile", [{"source": str(src / "*.md"), "destination": str(tmp_path / "x/")}])


def test_copy_file_odd_names(ctx: ActionContext, tmp_path: Path) -> None:
    src = tmp_path / "we ird $dir"
    src.mkdir()
    (src / "it's; rm -rf x.txt").write_text("safe")
    run(ctx, "CopyFile", [{"source": str(src / "*.txt"), "destination": str(tmp_path / "o u t") + "/"}])
    assert (tmp_path / "o u t" / "it's; rm -rf x.txt").read_text() == "safe"


def test_move_file(ctx: ActionContext, tmp_path: Path) -> None:
    (tmp_path / "a").write_text("a")
    run(ctx, "MoveFile", [{"source": str(tmp_path / "a"), "destination": str(tmp_path / "d" / "b")}])
    assert not (tmp_path / "a").exists()
    assert (tmp_path / "d" / "b").read_text() == "a"


def make_tree(root: Path) -> None:
    (root / "sub").mkdir(parents=True)
    (root / "top.txt").write_text("top")
    (root / "sub" / "deep.txt").write_text("deep")


def test_copy_folder_merges(ctx: ActionContext, tmp_path: Path) -> None:
    make_tree(tmp_path / "src")
    (tmp_path / "dst").mkdir()
    (tmp_path / "dst" / "keep.txt").write_text("keep")
    run(ctx, "CopyFolder", [{"source": str(tmp_path / "src"), "destination": str(tmp_path / "dst")}])
    assert (tmp_path / "dst" / "sub" / "deep.txt").read_text() == "deep"
    assert (tmp_path / "dst" / "keep.txt").exists()
    assert (tmp_path / "src" / "top.txt").exists()
    with pytest.raises(ActionFailed, match="overwrite is false"):
        run(
            ctx,
            "CopyFolder",
            [{"source": str(tmp_path / "src"), "destination": str(tmp_path / "dst"), "overwrite": False}],
        )


def test_move_folder_replaces(ctx: ActionContext, tmp_path: Path) -> None:
    make_tree(tmp_path / "src")
    (tmp_path / "dst").mkdir()
    (tmp_path / "dst" / "old.txt").write_text("old")
    run(ctx, "MoveFolder", [{"source": str(tmp_path / "src"), "destination": str(tmp_path / "dst")}])
    assert not (tmp_path / "src").exists()
    assert (tmp_path / "dst" / "sub" / "deep.txt").exists()
    assert not (tmp_path / "dst" / "old.txt").exists()
    with pytest.raises(ActionFailed, match="does not exist"):
        run(ctx, "MoveFolder", [{"source": str(tmp_path / "src"), "destination": str(tmp_path / "x")}])


def test_delete_file(ctx: ActionContext, tmp_path: Path) -> None:
    for name in ("a.log", "b.log", "c.txt"):
        (tmp_path / name).write_text(name)
    run(ctx, "DeleteFile", [{"path": str(tmp_path / "*.log")}, {"path": str(tmp_path / "c.txt")}])
    assert not list(tmp_path.glob("*.log"))
    assert not (tmp_path / "c.txt").exists()
    with pytest.raises(ActionFailed, match="does not exist"):
        run(ctx, "DeleteFile", [{"path": str(tmp_path / "c.txt")}])


def test_delete_folder(ctx: ActionContext, tmp_path: Path) -> None:
    make_tree(tmp_path / "tree")
    (tmp_path / "empty").mkdir()
    run(ctx, "DeleteFolder", [{"path": str(tmp_path / "empty")}])
    assert not (tmp_path / "empty").exists()
    with pytest.raises(ActionFailed, match="not empty"):
        run(ctx, "DeleteFolder", [{"path": str(tmp_path / "tree")}])
    run(ctx, "DeleteFolder", [{"path": str(tmp_path / "tree"), "force": True}])
    assert not (tmp_path / "tree").exists()
    with pytest.raises(ActionFailed, match="does not exist"):
        run(ctx, "DeleteFolder", [{"path": str(tmp_path / "tree")}])


def test_create_folder(ctx: ActionContext, tmp_path: Path) -> None:
    path = tmp_path / "a" / "b"
    run(ctx, "CreateFolder", [{"path": str(path), "permissions": "0750"}])
    assert path.is_dir()
    assert stat.S_IMODE(path.stat().st_mode) == 0o750
    run(ctx, "CreateFolder", [{"path": str(path)}])  # existing is fine by default
    with pytest.raises(ActionFailed, match="overwrite is false"):
        run(ctx, "CreateFolder", [{"path": str(path), "overwrite": False}])


def test_create_symlink(ctx: ActionContext, tmp_path: Path) -> None:
    (tmp_path / "t").write_text("t")
    link = tmp_path / "l"
    run(ctx, "CreateSymlink", [{"path": str(link), "target": str(tmp_path / "t")}])
    assert os.readlink(link) == str(tmp_path / "t")
    with pytest.raises(ActionFailed, match="force is false"):
        run(ctx, "CreateSymlink", [{"path": str(link), "target": "/etc"}])
    run(ctx, "CreateSymlink", [{"path": str(link), "target": "/etc", "force": True}])
    assert os.readlink(link) == "/etc"


def test_list_files(ctx: ActionContext, tmp_path: Path) -> None:
    make_tree(tmp_path / "tree")
    flat = run(ctx, "ListFiles", [{"path": str(tmp_path / "tree")}]).outputs["files"]
    assert flat == [str(tmp_path / "tree" / "top.txt")]
    deep = run(
        ctx, "ListFiles", [{"path": str(tmp_path / "tree"), "recursive": True, "fileNamePattern": "d*"}]
    )
    assert deep.outputs["files"] == [str(tmp_path / "tree" / "sub" / "deep.txt")]


def test_read_file(ctx: ActionContext, tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes("ünï".encode("utf-16-be"))
    result = run(
        ctx, "ReadFile", [{"path": str(tmp_path / "f"), "encoding": "utf-16-BE", "printFileContent": True}]
    )
    assert result.outputs == {"content": "ünï"}
    assert "ünï".encode() in bytes(log_of(ctx).out)
    with pytest.raises(ActionFailed, match="does not exist"):
        run(ctx, "ReadFile", [{"path": str(tmp_path / "missing")}])


def test_set_file_encoding(ctx: ActionContext, tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_text("grüße")
    path.chmod(0o604)
    run(ctx, "SetFileEncoding", [{"path": str(path), "encoding": "utf32-BE"}])
    assert path.read_bytes() == "grüße".encode("utf-32-be")
    assert stat.S_IMODE(path.stat().st_mode) == 0o604
    path.write_bytes(b"\xff\xfe" + "bom".encode("utf-16-le"))
    run(ctx, "SetFileEncoding", [{"path": str(path), "encoding": "utf8"}])
    assert path.read_bytes() == b"bom"


def test_set_owner(ctx: ActionContext, tmp_path: Path) -> None:
    make_tree(tmp_path / "tree")
    owner = "nobody" if os.getuid() == 0 else pwd.getpwuid(os.getuid()).pw_name
    uid = pwd.getpwnam(owner).pw_uid
    run(ctx, "SetFileOwner", [{"path": str(tmp_path / "tree" / "top.txt"), "owner": owner}])
    assert (tmp_path / "tree" / "top.txt").stat().st_uid == uid
    run(ctx, "SetFolderOwner", [{"path": str(tmp_path / "tree"), "owner": owner}])
    assert (tmp_path / "tree" / "sub" / "deep.txt").stat().st_uid == uid
    with pytest.raises(ActionFailed, match="does not exist"):
        run(ctx, "SetFileOwner", [{"path": str(tmp_path / "missing"), "owner": owner}])


def test_set_permissions(ctx: ActionContext, tmp_path: Path) -> None:
    make_tree(tmp_path / "tree")
    run(ctx, "SetFilePermissions", [{"path": str(tmp_path / "tree" / "top.txt"), "permissions": "0600"}])
    assert stat.S_IMODE((tmp_path / "tree" / "top.txt").stat().st_mode) == 0o600
    run(ctx, "SetFolderPermissions", [{"path": str(tmp_path / "tree"), "permissions": "0750"}])
    assert stat.S_IMODE((tmp_path / "tree" / "sub" / "deep.txt").stat().st_mode) == 0o750
    run(
        ctx,
        "SetFolderPermissions",
        [{"path": str(tmp_path / "tree"), "permissions": "0755", "recursive": False}],
    )
    assert stat.S_IMODE((tmp_path / "tree").stat().st_mode) == 0o755
    assert stat.S_IMODE((tmp_path / "tree" / "sub").stat().st_mode) == 0o750


# -- WebDownload ------------------------------------------------------------------------------

PAYLOAD = b"payload bytes\n" * 100
PAYLOAD_SHA256 = hashlib.sha256(PAYLOAD).hexdigest()


class _Handler(http.server.BaseHTTPRequestHandler):
    requests: list[str] = []

    def do_GET(self) -> None:
        type(self).requests.append(self.path)
        if self.path == "/file.bin":
            self.send_response(200)
            self.send_header("Content-Length", str(len(PAYLOAD)))
            self.end_headers()
            self.wfile.write(PAYLOAD)
        elif self.path == "/moved":
            self.send_response(302)
            self.send_header("Location", "/file.bin")
            self.end_headers()
        else:
            self.send_error(404)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def http_url() -> Iterator[str]:
    _Handler.requests = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_web_download_file_url(ctx: ActionContext, tmp_path: Path) -> None:
    (tmp_path / "src.bin").write_bytes(PAYLOAD)
    result = run(
        ctx, "WebDownload", [{"source": f"file://{tmp_path}/src.bin", "destination": f"{tmp_path}/d/"}]
    )
    assert (tmp_path / "d" / "src.bin").read_bytes() == PAYLOAD
    assert result.outputs == {"destination": f"{tmp_path}/d/src.bin"}


def test_web_download_http_with_checksum(ctx: ActionContext, tmp_path: Path, http_url: str) -> None:
    dest = tmp_path / "out.bin"
    item = {
        "source": f"{http_url}/moved",
        "destination": str(dest),
        "checksum": PAYLOAD_SHA256.upper(),
        "algorithm": "SHA256",
    }
    run(ctx, "WebDownload", [item])
    assert dest.read_bytes() == PAYLOAD
    # Already there with the right checksum: not fetched again.
    before = len(_Handler.requests)
    run(ctx, "WebDownload", [item])
    assert len(_Handler.requests) == before


def test_web_download_bad_checksum_leaves_nothing(ctx: ActionContext, tmp_path: Path, http_url: str) -> None:
    item = {
        "source": f"{http_url}/file.bin",
        "destination": str(tmp_path / "o"),
        "checksum": "0" * 64,
        "algorithm": "SHA256",
    }
    with pytest.raises(ActionFailed, match="checksum mismatch"):
        run(ctx, "WebDownload", [item])
    assert not list(tmp_path.glob("o*"))  # neither the file nor a partial download


def test_web_download_http_errors(ctx: ActionContext, tmp_path: Path, http_url: str) -> None:
    with pytest.raises(ActionFailed, match="404"):
        run(ctx, "WebDownload", [{"source": f"{http_url}/missing", "destination": str(tmp_path / "x")}])
    assert _Handler.requests == ["/missing"]  # a 404 is not retried
    (tmp_path / "exists").write_text("x")
    with pytest.raises(ActionFailed, match="overwrite is false"):
        run(
            ctx,
            "WebDownload",
            [
                {
                    "source": f"{http_url}/file.bin",
                    "destination": str(tmp_path / "exists"),
                    "overwrite": False,
                }
            ],
        )


def test_web_download_retries_transport_errors(ctx: ActionContext, tmp_path: Path) -> None:
    with pytest.raises(ActionFailed, match="after 5 attempts"):
        run(ctx, "WebDownload", [{"source": "http://127.0.0.1:9/x", "destination": str(tmp_path / "x")}])


# -- S3 ---------------------------------------------------------------------------------------


def test_s3_upload_and_download(ctx: ActionContext, tmp_path: Path, s3_endpoint: str) -> None:
    ctx.s3 = S3Settings(s3_endpoint, "us-east-1", "testing", "testing")
    s3 = boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    s3.create_bucket(Bucket="images")
    make_tree(tmp_path / "up")

    run(
        ctx,
        "S3Upload",
        [
            {"source": str(tmp_path / "up"), "destination": "s3://images/tree/", "recurse": True},
            {"source": str(tmp_path / "up" / "top.txt"), "destination": "s3://images/one/"},
            {"source": str(tmp_path / "up" / "*.txt"), "destination": "s3://images/glob"},
        ],
    )
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket="images")["Contents"])
    assert keys == ["glob/top.txt", "one/top.txt", "tree/sub/deep.txt", "tree/top.txt"]

    (tmp_path / "down").mkdir()
    run(
        ctx,
        "S3Download",
        [
            {"source": "s3://images/tree/*", "destination": str(tmp_path / "down")},
            {"source": "s3://images/one/top.txt", "destination": str(tmp_path / "single.txt")},
        ],
    )
    assert (tmp_path / "down" / "sub" / "deep.txt").read_text() == "deep"
    assert (tmp_path / "single.txt").read_text() == "top"

    with pytest.raises(ActionFailed, match="overwrite is false"):
        run(
            ctx,
            "S3Download",
            [
                {
                    "source": "s3://images/one/top.txt",
                    "destination": str(tmp_path / "single.txt"),
                    "overwrite": False,
                }
            ],
        )
    with pytest.raises(ActionFailed, match="404"):
        run(ctx, "S3Download", [{"source": "s3://images/nope", "destination": str(tmp_path / "n")}])
    with pytest.raises(ActionFailed, match="does not exist"):
        run(
            ctx,
            "S3Download",
            [{"source": "s3://images/tree/*", "destination": str(tmp_path / "no-such-dir")}],
        )


# -- UpdateOS ---------------------------------------------------------------------------------


def fake_bin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tools: list[str]) -> Path:
    """A PATH holding only sh, grep and recording stand-ins for the package tools."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for real in ("sh", "grep"):
        (bin_dir / real).symlink_to(f"/bin/{real}" if Path(f"/bin/{real}").exists() else f"/usr/bin/{real}")
    calls = tmp_path / "calls"
    for tool in tools:
        script = bin_dir / tool
        script.write_text(f'#!/bin/sh\necho "{tool} $*" >> {calls}\n')
        script.chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    return calls


def test_update_os_apt(ctx: ActionContext, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = fake_bin(tmp_path, monkeypatch, ["apt-get", "apt-mark"])
    run(ctx, "UpdateOS", {"include": ["openssl", "curl"], "exclude": ["curl"]})
    assert calls.read_text().splitlines() == [
        "apt-get update",
        "apt-get -y -o Dpkg::Options::=--force-confold install --only-upgrade openssl",
    ]
    calls.unlink()
    run(ctx, "UpdateOS", {"exclude": ["linux-image-amd64"]})
    lines = calls.read_text().splitlines()
    assert lines[0] == "apt-mark showhold"
    assert lines[1] == "apt-mark hold linux-image-amd64"
    assert lines[-1] == "apt-mark unhold linux-image-amd64"
    assert "apt-get -y -o Dpkg::Options::=--force-confold dist-upgrade" in lines


def test_update_os_dnf(ctx: ActionContext, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = fake_bin(tmp_path, monkeypatch, ["dnf"])
    run(ctx, "UpdateOS", {"exclude": ["kernel*"]})
    assert calls.read_text().splitlines() == ["dnf -y update --exclude=kernel*"]


def test_update_os_without_package_manager(
    ctx: ActionContext, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_bin(tmp_path, monkeypatch, [])
    with pytest.raises(ActionFailed, match="no supported package manager"):
        run(ctx, "UpdateOS", None)


def test_update_os_failure(ctx: ActionContext, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_bin(tmp_path, monkeypatch, ["yum"])
    (tmp_path / "bin" / "yum").write_text("#!/bin/sh\necho 'no mirrors' >&2\nexit 1\n")
    with pytest.raises(ActionFailed, match="yum update failed: no mirrors"):
        run(ctx, "UpdateOS", {})
