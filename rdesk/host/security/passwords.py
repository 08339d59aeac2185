"""Control passwords: scrypt hashes, constant-time checks, and the files that hold them.

Passwords are stored only as scrypt hashes in a self-describing one-line format::

    scrypt$<n>$<r>$<p>$<salt, base64>$<key, base64>

Every comparison goes through scrypt and :func:`hmac.compare_digest`, including for a password
given in plain text (``--password-file``) or generated for one session: :class:`PasswordStore`
hashes those once in memory, so there is a single, uniform, constant-time comparison path.
The cost (tens of milliseconds of CPU per check) is deliberate; an asyncio server should run
:meth:`PasswordStore.check` in a worker thread (``asyncio.to_thread``) so it does not stall
the event loop, and must still apply its own per-source delay for failed logins.

Passwords are normalised to Unicode NFC and encoded as UTF-8 before hashing, so the same
password typed through different input methods compares equal.

Every failure a user can cause raises :class:`PasswordError` (or its subclass
:class:`PasswordFileError`) whose ``str()`` is one line, fit to print after ``rdesk: error:``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
import unicodedata
from pathlib import Path

from rdesk.common.files import atomic_write

__all__ = [
    "ONE_TIME_ALPHABET",
    "PasswordError",
    "PasswordFileError",
    "PasswordStore",
    "hash_password",
    "read_secret_file",
    "verify_pair",
    "verify_password",
    "write_password_hash",
]

SCRYPT_N = 2**15
SCRYPT_R = 8
SCRYPT_P = 1
SALT_BYTES = 16
KEY_BYTES = 32

#: Bounds accepted when *reading* a hash, so a tampered file cannot make each check allocate
#: gigabytes or spin for minutes (a denial of service), nor weaken the hash to nothing.
_MIN_N, _MAX_N = 2**10, 2**20
_MAX_R, _MAX_P = 32, 16
_MAX_SCRYPT_MEMORY = 256 * 1024 * 1024  # bytes; 128 * n * r * p must stay below this
_SALT_RANGE = range(8, 65)
_KEY_RANGE = range(16, 65)

#: Longer passwords are refused (hashing) or simply fail (checking) without running scrypt.
MAX_PASSWORD_BYTES = 1024
#: A secret file larger than this is refused before it is read whole.
_MAX_SECRET_FILE = 64 * 1024

#: Alphabet for one-time passwords: lower case letters and digits without i, l, o, 0, 1.
ONE_TIME_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
_ONE_TIME_GROUPS = 4
_ONE_TIME_GROUP_LEN = 4  # 16 symbols from 31: about 79 bits


class PasswordError(Exception):
    """A password is unusable (empty, too long). ``str()`` is one line."""


class PasswordFileError(PasswordError):
    """A password or hash file is missing, unreadable, empty or malformed. ``str()`` is one line."""


def _encode(password: str) -> bytes:
    return unicodedata.normalize("NFC", password).encode("utf-8", "surrogatepass")


def _scrypt(secret: bytes, salt: bytes, n: int, r: int, p: int, dklen: int) -> bytes:
    # scrypt needs about 128 * n * r * p bytes; give it twice that plus slack (OpenSSL's
    # default limit of 32 MiB is just under what n=2**15, r=8 needs).
    maxmem = 2 * 128 * n * r * p + 1024 * 1024
    return hashlib.scrypt(secret, salt=salt, n=n, r=r, p=p, maxmem=maxmem, dklen=dklen)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def hash_password(password: str, like: str | None = None) -> str:
    """Return a new scrypt hash of *password* with a fresh random 16-byte salt.

    The result is ``scrypt$32768$8$1$<salt b64>$<key b64>`` (standard, padded base64) and can be
    checked with :func:`verify_password`. With *like* (another stored hash, validated), the
    salt, parameters and key length are *like*'s instead: the host's two passwords then share
    them, so one key derivation checks an attempt against both (:func:`verify_pair`). Raises
    :class:`PasswordError` for an empty password or one longer than :data:`MAX_PASSWORD_BYTES`
    bytes of UTF-8, :class:`PasswordFileError` for a malformed *like*.
    """
    secret = _encode(password)
    if not secret:
        raise PasswordError("the password is empty")
    if len(secret) > MAX_PASSWORD_BYTES:
        raise PasswordError(f"the password is longer than {MAX_PASSWORD_BYTES} bytes")
    if like is None:
        n, r, p, dklen = SCRYPT_N, SCRYPT_R, SCRYPT_P, KEY_BYTES
        salt = secrets.token_bytes(SALT_BYTES)
    else:
        n, r, p, salt, old = _parse(like)
        dklen = len(old)
    key = _scrypt(secret, salt, n, r, p, dklen)
    return f"scrypt${n}${r}${p}${_b64(salt)}${_b64(key)}"


def _parse(stored: str) -> tuple[int, int, int, bytes, bytes]:
    """Parse and bound-check a stored hash; raise :class:`PasswordFileError` if malformed."""
    parts = stored.strip().split("$")
    if len(parts) != 6 or parts[0] != "scrypt":
        raise PasswordFileError("malformed password hash: expected scrypt$n$r$p$salt$hash")
    if not all(x.isascii() and x.isdigit() and len(x) <= 10 for x in parts[1:4]):
        raise PasswordFileError("malformed password hash: bad scrypt parameters")
    n, r, p = (int(x) for x in parts[1:4])
    if not (_MIN_N <= n <= _MAX_N and n & (n - 1) == 0):
        raise PasswordFileError(f"password hash has unacceptable scrypt n={n}")
    if not (1 <= r <= _MAX_R and 1 <= p <= _MAX_P) or 128 * n * r * p > _MAX_SCRYPT_MEMORY:
        raise PasswordFileError(f"password hash has unacceptable scrypt r={r}, p={p}")
    try:
        salt = base64.b64decode(parts[4], validate=True)
        key = base64.b64decode(parts[5], validate=True)
    except (binascii.Error, ValueError):
        raise PasswordFileError("malformed password hash: bad base64") from None
    if len(salt) not in _SALT_RANGE or len(key) not in _KEY_RANGE:
        raise PasswordFileError("malformed password hash: bad salt or hash length")
    return n, r, p, salt, key


def verify_password(stored: str, password: str) -> bool:
    """Return whether *password* matches the hash *stored* (from :func:`hash_password`).

    The derived key is compared with :func:`hmac.compare_digest`. A password longer than
    :data:`MAX_PASSWORD_BYTES` returns ``False`` without hashing. Raises
    :class:`PasswordFileError` (one line) if *stored* is malformed or its scrypt parameters are
    outside sane bounds, whatever the password.
    """
    n, r, p, salt, key = _parse(stored)
    secret = _encode(password)
    if len(secret) > MAX_PASSWORD_BYTES:
        return False
    return hmac.compare_digest(_scrypt(secret, salt, n, r, p, len(key)), key)


def verify_pair(first: str, second: str, password: str) -> tuple[bool, bool]:
    """Return whether *password* matches each of two stored hashes, in constant time.

    When both hashes have the same salt, parameters and key length (written with
    ``hash_password(..., like=...)``), one key derivation serves both comparisons; otherwise
    (older files, hashed apart) two derivations run. Both comparisons always run, so the time
    does not tell which hash matched. Raises :class:`PasswordFileError` for a malformed hash.
    """
    n, r, p, salt, key = _parse(first)
    n2, r2, p2, salt2, key2 = _parse(second)
    secret = _encode(password)
    if len(secret) > MAX_PASSWORD_BYTES:
        return False, False
    derived = _scrypt(secret, salt, n, r, p, len(key))
    if (n, r, p, salt, len(key)) == (n2, r2, p2, salt2, len(key2)):
        derived2 = derived
    else:
        derived2 = _scrypt(secret, salt2, n2, r2, p2, len(key2))
    return hmac.compare_digest(derived, key), hmac.compare_digest(derived2, key2)


def read_secret_file(path: Path) -> str:
    """Return the first line of the file at *path*, with surrounding whitespace stripped.

    Leading and trailing whitespace is therefore never part of a password given in a file.
    Raises :class:`PasswordFileError` (one line naming *path*) if the file is missing, not a
    regular file, unreadable, too large, not UTF-8, or its first line is empty.
    """
    path = Path(path)
    try:
        # stat first: opening a FIFO or device could block or never end
        if path.exists() and not path.is_dir() and not path.is_file():
            raise PasswordFileError(f"password file {path} is not a regular file")
        with open(path, "rb") as f:
            data = f.read(_MAX_SECRET_FILE + 1)
    except FileNotFoundError:
        raise PasswordFileError(f"password file {path} does not exist") from None
    except IsADirectoryError:
        raise PasswordFileError(f"password file {path} is a directory") from None
    except OSError as exc:
        reason = " ".join(str(exc.strerror or exc).split())
        raise PasswordFileError(f"cannot read password file {path}: {reason}") from None
    if len(data) > _MAX_SECRET_FILE:
        raise PasswordFileError(f"password file {path} is too large")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise PasswordFileError(f"password file {path} is not valid UTF-8") from None
    lines = text.splitlines()
    first = lines[0].strip() if lines else ""
    if not first:
        raise PasswordFileError(f"password file {path} is empty")
    return first


def write_password_hash(path: Path, password: str, like: Path | None = None) -> None:
    """Hash *password* and store it as the single line of *path*, atomically, mode 0600.

    If *like* names a readable, valid hash file (the host's other password), the new hash takes
    its salt and parameters (see :func:`hash_password`); a missing or unusable *like* is ignored
    and a fresh salt is drawn.

    Missing parent directories are created with mode 0700. The file is replaced in one rename, so
    a reader sees the old hash or the new one, never a partial line. Raises
    :class:`PasswordError` for an unusable password and :class:`PasswordFileError` (one line)
    if the file cannot be written.
    """
    path = Path(path)
    template: str | None = None
    if like is not None:
        try:
            template = read_secret_file(like)
            _parse(template)
        except PasswordFileError:
            template = None
    line = hash_password(password, template) + "\n"
    try:
        missing = [d for d in [path.parent, *path.parent.parents] if not d.exists()]
        for d in reversed(missing):
            d.mkdir(mode=0o700)
            os.chmod(d, 0o700)  # mkdir's mode is filtered by the umask
        atomic_write(path, line.encode("ascii"), 0o600)
    except OSError as exc:
        reason = " ".join(str(exc.strerror or exc).split())
        raise PasswordFileError(f"cannot write password file {path}: {reason}") from None


class PasswordStore:
    """The verifier for the host's control password.

    Build it with one of the class methods; check attempts with :meth:`check`. Whatever the
    source, the store keeps only an scrypt hash, and :meth:`check` always runs scrypt and a
    constant-time comparison (see the module docstring for the cost and threading advice).
    """

    def __init__(self, stored_hash: str, *, one_time_password: str | None = None) -> None:
        """Wrap an existing hash (validated now). Prefer the class methods."""
        _parse(stored_hash)
        self._hash = stored_hash.strip()
        self._one_time_password = one_time_password

    @classmethod
    def from_hash_file(cls, path: Path) -> PasswordStore:
        """Load the hash written by ``rdesk passwd`` (:func:`write_password_hash`) from *path*.

        Raises :class:`PasswordFileError` (one line naming *path*) if the file cannot be read or
        does not hold a valid hash.
        """
        line = read_secret_file(path)
        try:
            return cls(line)
        except PasswordFileError as exc:
            raise PasswordFileError(f"{path}: {exc}") from None

    @classmethod
    def from_plain_file(cls, path: Path, like: PasswordStore | None = None) -> PasswordStore:
        """Use the plaintext password in the first line of *path* (``--password-file``).

        The password (stripped, see :func:`read_secret_file`) is hashed once, in memory, with
        *like*'s salt and parameters if given; the plaintext is not kept. Raises
        :class:`PasswordFileError` / :class:`PasswordError` (one line) if the file is unusable
        or the password is empty or too long.
        """
        return cls.from_password(read_secret_file(path), like)

    @classmethod
    def from_password(cls, password: str, like: PasswordStore | None = None) -> PasswordStore:
        """Use *password* (hashed once, in memory, with *like*'s salt and parameters if given).

        Raises :class:`PasswordError` if unusable.
        """
        return cls(hash_password(password, like._hash if like is not None else None))

    @classmethod
    def one_time(cls, like: PasswordStore | None = None) -> PasswordStore:
        """Generate a random password for this run only, exposed as :attr:`one_time_password`.

        The password is four dash-separated groups of four characters from
        :data:`ONE_TIME_ALPHABET` (about 79 bits), e.g. ``k7m2-q9tz-h3wa-pe4n``. With *like*,
        it is hashed with that store's salt and parameters.
        """
        groups = (
            "".join(secrets.choice(ONE_TIME_ALPHABET) for _ in range(_ONE_TIME_GROUP_LEN))
            for _ in range(_ONE_TIME_GROUPS)
        )
        password = "-".join(groups)
        template = like._hash if like is not None else None
        return cls(hash_password(password, template), one_time_password=password)

    @property
    def one_time_password(self) -> str | None:
        """The generated password to show the user, or ``None`` if not made by :meth:`one_time`."""
        return self._one_time_password

    def check(self, password: str) -> bool:
        """Return whether *password* is the control password; constant time in its content.

        Never raises for any *password* string (the stored hash was validated when the store
        was built).
        """
        return verify_password(self._hash, password)

    def check_with(self, other: PasswordStore, password: str) -> tuple[bool, bool]:
        """Whether *password* is this store's and *other*'s password (:func:`verify_pair`).

        One key derivation when the two share a salt and parameters, two otherwise; never
        raises for any *password* string.
        """
        return verify_pair(self._hash, other._hash, password)

    def __repr__(self) -> str:
        return "<PasswordStore>"  # never show the hash or a one-time password in logs
