"""The images (deploy/images/): built with Buildah from a Debian base made here (debootstrap)
and passed as the Dockerfiles' BASE argument, then run with ``buildah run --isolation chroot``
(the host's network: what listens inside is reachable on 127.0.0.1 outside).

- rdesk-desktop: its entry point starts a host on a virtual display whose session draws a known
  picture and reads the screen back from inside; ``rdesk snapshot`` from outside gets exactly
  that picture. Started again on the same home volume, it has the same key (fingerprint, ID).
- rdesk-relay: its entry point answers ``/healthz`` from outside, the image's HEALTHCHECK
  command passes while it runs and fails once it stopped, and it wrote only to its volume.

Slow (a few minutes on a clean machine: the base, apt and pip in the builds); the base is
cached under .cache/deploy/ (see tests/deploy/buildah.py). Needs root, buildah, debootstrap.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.deploy.buildah import ROOT, Buildah, debian_base
from tests.deploy.pattern import pattern

pytestmark = pytest.mark.timeout(900)

IMAGES = ROOT / "deploy" / "images"
PASSWORD = "image test password"
UID = 10001  # the images' user (USER 10001:10001)


@pytest.fixture(scope="module")
def buildah(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Buildah]:
    assert os.geteuid() == 0, "building images with buildah --isolation chroot needs root"
    home = Path(tmp_path_factory.mktemp("buildah", numbered=True))
    tool = Buildah(home)
    try:
        base = debian_base(tool)
        with ThreadPoolExecutor(2) as pool:
            builds = [pool.submit(tool.build, IMAGES / name / "Dockerfile",
                                  f"localhost/rdesk-{name}:test", {"BASE": base})
                      for name in ("relay", "desktop")]
            for build in builds:
                build.result()
        yield tool
    finally:
        tool.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _volume(path: Path) -> Path:
    path.mkdir()
    os.chown(path, UID, UID)
    return path


def _container_init(runner: int) -> int:
    """The container's first process: the first descendant of ``runner`` that is not one of
    buildah's own (``buildah-chroot-runtime``, ``buildah-chroot-exec``: copies of buildah run
    from memory, so told apart by name, not by executable)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                children.setdefault(int(fields[1]), []).append(int(entry.name))
    todo = list(children.get(runner, []))
    while todo:
        pid = todo.pop(0)
        with contextlib.suppress(OSError):
            argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
            if not os.path.basename(argv0).startswith(b"buildah"):
                return pid
        todo.extend(children.get(pid, []))
    raise AssertionError("the container's process is gone")


class Running:
    """``buildah run`` of a container's entry point with extra arguments, in the background."""

    def __init__(self, tool: Buildah, ctr: str, args: list[str], volumes: dict[Path, str],
                 env: dict[str, str] | None = None) -> None:
        config = tool.config(ctr)
        entry = [*(config.get("Entrypoint") or []), *(config.get("Cmd") or []), *args]
        flags = [f"-v={host}:{inside}" for host, inside in volumes.items()]
        flags += [f"--env={k}={v}" for k, v in (env or {}).items()]
        self.tool = tool
        self.proc = subprocess.Popen(
            tool.argv("run", "--isolation", "chroot", *flags, ctr, "--", *entry),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=tool.env)
        self.lines: list[str] = []

    def wait_for(self, pattern_: str, limit: int = 200) -> re.Match[str]:
        """The first output line matching ``pattern_`` (fails if the process ends first)."""
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip())
            if found := re.search(pattern_, line):
                return found
            assert len(self.lines) < limit, "\n".join(self.lines)
        raise AssertionError("exited before printing the line:\n" + "\n".join(self.lines))

    def stop(self) -> int:
        """SIGTERM to the container's entry point (as a container engine stops it); its exit
        status, once ``buildah run`` and everything under it ended."""
        if self.proc.poll() is None:
            os.kill(_container_init(self.proc.pid), signal.SIGTERM)
        try:
            out, _ = self.proc.communicate(timeout=60)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
        self.lines += out.splitlines()
        return self.proc.returncode


def _ppm(path: Path) -> np.ndarray:
    data = path.read_bytes()
    magic, width, height, depth, pixels = data.split(maxsplit=4)
    assert (magic, depth) == (b"P6", b"255")
    return np.frombuffer(pixels, np.uint8).reshape(int(height), int(width), 3)


def _desktop(tool: Buildah) -> str:
    """A new container of the desktop image, with the test's session program in it."""
    ctr = tool.container("localhost/rdesk-desktop:test")
    tool("copy", ctr, ROOT / "tests" / "deploy" / "pattern.py", "/opt/rdesk-test/pattern.py")
    return ctr


def _start_desktop(tool: Buildah, ctr: str, home: Path, port: int,
                   session: list[str]) -> tuple[Running, str]:
    host = Running(tool, ctr, ["--bind", "127.0.0.1", "--port", str(port), *session],
                   {home: "/home/rdesk"}, env={"RDESK_HOST_PASSWORD_FILE": "/home/rdesk/password"})
    return host, host.wait_for(r"fingerprint: (SHA256:\S+)").group(1)


