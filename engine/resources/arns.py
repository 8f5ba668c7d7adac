"""ARNs: arn:aws:imagebuilder:REGION:ACCOUNT:TYPE/NAME[/VERSION[/BUILD]].

Managed (Amazon-owned) resources use the account field "aws", as Image Builder does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from engine.api import errors

MANAGED_ACCOUNT = "aws"

#: Resource types whose ARNs carry a semantic version and a build number.
VERSIONED = frozenset({"component", "image-recipe", "container-recipe", "image", "workflow"})

_ARN = re.compile(r"^arn:aws[^:]*:imagebuilder:(?P<region>[^:]+):(?P<account>[^:]+):(?P<rest>.+)$")


@dataclass(frozen=True)
class Arn:
    region: str
    account: str
    type: str  # "component", "workflow/build", "image-pipeline", ...
    name: str
    version: str = ""  # "1.0.0", "1.x.x" or ""
    build: int | None = None

    @property
    def kind(self) -> str:
        """The store kind: the resource type without a workflow's stage."""
        return self.type.split("/")[0]

    def __str__(self) -> str:
        tail = f"/{self.version}" if self.version else ""
        if self.build is not None:
            tail += f"/{self.build}"
        return f"arn:aws:imagebuilder:{self.region}:{self.account}:{self.type}/{self.name}{tail}"

    def version_arn(self) -> str:
        """The ARN without its build number (what recipes and policies name)."""
        return str(Arn(self.region, self.account, self.type, self.name, self.version))


def normalize_name(name: str) -> str:
    """Names as ARNs spell them: case, spaces and underscores do not make a different name."""
    return re.sub(r"[ _]", "-", name.strip().lower())


def parse(arn: str, expected_type: str | None = None) -> Arn:
    """Parse an ARN; raise InvalidParameterValueException naming what is wrong."""
    m = _ARN.match(arn)
    if not m:
        raise errors.bad_parameter(f"{arn!r} is not an Image Builder ARN")
    parts = m["rest"].split("/")
    rtype = parts[0]
    if rtype == "workflow" and len(parts) > 1:
        rtype, parts = f"workflow/{parts[1]}", [f"workflow/{parts[1]}", *parts[2:]]
    if expected_type is not None and rtype.split("/")[0] != expected_type:
        raise errors.bad_parameter(f"{arn!r} is not a {expected_type} ARN")
    if len(parts) < 2 or not parts[1]:
        raise errors.bad_parameter(f"{arn!r} names no resource")
    name = parts[1]
    version = parts[2] if len(parts) > 2 else ""
    build: int | None = None
    if len(parts) > 3:
        if not parts[3].isdigit():
            raise errors.bad_parameter(f"{arn!r} has a build number that is not a number")
        build = int(parts[3])
    if len(parts) > 4:
        raise errors.bad_parameter(f"{arn!r} has too many parts")
    return Arn(m["region"], m["account"], rtype, name, version, build)


def build(region: str, account: str, rtype: str, name: str, version: str = "", build_no: int | None = None) -> str:
    return str(Arn(region, account, rtype, normalize_name(name), version, build_no))
