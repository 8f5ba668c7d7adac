#!/usr/bin/env bash
# Installs and starts what the stack and its tests need on a Debian 12 host, as root, without
# systemd: apt packages, dockerd, a loopback OCI registry, PostgreSQL, libvirtd, and the offline
# Debian base image for containers (debootstrap + docker import; nothing is ever pulled).
#
# Idempotent: every step checks first and does nothing when its work is already done, so a
# re-run on a set-up host takes about a second. Services are started detached (setsid nohup)
# so they outlive this script and the make/CI process that ran it.
#
# Measured on 2 cores: from a bare Debian 12 minbase (run in a container with its own dockerd)
# 128 s cold: apt 45 s, services 4 s, debootstrap 71 s, docker import 5 s. Re-import from
# the cached rootfs tarball about 14 s; a re-run with everything up about 1 s.
#
# Knobs (environment):
#   IMAGEBUILDER_DEBIAN_MIRROR  mirror for debootstrap (default http://deb.debian.org/debian)
#   IMAGEBUILDER_BASE_IMAGE     tag of the base container image (default imagebuilder/debian:12)
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

T0=$SECONDS
LOG_DIR=/var/log/imagebuilder
REGISTRY_DIR=/var/lib/imagebuilder-registry
REGISTRY_CONF=/etc/imagebuilder/registry.yml
REGISTRY_ADDR=127.0.0.1:5000
DEBOOTSTRAP_CACHE=/var/cache/imagebuilder/debootstrap
MIRROR=${IMAGEBUILDER_DEBIAN_MIRROR:-http://deb.debian.org/debian}
BASE_IMAGE=${IMAGEBUILDER_BASE_IMAGE:-imagebuilder/debian:12}
PG_ROLE=imagebuilder
PG_PASSWORD=imagebuilder

mkdir -p "$LOG_DIR"
say() { printf 'host-setup [%3ds] %s\n' "$((SECONDS - T0))" "$*"; }
die() { say "ERROR: $*" >&2; exit 1; }

# wait_for SECONDS DESCRIPTION COMMAND...: poll COMMAND every 0.5 s until it succeeds.
wait_for() {
    local limit=$1 what=$2
    shift 2
    local end=$((SECONDS + limit))
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < end)) || return 1
        sleep 0.5
    done
}

# start_detached LOGFILE COMMAND...: run COMMAND in its own session, immune to SIGHUP, with
# output appended to LOGFILE, so it survives the end of this script and of its caller.
start_detached() {
    local logfile=$1
    shift
    mkdir -p "$(dirname "$logfile")"
    setsid nohup "$@" >>"$logfile" 2>&1 </dev/null &
}

