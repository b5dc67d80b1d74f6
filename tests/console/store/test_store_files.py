"""The store's files: private whatever the umask, refused on network filesystems, and read
without a single write by the commands that only read."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import queue
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from console.store import DeployRecord, Store
from console.store.files import store_refusal
from tests.conftest import DEMO_CONFIG, ROOT

# -- network and kernel filesystems ------------------------------------------------------------

MOUNTINFO = """\
21 1 8:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw
22 21 0:21 / /proc rw,nosuid - proc proc rw
30 21 0:40 / /mnt/nfs rw,relatime shared:9 - nfs4 server:/export rw,vers=4.2
31 30 8:2 / /mnt/nfs/local rw - ext4 /dev/vdb rw
32 21 0:41 / /mnt/sshfs rw,nosuid,nodev - fuse.sshfs alice@host:/srv rw,user_id=0
33 21 0:42 / /mnt/wsl rw - 9p drvfs rw,trans=virtio
34 21 0:43 / /mnt/ceph rw - ceph 10.0.0.1:/ rw
35 21 0:44 / /mnt/gluster rw - fuse.glusterfs gluster:/vol rw
36 21 0:45 / /mnt/gluster2 rw - glusterfs gluster:/vol rw
37 21 0:46 / /mnt/lustre rw - lustre mgs@tcp:/fs rw
38 21 0:47 / /afs rw - afs AFS rw
39 21 0:48 / /mnt/host rw - virtiofs myfs rw
40 21 0:49 / /mnt/s3 rw - fuse.s3fs s3fs rw
41 21 0:50 / /srv/team\\040drive rw - cifs //nas/team rw
42 21 0:51 / /tmp rw - tmpfs tmpfs rw
43 21 0:52 / /home rw - fuse-overlayfs fuse-overlayfs rw
"""


@pytest.mark.parametrize(
    ("folder", "kind"),
    [
        ("/mnt/nfs", "nfs4"),
        ("/mnt/sshfs", "fuse.sshfs"),
        ("/mnt/wsl", "9p"),
        ("/mnt/ceph", "ceph"),
        ("/mnt/gluster", "fuse.glusterfs"),
        ("/mnt/gluster2", "glusterfs"),
        ("/mnt/lustre", "lustre"),
        ("/afs/example.org", "afs"),
        ("/mnt/host", "virtiofs"),
        ("/mnt/s3/bucket", "fuse.s3fs"),
        ("/srv/team drive", "cifs"),
    ],
)
def test_a_store_on_any_network_filesystem_is_refused(folder: str, kind: str) -> None:
    path = Path(folder) / "console.db"
    assert store_refusal(path, MOUNTINFO) == (
        f"the store {path} is on a network filesystem ({kind}), which SQLite does not "
        "support: choose a path on a local disk"
    )


@pytest.mark.parametrize("folder", ["/var/lib/console", "/mnt/nfs/local", "/tmp/x", "/home/a"])
def test_a_store_on_a_local_filesystem_is_accepted(folder: str) -> None:
    assert store_refusal(Path(folder) / "console.db", MOUNTINFO) is None


def test_a_symlink_into_nfs_is_refused(tmp_path: Path) -> None:
    """The link and the folder it is in are local; the file it names is on NFS."""
    nfs, local = tmp_path / "nfs", tmp_path / "local"
    nfs.mkdir()
    local.mkdir()
    table = f"21 1 8:1 / / rw - ext4 /dev/vda1 rw\n30 21 0:40 / {nfs} rw - nfs4 server:/x rw\n"
    (local / "console.db").symlink_to(nfs / "console.db")
    assert store_refusal(local / "console.db", table) == (
        f"the store {local / 'console.db'} (really {nfs / 'console.db'}) is on a network "
        "filesystem (nfs4), which SQLite does not support: choose a path on a local disk"
    )
    (tmp_path / "linked").symlink_to(nfs)  # a linked folder, and a store not made yet
    assert "network filesystem (nfs4)" in str(store_refusal(tmp_path / "linked" / "new.db", table))
    assert store_refusal(local / "other.db", table) is None


def console(*args: str, **options: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "screens.main", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=60, **options,  # type: ignore[call-overload]
    )  # fmt: skip


def test_a_store_on_proc_is_one_line_through_the_command_line() -> None:
    for argv, path in [
        (["history"], "/proc/self/mem"),
        (["audit", "verify"], "/proc/self/mem"),
        (["lock", "add", "--reason", "x"], "/proc/self/store.db"),
    ]:
        result = console(*argv, *_config(argv), "--store", path)
        assert result.returncode == 2, result.stderr
        assert result.stderr.startswith(f"deploy-console: error: the store {path} (really /proc/")
        assert result.stderr.endswith(
            "is on proc, a kernel interface, not a disk: choose a local path\n"
        )
        assert result.stderr.count("\n") == 1, result.stderr


# -- private files, whatever the umask -------------------------------------------------------


def _first_line(child: subprocess.Popen[str], timeout: float = 60.0, stderr: bool = False) -> str:
    """The child's first line of output (of stderr, where the runner logs, with `stderr`),
    waited for at most timeout seconds."""
    lines: queue.Queue[str] = queue.Queue()
    stream = child.stderr if stderr else child.stdout
    assert stream is not None
    threading.Thread(target=lambda: lines.put(stream.readline()), daemon=True).start()
    try:
        return lines.get(timeout=timeout)
    except queue.Empty:
        child.kill()
        raise AssertionError(f"no line in {timeout} s") from None


def _umask_000() -> None:
    os.umask(0)


def _mode(path: Path) -> str:
    return oct(path.stat().st_mode & 0o777)


@contextlib.contextmanager
def _under_umask_000(*args: str, data: Path | None = None, stderr: bool = False) -> Iterator[str]:
    """`deploy-console <args>` started under umask 000 (with `data` as its data dir): its
    first line of output (see _first_line); stopped on exit."""
    env = {**os.environ} if data is None else {**os.environ, "DEPLOY_CONSOLE_DATA_DIR": str(data)}
    child = subprocess.Popen(
        [sys.executable, "-m", "screens.main", *args],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        preexec_fn=_umask_000,
    )  # fmt: skip
    try:
        yield _first_line(child, stderr=stderr)
    finally:
        child.send_signal(signal.SIGTERM)
        child.communicate(timeout=60)


@pytest.fixture
def umask_000_runner(world_config_path: Path, tmp_path: Path) -> Iterator[Path]:
    """A headless runner, started under umask 000, with its new store open (WAL files too)."""
    store = tmp_path / "team" / "console" / "store.db"
    with _under_umask_000(
        "runner", "--config", str(world_config_path), "--store", str(store), stderr=True
    ) as line:
        assert "running queued deploys" in line, line  # said once its store is open
        yield store


def test_a_new_store_is_private_under_umask_000(umask_000_runner: Path) -> None:
    store = umask_000_runner
    assert (_mode(store.parent.parent), _mode(store.parent)) == ("0o700", "0o700")
    wal, shm = Path(f"{store}-wal"), Path(f"{store}-shm")
    assert wal.exists() and shm.exists()
    assert {path.name: _mode(path) for path in (store, wal, shm)} == {
        "store.db": "0o600",
        "store.db-wal": "0o600",
        "store.db-shm": "0o600",
    }


def test_the_world_config_and_its_folder_are_private_under_umask_000(tmp_path: Path) -> None:
    data = tmp_path / "data" / "deploy-console"
    with _under_umask_000("world", data=data) as line:
        assert line.startswith("world ready: http://127.0.0.1:")
        assert (_mode(data.parent), _mode(data)) == ("0o700", "0o700")
        assert _mode(data / "world.toml") == "0o600"


# -- read-only commands write nothing --------------------------------------------------------

READ_ONLY_COMMANDS = [
    ["history", "--json"],
    ["audit", "verify"],
    ["audit", "export"],
    ["queue", "--json"],
    ["lock", "list"],
    ["lock", "list", "--json"],
    ["freeze", "list", "--json"],
    ["audit", "verify", "--json"],
    ["wait", "d-1"],
]


async def _fill(path: Path) -> None:
    async with await Store.open(path) as store:
        record = DeployRecord(
            id="d-1", project="storefront", cluster="staging", release="2.15.0", actor="alice"
        )
        await store.create_deploy(record)
        await store.set_deploy_state("d-1", "running", image_id="ami-1", previous_release="2.14")
        await store.set_deploy_state("d-1", "succeeded")
        await store.audit("deploy.queued", actor="alice", project="storefront", deploy_id="d-1")
    with sqlite3.connect(path) as db:  # a manual lock, as `lock add` writes it
        db.execute(
            "INSERT INTO manual_locks (owner, reason, created_at) "
            "VALUES ('bob', 'maintenance', '2026-11-27T10:00:00+00:00')"
        )
    db.close()


@pytest.fixture(scope="module")
def filled_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("filled") / "store.db"
    asyncio.run(_fill(path))
    return path


def _copy(store: Path, folder: Path) -> Path:
    folder.mkdir(exist_ok=True)
    shutil.copy2(store, folder / "store.db")
    return folder / "store.db"


def _fingerprint(path: Path) -> tuple[str, int, list[str]]:
    """The file's bytes, its mtime and every file beside it."""
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return digest, path.stat().st_mtime_ns, sorted(p.name for p in path.parent.iterdir())


