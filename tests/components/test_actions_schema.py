"""Every action module has a schema beside it, and each schema accepts and rejects the right inputs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from components.actions.base import registry

ACTIONS_DIR = Path(__file__).resolve().parents[2] / "components" / "actions"

# name -> (inputs the spec allows, inputs it does not)
CASES: dict[str, tuple[list[Any], list[Any]]] = {
    "ExecuteBash": (
        [{"commands": ["echo hi"]}, {"commands": ["set -e\nls /", "echo {{ build.x.outputs.stdout }}"]}],
        [{}, {"commands": "echo hi"}, {"commands": []}, {"commands": ["x"], "file": "a.sh"}, ["echo"]],
    ),
    "ExecuteBinary": (
        [{"path": "/usr/bin/env"}, {"path": "/bin/echo", "arguments": ["a", "--b", 3]}],
        [{"arguments": ["a"]}, {"path": ""}, {"path": "/bin/ls", "arguments": "-l"}],
    ),
    "ExecutePowerShell": (
        [{"commands": ["Write-Host hi"]}, {"file": "C:\\s.ps1"}],
        [{}, {"commands": ["a"], "file": "b.ps1"}, {"commands": "Write-Host"}],
    ),
    "ExecuteDocument": (
        [
            {"document": "other.yaml"},
            {
                "document": "s3://b/d.yaml",
                "phases": "build,test",
                "parameters": [{"name": "p", "value": "v"}],
            },
        ],
        [
            {},
            {"document": "d.yaml", "parameters": {"p": "v"}},
            {"document": "d", "parameters": [{"name": "p"}]},
        ],
    ),
    "Assert": (
        [
            {"stringEquals": "2.1.1", "value": "{{ build.v.outputs.stdout }}"},
            {"and": [{"fileExists": "/etc/passwd"}, {"not": {"binaryExists": "x"}}]},
            {"fileSHA256Equals": "abc", "path": "/f"},
        ],
        [{}, {"value": "x"}, {"noSuchOperator": 1}, ["stringEquals"]],
    ),
    "S3Download": (
        [
            [{"source": "s3://b/k", "destination": "/tmp/k"}],
            [
                {
                    "source": "s3://b/p/*",
                    "destination": "/tmp/",
                    "overwrite": False,
                    "expectedBucketOwner": "1234",
                }
            ],
        ],
        [
            {"source": "s3://b/k", "destination": "/tmp/k"},
            [{"source": "http://b/k", "destination": "/tmp/k"}],
            [{"source": "s3://b/k"}],
            [{"source": "s3://b/k", "destination": "/d", "overwrite": "maybe"}],
        ],
    ),
    "S3Upload": (
        [[{"source": "/var/log/*", "destination": "s3://b/logs/", "recurse": True}]],
        [
            [{"source": "/f", "destination": "/tmp/f"}],
            [{"destination": "s3://b/k"}],
            [{"source": "/f", "destination": "s3://b", "x": 1}],
        ],
    ),
    "WebDownload": (
        [
            [{"source": "https://example.com/a.zip", "destination": "/tmp/"}],
            [
                {
                    "source": "file:///srv/a",
                    "destination": "/tmp/a",
                    "checksum": "ab12",
                    "algorithm": "SHA256",
                }
            ],
            [
                {
                    "source": "{{ build.url.outputs.stdout }}",
                    "destination": "/tmp/a",
                    "ignoreCertificateErrors": True,
                }
            ],
        ],
        [
            [{"source": "ftp://example.com/a", "destination": "/tmp/a"}],
            [{"source": "https://e/a", "destination": "/tmp/a", "checksum": "ab"}],
            [{"source": "https://e/a", "destination": "/tmp/a", "checksum": "ab", "algorithm": "CRC32"}],
            [{"source": "https://e/a"}],
        ],
    ),
    "AppendFile": (
        [[{"path": "/f", "content": "x"}], [{"path": "/f", "encoding": "utf-16-LE"}]],
        [[{"content": "x"}], [{"path": "/f", "encoding": "latin1"}]],
    ),
    "CopyFile": (
        [[{"source": "/a/*.txt", "destination": "/b/", "overwrite": False}]],
        [[{"source": "/a"}], [{"source": "/a", "destination": "/b", "overwrite": 1}]],
    ),
    "CopyFolder": ([[{"source": "/a", "destination": "/b"}]], [[{"destination": "/b"}]]),
    "MoveFile": ([[{"source": "/a", "destination": "/b", "overwrite": "true"}]], [[{"source": "/a"}]]),
    "MoveFolder": ([[{"source": "/a", "destination": "/b"}]], [[{"source": "/a", "dest": "/b"}]]),
    "CreateFile": (
        [
            [{"path": "/f"}],
            [
                {
                    "path": "/f",
                    "content": "x",
                    "encoding": "utf8",
                    "owner": "root",
                    "group": 0,
                    "permissions": "0640",
                }
            ],
            [{"path": "/f", "permissions": 448}],  # YAML 1.1 reading of an unquoted 0700
        ],
        [
            [{"content": "x"}],
            [{"path": "/f", "permissions": "rwx"}],
            [{"path": "/f", "permissions": "0999"}],
            [],
        ],
    ),
    "CreateFolder": (
        [[{"path": "/d", "permissions": "0755", "owner": "root"}]],
        [[{"path": "/d", "recursive": True}], [{"path": "/d", "permissions": 99999}]],
    ),
    "CreateSymlink": ([[{"path": "/l", "target": "/t", "force": True}]], [[{"path": "/l"}]]),
    "DeleteFile": ([[{"path": "/tmp/*.log"}]], [[{"path": "/tmp/x", "force": True}], [{}]]),
    "DeleteFolder": ([[{"path": "/d", "force": True}]], [[{"force": True}]]),
    "ListFiles": (
        [[{"path": "/d", "fileNamePattern": "*.txt", "recursive": True}]],
        [[{"fileNamePattern": "*"}], [{"path": "/d", "recursive": "yes"}]],
    ),
    "ReadFile": (
        [[{"path": "/f", "encoding": "UTF-32-BE", "printFileContent": True}]],
        [[{"path": "/f", "encoding": "ascii"}]],
    ),
    "SetFileEncoding": ([[{"path": "/f", "encoding": "utf16"}]], [[{"encoding": "utf8"}]]),
    "SetFileOwner": (
        [[{"path": "/f", "owner": "root", "group": "root"}]],
        [[{"path": "/f"}], [{"path": "/f", "owner": "r", "recursive": True}]],
    ),
    "SetFolderOwner": ([[{"path": "/d", "owner": 0, "recursive": False}]], [[{"path": "/d", "group": "g"}]]),
    "SetFilePermissions": (
        [[{"path": "/f", "permissions": "0600"}]],
        [[{"path": "/f"}], [{"path": "/f", "permissions": "u+x"}]],
    ),
    "SetFolderPermissions": (
        [[{"path": "/d", "permissions": "755", "recursive": True}]],
        [[{"permissions": "0755"}]],
    ),
    "Reboot": (
        [None, {}, {"delaySeconds": 60}, {"delaySeconds": None}],
        [{"delaySeconds": -1}, {"delay": 5}, []],
    ),
    "UpdateOS": (
        [None, {}, {"include": ["openssl"], "exclude": ["kernel*"]}],
        [{"include": "openssl"}, {"packages": ["a"]}, []],
    ),
    "InstallMSI": (
        [{"path": "C:\\a.msi", "reboot": "Skip", "logOptions": "*VX", "properties": {"A": "1"}}],
        [{}, {"path": "a.msi", "reboot": "Never"}],
    ),
    "UninstallMSI": ([{"path": "s3://b/a.msi"}], [{"reboot": "Allow"}]),
    "SetRegistry": (
        [[{"path": "HKLM:\\SOFTWARE\\X", "name": "V", "value": 1, "type": "DWORD"}]],
        [
            [{"path": "C:\\x", "name": "V", "value": 1, "type": "DWORD"}],
            [{"path": "HKLM:\\X", "name": "V", "value": 1, "type": "INT"}],
        ],
    ),
}


def test_every_action_is_covered() -> None:
    assert set(CASES) == set(registry())


def test_every_module_has_its_schema_file() -> None:
    for module in ACTIONS_DIR.glob("*.py"):
        if module.name.startswith("_") or module.stem == "base":
            continue
        schema_file = module.with_suffix(".schema.json")
        assert schema_file.exists(), f"{module.name} has no schema"
        schema = json.loads(schema_file.read_text())
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        jsonschema.Draft202012Validator.check_schema(schema)


def test_platforms_are_declared() -> None:
    for name, module in registry().items():
        assert module.platforms, name
        assert module.platforms <= {"Linux", "Windows", "macOS"}, name
    assert registry()["ExecuteBash"].platforms == {"Linux", "macOS"}
    for windows_only in ("InstallMSI", "UninstallMSI", "SetRegistry"):
        assert registry()[windows_only].platforms == {"Windows"}


@pytest.mark.parametrize(
    ("name", "inputs"), [(name, good) for name, (goods, _) in CASES.items() for good in goods]
)
def test_schema_accepts(name: str, inputs: Any) -> None:
    errors = list(jsonschema.Draft202012Validator(registry()[name].schema).iter_errors(inputs))
    assert not errors, [e.message for e in errors]


@pytest.mark.parametrize(
    ("name", "inputs"), [(name, bad) for name, (_, bads) in CASES.items() for bad in bads]
)
def test_schema_rejects(name: str, inputs: Any) -> None:
    assert list(jsonschema.Draft202012Validator(registry()[name].schema).iter_errors(inputs))
