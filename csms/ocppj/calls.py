"""The asyncio shell around ``OutgoingQueue``: our CALLs over one charger's connection.

A caller waits for its turn (at most its timeout: a charger whose queue does not drain
fails it with ``ChargerBusy``, and nothing is sent), then its CALL is written and the
answer awaited for the same timeout, counted from the moment it was sent. Answers are
matched to the CALL in flight only; anything else is a late answer for the caller to log.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from websockets.exceptions import ConnectionClosed

from csms.ocppj.errors import (
    CallErrorReceived,
    ChargerBusy,
    CommandTimeout,
    ConnectionLost,
    NotConnected,
)
from csms.ocppj.framing import CallError, CallResult, call_frame
from csms.ocppj.outgoing import OutgoingQueue

Write = Callable[[str], Awaitable[None]]


def _new_message_id() -> str:
    return uuid.uuid4().hex


class CallChannel:
    """Sends our CALLs to one charger one at a time, in order, and correlates the answers."""

    __slots__ = ("_answers", "_charge_point_id", "_closed", "_queue", "_turns", "_write")

    def __init__(self, charge_point_id: str, write: Write) -> None:
        self._charge_point_id = charge_point_id
        self._write = write
        self._queue = OutgoingQueue()
        self._turns: dict[str, asyncio.Future[None]] = {}
        self._answers: dict[str, asyncio.Future[CallResult | CallError]] = {}
        self._closed = False

    def __len__(self) -> int:
        """CALLs in flight or waiting."""
        return len(self._queue)

    async def call(self, action: str, payload: dict[str, Any], timeout: float) -> dict[str, Any]:
        """Send a CALL when its turn comes and return the charger's CALLRESULT payload.

        Raises ``NotConnected`` / ``ChargerBusy`` (never sent), ``CommandTimeout`` /
        ``ConnectionLost`` (sent, outcome unknown) or ``CallErrorReceived``.
        """
        if self._closed:
            raise NotConnected(self._charge_point_id)
        message_id = _new_message_id()
        if not self._queue.submit(message_id):
            await self._wait_for_turn(message_id, action, timeout)
        try:
            answer = await self._send_and_wait(message_id, action, payload, timeout)
        finally:
            self._hand_over(self._queue.finished(message_id))
        if isinstance(answer, CallError):
            raise CallErrorReceived(answer.code, answer.description, answer.details)
        return answer.payload

    async def _wait_for_turn(self, message_id: str, action: str, timeout: float) -> None:
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._turns[message_id] = turn
        try:
            async with asyncio.timeout(timeout):
                await turn
        except TimeoutError:
            ahead = self._queue.ahead_of(message_id)
            self._hand_over(self._queue.withdraw(message_id))
            raise ChargerBusy(self._charge_point_id, action, timeout, ahead) from None
        except BaseException:
            self._hand_over(self._queue.withdraw(message_id))
            raise
        finally:
            del self._turns[message_id]

    async def _send_and_wait(
        self, message_id: str, action: str, payload: dict[str, Any], timeout: float
    ) -> CallResult | CallError:
        if self._closed:
            # Closed between being given the turn and taking it.
            raise NotConnected(self._charge_point_id, "closed its connection")
        answer: asyncio.Future[CallResult | CallError] = asyncio.get_running_loop().create_future()
        self._queue.sent(message_id)
        self._answers[message_id] = answer
        try:
            try:
                await self._write(call_frame(message_id, action, payload))
            except ConnectionClosed:
                # Refused before a byte went out: the charger never saw it.
                raise NotConnected(self._charge_point_id, "closed its connection") from None
            try:
                async with asyncio.timeout(timeout):
                    return await answer
            except TimeoutError:
                raise CommandTimeout(self._charge_point_id, action, timeout) from None
            except ConnectionClosed:
                raise ConnectionLost(self._charge_point_id, action) from None
        finally:
            del self._answers[message_id]

    def _hand_over(self, next_turn: str | None) -> None:
        if next_turn is None:
            return
        turn = self._turns.get(next_turn)
        if turn is not None and not turn.done():
            turn.set_result(None)

    def receive(self, message: CallResult | CallError) -> bool:
        """Deliver an answer; False if no CALL of ours in flight has this id (a late answer)."""
        if not self._queue.answers_in_flight(message.message_id):
            return False
        answer = self._answers.get(message.message_id)
        if answer is None or answer.done():
            return False
        answer.set_result(message)
        return True

    def close(self) -> None:
        """The connection is gone: the CALL in flight is lost, the waiting ones never sent."""
        self._closed = True
        in_flight, waiting = self._queue.clear()
        if in_flight is not None:
            answer = self._answers.get(in_flight)
            if answer is not None and not answer.done():
                answer.set_exception(ConnectionClosed(None, None))
        for message_id in waiting:
            turn = self._turns.get(message_id)
            if turn is not None and not turn.done():
                turn.set_exception(NotConnected(self._charge_point_id, "closed its connection"))
