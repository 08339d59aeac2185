"""Dangerous key combinations a viewer may press, and which of them the host blocks (issue 20).

A control viewer's keys reach the host's X server as real device events, so the server's own
shortcuts fire too: Ctrl+Alt+F1..F12 switches the console away from the session (on a real
Xorg host), Ctrl+Alt+Backspace kills the X server ("zap") when enabled, Ctrl+Alt+Delete,
Alt+SysRq and Super+key reach the desktop or the kernel. :func:`combination` names the one a
press would complete; the host audits every such press and drops those in the blocked set
(``--block-keys``, default :data:`DEFAULT_BLOCKED`). View-only viewers inject nothing at all,
so the policy is the control role's.
"""

from __future__ import annotations

from collections.abc import Iterable

from rdesk.protocol.keysyms import KEYSYMS

__all__ = ["COMBINATIONS", "DEFAULT_BLOCKED", "combination", "parse_blocked"]

#: Every combination named, with what it does.
COMBINATIONS = {
    "vt": "Ctrl+Alt+F1..F12: switch the host's virtual terminal",
    "zap": "Ctrl+Alt+Backspace: kill the X server",
    "cad": "Ctrl+Alt+Delete: the desktop's or the system's secure attention key",
    "sysrq": "Alt+SysRq: the kernel's magic SysRq keys",
    "super": "Super+key: the desktop's shortcuts (run dialog, lock, ...)",
}
#: Blocked unless ``--block-keys`` says otherwise: the ones that take the session away.
DEFAULT_BLOCKED: frozenset[str] = frozenset({"vt", "zap"})

_CTRL = frozenset({KEYSYMS["Control_L"], KEYSYMS["Control_R"]})
_ALT = frozenset({KEYSYMS["Alt_L"], KEYSYMS["Alt_R"], KEYSYMS["Meta_L"], KEYSYMS["Meta_R"]})
_SUPER = frozenset({KEYSYMS["Super_L"], KEYSYMS["Super_R"]})
_MODIFIERS = _CTRL | _ALT | _SUPER | {KEYSYMS["Shift_L"], KEYSYMS["Shift_R"]}
_F_KEYS = frozenset(range(0xFFBE, 0xFFBE + 12))  # F1..F12
_SWITCH_VT = frozenset(range(0x1008FE01, 0x1008FE0D))  # XF86Switch_VT_1..12
_DELETE = frozenset({KEYSYMS["Delete"], KEYSYMS["KP_Delete"]})
_SYSRQ = frozenset({KEYSYMS["Sys_Req"], KEYSYMS["Print"]})
_TERMINATE = 0xFED5  # Terminate_Server


def combination(held: Iterable[int], keysym: int) -> str | None:
    """The name of the combination that pressing ``keysym`` completes while ``held`` are
    down (keysyms), or ``None``."""
    down = frozenset(held)
    ctrl, alt, sup = bool(down & _CTRL), bool(down & _ALT), bool(down & _SUPER)
    if keysym in _SWITCH_VT or (ctrl and alt and keysym in _F_KEYS):
        return "vt"
    if keysym == _TERMINATE or (ctrl and alt and keysym == KEYSYMS["BackSpace"]):
        return "zap"
    if ctrl and alt and keysym in _DELETE:
        return "cad"
    if alt and keysym in _SYSRQ:
        return "sysrq"
    if sup and keysym not in _MODIFIERS:
        return "super"
    return None


def parse_blocked(text: str) -> frozenset[str]:
    """``--block-keys``'s value: names from :data:`COMBINATIONS`, comma-separated, or
    ``none``; raises ``ValueError`` (one line) for an unknown name."""
    names = {part.strip().lower() for part in text.split(",") if part.strip()}
    if names == {"none"}:
        return frozenset()
    unknown = sorted(names - COMBINATIONS.keys())
    if unknown:
        raise ValueError(f"unknown key combination {unknown[0]!r}; "
                         f"known: {', '.join(COMBINATIONS)} or none")
    return frozenset(names)
