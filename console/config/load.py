"""Finding, reading and writing config files: the TOML document, the samples shipped along."""

from __future__ import annotations

import importlib.resources
import os
import tempfile
import tomllib
from pathlib import Path
from typing import Any

import tomli_w

from console.config.notify import inbox_at, is_inbox_url
from console.config.parse import parse_config
from console.config.paths import config_candidates, private_dir
from console.config.schema import Config
from console.errors import ConfigError

# A config is a few kilobytes; a bigger "file" (/dev/zero, a log) is refused before parsing.
MAX_CONFIG_BYTES = 8 * 1024 * 1024
# The sample configs (config/demo.toml, config/example.toml) ship as this package's data.
SAMPLES_PACKAGE = "console.config.samples"


def sample_config(name: str) -> Path:
    """The path of a sample config shipped with the console: "demo.toml" or "example.toml"."""
    return Path(str(importlib.resources.files(SAMPLES_PACKAGE) / name))


def read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_CONFIG_BYTES + 1)
        if len(raw) > MAX_CONFIG_BYTES:
            raise ConfigError(f"{path}: larger than {MAX_CONFIG_BYTES // 2**20} MiB: not a config")
        return tomllib.loads(raw.decode("utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, not a config file") from None
    except PermissionError:
        raise ConfigError(f"{path}: permission denied") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: invalid TOML: {error}") from None
    except RecursionError:
        # tomllib parses nested arrays and inline tables recursively.
        raise ConfigError(f"{path}: invalid TOML: arrays or tables nested too deeply") from None
    except OSError as error:
        raise ConfigError(f"{path}: cannot read: {error.strerror or error}") from None


def load_config(path: Path) -> Config:
    return parse_config(read_toml(path), path)


def find_config(explicit: str | None) -> Config:
    """Load the config from --config, $DEPLOY_CONSOLE_CONFIG or the user config dir."""
    for origin, path in config_candidates(explicit):
        if origin == "user config" and not path.exists():
            raise ConfigError(
                f"no config found: pass --config PATH, set $DEPLOY_CONSOLE_CONFIG, "
                f"or create {path} (see config/example.toml); or start `deploy-console demo`, "
                "which commands then reach"
            )
        return load_config(path)
    raise ConfigError("no config found")


def write_world_config(
    source: Path,
    endpoint_url: str,
    destination: Path,
    ssh: dict[str, Any] | None = None,
    store: Path | None = None,
) -> None:
    """Write a copy of `source` whose clusters all point at `endpoint_url` (and `ssh`), with
    `store` as its store when given.

    The file is the console's own (generated), so rewriting it with tomli-w is safe; it is
    written to a temporary file first so a reader never sees half of it.
    """
    data = read_toml(source)
    for cluster in data.get("clusters", []):
        cluster["endpoint_url"] = endpoint_url
        cluster.pop("profile", None)
        for key in ("role_arn", "deploy_role_arn", "external_id", "mfa_serial"):
            cluster.pop(key, None)
        if ssh is not None:
            cluster["ssh"] = dict(ssh)
    _inbox_at(data, endpoint_url)
    if store is not None:
        data["store"] = str(store)
    parse_config(data, destination)
    private_dir(destination.parent)
    handle, temporary = tempfile.mkstemp(dir=destination.parent, prefix=".world-", suffix=".toml")
    try:
        with os.fdopen(handle, "wb") as output:
            tomli_w.dump(data, output)
        os.replace(temporary, destination)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _inbox_at(data: dict[str, Any], endpoint_url: str) -> None:
    """Point every webhook channel at a world inbox (its URL's path under
    /_deploy-console/inbox/) at this world's: the demo's notifications reach only loopback."""
    channels = data.get("notify", {}).get("channels", {})
    for channel in channels.values():
        url = channel.get("url") if isinstance(channel, dict) else None
        if isinstance(url, str) and is_inbox_url(url):
            channel["url"] = inbox_at(url, endpoint_url)