def _snapshot(port: int, fingerprint: str, tmp: Path) -> np.ndarray:
    shot = tmp / "shot.png"
    done = subprocess.run(
        [sys.executable, "-m", "rdesk", "snapshot", f"wss://127.0.0.1:{port}", "-o", str(shot),
         "--fingerprint", fingerprint, "--password-file", str(tmp / "password"),
         "--config-dir", str(tmp / "viewer")], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return np.asarray(Image.open(shot).convert("RGB"))


def test_desktop_image_serves_its_virtual_display(buildah: Buildah, tmp_path: Path) -> None:
    ctr = _desktop(buildah)
    config = buildah.config(ctr)
    assert config["User"] == f"{UID}:{UID}" and "/home/rdesk" in config["Volumes"]
    assert "RDESK_HOST_VIRTUAL=1280x720" in config["Env"]
    home = _volume(tmp_path / "home")
    (home / "password").write_text(PASSWORD + "\n")
    os.chown(home / "password", UID, UID)
    (tmp_path / "password").write_text(PASSWORD + "\n")
    port = _free_port()
    grab = home / "grab.ppm"
    host, fingerprint = _start_desktop(buildah, ctr, home, port, [
        "--session", "/opt/rdesk/bin/python /opt/rdesk-test/pattern.py /home/rdesk/grab.ppm"])
    try:
        # The session's output is not the host's: its grab file says the picture is up.
        for _ in range(600):
            if grab.exists() or host.proc.poll() is not None:
                break
            time.sleep(0.1)
        assert grab.exists(), "the session drew nothing:\n" + "\n".join(host.lines)
        seen = _snapshot(port, fingerprint, tmp_path)
        inside = _ppm(grab)  # what the container's X server showed
        assert seen.shape == inside.shape == (720, 1280, 3)
        assert np.count_nonzero((seen != inside).any(axis=-1)) == 0
        assert np.count_nonzero((seen != pattern(1280, 720)).any(axis=-1)) == 0
    finally:
        status = host.stop()
    assert status == 0, "\n".join(host.lines)
    # The host key lives on the volume, not in the container: started again on it, the host
    # is the same one (as a pod restarted on its volume). This time with the image's default
    # session, openbox and xterm (a white terminal).
    [key] = home.rglob("host.key")  # where rdesk keeps its data under $HOME
    assert key.stat().st_uid == UID
    rootfs = Path(buildah("mount", ctr).strip())
    assert not list((rootfs / "home" / "rdesk").rglob("host.key"))
    again, second = _start_desktop(buildah, ctr, home, port, [])
    try:
        assert second == fingerprint
        white = 0
        for _ in range(50):  # until xterm has mapped its window
            white = int(np.count_nonzero((_snapshot(port, fingerprint, tmp_path) == 255)
                                         .all(axis=-1)))
            if white > 10_000:
                break
            time.sleep(0.2)
        assert white > 10_000, white
    finally:
        status = again.stop()
    assert status == 0, "\n".join(again.lines)


def _healthz(port: int) -> tuple[int, bytes]:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with urllib.request.urlopen(f"https://127.0.0.1:{port}/healthz", context=context,
                                timeout=10) as answer:
        return answer.status, answer.read()


def test_relay_image_answers_healthz(buildah: Buildah, tmp_path: Path) -> None:
    ctr = buildah.container("localhost/rdesk-relay:test")
    config = buildah.config(ctr)
    assert config["User"] == f"{UID}:{UID}" and "/var/lib/rdesk" in config["Volumes"]
    check = config["Healthcheck"]["Test"]
    assert check[0] == "CMD"
    state = _volume(tmp_path / "state")
    port = _free_port()
    marker = time.time()
    relay = Running(buildah, ctr, ["--bind", "127.0.0.1", "--open"], {state: "/var/lib/rdesk"},
                    # The splice port on any free one: port + 1 may be another process's.
                    env={"RDESK_RELAY_PORT": str(port), "RDESK_RELAY_SPLICE_PORT": "0"})
    try:
        relay.wait_for(rf"listening on wss://127\.0\.0\.1:{port}")
        assert _healthz(port)[0] == 200
        healthy = subprocess.run(
            buildah.argv("run", "--isolation", "chroot", f"--env=RDESK_RELAY_PORT={port}", ctr,
                         "--", *check[1:]), capture_output=True, text=True, env=buildah.env,
            timeout=60)
        assert healthy.returncode == 0, healthy.stdout + healthy.stderr
    finally:
        status = relay.stop()
    assert status == 0, "\n".join(relay.lines)
    assert any("drain" in line or "stopp" in line for line in relay.lines), relay.lines
    # Its own identity went to the volume; nothing else of the image's files changed.
    assert (state / "relay" / "host.key").stat().st_uid == UID
    rootfs = Path(buildah("mount", ctr).strip())
    changed = [str(p.relative_to(rootfs)) for p in rootfs.rglob("*")
               if not p.is_symlink() and p.lstat().st_mtime > marker]
    assert [c for c in changed if not c.startswith(("tmp", "run", "dev", "proc", "sys",
                                                     "etc/hosts", "etc/resolv.conf",
                                                     "etc/hostname"))] == []
    with pytest.raises(OSError):
        _healthz(port)
    unhealthy = subprocess.run(
        buildah.argv("run", "--isolation", "chroot", f"--env=RDESK_RELAY_PORT={port}", ctr,
                     "--", *check[1:]), capture_output=True, text=True, env=buildah.env,
        timeout=60)
    assert unhealthy.returncode == 1 and "healthcheck" in unhealthy.stderr
