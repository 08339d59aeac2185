"""The host's credentials: which secret grants which role, and how the user is told to log in."""

from __future__ import annotations

import time
from pathlib import Path

from rdesk.host.security.invites import InviteBook
from rdesk.host.security.passwords import PasswordStore
from rdesk.host.settings import PASSWORD_FILE, VIEW_PASSWORD_FILE, HostSettings

__all__ = ["HostCredentials", "load_credentials"]


class HostCredentials:
    """Maps a secret to the role it grants.

    An unexpired invite code grants its role (once); the control password grants ``control``;
    the view password, if set, grants ``view``. Both password checks always run, so timing does
    not tell which one a guess was tried against; when the two hashes share a salt (as
    :func:`load_credentials` and ``rdesk passwd`` write them) one scrypt derivation serves both.
    """

    def __init__(
        self,
        control: PasswordStore,
        view: PasswordStore | None = None,
        invites: InviteBook | None = None,
    ) -> None:
        self.control = control
        self.view = view
        self.invites = invites if invites is not None else InviteBook()

    def rotate(self) -> str | None:
        """Replace a one-time control password (after repeated failures); return the new one.

        A password the user chose is never changed: ``None`` then.
        """
        if self.control.one_time_password is None:
            return None
        self.control = PasswordStore.one_time(like=self.view)
        return self.control.one_time_password

    def check(self, secret: str) -> str | None:
        if secret.startswith("inv-"):
            return self.invites.redeem(secret, time.monotonic())
        if self.view is None:
            is_control, is_view = self.control.check(secret), False
        else:
            is_control, is_view = self.control.check_with(self.view, secret)
        return "control" if is_control else "view" if is_view else None


def load_credentials(settings: HostSettings) -> tuple[HostCredentials, str]:
    """The host's credentials and a sentence telling the user how to log in.

    A password known in plain text (a plain file, a one-time password) is hashed with the
    other password's salt and parameters, so a login costs one scrypt derivation. A hash file
    named by the settings must exist (:class:`PasswordFileError` otherwise); the config
    directory's own hash files are used only when they exist.
    """
    view: PasswordStore | None = None
    view_how = ""
    view_hash = _hash_file(settings.view_password_hash_file, settings, VIEW_PASSWORD_FILE)
    if settings.view_password_file is None and view_hash is not None:
        view = PasswordStore.from_hash_file(view_hash)
        view_how = ("\n  view-only password: the one set with `rdesk passwd --view`"
                    if settings.view_password_hash_file is None
                    else f"\n  view-only password: the one hashed in {view_hash}")
    control, how = _control_store(settings, like=view)
    if settings.view_password_file is not None:
        view = PasswordStore.from_plain_file(settings.view_password_file, like=control)
        view_how = f"\n  view-only password: the one in {settings.view_password_file}"
    return HostCredentials(control, view), how + view_how


def _hash_file(given: Path | None, settings: HostSettings, name: str) -> Path | None:
    """The hash file to read: the one given, else the config directory's if it exists."""
    if given is not None:
        return given
    default = settings.config_dir / name
    return default if default.exists() else None


def _control_store(
    settings: HostSettings, like: PasswordStore | None
) -> tuple[PasswordStore, str]:
    hashed = _hash_file(settings.password_hash_file, settings, PASSWORD_FILE)
    if settings.password_file is not None:
        store = PasswordStore.from_plain_file(settings.password_file, like=like)
        how = f"password: the one in {settings.password_file}"
    elif hashed is not None:
        store = PasswordStore.from_hash_file(hashed)
        how = ("password: the one set with `rdesk passwd`" if settings.password_hash_file is None
               else f"password: the one hashed in {hashed}")
    else:
        store = PasswordStore.one_time(like=like)
        how = (
            f"one-time password: {store.one_time_password}   "
            "(valid for this run; set a permanent one with `rdesk passwd`)"
        )
    return store, how
