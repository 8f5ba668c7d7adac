"""The container inventory reader against the real offline Debian base image: it must list what
dpkg-query lists when run inside a container of the same image."""

from __future__ import annotations

import docker
import pytest

from workers.executors.docker_inventory import inventory_of, parse_apk_installed, parse_dpkg_status

IMAGE = "imagebuilder/debian:12"


@pytest.fixture(scope="module")
def client() -> docker.DockerClient:
    return docker.from_env()


def test_debian_image_inventory_matches_dpkg_query(client: docker.DockerClient) -> None:
    container = client.containers.create(IMAGE, entrypoint=["/nonexistent"], command=[])
    try:
        inventory = inventory_of(client, container)
    finally:
        container.remove(force=True)
    listed = client.containers.run(
        IMAGE,
        entrypoint=["dpkg-query"],
        command=["-W", "-f", "${Package}\t${Version}\t${source:Package}\t${source:Version}\n"],
        remove=True,
    ).decode()
    expected = sorted(tuple(line.split("\t")) for line in listed.splitlines() if line)
    got = sorted(
        (p["packageName"], p["packageVersion"], p["sourceName"], p["sourceVersion"]) for p in inventory.packages
    )
    assert got == expected
    assert len(got) > 50
    assert inventory.os == {"id": "debian", "versionId": "12", "codename": "bookworm"}
    assert inventory.os_version == "Debian GNU/Linux 12 (bookworm)"


def test_dpkg_status_skips_removed_packages_and_reads_source_versions() -> None:
    status = (
        "Package: gone\nStatus: deinstall ok config-files\nVersion: 1.0\n\n"
        "Package: bash\nStatus: install ok installed\nVersion: 5.2.15-2+b7\nSource: bash (5.2.15-2)\n"
        "Description: shell\n long text: with a colon\n\n"
        "Package: libc6\nStatus: install ok installed\nSource: glibc\nVersion: 2.36-9+deb12u4\n"
    )
    rows = [
        (p["packageName"], p["packageVersion"], p["sourceName"], p["sourceVersion"]) for p in parse_dpkg_status(status)
    ]
    assert rows == [("bash", "5.2.15-2+b7", "bash", "5.2.15-2"), ("libc6", "2.36-9+deb12u4", "glibc", "2.36-9+deb12u4")]


def test_apk_database() -> None:
    installed = "C:Q1abc=\nP:musl\nV:1.2.4-r2\no:musl\n\nP:libcrypto3\nV:3.1.4-r5\no:openssl\n"
    assert [(p["packageName"], p["sourceName"]) for p in parse_apk_installed(installed)] == [
        ("musl", "musl"),
        ("libcrypto3", "openssl"),
    ]
