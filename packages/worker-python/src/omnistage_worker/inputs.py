"""A request's input as its handler reads it (docs/protocol.md "Streamed input and flow control"):
an iterator (or async iterator) over the chunks of a streamed input, or over the one input of an
ordinary request. Taking a chunk acknowledges it (``input_ack``), every quarter window and at once
when the handler has caught up with what arrived."""

import asyncio
import threading
from typing import Any, AsyncIterator, Callable, Iterator, List, Optional


class InputAborted(Exception):
    """The request was aborted (or the worker is stopping) while its input was being read."""


class InputChunks:
    """The chunks of one request's input, in order. Iterate once, with ``for`` or ``async for``."""

    def __init__(self, first: Any, ack: Optional[Callable[[int], None]], window: int) -> None:
        self._items: List[Any] = [first]
        self._ack = ack
        self._ack_every = max(1, window // 4)
        self._taken = 0
        self._acked = 0
        self._ended = ack is None
        self._error: Optional[str] = None
        self._cond = threading.Condition()
        self._iterated = False

    def _push(self, data: Any) -> None:
        with self._cond:
            if not self._ended:
                self._items.append(data)
                self._cond.notify_all()

    def _end(self) -> None:
        with self._cond:
            self._ended = True
            self._cond.notify_all()

    def _fail(self, reason: str) -> None:
        with self._cond:
            if self._error is None:
                self._error = reason
            self._ended = True
            self._items.clear()
            self._cond.notify_all()

    def _next(self, timeout: Optional[float] = None) -> "tuple[bool, Any]":
        """(True, chunk), or (False, None) at the end; raises :class:`InputAborted`."""
        ack_seq = -1
        with self._cond:
            while not self._items and not self._ended and self._error is None:
                if not self._cond.wait(timeout):
                    return (False, _PENDING)
            if self._error is not None:
                raise InputAborted(self._error)
            if not self._items:
                return (False, None)
            item = self._items.pop(0)
            self._taken += 1
            caught_up = not self._items
            if self._ack is not None and (caught_up or self._taken - self._acked >= self._ack_every):
                self._acked = self._taken
                ack_seq = self._taken - 1
        if ack_seq >= 0 and self._ack is not None:
            self._ack(ack_seq)
        return (True, item)

    def _claim(self) -> None:
        if self._iterated:
            raise RuntimeError("the input of a request can be iterated once")
        self._iterated = True

    def __iter__(self) -> Iterator[Any]:
        self._claim()
        while True:
            has, item = self._next()
            if not has:
                return
            yield item

    async def _anext_all(self) -> AsyncIterator[Any]:
        while True:
            # Polls in short slices so the event loop (and other coroutines of the handler) keep running.
            has, item = await asyncio.get_running_loop().run_in_executor(None, self._next, 0.05)
            if has:
                yield item
            elif item is not _PENDING:
                return

    def __aiter__(self) -> AsyncIterator[Any]:
        self._claim()
        return self._anext_all()


_PENDING = object()