def _config(argv: list[str]) -> list[str]:
    """audit reads no config with --store alone (the demo's would reach for its S3 anchor)."""
    return [] if argv[0] == "audit" else ["--config", str(DEMO_CONFIG)]


def _check_reads(store: Path, run_as: list[str] | None = None) -> None:
    """Every read-only command answers from the store as it is."""
    for argv in READ_ONLY_COMMANDS:
        command = [*argv, *_config(argv), "--store", str(store)]
        if run_as is None:
            result = console(*command)
        else:
            result = subprocess.run(
                [*run_as, sys.executable, "-m", "screens.main", *command],
                cwd=ROOT, capture_output=True, text=True, timeout=60,
            )  # fmt: skip
        assert result.returncode == 0, (argv, result.stderr)
        assert result.stderr == ""
        expected = {
            "history": '"id": "d-1"',
            "audit": "audit ok: 1 rows verified" if argv[1] == "verify" else '"actor": "alice"',
            "queue": '"reason": "maintenance"',
            "lock": "#1    everything  bob    blocks  -            maintenance",
            "freeze": '"freezes": []',
            "wait": "deploy d-1 succeeded",
        }[argv[0]]
        if "--json" in argv and argv[0] in ("lock", "audit"):
            expected = '"owner": "bob"' if argv[0] == "lock" else '"rows": 1'
        assert expected in result.stdout, (argv, result.stdout)


