"""The node's HTTP serving: each response leaves in one write (uvicorn writes a response's head
and body separately, and each write to the transport would be a system call and a segment),
and what start-up allocated is kept out of the collector's full passes."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Callable
from typing import Any

import uvicorn
from uvicorn.server import ServerState

from node.framework_internals import CoalescingTransport, protocol_with_deadline


class FakeTransport:
    """An asyncio transport that records what is written, when the connection is closed, and
    which protocol it was handed to (a WebSocket upgrade)."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False
        self.aborted = False
        self.written = asyncio.Event()
        self.protocol: Any = None

    def set_protocol(self, protocol: Any) -> None:
        self.protocol = protocol

    def write(self, data: bytes) -> None:
        assert not self.closed, "written after close"
        self.writes.append(data)
        self.written.set()

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_write_buffer_size(self) -> int:
        return 0

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 5000), "sockname": ("127.0.0.1", 8001)}.get(name, default)

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None: ...


async def callbacks_already_scheduled_have_run() -> None:
    """Return once the loop has run every callback scheduled before this call (they run in order)."""
    done = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().call_soon(done.set_result, None)
    await done


async def hello(scope: Any, receive: Any, send: Any) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json"), (b"content-length", b"11")],
        }
    )
    await send({"type": "http.response.body", "body": b'{"ok":true}'})


def connected(protocol_class: Any) -> tuple[Any, FakeTransport]:
    """A connection of the protocol uvicorn would serve `hello` with, on a fake transport (within a
    running event loop)."""
    config = uvicorn.Config(hello, http=protocol_class, lifespan="off", log_config=None)
    config.load()
    served: Any = config.http_protocol_class  # uvicorn types it as asyncio.Protocol
    protocol = served(config=config, server_state=ServerState(), app_state={}, _loop=asyncio.get_running_loop())
    transport = FakeTransport()
    protocol.connection_made(transport)
    return protocol, transport


def test_each_response_head_and_body_leave_in_one_write() -> None:
    async def scenario() -> list[bytes]:
        protocol, transport = connected(protocol_with_deadline(5))
        for _ in range(2):  # two requests on one kept-alive connection
            transport.written.clear()
            protocol.data_received(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            await transport.written.wait()
        protocol.connection_lost(None)
        return transport.writes

    writes = asyncio.run(scenario())
    assert len(writes) == 2
    for answer in writes:
        assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
        assert answer.endswith(b'\r\n\r\n{"ok":true}')


def test_writes_in_one_turn_go_out_together_and_in_order_before_a_close() -> None:
    async def scenario() -> tuple[FakeTransport, FakeTransport]:
        loop = asyncio.get_running_loop()
        kept, closed = FakeTransport(), FakeTransport()
        a, b = CoalescingTransport(kept, loop), CoalescingTransport(closed, loop)  # type: ignore[arg-type]  # a fake transport
        a.write(b"one ")
        a.write(b"two")
        assert kept.writes == [] and a.get_write_buffer_size() == 7
        await kept.written.wait()
        a.write(b"three")
        await kept.written.wait()
        b.write(b"last words")
        b.close()  # what was written before the close is sent before it
        b.write(b"too late")
        await callbacks_already_scheduled_have_run()  # a flush scheduled by the writes included
        return kept, closed

    kept, closed = asyncio.run(scenario())
    assert kept.writes == [b"one two", b"three"]
    assert closed.writes == [b"last words"] and closed.closed


def test_an_abort_drops_what_was_not_sent() -> None:
    async def scenario() -> FakeTransport:
        real = FakeTransport()
        t = CoalescingTransport(real, asyncio.get_running_loop())  # type: ignore[arg-type]  # a fake transport
        t.write(b"never")
        t.abort()
        await callbacks_already_scheduled_have_run()
        return real

    real = asyncio.run(scenario())
    assert real.aborted and real.writes == []


def test_settling_the_heap_takes_what_exists_out_of_full_collections() -> None:
    """node.server.settle_heap, run once the server has started: what start-up allocated is no
    longer walked by each full collection (gc.freeze), and what comes later is collected."""
    from node.server import settle_heap

    class Cycle:
        def __init__(self) -> None:
            self.me = self

    before = gc.get_freeze_count()
    thresholds = gc.get_threshold()
    try:
        settle_heap()
        assert gc.get_freeze_count() > before
        Cycle()  # garbage made afterwards, reachable only from itself
        assert gc.collect() >= 1
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)


def young_collections_while(action: Callable[[], object]) -> int:
    runs = 0

    def count(phase: str, info: dict[str, int]) -> None:
        nonlocal runs
        runs += phase == "start" and info["generation"] == 0

    gc.callbacks.append(count)
    try:
        action()
    finally:
        gc.callbacks.remove(count)
    return runs


def test_after_settling_a_few_thousand_live_objects_set_off_no_collection_and_cycles_still_go() -> None:
    """What a burst of requests in flight holds (a few thousand dicts and lists, freed by
    reference counting) no longer sets the cyclic collector off again and again; garbage in
    cycles is still collected without anyone calling gc.collect()."""
    from node.server import YOUNG_COLLECTION_THRESHOLD, settle_heap

    class Cycle:
        def __init__(self) -> None:
            self.me = self

    def in_flight() -> None:
        held = [{"job_id": i, "params": [i]} for i in range(2_000)]
        del held

    thresholds = gc.get_threshold()
    gc.collect()
    try:
        gc.set_threshold(700, *thresholds[1:])  # CPython's default
        assert young_collections_while(in_flight) >= 3
        settle_heap()
        assert young_collections_while(in_flight) == 0
        first = Cycle()
        gone = weakref.ref(first)
        del first
        more = young_collections_while(lambda: [Cycle() for _ in range(2 * YOUNG_COLLECTION_THRESHOLD)])
        assert more >= 1 and gone() is None
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)


def test_a_head_arriving_a_byte_at_a_time_is_counted_to_its_end_and_answered() -> None:
    """The blank line that ends a head may straddle reads; the head is still measured to it."""

    async def scenario() -> list[bytes]:
        protocol, transport = connected(protocol_with_deadline(5, max_header_bytes=1024))
        for byte in b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n":
            protocol.data_received(bytes([byte]))
        await transport.written.wait()
        protocol.connection_lost(None)
        return transport.writes

    (answer,) = asyncio.run(scenario())
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
