"""NoCloud seed images and ephemeral SSH keys for guests (shared by the QEMU and libvirt executors).

The seed is a small ISO 9660 volume labelled `cidata` holding `meta-data` and `user-data` (and
optionally `network-config`); cloud-init's NoCloud datasource finds it by label on any block
device. pycdlib writes it in pure Python, so no genisoimage/xorriso is needed on the host.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pycdlib
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


def ed25519_keypair(comment: str) -> tuple[bytes, str]:
    """A new ed25519 key: the unencrypted OpenSSH private key and the public key line."""
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return private, f"{public.decode()} {comment}"


def write_ed25519_key(path: Path, comment: str = "imagebuilder-ephemeral") -> str:
    """Write a new unencrypted OpenSSH ed25519 private key to `path` (mode 0600, created so) and
    return the public key line for authorized_keys."""
    private, public = ed25519_keypair(comment)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(private)
    return public


#: Second line of a cloud-config that only carries login keys. Our images' first-boot unit
#: (workers/vm_images.py, NOCLOUD_BOOT) installs those keys itself and starts cloud-init (about 20 s
#: under TCG) only for user data without this line: the recipe's.
KEYS_ONLY_MARKER = "# imagebuilder: login keys only"


def cloud_config(authorized_keys: list[str], extra: dict[str, object] | None = None) -> str:
    """A #cloud-config user-data document (JSON is YAML, and needs no YAML writer here). Keys are
    one per line, as JSON strings: the first-boot unit reads them so (see KEYS_ONLY_MARKER)."""
    config: dict[str, object] = {"ssh_authorized_keys": authorized_keys, **(extra or {})}
    header = "#cloud-config\n" if extra else f"#cloud-config\n{KEYS_ONLY_MARKER}\n"
    return header + json.dumps(config, indent=2) + "\n"


def write_nocloud_seed(
    path: Path,
    *,
    instance_id: str,
    hostname: str,
    user_data: str,
    network_config: str | None = None,
    host_key: tuple[bytes, str] | None = None,
) -> None:
    """Write the `cidata` seed ISO to `path` (mode 0600: it may carry a private host key).

    host_key: the guest's SSH host key (ed25519_keypair), which our images' first-boot unit
    installs instead of making one; cloud-init ignores the extra files."""
    files: dict[str, bytes] = {
        "meta-data": f"instance-id: {instance_id}\nlocal-hostname: {hostname}\n".encode(),
        "user-data": user_data.encode(),
    }
    if network_config is not None:
        files["network-config"] = network_config.encode()
    if host_key is not None:
        files["ssh_host_ed25519_key"] = host_key[0]
        files["ssh_host_ed25519_key.pub"] = f"{host_key[1]}\n".encode()
    iso = pycdlib.PyCdlib()
    # Rock Ridge and Joliet carry the real (lower-case, dashed) names; the ISO 9660 8.3 names
    # are only there because the base format needs them.
    iso.new(interchange_level=3, vol_ident="cidata", joliet=3, rock_ridge="1.09")
    try:
        for i, (name, data) in enumerate(files.items()):
            iso_name = f"/{name.replace('-', '').replace('_', '').upper()[:6]}{i:02d}.;1"
            iso.add_fp(io.BytesIO(data), len(data), iso_name, rr_name=name, joliet_path="/" + name)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            iso.write_fp(out)
    finally:
        iso.close()