def test_read_only_commands_change_nothing_in_a_read_only_copy(
    filled_store: Path, tmp_path: Path
) -> None:
    """A copy with its file 0444 in a folder 0555 (root, as CI runs, may still write both:
    what shows that nothing was written is the file's bytes and mtime)."""
    store = _copy(filled_store, tmp_path / "copy")
    with sqlite3.connect(store) as db:  # a rollback-journal store: today it would turn WAL
        db.execute("PRAGMA journal_mode = DELETE")
    db.close()
    store.chmod(0o444)
    store.parent.chmod(0o555)
    try:
        before = _fingerprint(store)
        _check_reads(store)
        assert _fingerprint(store) == before  # and no -wal, -shm or -journal beside it
    finally:
        store.parent.chmod(0o755)


def test_a_store_that_needs_a_migration_is_not_migrated_by_a_reader(
    filled_store: Path, tmp_path: Path
) -> None:
    store = _copy(filled_store, tmp_path / "old")
    with sqlite3.connect(store) as db:  # schema 3: before the shared fleet poller's table
        db.execute("DROP TABLE fleet_poller")
        db.execute("PRAGMA user_version = 3")
    db.close()
    before = _fingerprint(store)
    for argv in READ_ONLY_COMMANDS:
        result = console(*argv, *_config(argv), "--store", str(store))
        assert result.returncode == 2, (argv, result.stdout)
        assert result.stderr.startswith(
            f"deploy-console: error: the store {store} has schema 3 and this console reads "
        )
        assert "run a console that can write it first" in result.stderr
        assert result.stderr.count("\n") == 1
    assert _fingerprint(store)[:2] == before[:2]
    with sqlite3.connect(store) as db:
        assert db.execute("PRAGMA user_version").fetchone() == (3,)
    db.close()


def _can_mount_read_only(folder: Path, target: Path) -> list[str] | None:
    """A command prefix that runs in a private mount namespace where target is folder
    mounted read-only; None where this host allows no such namespace."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return None
    script = f'mount --bind {folder} {target} && mount -o remount,ro,bind {target} && exec "$@"'
    for flags in (["-m", "--propagation", "private"], ["-r", "-m", "--propagation", "private"]):
        prefix = [unshare, *flags, "sh", "-c", script, "sh"]
        probe = subprocess.run([*prefix, "true"], capture_output=True, timeout=30)
        if probe.returncode == 0:
            return prefix
    return None


def test_read_only_commands_read_a_store_on_a_read_only_mount(
    filled_store: Path, tmp_path: Path
) -> None:
    """The proof that does not depend on permissions: a read-only mount refuses every write,
    root's too, and no -wal or -shm can be made beside the store."""
    store = _copy(filled_store, tmp_path / "copy")
    mounted = tmp_path / "mounted"
    mounted.mkdir()
    prefix = _can_mount_read_only(store.parent, mounted)
    if prefix is None:
        pytest.skip("no private mount namespace here (unshare -m): cannot mount read-only")
    before = _fingerprint(store)
    _check_reads(mounted / "store.db", run_as=prefix)
    assert _fingerprint(store) == before


def test_the_sshd_host_key_and_its_folder_are_private_under_umask_000(
    world_config_path: Path, tmp_path: Path
) -> None:
    import asyncssh
    import tomli_w

    from console.config import read_toml

    key = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode()
    data = read_toml(world_config_path)
    data["sshd"] = {"keys": [{"user": "alice", "key": key}]}
    config = tmp_path / "sshd.toml"
    config.write_bytes(tomli_w.dumps(data).encode())
    folder = tmp_path / "data" / "deploy-console"
    store = str(tmp_path / "store.db")
    with _under_umask_000(
        "sshd", "--port", "0", "--config", str(config), "--store", store, data=folder
    ) as line:
        assert line.startswith("sshd listening on 127.0.0.1:")
        assert (_mode(folder.parent), _mode(folder)) == ("0o700", "0o700")
        assert [(path.name, _mode(path)) for path in folder.iterdir()] == [
            ("sshd_host_ed25519_key", "0o600")
        ]
