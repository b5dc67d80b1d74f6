"""The console's configuration: a TOML file read into frozen dataclasses, every value checked.

schema holds what a config is; reader reads one table key by key; parse (with doors,
world_seed and web) checks each table and how they refer to each other; load finds, reads and
writes config files and the samples shipped along; paths says where things live.
"""

from console.config import schema
from console.config.doors import (
    ANCHOR_LOCK_MODES,
    MAX_ANCHOR_RETENTION_DAYS,
    ROLE_LISTS,
    S3_BUCKET_PATTERN,
    SSHD_USER_PATTERN,
)
from console.config.load import (
    MAX_CONFIG_BYTES,
    find_config,
    load_config,
    read_toml,
    sample_config,
    write_world_config,
)
from console.config.parse import (
    EXTERNAL_ID_PATTERN,
    LB_NAME_PATTERN,
    MAX_PARALLEL,
    MFA_SERIAL_PATTERN,
    document_digest,
    parse_config,
)
from console.config.reader import DAY, ENV_NAME_PATTERN, HOUR, MAX_PORT, NAME_PATTERN
from console.config.schema import *  # noqa: F403 (what a config is: every dataclass)
from console.config.web import WebSettings
from console.config.world_seed import MAX_INSTANCES, MAX_SEED

__all__ = [
    *schema.__all__,
    "ANCHOR_LOCK_MODES",
    "DAY",
    "ENV_NAME_PATTERN",
    "EXTERNAL_ID_PATTERN",
    "HOUR",
    "LB_NAME_PATTERN",
    "MAX_ANCHOR_RETENTION_DAYS",
    "MAX_CONFIG_BYTES",
    "MAX_INSTANCES",
    "MAX_PARALLEL",
    "MAX_PORT",
    "MAX_SEED",
    "MFA_SERIAL_PATTERN",
    "NAME_PATTERN",
    "ROLE_LISTS",
    "S3_BUCKET_PATTERN",
    "SSHD_USER_PATTERN",
    "WebSettings",
    "document_digest",
    "find_config",
    "load_config",
    "parse_config",
    "read_toml",
    "sample_config",
    "write_world_config",
]