cleanup_paths=()
cleanup() { ((${#cleanup_paths[@]})) && rm -rf "${cleanup_paths[@]}"; return 0; }
trap cleanup EXIT

# --- 1. apt packages --------------------------------------------------------------------------
pkgs=(
    python3-venv python3-dev gcc          # the project venv (some wheels build from source)
    docker.io                             # container executor and integration tests
    docker-registry                       # loopback OCI registry for container distribution
    postgresql                            # production store (tests also run on SQLite)
    debootstrap debian-archive-keyring    # offline parent images (the keyring verifies them)
    qemu-utils                            # qemu-img: overlays and disk exports
    qemu-system-x86                       # VM guests (TCG where KVM is unusable)
    libvirt-daemon-system libvirt-dev pkg-config  # libvirt executor; libvirt-python builds against -dev
    extlinux syslinux-common fdisk        # bootable parent qcow2: MBR + extlinux, sfdisk partitions it
    docker-compose                        # tests/test_deploy.py validates deploy/compose.yaml with it (offline)
    git curl openssh-client ca-certificates procps iproute2
)
missing=()
for p in "${pkgs[@]}"; do
    [[ $(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null) == installed ]] || missing+=("$p")
done
if ((${#missing[@]})); then
    say "apt: installing ${missing[*]}"
    # No init system here: keep package scripts from trying to start services; we start them
    # ourselves below with our own configuration. Only ours if none was there before.
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        cleanup_paths+=(/usr/sbin/policy-rc.d)
    fi
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    say "apt: done"
else
    say "apt: all ${#pkgs[@]} packages present"
fi

# --- 2. dockerd -------------------------------------------------------------------------------
if docker info >/dev/null 2>&1; then
    say "dockerd: running"
else
    say "dockerd: starting (log $LOG_DIR/dockerd.log)"
    # A dockerd killed uncleanly leaves its pid file behind; dockerd refuses to start only if
    # that pid is alive, so a stale file is harmless. containerd is started by dockerd itself.
    start_detached "$LOG_DIR/dockerd.log" dockerd
    wait_for 90 dockerd docker info || {
        tail -n 30 "$LOG_DIR/dockerd.log" >&2
        die "dockerd did not come up within 90 s"
    }
    say "dockerd: up ($(docker info --format '{{.ServerVersion}} {{.Driver}}'))"
fi

# --- 3. loopback registry (Debian's docker-registry, distribution v2) -------------------------
registry_ok() { [[ $(curl -s -o /dev/null -w '%{http_code}' "http://$REGISTRY_ADDR/v2/") == 200 ]]; }
mkdir -p "$REGISTRY_DIR" "$(dirname "$REGISTRY_CONF")"
registry_conf="version: 0.1
log:
  level: info
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $REGISTRY_DIR
  delete:
    enabled: true
http:
  addr: $REGISTRY_ADDR
health:
  storagedriver:
    enabled: false
"
if [[ ! -f $REGISTRY_CONF || $(<"$REGISTRY_CONF") != "${registry_conf%$'\n'}" ]]; then
    printf '%s' "$registry_conf" >"$REGISTRY_CONF"
fi
if registry_ok; then
    say "registry: serving on $REGISTRY_ADDR"
else
    say "registry: starting on $REGISTRY_ADDR (log $LOG_DIR/registry.log)"
    start_detached "$LOG_DIR/registry.log" docker-registry serve "$REGISTRY_CONF"
    wait_for 30 registry registry_ok || {
        tail -n 30 "$LOG_DIR/registry.log" >&2
        die "registry did not answer 200 on http://$REGISTRY_ADDR/v2/ within 30 s"
    }
    say "registry: up"
fi

# --- 4. PostgreSQL ----------------------------------------------------------------------------
pg_ver=$(find /usr/lib/postgresql -mindepth 1 -maxdepth 1 -printf '%f\n' | sort -V | tail -n 1)
[[ -n $pg_ver ]] || die "no PostgreSQL server found under /usr/lib/postgresql"
if ! pg_lsclusters -h | awk -v v="$pg_ver" '$1 == v && $2 == "main" {found = 1} END {exit !found}'; then
    say "postgresql: creating cluster $pg_ver/main"
    pg_createcluster --port 5432 "$pg_ver" main >/dev/null
fi
pg_port=$(pg_lsclusters -h | awk -v v="$pg_ver" '$1 == v && $2 == "main" {print $3}')
[[ $pg_port == 5432 ]] || die "cluster $pg_ver/main is configured for port $pg_port, expected 5432"
if pg_isready -q -h 127.0.0.1 -p 5432; then
    say "postgresql: $pg_ver/main running"
else
    say "postgresql: starting $pg_ver/main"
    # /run is a tmpfs on many hosts: the socket directory may be gone after a reboot.
    install -d -o postgres -g postgres -m 2775 /var/run/postgresql
    # pg_ctlcluster daemonizes postgres itself (pg_ctl start), detached from this shell.
    pg_ctlcluster "$pg_ver" main start
    wait_for 60 postgresql pg_isready -q -h 127.0.0.1 -p 5432 || die "postgresql did not come up"
fi
psql_admin() { runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -tA "$@"; }
if [[ $(psql_admin -c "SELECT 1 FROM pg_roles WHERE rolname = '$PG_ROLE'") != 1 ]]; then
    # CREATEDB: tests create a throwaway database each so they never share state.
    psql_admin -c "CREATE ROLE $PG_ROLE LOGIN CREATEDB PASSWORD '$PG_PASSWORD'"
    say "postgresql: created role $PG_ROLE"
fi
if [[ $(psql_admin -c "SELECT 1 FROM pg_database WHERE datname = '$PG_ROLE'") != 1 ]]; then
    psql_admin -c "CREATE DATABASE $PG_ROLE OWNER $PG_ROLE"
    say "postgresql: created database $PG_ROLE"
fi
say "postgresql: postgresql://$PG_ROLE:$PG_PASSWORD@127.0.0.1:5432/$PG_ROLE ready"

# --- 5. libvirt (virtlogd + libvirtd, no systemd) -------------------------------------------
# /dev/kvm root-only (no udev rule here) makes libvirtd re-probe QEMU on every domain define (~60 s
# under TCG): its cached capabilities say KVM, the QEMU user cannot open it. The kvm group may.
{ [ -e /dev/kvm ] && chgrp kvm /dev/kvm && chmod 660 /dev/kvm; } 2>/dev/null || true
if virsh -c qemu:///system version >/dev/null 2>&1; then
    say "libvirtd: running"
else
    say "libvirtd: starting (log $LOG_DIR/libvirtd.log)"
    # Both daemonize themselves with -d; libvirtd hands guest consoles to virtlogd, so it goes
    # first. A stale pid file from a killed daemon is taken over when that pid is dead.
    pgrep -x virtlogd >/dev/null || start_detached "$LOG_DIR/virtlogd.log" virtlogd -d
    pgrep -x libvirtd >/dev/null || start_detached "$LOG_DIR/libvirtd.log" libvirtd -d
    wait_for 60 libvirtd virsh -c qemu:///system version || {
        tail -n 30 "$LOG_DIR/libvirtd.log" >&2
        die "libvirtd did not answer on qemu:///system within 60 s"
    }
    say "libvirtd: up ($(virsh -c qemu:///system version | awk '/hypervisor/ {print $3, $4}'))"
fi

# --- 6. offline Debian base image for containers ----------------------------------------------
# Kept small, but with what component documents and the target tests use: openssh-server for
# the SSH test container, sudo/procps/iproute2 for typical build steps, python3 for script
# steps. coreutils' `timeout` is what the docker target uses to enforce timeouts.
include=ca-certificates,curl,openssh-server,sudo,procps,iproute2,python3,less,xz-utils
# The generalized root filesystem is kept as a tarball too: dpkg unpacking, not downloading,
# is the slow part of debootstrap (about 70 s even with a warm --cache-dir), and re-importing
# the tarball after /var/lib/docker is wiped takes seconds. Its name changes with the package
# list, so editing the list rebuilds it.
rootfs_tar=/var/cache/imagebuilder/debian-12-minbase-$(printf '%s' "$include" | sha256sum | cut -c1-12).tar
if docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
    say "base image: $BASE_IMAGE present"
else
    if [[ ! -s $rootfs_tar ]]; then
        mkdir -p "$DEBOOTSTRAP_CACHE"
        work=$(mktemp -d /var/tmp/imagebuilder-rootfs.XXXXXX)
        cleanup_paths+=("$work")
        say "base image: debootstrap bookworm minbase (+${include}) from $MIRROR"
        t=$SECONDS
        debootstrap --variant=minbase --cache-dir="$DEBOOTSTRAP_CACHE" --include="$include" \
            bookworm "$work/rootfs" "$MIRROR" >"$LOG_DIR/debootstrap.log" 2>&1 || {
            tail -n 30 "$LOG_DIR/debootstrap.log" >&2
            die "debootstrap failed (log $LOG_DIR/debootstrap.log)"
        }
        say "base image: debootstrap took $((SECONDS - t)) s"
        # Generalize: no host keys or machine id baked in (each container makes its own),
        # no package lists or caches (the image must not pretend to know a mirror's state).
        rm -f "$work"/rootfs/etc/ssh/ssh_host_*
        : >"$work/rootfs/etc/machine-id"
        rm -rf "$work"/rootfs/var/lib/apt/lists/* "$work"/rootfs/var/cache/apt/*.bin \
            "$work"/rootfs/var/cache/apt/archives/*.deb "$work"/rootfs/var/log/*.log
        # Written under a temporary name so an interrupted run never leaves a truncated cache.
        tar --numeric-owner -C "$work/rootfs" -cf "$rootfs_tar.part" .
        mv "$rootfs_tar.part" "$rootfs_tar"
        rm -rf "$work"
    fi
    say "base image: importing $rootfs_tar"
    docker import --change 'CMD ["/bin/bash"]' --change 'ENV LANG=C.UTF-8' \
        --message "debootstrap --variant=minbase bookworm +$include" "$rootfs_tar" "$BASE_IMAGE" >/dev/null
    say "base image: $BASE_IMAGE imported ($(docker image inspect -f '{{.Size}}' "$BASE_IMAGE" |
        awk '{printf "%.0f MB", $1 / 1e6}'))"
fi

say "done in $((SECONDS - T0)) s"
