"""The host's real input injection for benchmarks that type through it."""

from __future__ import annotations

from rdesk.host.input.inject import PynputInjector

__all__ = ["Injectors"]


class Injectors:
    """An injector factory for ``HostThread(..., injector=...)``: every call makes a real
    :class:`PynputInjector` (XTest through pynput) on the display asked for, and :meth:`close`
    closes all that were made, so no key is left held on the benchmark's X server."""

    def __init__(self) -> None:
        self._made: list[PynputInjector] = []

    def __call__(self, display: str) -> PynputInjector:
        injector = PynputInjector(display)
        self._made.append(injector)
        return injector

    def close(self) -> None:
        """Close every injector made (each releases what it still holds)."""
        while self._made:
            self._made.pop().close()
