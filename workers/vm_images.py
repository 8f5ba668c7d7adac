"""Offline bootable Debian parent image for VM builds: debootstrap, then an MBR + extlinux qcow2.

Nothing is downloaded but Debian packages (from a mirror, or from the warm debootstrap cache),
and the disk is assembled without libguestfs and, where possible, without loop devices:

1. debootstrap a minbase bookworm with a kernel, systemd, sshd and cloud-init (packages cached
   under /var/cache/imagebuilder/debootstrap-vm, separate from the container one's smaller set);
2. configure and generalize it (our NoCloud first-boot unit instead of cloud-init's boot-time
   units, key-only root SSH, DHCP through systemd-networkd, no machine-id, no host keys, a small
   lz4 initramfs with listed modules only), and keep the kernel and a small initramfs of our own
   beside the image for direct kernel boot of build guests (see "Fast boot" below);
3. `sfdisk` an MBR partition table onto a sparse raw file, `mkfs.ext4 -d ROOTFS` straight into the
   partition (mke2fs's offset option), and syslinux's MBR code in front;
4. `extlinux --install` is the one step that needs the filesystem mounted: a loop mount when the
   host allows one. Without loop devices the image is still made, with boot mode "direct-kernel"
   in its manifest (kernel and initrd are kept beside it for QEMU's -kernel/-initrd);
5. `qemu-img convert` to qcow2, plus a JSON manifest.

Fast boot (guests run under TCG here, where every second of boot is many seconds of emulation):

- No cloud-init on the boot path: its four Python stages cost about 20 s under TCG. A shell unit of
  ours, imagebuilder-nocloud.service, reads the same NoCloud seed as soon as / is writable: login
  keys, hostname, and on a new instance id the seed's SSH host key (made by the worker, natively,
  which then trusts that key alone) or fresh ones. Recipe user data (anything but our login-key
  cloud-config) is run by cloud-init itself in imagebuilder-userdata.service, queued by that unit
  and ordered before sshd, so SSH ready means user data has run. All this on build guests only
  (`cloud-init=disabled` on their command line): the image itself boots with cloud-init, so an
  exported disk configures itself on a cloud or hypervisor like a stock cloud image.
- The image's own initramfs lists its modules (virtio plus the disk controllers of VMware, Hyper-V,
  Xen, NVMe and SATA, so exported disks still find their root) and is lz4-compressed: 35 MB of
  gzip took longer to unpack under TCG than the kernel took to boot.
- Build guests of the managed parent boot its kernel directly (QEMU -kernel) as an uncompressed
  ELF entered through its PVH note, with an initramfs of our own without udev
  (workers/vm_fastboot.py), and a command line for throwaway build machines (FAST_APPEND): no
  firmware disk reads, no decompression, no serial flood, no speculative-execution mitigations,
  no drivers for the emulated chipset, and sshd started by a generator's drop-in right after the
  first-boot unit rather than after basic.target. A captured image boots the same way when its
  build left /boot alone; otherwise through its own extlinux and command line, which stay
  ordinary (the kernel may have been upgraded).
- Timers that are only useful on long-lived machines (apt-daily, e2scrub, fstrim, dpkg-db-backup)
  are disabled, as is the getty on tty1 (no display).

The result is cached under a key of its inputs (suite, package list, size, the configuration
written into it, this recipe's version), so a second call only links or copies the cached file.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from workers.vm_fastboot import INIT as FAST_INIT
from workers.vm_fastboot import extract_vmlinux, fast_initramfs

DEFAULT_MIRROR = os.environ.get("IMAGEBUILDER_DEBIAN_MIRROR", "http://deb.debian.org/debian")
CACHE_ROOT = Path("/var/cache/imagebuilder")
#: Bump when the way the disk is made changes in a way the inputs below do not show.
RECIPE_VERSION = 4
ROOT_LABEL = "debian-root"
PART_OFFSET = 1 << 20  # 1 MiB: the usual first-partition alignment; sector 2048
_SUITE_VERSIONS = {"bookworm": "12", "trixie": "13"}

#: debootstrap does not install Recommends, so what a usable cloud guest needs is listed here.
#: python3-cffi-backend: cloud-init needs it through a virtual package debootstrap cannot resolve.
#: dbus: without it pam/logind calls in sshd sessions wait for a timeout.
INCLUDE = (
    "linux-image-amd64,systemd-sysv,udev,dbus,openssh-server,cloud-init,python3-cffi-backend,"
    "cloud-guest-utils,sudo,ca-certificates,systemd-resolved,curl,procps,iproute2,less,xz-utils,lz4"
)
#: The image's own initramfs (MODULES=list): the virtio disk it is built on, plus the disk
#: controllers of the hypervisors an exported VMDK/VHD/RAW goes to. udev loads only what matches.
IMAGE_INITRD_MODULES = (
    "virtio_pci virtio_blk virtio_scsi ext4 sd_mod ahci ata_piix nvme vmw_pvscsi mptspi hv_vmbus hv_storvsc "
    "xen_blkfront"
)
#: The host-side initramfs for direct kernel boot of build guests (workers.vm_fastboot): the virtio
#: disk and ext4 (whose checksums need crc32c), and what the first minutes of the boot would
#: otherwise wait for udev to load: the NIC (usernet waits for eth0) and iso9660 (the seed).
FAST_INITRD_MODULES = "virtio_pci virtio_blk crc32c_generic ext4 virtio_net isofs"

#: The first-boot unit's script (see the module docstring). Kept in its own constant so the cache key covers it.
NOCLOUD_BOOT = r"""#!/bin/sh
# Image Builder's first-boot work from a NoCloud seed (the `cidata` volume), done before sshd
# starts and without cloud-init's Python stages (about 20 s under TCG):
#   - a new instance id (meta-data) installs the seed's SSH host key (or makes new ones) and sets
#     the hostname;
#   - every boot installs the login keys (meta-data public-keys, and the keys of our own
#     key-only cloud-config) for root and the default user;
#   - any other user data (the recipe's) is queued for imagebuilder-userdata.service (cloud-init,
#     once per instance), which sshd waits for: so SSH ready means the user data has run.
# Without a seed it only makes missing host keys, so sshd can start anywhere.
# Shell builtins where possible: under emulation every process started costs a fraction of a second.
set -u
state=/var/lib/imagebuilder
run=/run/imagebuilder
seed=$run/seed
default_user=admin
keys_only_marker='# imagebuilder: login keys only'
mkdir -p "$state" "$run" "$seed"

