"""The store's files on disk: the filesystems SQLite can be trusted on, private modes whatever
the umask, and how a store is opened read-only."""

from __future__ import annotations

import os
import re
from pathlib import Path

# SQLite's own documentation: its locks, and WAL's shared memory, do not work across the
# hosts of a network filesystem. FUSE filesystems show as fuse.<name> (fuse.sshfs).
NETWORK_FILESYSTEMS = frozenset(
    {
        "nfs",
        "nfs4",
        "cifs",
        "smb3",
        "smbfs",
        "ncpfs",
        "sshfs",
        "9p",
        "ceph",
        "cephfs",
        "glusterfs",
        "lustre",
        "afs",
        "openafs",
        "virtiofs",
        "s3fs",
        "gcsfuse",
        "goofys",
        "rclone",
        "davfs",
        "coda",
        "beegfs",
        "gpfs",
        "orangefs",
        "juicefs",
    }
)
# Kernel interfaces, not disks: /proc/self/mem opens, then every read fails.
PSEUDO_FILESYSTEMS = frozenset(
    {
        "proc",
        "sysfs",
        "devtmpfs",
        "devpts",
        "cgroup",
        "cgroup2",
        "debugfs",
        "tracefs",
        "securityfs",
        "pstore",
        "bpf",
        "configfs",
        "efivarfs",
        "mqueue",
        "fusectl",
        "binfmt_misc",
        "nsfs",
    }
)


def _unescape(field: str) -> str:
    # Mount tables write blanks and the like in mount points as octal escapes (\040).
    return re.sub(r"\\([0-7]{3})", lambda code: chr(int(code[1], 8)), field)


def _mount(line: str) -> tuple[str, str] | None:
    """(mount point, type) of one line of /proc/self/mountinfo or of /proc/mounts."""
    fields = line.split()
    if "-" in fields[6:]:  # mountinfo: id parent dev root POINT options [tags] - TYPE source
        separator = fields.index("-", 6)
        if separator + 1 < len(fields):
            return _unescape(fields[4]), fields[separator + 1]
        return None
    if len(fields) >= 3:  # mounts: source POINT TYPE options 0 0
        return _unescape(fields[1]), fields[2]
    return None


def read_mounts() -> str | None:
    for table in ("/proc/self/mountinfo", "/proc/mounts"):
        try:
            return Path(table).read_text()
        except OSError:
            continue
    return None


def filesystem_type(path: Path, mounts: str | None = None) -> str | None:
    """The type of the filesystem holding path (resolved already) in a mount table (this
    process's when None): the longest mount point holding it; of two on one point, the later,
    which hides the first. None where there is no table."""
    if mounts is None:
        mounts = read_mounts()
        if mounts is None:
            return None
    best_length, best_type = -1, None
    for line in mounts.splitlines():
        mount = _mount(line)
        if mount is None:
            continue
        point, kind = mount
        if (path == Path(point) or Path(point) in path.parents) and len(point) >= best_length:
            best_length, best_type = len(point), kind
    return best_type


def is_network(fs_type: str) -> bool:
    return fs_type.removeprefix("fuse.") in NETWORK_FILESYSTEMS


def real_path(path: Path) -> Path:
    """Every symlink resolved, the file's own too (a link into NFS is on NFS)."""
    return Path(os.path.realpath(path))


def filesystem_refusal(path: Path, real: Path, fs_type: str | None) -> str | None:
    """Why a store at path (really at real, on fs_type) cannot be used; None if it can."""
    if fs_type is None:
        return None
    where = f"the store {path}" + (f" (really {real})" if real != path else "")
    if is_network(fs_type):
        return (
            f"{where} is on a network filesystem ({fs_type}), which SQLite does not support: "
            "choose a path on a local disk"
        )
    if fs_type in PSEUDO_FILESYSTEMS:
        return f"{where} is on {fs_type}, a kernel interface, not a disk: choose a local path"
    return None


def store_refusal(path: Path, mounts: str | None = None) -> str | None:
    """filesystem_refusal for path against a mount table (this process's when None)."""
    real = real_path(path)
    return filesystem_refusal(path, real, filesystem_type(real, mounts))


def read_only_uri(path: Path) -> str:
    """SQLite's URI to read path and never write it.

    mode=ro still makes a WAL store's -wal and -shm files when they are missing (and SQLite
    needs the -wal of a store in use). When we cannot write beside the file (a read-only
    copy or mount) and it has no -wal or -journal (no writer had it open), immutable=1 reads
    it without them: mode=ro alone cannot open it there. immutable=1 takes no locks, so it
    is for one-shot reads: a writer that could start meanwhile is one with write access to
    that folder (root, the service owning it)."""
    uri = f"{path.as_uri()}?mode=ro"
    journals = (Path(f"{path}-wal"), Path(f"{path}-journal"))
    if not any(journal.exists() for journal in journals) and not os.access(path.parent, os.W_OK):
        uri += "&immutable=1"
    return uri


def remove_store(path: Path) -> None:
    """Delete a store and its SQLite companions (-wal, -shm, -journal), if there."""
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
