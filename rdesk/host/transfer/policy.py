"""What the host allows of file transfers: the ``--transfer*`` flags as one frozen policy.

docs/transfer.md ("Policy") says why the defaults are what they are; rdesk/host/transfer/room.py
applies the policy to each viewer's transfers.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from rdesk.host.settings import HostSettings
from rdesk.protocol.access import Access

__all__ = ["DISK_RESERVE", "TRANSFER_MODES", "TransferPolicy", "policy_from"]

TRANSFER_MODES = ("both", "upload", "download", "off")
#: Bytes kept free on the folder's disk: an upload that would eat into them is refused.
DISK_RESERVE = 64 << 20


@dataclasses.dataclass(frozen=True)
class TransferPolicy:
    """What the host allows (``--transfer*`` flags, rdesk/host/settings.py)."""

    mode: str = "both"
    folder: Path = dataclasses.field(default_factory=lambda: Path.home() / "rdesk-transfer")
    max_file: int = 4 << 30
    max_session: int = 16 << 30
    view_only: bool = False
    overwrite: str = "rename"
    #: Bytes left free on the folder's disk: an upload that would eat into them is refused.
    disk_reserve: int = DISK_RESERVE

    def refusal(self, access: Access, direction: str) -> str | None:
        """Why a viewer with ``access`` may not transfer in ``direction`` ("upload",
        "download" or "list"), or ``None``."""
        if self.mode == "off":
            return "file transfer is off on this host"
        if access is not Access.CONTROL and not self.view_only:
            return "view-only viewers may not transfer files"
        if direction == "upload" and self.mode == "download":
            return "this host allows downloads only"
        if direction == "download" and self.mode == "upload":
            return "this host allows uploads only"
        return None


def policy_from(settings: HostSettings | None) -> TransferPolicy:
    """The policy ``rdesk host``'s settings ask for (the defaults without settings)."""
    if settings is None:
        return TransferPolicy()
    return TransferPolicy(
        mode=settings.transfer,
        folder=settings.transfer_dir or Path.home() / "rdesk-transfer",
        max_file=settings.transfer_max_file,
        max_session=settings.transfer_max_session,
        view_only=settings.transfer_view_only,
    )
