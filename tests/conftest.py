"""Shared fixtures. Keep them grouped by what they need (one section per service) and documented.

Docker: tests use the real engine started by deploy/host-setup.sh and the offline base image it
builds (imagebuilder/debian:12); nothing is ever pulled. Containers are made with the docker SDK
directly rather than testcontainers: the fixtures need restart policies, fixed loopback ports
and labels, and cleanup must not depend on testcontainers' Ryuk reaper, whose image cannot be
pulled here. Every test container carries TEST_LABELS (tests/support/containers.py); the
session removes leftovers at the end and tests/components/test_targets.py asserts that none
were left.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

# For tests that do use testcontainers: its Ryuk reaper image cannot be pulled (air-gapped).
os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")

import docker
import docker.errors
from docker.models.containers import Container

from tests.support.containers import (
    BASE_IMAGE,
    SSHD_INIT,
    TEST_LABELS,
    SshEndpoint,
    free_loopback_port,
    session_containers,
    wait_for_ssh_banner,
    write_ed25519_key,
)
from tests.support.s3 import s3_server

# --- Docker (helpers in tests/support/containers.py) ----------------------------------------


@pytest.fixture(scope="session")
def docker_client() -> Iterator[docker.DockerClient]:
    """The local Docker engine. Fails (does not skip) when it is not running: CI must run these."""
    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException as exc:
        pytest.fail(
            f"the Docker engine is not reachable ({exc}); start it with `bash deploy/host-setup.sh` as root",
            pytrace=False,
        )
    yield client
    # Safety net: a test that died before its fixture's cleanup must not poison the next run.
    for container in session_containers(client):
        container.remove(force=True, v=True)
    client.close()


@pytest.fixture(scope="session")
def debian_image(docker_client: docker.DockerClient) -> str:
    """The tag of the offline Debian 12 base image (built by deploy/host-setup.sh)."""
    try:
        docker_client.images.get(BASE_IMAGE)
    except docker.errors.ImageNotFound:
        pytest.fail(
            f"the base image {BASE_IMAGE} is missing; build it with `bash deploy/host-setup.sh` as root "
            "(debootstrap + docker import; it cannot be pulled)",
            pytrace=False,
        )
    return BASE_IMAGE


@pytest.fixture
def debian_container(docker_client: docker.DockerClient, debian_image: str) -> Iterator[Container]:
    """A running container of the base image (`sleep infinity` under docker's init, so a
    restart stops it at once instead of waiting for the stop timeout); removed afterwards."""
    container: Container = docker_client.containers.run(
        debian_image, ["sleep", "infinity"], init=True, detach=True, labels=TEST_LABELS
    )
    try:
        yield container
    finally:
        container.remove(force=True, v=True)


@pytest.fixture
def sshd_container(
    docker_client: docker.DockerClient, debian_image: str, tmp_path: Path
) -> Iterator[SshEndpoint]:
    """A container of the base image running sshd, reachable as root with a fresh ed25519 key.

    Yields ``(host, port, key_path)`` (an SshEndpoint, which also has ``.container``). The port
    is published on 127.0.0.1 only. `reboot` and `systemctl --no-block reboot` inside work:
    PID 1 is a small shell script (SSHD_INIT) that runs sshd and installs reboot/systemctl
    shims which make PID 1 exit; the container's restart policy "always" brings it back with
    its filesystem intact, and sshd keeps its host keys. Removed (forcibly) afterwards.
    """
    key_path = tmp_path / "id_ed25519"
    public_key = write_ed25519_key(key_path)
    port = free_loopback_port()
    container: Container = docker_client.containers.run(
        debian_image,
        ["/bin/sh", "-c", SSHD_INIT],
        detach=True,
        environment={"AUTHORIZED_KEY": public_key},
        ports={"22/tcp": ("127.0.0.1", port)},
        restart_policy={"Name": "always"},
        labels=TEST_LABELS,
    )
    try:
        wait_for_ssh_banner("127.0.0.1", port)
        yield SshEndpoint("127.0.0.1", port, key_path, container)
    finally:
        container.remove(force=True, v=True)


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """An S3-compatible server on loopback per test module (tests/support/s3.py)."""
    with s3_server() as url:
        yield url