log() { echo "imagebuilder-nocloud: $*"; }

host_keys() {
    for type in ed25519 ecdsa; do
        [ -s "/etc/ssh/ssh_host_${type}_key" ] || ssh-keygen -q -t "$type" -N '' -f "/etc/ssh/ssh_host_${type}_key"
    done
}

value() { # $1 trimmed of blanks and one pair of quotes, into $v (no subshell)
    v=$1
    v=${v#"${v%%[![:space:]]*}"}
    v=${v%"${v##*[![:space:]]}"}
    case $v in \"*\" | \'*\') v=${v#?} v=${v%?} ;; esac
}

find_seed() {
    # Build guests name their seed device on the kernel command line: no probing.
    read -r cmdline </proc/cmdline
    for arg in $cmdline; do
        case $arg in imagebuilder.seed=/dev/*) [ -b "${arg#*=}" ] && echo "${arg#*=}" && return 0 ;; esac
    done
    # blkid probes every block device itself: no waiting for udev's by-label links.
    for _ in 1 2 3 4 5 6 7 8 9 10; do
        for label in cidata CIDATA; do
            dev=$(blkid -c /dev/null -o device -t "LABEL=$label" 2>/dev/null) && [ -n "$dev" ] && {
                echo "${dev%%[[:space:]]*}"
                return 0
            }
        done
        sleep 0.5
    done
    return 1
}

copy() { # $1 to $2 with shell builtins only (text files)
    while IFS= read -r line || [ -n "$line" ]; do printf '%s\n' "$line"; done <"$1" >"$2"
}

mounted() { # is $1 a mount point (read from /proc, no mountpoint(1))
    while read -r _ point _; do [ "$point" = "$1" ] && return 0; done </proc/self/mounts
    return 1
}

dev=$(find_seed) || { log "no NoCloud seed"; host_keys; exit 0; }
mounted "$seed" || mount -o ro "$dev" "$seed" || { log "cannot mount $dev"; host_keys; exit 0; }

# meta-data: instance-id, local-hostname and the public-keys list (flat YAML, as seeds write it).
instance='' hostname='' keys='' in_keys=no
while IFS= read -r line || [ -n "$line" ]; do
    case $line in
    instance-id:*) value "${line#instance-id:}" && instance=$v in_keys=no ;;
    local-hostname:*) value "${line#local-hostname:}" && hostname=$v in_keys=no ;;
    public-keys:*) in_keys=yes ;;
    [[:space:]]*-* | -*)
        if [ "$in_keys" = yes ]; then
            value "${line#*-}"
            keys="$keys$v
"
        fi
        ;;
    *) in_keys=no ;;
    esac
done <"$seed/meta-data"

# user-data: the quoted key lines of our key-only cloud-config (JSON strings, one per line), and
# whether it is anything more than that.
user_data=no
if [ -s "$seed/user-data" ]; then
    n=0 first='' second=''
    while IFS= read -r line || [ -n "$line" ]; do
        n=$((n + 1))
        [ $n = 1 ] && first=$line
        [ $n = 2 ] && second=$line
        trimmed=${line#"${line%%[![:space:]]*}"}
        case $trimmed in
        \"ssh-* | \"ecdsa-* | \"sk-*)
            key=${trimmed#\"}
            key=${key%,}
            key=${key%\"}
            keys="$keys$key
"
            ;;
        esac
    done <"$seed/user-data"
    [ "$first" = "#cloud-config" ] && [ "$second" = "$keys_only_marker" ] || user_data=yes
fi

previous=''
[ -f "$state/instance-id" ] && read -r previous <"$state/instance-id"
new_instance=no
if [ -n "$instance" ] && [ "$instance" != "$previous" ]; then
    new_instance=yes
    log "new instance $instance (was ${previous:-none})"
    rm -f /etc/ssh/ssh_host_*
    if [ -n "$hostname" ]; then
        echo "$hostname" >/etc/hostname
        echo "$hostname" >/proc/sys/kernel/hostname
        hosts=''
        if [ -f /etc/hosts ]; then
            while IFS= read -r line || [ -n "$line" ]; do
                case $line in 127.0.1.1[[:space:]]*) ;; *) hosts="$hosts$line
" ;; esac
            done </etc/hosts
        fi
        printf '%s127.0.1.1 %s\n' "$hosts" "$hostname" >/etc/hosts
    fi
fi
# The host's own key for this instance when the seed carries one (the worker made it, so it knows
# the key to expect); otherwise made here.
if [ -s "$seed/ssh_host_ed25519_key" ] && [ ! -s /etc/ssh/ssh_host_ed25519_key ]; then
    umask 077
    copy "$seed/ssh_host_ed25519_key" /etc/ssh/ssh_host_ed25519_key
    umask 022
    [ -s "$seed/ssh_host_ed25519_key.pub" ] && copy "$seed/ssh_host_ed25519_key.pub" /etc/ssh/ssh_host_ed25519_key.pub
else
    host_keys
fi

install_keys() { # user home
    [ -n "$keys" ] || return 0
    ssh_dir="$2/.ssh"
    present=''
    [ -f "$ssh_dir/authorized_keys" ] && present=$(cat "$ssh_dir/authorized_keys")
    add=''
    while IFS= read -r key; do
        [ -n "$key" ] || continue
        case "
$present
$add" in *"
$key
"*) continue ;; esac
        add="$add$key
"
    done <<KEYS
$keys
KEYS
    [ -n "$add" ] || return 0
    [ -d "$ssh_dir" ] || { mkdir -p "$ssh_dir"; chmod 700 "$ssh_dir"; chown "$1:" "$ssh_dir"; }
    printf '%s' "$add" >>"$ssh_dir/authorized_keys"
    chmod 600 "$ssh_dir/authorized_keys"
    chown "$1:" "$ssh_dir/authorized_keys"
}
install_keys root /root
[ -d "/home/$default_user" ] && install_keys "$default_user" "/home/$default_user"

if [ "$user_data" = yes ] && [ "$new_instance" = yes ]; then
    # Queued before this unit finishes, so sshd (ordered after both) waits for it.
    log "the recipe's user data runs next (imagebuilder-userdata.service)"
    : >"$run/user-data-pending"
    systemctl start --no-block imagebuilder-userdata.service
fi
[ -n "$instance" ] && echo "$instance" >"$state/instance-id"
umount "$seed" 2>/dev/null || true
exit 0
"""
#: Build guests only (imagebuilder.usernet on FAST_APPEND): QEMU user-mode networking has fixed
#: addresses, so one `ip -batch` sets them instead of systemd-networkd and -resolved starting (~30 s
#: of a TCG boot). The image's own networking (networkd DHCP) is untouched.
USERNET = r"""#!/bin/sh
# The NIC (eth0: net.ifnames=0) appears once udev has loaded virtio_net.
i=0
while [ ! -e /sys/class/net/eth0 ]; do
    i=$((i + 1))
    [ $i -gt 300 ] && { echo "imagebuilder-usernet: no eth0"; exit 1; }
    sleep 0.1
done
ip -batch - <<EOF
link set lo up
addr add 10.0.2.15/24 dev eth0
link set eth0 up
route add default via 10.0.2.2
EOF
# /etc/resolv.conf points here (systemd-resolved's stub file); slirp answers DNS on 10.0.2.3.
mkdir -p /run/systemd/resolve
echo "nameserver 10.0.2.3" >/run/systemd/resolve/stub-resolv.conf
"""

#: The recipe's user data, run by cloud-init once per instance (queued by the first-boot unit).
USER_DATA = r"""#!/bin/sh
run=/run/imagebuilder
status=0
{ cloud-init init && cloud-init modules --mode=config && cloud-init modules --mode=final; } || status=$?
echo "$status" >"$run/user-data.status"
rm -f "$run/user-data-pending"
echo "imagebuilder-userdata: user data finished with status $status (log: /var/log/cloud-init-output.log)"
"""
#: Printed on the console of a build guest once sshd listens (after its readiness notification):
#: the worker probes SSH only then. A probe made earlier, before the guest's network is up, hangs
#: for seconds while slirp resends its SYN into the guest.
SSH_READY_MARKER = "imagebuilder: sshd is listening"
#: Build guests only (imagebuilder.buildguest on the kernel command line): sshd starts as soon as
#: the first-boot unit has put the keys in place, instead of after basic.target (udev coldplug,
#: tmpfiles, dbus: about 5 s of a TCG boot), without its config test (one more sshd start), and
#: says on the console when it listens (SSH_READY_MARKER). Each connection is served without a
#: re-exec of sshd (-r) and without PAM: the worker's first login lands while dbus and logind are
#: still starting, and pam_systemd would wait for them. Commands run as root with sshd's own
#: environment, much as AWS's SSM agent runs components (no login session either).
#: A generator, because the image's own boots keep Debian's ordering. Builtins but one mkdir: every
#: process started costs a fraction of a second under emulation.
BUILD_GUEST_GENERATOR = rf"""#!/bin/sh
read -r cmdline </proc/cmdline
case " $cmdline " in *" imagebuilder.buildguest "*) ;; *) exit 0 ;; esac
mkdir -p "$1/ssh.service.d"
printf '%s\n' '[Unit]' 'DefaultDependencies=no' 'Wants=imagebuilder-nocloud.service' \
    'After=imagebuilder-nocloud.service systemd-remount-fs.service' \
    'Conflicts=shutdown.target' 'Before=shutdown.target' '[Service]' 'ExecStartPre=' \
    'ExecStart=' 'ExecStart=/usr/sbin/sshd -D -r -o UsePAM=no $SSHD_OPTS' \
    'StandardOutput=journal+console' 'ExecStartPost=-/bin/echo {SSH_READY_MARKER}' \
    >"$1/ssh.service.d/50-imagebuilder-build-guest.conf"
"""
#: Command line of the image's own boot (extlinux): an ordinary one, since it stays in exported images.
KERNEL_APPEND = f"root=LABEL={ROOT_LABEL} ro console=tty0 console=ttyS0,115200 quiet"
#: Units a throwaway build guest does without (masked on its command line only, so images are
#: untouched): a getty nobody logs in on, module loads and pseudo-filesystems for features a build
#: does not use, utmp records, the journal's move to /var (it stays in /run), the network generator
#: (no ip= on the command line), the random seed (random.trust_cpu), binfmt and pstore; networkd
#: and resolved (imagebuilder.usernet instead).
FAST_MASKED_UNITS = (
    "serial-getty@ttyS0.service",
    "modprobe@drm.service",
    "modprobe@dm_mod.service",
    "modprobe@efi_pstore.service",
    "modprobe@fuse.service",
    "modprobe@loop.service",
    "modprobe@configfs.service",
    "systemd-binfmt.service",
    "systemd-pstore.service",
    "sys-kernel-debug.mount",
    "sys-kernel-tracing.mount",
    "dev-hugepages.mount",
    "dev-mqueue.mount",
    "kmod-static-nodes.service",
    "systemd-update-utmp.service",
    "systemd-update-utmp-runlevel.service",
    "systemd-journal-flush.service",
    "systemd-network-generator.service",
    "systemd-random-seed.service",
    # Networking is imagebuilder-usernet.service's (see USERNET).
    "systemd-networkd.service",
    "systemd-networkd.socket",
    "systemd-networkd-wait-online.service",
    "systemd-resolved.service",
)
#: Drivers udev would load for q35's emulated chipset and the CPU model's features, which a build
#: guest on virtio never uses: nested KVM (the CPU model has SVM), the SATA controller and its six
#: empty ports, the LPC/SMBus/watchdog chips, the PC speaker and the PS/2 mouse.
FAST_BLACKLISTED_MODULES = (
    "kvm", "kvm_amd", "kvm_intel", "ccp", "ahci", "lpc_ich", "i2c_i801", "iTCO_wdt", "pcspkr", "psmouse", "serio_raw",
)  # fmt: skip
#: Command line of build guests booted directly with the host-side kernel and initramfs:
#: throwaway machines under emulation, each option measured (bench/vm_build.py boot):
#: norandmaps: no address-space randomization, so every process maps its libraries at the same
#: addresses and TCG reuses the code it translated for the previous one (halved boot time alone);
#: net.ifnames=0 imagebuilder.usernet: slirp's fixed addresses set by one `ip` (USERNET), not networkd;
#: cloud-init=disabled: its boot stages (~20 s under TCG) give way to imagebuilder-nocloud.service;
#: imagebuilder.buildguest: sshd right after the first-boot unit (BUILD_GUEST_GENERATOR);
#: imagebuilder.seed: the seed is the second virtio disk (libvirt_domain.py), so nothing probes for it;
#: quiet/loglevel/show_status: the console is a log, not a terminal; mitigations=off: no
#: speculative-execution barriers (they protect a guest from its own processes); tsc=reliable: TSC
#: as clocksource (HPET reads are slow MMIO exits); fsck.mode=skip: the disk is a fresh overlay of
#: a clean image; no_timer_check, 8250.nr_uarts=1, cryptomgr.notests: skip boot-time checks.
FAST_APPEND = " ".join(
    [
        "root=/dev/vda1 ro console=ttyS0,115200 quiet loglevel=3 systemd.show_status=error norandmaps",
        "mitigations=off tsc=reliable fsck.mode=skip no_timer_check 8250.nr_uarts=1 cryptomgr.notests",
        "random.trust_cpu=on net.ifnames=0 cloud-init=disabled",
        "imagebuilder.usernet imagebuilder.buildguest imagebuilder.seed=/dev/vdb",
        f"modprobe.blacklist={','.join(FAST_BLACKLISTED_MODULES)}",
        *(f"systemd.mask={unit}" for unit in FAST_MASKED_UNITS),
    ]
)

#: Files written into the image (path relative to the root -> content). Part of the cache key.
CONFIG_FILES: dict[str, str] = {
    "etc/fstab": f"LABEL={ROOT_LABEL} / ext4 errors=remount-ro 0 1\n",
    "etc/hostname": "debian\n",
    "etc/hosts": "127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n",
    # cloud-init is on in the image, as a golden image booted on a cloud or hypervisor expects
    # (its generator picks the platform's datasource); build guests turn it off on their command
    # line (FAST_APPEND) and our first-boot unit does its work. locale: minbase has no locales.
    # Root may log in with the seed's keys. Host keys: ed25519 and ecdsa (RSA 3072 costs ~19 s
    # under TCG). Networking is the image's own (networkd DHCP on every NIC).
    "etc/cloud/cloud.cfg.d/90-imagebuilder.cfg": """\
locale: false
disable_root: false
ssh_pwauth: false
ssh_deletekeys: false
ssh_genkeytypes: [ed25519, ecdsa]
network:
  config: disabled
system_info:
  default_user:
    name: admin
    lock_passwd: true
    gecos: Debian
    groups: [adm, sudo]
    sudo: ["ALL=(ALL) NOPASSWD:ALL"]
    shell: /bin/bash
""",
    # The default user exists in the image (cloud-init used to create it on first boot).
    "etc/sudoers.d/90-imagebuilder-admin": "admin ALL=(ALL) NOPASSWD:ALL\n",
    "etc/systemd/network/80-dhcp.network": """\
[Match]
Name=en* eth*

[Network]
DHCP=yes
""",
    "etc/ssh/sshd_config.d/50-imagebuilder.conf": """\
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
""",
    "usr/lib/imagebuilder/nocloud-boot": NOCLOUD_BOOT,
    # Early (right after / is writable): sshd waits for it, and nothing it does needs more.
    # Only where cloud-init's boot stages are off (build guests, or an image that turns them off).
    "etc/systemd/system/imagebuilder-nocloud.service": """\
[Unit]
Description=Image Builder first boot from the NoCloud seed (login keys, host keys, hostname)
ConditionKernelCommandLine=|cloud-init=disabled
ConditionPathExists=|/etc/cloud/cloud-init.disabled
DefaultDependencies=no
After=systemd-remount-fs.service
Before=ssh.service shutdown.target
Conflicts=shutdown.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/sh /usr/lib/imagebuilder/nocloud-boot
StandardOutput=journal+console
TimeoutStartSec=infinity

[Install]
WantedBy=multi-user.target
""",
    "usr/lib/imagebuilder/user-data": USER_DATA,
    # Not enabled: the first-boot unit queues it when the seed carries user data of the recipe's.
    "etc/systemd/system/imagebuilder-userdata.service": """\
[Unit]
Description=Image Builder: the recipe's user data, by cloud-init, once per instance
ConditionPathExists=/run/imagebuilder/user-data-pending
Wants=network-online.target
After=network-online.target imagebuilder-nocloud.service
Before=ssh.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/sh /usr/lib/imagebuilder/user-data
StandardOutput=journal+console
TimeoutStartSec=infinity
""",
    "etc/systemd/system-generators/imagebuilder-build-guest": BUILD_GUEST_GENERATOR,
    "usr/lib/imagebuilder/usernet": USERNET,
    "etc/systemd/system/imagebuilder-usernet.service": """\
[Unit]
Description=QEMU user-mode network of a build guest (imagebuilder.usernet on the kernel command line)
ConditionKernelCommandLine=imagebuilder.usernet
DefaultDependencies=no
Before=network.target network-online.target ssh.service
Wants=network.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/sh /usr/lib/imagebuilder/usernet

[Install]
WantedBy=multi-user.target
""",
    "etc/initramfs-tools/conf.d/90-imagebuilder.conf": "MODULES=list\nCOMPRESS=lz4\n",
    "etc/initramfs-tools/modules": "\n".join(IMAGE_INITRD_MODULES.split()) + "\n",
    # extlinux follows the /vmlinuz and /initrd.img symlinks the kernel package keeps current,
    # so a kernel upgrade inside a build boots without rewriting this file.
    "boot/extlinux/extlinux.conf": f"""\
DEFAULT debian
PROMPT 0
TIMEOUT 1
LABEL debian
  LINUX /vmlinuz
  INITRD /initrd.img
  APPEND {KERNEL_APPEND}
""",
}
ENABLE_UNITS = (
    "systemd-networkd.service",
    "systemd-resolved.service",
    "imagebuilder-nocloud.service",
    "imagebuilder-usernet.service",
)
#: Units for long-lived machines that only cost a build guest time (apt-daily would also hold the dpkg
#: lock in the middle of a component's apt-get), and the getty of a display there is none of.
DISABLE_UNITS = (
    "apt-daily.timer",
    "apt-daily-upgrade.timer",
    "dpkg-db-backup.timer",
    "e2scrub_all.timer",
    "e2scrub_reap.service",
    "fstrim.timer",
    "getty@tty1.service",
)


@dataclass
class Manifest:
    path: str
    sha256: str
    virtual_size: int
    kernel_version: str
    packages: int
    build_date: str
    suite: str
    cache_key: str
    #: "extlinux": the disk boots by itself; "direct-kernel": only with kernel/initrd below.
    boot_mode: Literal["extlinux", "direct-kernel"]
    #: Beside the image: its kernel (an ELF with a PVH note) and the build guests' initramfs, for
    #: direct kernel boot with FAST_APPEND (workers.vm_fastboot).
    kernel: str | None = None
    initrd: str | None = None
    #: The image's own kernel command line (extlinux.conf).
    kernel_append: str = KERNEL_APPEND
    #: Its first-boot unit installs an SSH host key from the seed (recipe version 3 on).
    host_key_from_seed: bool = False
    #: What a build guest prints on its console once sshd listens (recipe version 4 on).
    ssh_ready_marker: str = ""
    timings: dict[str, float] = field(default_factory=dict)
    #: True when this call found the image in the cache (not stored in the JSON file).
    cached: bool = False

    def to_json(self) -> str:
        data = asdict(self)
        data.pop("cached")
        return json.dumps(data, indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        return cls(**json.loads(text))


def cache_key(suite: str = "bookworm", size_gb: int = 4, include: str = INCLUDE) -> str:
    spec = {
        "recipe": RECIPE_VERSION,
        "suite": suite,
        "size_gb": size_gb,
        "include": sorted(include.split(",")),
        "config": CONFIG_FILES,
        "units": ENABLE_UNITS,
        "disabled": DISABLE_UNITS,
        "initrd": [IMAGE_INITRD_MODULES, FAST_INITRD_MODULES, FAST_INIT],
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def cached_image_path(cache_dir: Path = CACHE_ROOT, suite: str = "bookworm", size_gb: int = 4) -> Path:
    """Where build_debian_qcow2 keeps the image for these inputs (passing it as `out` links nothing)."""
    key = cache_key(suite, size_gb)
    return cache_dir / "vm-images" / f"debian-{_SUITE_VERSIONS.get(suite, suite)}-{key}.qcow2"


def build_debian_qcow2(
    out: Path,
    cache_dir: Path = CACHE_ROOT,
    size_gb: int = 4,
    suite: str = "bookworm",
    mirror: str = DEFAULT_MIRROR,
    rebuild: bool = False,
    log: Path | None = None,
) -> Manifest:
    """Make (or take from `cache_dir`) the bootable Debian qcow2 and put it at `out`, with its
    manifest at `out` + ".json". Needs root, debootstrap, sfdisk, mkfs.ext4, extlinux, qemu-img.

    `out` is a hard link to the cached image when both are on one filesystem: treat it as an
    immutable parent and run guests on qcow2 overlays (workers.vm_qemu.create_overlay)."""
    key = cache_key(suite, size_gb)
    cached_image = cached_image_path(cache_dir, suite, size_gb)
    images = cached_image.parent
    cached_manifest = cached_image.with_name(cached_image.name + ".json")
    hit = not rebuild and cached_image.is_file() and cached_manifest.is_file()
    if not hit:
        images.mkdir(parents=True, exist_ok=True)
        _build(cached_image, cache_dir / "debootstrap-vm", size_gb, suite, mirror, key, log)
    manifest = Manifest.from_json(cached_manifest.read_text())
    manifest.cached = hit
    out = out.absolute()
    if out != cached_image:
        out.parent.mkdir(parents=True, exist_ok=True)
        _link_or_copy(cached_image, out)
        manifest.path = str(out)
        Path(str(out) + ".json").write_text(manifest.to_json())
    return manifest


def _link_or_copy(src: Path, dst: Path) -> None:
    tmp = dst.with_name(dst.name + ".part")
    tmp.unlink(missing_ok=True)
    try:
        os.link(src, tmp)
    except OSError:
        shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def _run(argv: list[str], log: Path | None, **kwargs: object) -> None:
    with open(log or os.devnull, "a") as out:
        out.write(f"$ {' '.join(argv)}\n")
        out.flush()
        done = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, check=False, **kwargs)  # type: ignore[call-overload]
    if done.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed with exit code {done.returncode} (log: {log or 'not kept'})")


def _build(image: Path, pkg_cache: Path, size_gb: int, suite: str, mirror: str, key: str, log: Path | None) -> None:
    timings: dict[str, float] = {}
    pkg_cache.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="imagebuilder-vm.", dir="/var/tmp"))
    try:
        rootfs = work / "rootfs"
        t = time.monotonic()
        _run(
            [
                "debootstrap",
                "--variant=minbase",
                f"--cache-dir={pkg_cache}",
                f"--include={INCLUDE}",
                suite,
                str(rootfs),
                mirror,
            ],
            log,
        )
        timings["debootstrap_s"] = round(time.monotonic() - t, 1)

        t = time.monotonic()
        kernel_version = _configure(rootfs, log)
        packages = _count_packages(rootfs)
        timings["configure_s"] = round(time.monotonic() - t, 1)

        t = time.monotonic()
        raw = work / "disk.raw"
        boot_mode = _assemble(rootfs, raw, size_gb, work, log)
        timings["assemble_s"] = round(time.monotonic() - t, 1)

        # Beside the image for direct kernel boot (workers.vm_fastboot): the kernel as an ELF QEMU
        # enters through its PVH note (no decompression under emulation), and a small initramfs
        # of klibc and FAST_INITRD_MODULES, without udev.
        kernel = str(image.with_suffix(".vmlinux"))
        initrd = str(image.with_suffix(".initrd"))
        try:
            extract_vmlinux(rootfs / "boot" / f"vmlinuz-{kernel_version}", Path(kernel))
            Path(initrd).write_bytes(fast_initramfs(rootfs, kernel_version, FAST_INITRD_MODULES.split()))
        except ValueError as exc:  # the callers report RuntimeError as a failed image build
            raise RuntimeError(f"cannot make the build guests' boot files: {exc}") from exc

        t = time.monotonic()
        part = image.with_name(image.name + ".part")
        _run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", "-o", "compat=1.1", str(raw), str(part)], log)
        timings["convert_s"] = round(time.monotonic() - t, 1)
        manifest = Manifest(
            path=str(image),
            sha256=_sha256(part),
            virtual_size=size_gb << 30,
            kernel_version=kernel_version,
            packages=packages,
            build_date=datetime.now(UTC).isoformat(timespec="seconds"),
            suite=suite,
            cache_key=key,
            boot_mode=boot_mode,
            kernel=kernel,
            initrd=initrd,
            host_key_from_seed=True,
            ssh_ready_marker=SSH_READY_MARKER,
            timings=timings,
        )
        # Image first, manifest last: a manifest beside an image means the image is complete.
        os.replace(part, image)
        manifest_path = image.with_name(image.name + ".json")
        manifest_path.with_name(manifest_path.name + ".part").write_text(manifest.to_json())
        os.replace(manifest_path.with_name(manifest_path.name + ".part"), manifest_path)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _configure(rootfs: Path, log: Path | None) -> str:
    """Write the configuration, enable units, generalize. Returns the kernel version."""
    for rel, content in CONFIG_FILES.items():
        path = rootfs / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    (rootfs / "usr/lib/imagebuilder/nocloud-boot").chmod(0o755)
    (rootfs / "usr/lib/imagebuilder/usernet").chmod(0o755)
    (rootfs / "usr/lib/imagebuilder/user-data").chmod(0o755)
    (rootfs / "etc/systemd/system-generators/imagebuilder-build-guest").chmod(0o755)
    (rootfs / "etc/sudoers.d/90-imagebuilder-admin").chmod(0o440)
    # `systemctl enable` on a root directory only makes symlinks; nothing runs in the chroot.
    _run(["systemctl", f"--root={rootfs}", "enable", *ENABLE_UNITS], log)
    _run(["systemctl", f"--root={rootfs}", "disable", *DISABLE_UNITS], log)
    if subprocess.run(["chroot", str(rootfs), "id", "admin"], capture_output=True).returncode != 0:
        useradd = ["useradd", "-m", "-s", "/bin/bash", "-G", "adm,sudo", "-c", "Debian", "admin"]
        _run(["chroot", str(rootfs), *useradd], log)
    # The image's own initramfs, remade with the listed modules and lz4 (debootstrap made a 35 MB gzip one).
    _run(["chroot", str(rootfs), "update-initramfs", "-u", "-k", "all"], log)
    # systemd-resolved's stub resolver, as Debian's cloud images do (the copied host file is wrong).
    resolv = rootfs / "etc" / "resolv.conf"
    resolv.unlink(missing_ok=True)
    resolv.symlink_to("../run/systemd/resolve/stub-resolv.conf")
    # Generalize: each instance makes its own machine-id and host keys; no cloud-init state, logs
    # or package lists from the build host's view of the mirror.
    (rootfs / "etc" / "machine-id").write_text("")
    (rootfs / "var" / "lib" / "dbus" / "machine-id").unlink(missing_ok=True)
    for pattern in (
        "etc/ssh/ssh_host_*",
        "var/lib/cloud/*",
        "var/log/cloud-init*",
        "var/lib/apt/lists/*",
        "var/cache/apt/*.bin",
        "var/cache/apt/archives/*.deb",
        "var/log/*.log",
    ):
        for path in rootfs.glob(pattern):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
    versions = sorted(p.name for p in (rootfs / "lib" / "modules").iterdir())
    if len(versions) != 1:
        raise RuntimeError(f"expected one kernel in the image, found {versions}")
    return versions[0]


def _count_packages(rootfs: Path) -> int:
    status = (rootfs / "var" / "lib" / "dpkg" / "status").read_text()
    return len(re.findall(r"^Status: install ok installed$", status, flags=re.MULTILINE))


def _assemble(
    rootfs: Path, raw: Path, size_gb: int, work: Path, log: Path | None
) -> Literal["extlinux", "direct-kernel"]:
    size = size_gb << 30
    with open(raw, "wb") as f:
        f.truncate(size)  # sparse: only what mkfs writes takes space
    _run(
        ["sfdisk", "--quiet", "--no-reread", "--no-tell-kernel", str(raw)],
        log,
        input=f"label: dos\nstart={PART_OFFSET // 512}, type=83, bootable\n".encode(),
    )
    # mke2fs writes the filesystem into the partition in place, so no partition image + dd.
    # ^64bit: syslinux's ext4 reader is happiest with 32-bit block numbers (plenty for 16 TiB).
    fs_kib = (size - PART_OFFSET) // 1024
    _run(
        [
            "mkfs.ext4",
            "-q",
            "-F",
            "-L",
            ROOT_LABEL,
            "-O",
            "^64bit",
            "-E",
            f"offset={PART_OFFSET}",
            "-d",
            str(rootfs),
            str(raw),
            f"{fs_kib}k",
        ],
        log,
    )
    mbr = Path("/usr/lib/syslinux/mbr/mbr.bin").read_bytes()
    with open(raw, "r+b") as f:
        f.write(mbr[:440])  # boot code only; the partition table follows at byte 446
    mnt = work / "mnt"
    mnt.mkdir()
    try:
        _run(["mount", "-o", f"loop,offset={PART_OFFSET}", str(raw), str(mnt)], log)
    except RuntimeError:
        # No loop devices (or not allowed): the disk is complete but has no boot sector loader.
        return "direct-kernel"
    try:
        _run(["extlinux", "--install", str(mnt / "boot" / "extlinux")], log)
    finally:
        with contextlib.suppress(RuntimeError):
            _run(["umount", str(mnt)], log)
    return "extlinux"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


#: Managed machine parent images (engine/managed.py names them "vm-parent:<name>") -> Debian suite.
MANAGED_PARENTS = {"debian-12": "bookworm"}


def managed_parent(name: str, cache_dir: Path = CACHE_ROOT, log: Path | None = None) -> Path:
    """The cached disk of a managed machine parent image, made on first use. A file lock keeps two
    builds on one host from bootstrapping it twice; the second one waits and reuses the first's."""
    import fcntl

    suite = MANAGED_PARENTS.get(name)
    if suite is None:
        raise KeyError(name)
    image = cached_image_path(cache_dir, suite)
    if image.is_file() and Path(str(image) + ".json").is_file():
        return image
    image.parent.mkdir(parents=True, exist_ok=True)
    with open(image.parent / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        build_debian_qcow2(image, cache_dir, suite=suite, log=log)
    return image
