"""rdesk.common.waiting.wait_at_most: the timed wait the host's capture loop and update senders
use, which must never lose a cancellation (3.10/3.11's asyncio.wait_for does when the awaited
thing completes in the same turn as the cancel: a host that then never stops)."""

from __future__ import annotations

import asyncio

import pytest

from rdesk.common.waiting import raise_if_cancelled, wait_at_most


async def test_a_cancel_as_the_wait_ends_is_not_lost() -> None:
    ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    waiting = asyncio.create_task(wait_at_most(ready, 10))
    await asyncio.sleep(0)  # the task waits
    ready.set_result(None)
    waiting.cancel()  # in the same turn of the loop
    with pytest.raises(asyncio.CancelledError):
        await waiting


async def test_finished_or_timed_out() -> None:
    event = asyncio.Event()
    asyncio.get_running_loop().call_soon(event.set)
    assert await wait_at_most(event.wait(), 10) is True
    never = asyncio.Event()
    inner = asyncio.ensure_future(never.wait())
    assert await wait_at_most(inner, 0.01) is False
    await asyncio.sleep(0)
    assert inner.cancelled()  # nothing left waiting behind the caller


async def test_a_loop_around_wait_for_sees_the_swallowed_cancel() -> None:
    """A loop that needs wait_for's value (a recv) checks after it: the cancel that 3.11's
    wait_for swallows as the value arrives ends the loop at once, not at the next wake-up."""
    queue: asyncio.Queue[int] = asyncio.Queue()
    seen: list[int] = []

    async def loop() -> None:
        while True:
            seen.append(await asyncio.wait_for(queue.get(), 10))
            raise_if_cancelled()

    task = asyncio.create_task(loop())
    await asyncio.sleep(0)
    queue.put_nowait(1)
    task.cancel()  # in the same turn as the value
    with pytest.raises(asyncio.CancelledError):
        await task
    queue.put_nowait(2)
    await asyncio.sleep(0.01)
    assert 2 not in seen


async def test_what_the_awaitable_raised_is_raised() -> None:
    async def fails() -> None:
        raise OSError("the peer went away")

    with pytest.raises(OSError, match="went away"):
        await wait_at_most(fails(), 10)
