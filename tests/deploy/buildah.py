"""Building and running the images with Buildah, without a daemon, for tests/deploy.

:class:`Buildah` keeps its own container storage (the ``vfs`` driver, the one that works
everywhere, also inside a container: no overlay mounts) under a directory of its own, with
its own ``storage.conf`` and signature policy, so neither the machine's ``/etc/containers``
nor another user's images change what a test does. Builds and runs use ``--isolation chroot``
(no OCI runtime, no user namespaces; the host's network).

:func:`debian_base` makes the base image the Dockerfiles' ``BASE`` argument names: a Debian
``minbase`` made by debootstrap, cached as a tarball under ``.cache/deploy/`` keyed on the
suite, mirror and package list, so only the first run on a machine pays for it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import ssl
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".cache" / "deploy"
SUITE, MIRROR = "bookworm", "http://deb.debian.org/debian"
#: What the Dockerfiles need from a base besides Debian's minbase: what python:3.11-slim has.
BASE_PACKAGES = ("python3", "python3-venv", "ca-certificates")
BASE_IMAGE = "localhost/rdesk-test-base:latest"


class BuildahError(AssertionError):
    """A buildah or debootstrap command failed; the message says which and why."""


def need(tool: str, package: str) -> str:
    """The path of ``tool``, or a failure saying which Debian package to install."""
    path = shutil.which(tool)
    if path is None:
        raise BuildahError(f"{tool} not found: apt-get install {package} "
                           "(scripts/debian-packages.txt)")
    return path


def _check(argv: Sequence[str], *, timeout: float, env: dict[str, str] | None = None) -> str:
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout,
                              env=env)
    except subprocess.TimeoutExpired as exc:
        raise BuildahError(f"{' '.join(argv[:4])} ... took more than {timeout:.0f} s") from exc
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-25:])
        raise BuildahError(f"{' '.join(argv[:6])} ... failed ({done.returncode}):\n{tail}")
    return done.stdout


class Buildah:
    """``buildah`` on a private storage under ``home`` (removed by :meth:`close`)."""

    def __init__(self, home: Path) -> None:
        self.exe = need("buildah", "buildah")
        self.home = home
        storage, run = home / "storage", home / "run"
        storage.mkdir(parents=True)
        run.mkdir()
        conf = home / "storage.conf"
        conf.write_text(f'[storage]\ndriver = "vfs"\ngraphroot = "{storage}"\n'
                        f'runroot = "{run}"\n')
        self.policy = home / "policy.json"
        self.policy.write_text('{"default": [{"type": "insecureAcceptAnything"}]}\n')
        registries = home / "registries.conf"
        registries.write_text("unqualified-search-registries = []\n")
        self.env = {**os.environ, "CONTAINERS_STORAGE_CONF": str(conf),
                    "CONTAINERS_REGISTRIES_CONF": str(registries),
                    "BUILDAH_ISOLATION": "chroot", "STORAGE_DRIVER": "vfs"}
        self.containers: list[str] = []

    def __call__(self, *args: str | Path, timeout: float = 120) -> str:
        return _check([self.exe, "--storage-driver", "vfs", *map(str, args)], timeout=timeout,
                      env=self.env)

    def argv(self, *args: str | Path) -> list[str]:
        """The command line of ``buildah ARGS`` (for a process the caller runs itself)."""
        return [self.exe, "--storage-driver", "vfs", *map(str, args)]

    def import_rootfs(self, tarball: Path, name: str) -> None:
        """Make image ``name`` of the root filesystem in ``tarball``."""
        ctr = self("from", "--signature-policy", self.policy, "scratch").strip()
        self("add", ctr, tarball, "/", timeout=300)
        self("commit", "--signature-policy", self.policy, "-q", ctr, name, timeout=300)
        self("rm", ctr)

    def build(self, dockerfile: Path, tag: str, build_args: dict[str, str],
              timeout: float = 480) -> None:
        """``buildah bud`` of ``dockerfile`` with the repository as context.

        During ``RUN`` steps the machine's CA bundle is mounted and pip told to use it (a
        network with a TLS-inspecting proxy); nothing of it is in the image.
        """
        pip_conf = self.home / "pip.conf"
        pip_conf.write_text("[global]\ncert = /etc/rdesk-build-ca.crt\n")
        args = [f"--build-arg={k}={v}" for k, v in build_args.items()]
        # --jobs 2: a Dockerfile's stages run at once until one needs the other.
        self("bud", "--isolation", "chroot", "--format", "docker", "--pull=never", "--jobs", "2",
             "--signature-policy", self.policy, *args,
             "-v", f"{host_ca_bundle()}:/etc/rdesk-build-ca.crt:ro",
             "-v", f"{pip_conf}:/etc/pip.conf:ro",
             "-f", dockerfile, "-t", tag, ROOT, timeout=timeout)

    def container(self, image: str) -> str:
        """A working container of ``image`` (removed by :meth:`close`)."""
        ctr = self("from", "--pull=never", "--signature-policy", self.policy, image).strip()
        self.containers.append(ctr)
        return ctr

    def config(self, ctr: str) -> dict[str, Any]:
        """The image configuration (Docker format) of a working container."""
        info = json.loads(self("inspect", "--type", "container", ctr))
        return dict(info["Docker"]["config"])

    def close(self) -> None:
        for ctr in self.containers:
            subprocess.run(self.argv("rm", ctr), capture_output=True, env=self.env,
                           timeout=120)
        shutil.rmtree(self.home, ignore_errors=True)


def host_ca_bundle() -> str:
    """The machine's CA bundle (it trusts whatever proxy the machine's network needs)."""
    path = ssl.get_default_verify_paths().cafile or "/etc/ssl/certs/ca-certificates.crt"
    if not Path(path).is_file():
        raise BuildahError(f"no CA bundle at {path}: apt-get install ca-certificates")
    return path


def debian_base(buildah: Buildah) -> str:
    """Import the cached Debian base into ``buildah``'s storage (made first if need be)."""
    key = hashlib.sha256(repr((SUITE, MIRROR, "minbase", BASE_PACKAGES)).encode()).hexdigest()
    tarball = CACHE / f"base-{SUITE}-{key[:16]}.tar"
    if not tarball.exists():
        _make_base(tarball)
    buildah.import_rootfs(tarball, BASE_IMAGE)
    return BASE_IMAGE


def _make_base(tarball: Path) -> None:
    debootstrap = need("debootstrap", "debootstrap")
    tarball.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir="/var/tmp", prefix="rdesk-debootstrap-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        _check([debootstrap, "--variant=minbase", f"--include={','.join(BASE_PACKAGES)}",
                SUITE, str(rootfs), MIRROR], timeout=600)
        # What an image does not need: downloaded packages and indexes (the Dockerfiles run
        # apt-get update themselves).
        for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for path in (rootfs / junk).glob("*"):
                if path.is_file():
                    path.unlink()
        partial = tarball.with_suffix(".part")
        _check(["tar", "-C", str(rootfs), "--numeric-owner", "-cf", str(partial), "."],
               timeout=300)
        partial.replace(tarball)
