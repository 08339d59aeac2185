"""``rdesk relay --splicer auto|kernel|userspace`` as a real process: which splicer copies the
raw lane, said in the banner; the fallback's one log line; a forced kernel splicer that cannot
be set up is a one-line error. Without CAP_BPF is a user namespace (root there, not here)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _relay(tmp: Path, *flags: str, env: dict[str, str] | None = None,
           unprivileged: bool = False) -> tuple[int | None, str, str]:
    """Start ``rdesk relay``; its exit status (``None``: it ran), its output until the
    fingerprint line (or its end), and its standard error; stopped with SIGTERM."""
    argv = [sys.executable, "-m", "rdesk", "relay", "--bind", "127.0.0.1", "--port", "0",
            "--splice-port", "0", "--open", "--grace", "0", "--data-dir", str(tmp), *flags]
    if unprivileged:
        argv = ["unshare", "--user", "--map-root-user", *argv]
    proc = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})
    assert proc.stdout is not None and proc.stderr is not None
    out = ""
    for line in proc.stdout:
        out += line
        if "fingerprint" in line:
            break
    status = proc.wait(30) if "fingerprint" not in out else proc.poll()  # ended, or runs
    proc.terminate()
    try:
        _, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    return status, out, err


def _needs_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("not root: the kernel splicer is not available to this test")


def _needs_userns() -> None:
    try:
        subprocess.run(["unshare", "--user", "--map-root-user", "true"], check=True,
                       capture_output=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as exc:
        pytest.skip(f"no user namespace here: {exc}")


def test_auto_is_the_kernel_as_root(tmp_path: Path) -> None:
    _needs_root()
    status, out, err = _relay(tmp_path)
    assert status is None, err
    assert "(copied in the kernel)" in out
    assert "kernel splicer is unavailable" not in err


def test_userspace_forced_by_flag_or_environment(tmp_path: Path) -> None:
    for flags, env in ((("--splicer", "userspace"), None), ((), {"RDESK_RELAY_SPLICER":
                                                                  "userspace"})):
        status, out, err = _relay(tmp_path, *flags, env=env)
        assert status is None, err
        assert "(copied in the userspace)" in out
        assert "kernel splicer is unavailable" not in err


def test_auto_without_bpf_falls_back_with_one_line(tmp_path: Path) -> None:
    _needs_userns()
    status, out, err = _relay(tmp_path, unprivileged=True)
    assert status is None, err
    assert "(copied in the userspace)" in out
    why = [line for line in err.splitlines() if "kernel splicer is unavailable" in line]
    assert len(why) == 1 and why[0].endswith(
        "bpf map create: Operation not permitted (needs CAP_BPF and CAP_NET_ADMIN)"), err


def test_a_forced_kernel_splicer_without_bpf_is_an_error(tmp_path: Path) -> None:
    _needs_userns()
    status, out, err = _relay(tmp_path, "--splicer", "kernel", unprivileged=True)
    assert status == 1
    assert "fingerprint" not in out
    assert err.strip().splitlines() == [
        "rdesk: error: the kernel splicer cannot be set up: bpf map create: Operation not "
        "permitted (needs CAP_BPF and CAP_NET_ADMIN) (--splicer auto copies in userspace "
        "then)"], err


def test_an_unknown_splicer_is_a_usage_error(tmp_path: Path) -> None:
    status, _, err = _relay(tmp_path, "--splicer", "fast")
    assert status == 2
    assert "invalid choice: 'fast'" in err
