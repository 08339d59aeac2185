"""Where rdesk keeps its files when no ``--config-dir`` says: the platform's directories
(``platformdirs``), without moving anything an earlier version wrote.

* The **config file** (``config.toml``, docs/config.md) is in the platform's user config
  directory: ``$XDG_CONFIG_HOME/rdesk`` or ``~/.config/rdesk`` on Linux, ``~/Library/Application
  Support/rdesk`` on macOS, ``%APPDATA%\\rdesk`` on Windows.
* The **data** (the host's key and certificate, password hashes, ``known_hosts``, the saved
  relay, the viewer CA, the relay's identity) is in the user data directory:
  ``$XDG_DATA_HOME/rdesk`` or ``~/.local/share/rdesk`` on Linux.

Earlier versions kept everything in ``$XDG_CONFIG_HOME/rdesk`` (``~/.config/rdesk``) on every
platform. While that directory holds any of their data files (:data:`DATA_NAMES`), it stays
the data directory, so an existing host keeps its key and a viewer its known hosts; likewise
a ``config.toml`` there is read while the platform's config directory has none. Nothing is
moved or copied: the user may move the files, and rdesk follows.
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

__all__ = ["APP", "CONFIG_FILE", "DATA_NAMES", "config_file", "data_dir", "legacy_dir"]

APP = "rdesk"
CONFIG_FILE = "config.toml"
#: What earlier versions wrote into ``~/.config/rdesk``, besides the config file.
DATA_NAMES = ("host.key", "host.crt", "password", "view-password", "known_hosts",
              "viewer-relay", "ca", "relay")


def legacy_dir() -> Path:
    """``$XDG_CONFIG_HOME/rdesk`` or ``~/.config/rdesk``: every file, before platformdirs."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / APP


def data_dir() -> Path:
    """The data directory: :func:`legacy_dir` while it holds data, else the platform's."""
    old = legacy_dir()
    if any((old / name).exists() for name in DATA_NAMES):
        return old
    return platformdirs.user_data_path(APP)


def config_file() -> Path:
    """The config file: in the platform's config directory, or the legacy one's if only
    that exists."""
    new = platformdirs.user_config_path(APP) / CONFIG_FILE
    old = legacy_dir() / CONFIG_FILE
    return old if not new.exists() and old.exists() else new
