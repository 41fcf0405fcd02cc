"""The contract between node/framework_internals.py and the Starlette and uvicorn internals it
relies on: FastRouter (a Router subclass with a route table) and the HTTP protocol (a subclass
of uvicorn's httptools protocol). pyproject.toml pins both frameworks to the range these tests
passed on. On a version outside it, or one whose internals moved, these tests fail saying what
changed: review node/framework_internals.py against the new version before widening the pin.
"""

from __future__ import annotations

import asyncio
import inspect
import tomllib
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from packaging.requirements import Requirement
from uvicorn.server import ServerState

from tests.node.test_http_protocol import FakeTransport

ROOT = Path(__file__).resolve().parents[2]
REVIEW = "review node/framework_internals.py against this version before widening its pin in pyproject.toml"

HOOKS = {
    "connection_made": ["self", "transport"],
    "connection_lost": ["self", "exc"],
    "on_message_begin": ["self"],
    "on_message_complete": ["self"],
    "handle_websocket_upgrade": ["self"],
}
"""The methods the HTTP protocol overrides and calls through super(), with their parameters."""


def _pin(name: str) -> Requirement:
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    for line in dependencies:
        requirement = Requirement(line)
        if requirement.name == name:
            return requirement
    raise AssertionError(f"pyproject.toml does not name {name}")


def _base() -> type:
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError as exc:  # pragma: no cover - only on a broken install or a moved module
        pytest.fail(f"uvicorn {uvicorn.__version__} has no httptools_impl.HttpToolsProtocol ({exc}); {REVIEW}")
    return HttpToolsProtocol


def test_uvicorn_is_within_its_pinned_range_and_the_pin_has_an_upper_bound() -> None:
    pin = _pin("uvicorn")
    installed = version("uvicorn")
    assert any(spec.operator in ("<", "<=", "==", "~=") for spec in pin.specifier), (
        f"pyproject.toml pins uvicorn as {pin}: it needs an upper bound, since node/framework_internals.py relies "
        "on its internals"
    )
    assert pin.specifier.contains(installed), (
        f"uvicorn {installed} is outside {pin.specifier}, the range node/framework_internals.py was tested "
        f"with; {REVIEW}"
    )


def test_starlette_is_within_its_pinned_range_and_the_pin_has_an_upper_bound() -> None:
    pin = _pin("starlette")
    installed = version("starlette")
    assert any(spec.operator in ("<", "<=", "==", "~=") for spec in pin.specifier), (
        f"pyproject.toml pins starlette as {pin}: it needs an upper bound, since FastRouter relies on its internals"
    )
    assert pin.specifier.contains(installed), (
        f"starlette {installed} is outside {pin.specifier}, the range node/framework_internals.py was tested with; "
        f"{REVIEW}"
    )


# --- Starlette: FastRouter ----------------------------------------------------------------------


async def _endpoint(request: Any) -> Any:  # pragma: no cover - never called
    raise NotImplementedError


def test_a_route_without_route_middleware_runs_request_responses_one_wrapper() -> None:
    """RouteTable tells a route it may call directly by the code object of its app."""
    from starlette.middleware import Middleware
    from starlette.routing import Route, request_response

    from node.framework_internals import _PLAIN_APP, segments_of

    assert request_response(_endpoint).__code__ is _PLAIN_APP, (
        f"starlette {version('starlette')}: request_response no longer returns one function per endpoint; {REVIEW}"
    )
    plain = Route("/a/{x}", _endpoint, methods=["GET"])
    assert getattr(plain.app, "__code__", None) is _PLAIN_APP and segments_of(plain) == ("", "a", None), (
        f"starlette {version('starlette')}: a Route's app is no longer request_response's wrapper; {REVIEW}"
    )

    class Passing:
        def __init__(self, app: Any) -> None:
            self.app = app

    wrapped = Route("/a", _endpoint, methods=["GET"], middleware=[Middleware(Passing)])  # type: ignore[arg-type]  # a minimal middleware class, not the ASGI Protocol
    assert segments_of(wrapped) is None, f"a Route with route middleware would skip it; {REVIEW}"


def test_a_route_exposes_what_the_table_reads() -> None:
    from starlette.convertors import StringConvertor
    from starlette.routing import Route

    route = Route("/v1/jobs/{job_id}/claim", _endpoint, methods=["POST"])
    assert route.path == "/v1/jobs/{job_id}/claim" and route.endpoint is _endpoint, REVIEW
    assert route.methods == {"POST"}, f"starlette {version('starlette')}: Route.methods is {route.methods!r}; {REVIEW}"
    assert list(route.param_convertors) == ["job_id"], REVIEW
    assert isinstance(route.param_convertors["job_id"], StringConvertor), REVIEW
    assert Route("/x", _endpoint, methods=["GET"]).methods == {"GET", "HEAD"}, (
        f"starlette {version('starlette')}: a GET route no longer takes HEAD; {REVIEW}"
    )


def test_the_router_calls_its_app_method_for_every_request() -> None:
    """FastRouter overrides Router.app; Router.__call__ must reach it (through middleware_stack)."""
    from node.framework_internals import FastRouter

    calls: list[str] = []

    class Probe(FastRouter):
        async def app(self, scope: Any, receive: Any, send: Any) -> None:
            calls.append(scope["type"])

    asyncio.run(Probe([])({"type": "http", "path": "/", "method": "GET"}, _no_receive, _no_send))
    assert calls == ["http"], f"starlette {version('starlette')}: Router.__call__ no longer calls Router.app; {REVIEW}"


def test_a_starlette_apps_router_holds_only_its_routes_and_lifespan() -> None:
    """NodeApp replaces the Router Starlette.__init__ made with a FastRouter of the same routes
    and lifespan: that Router must hold nothing else (no router middleware, default settings)."""
    from collections.abc import AsyncIterator
    from contextlib import asynccontextmanager

    from starlette.applications import Starlette
    from starlette.routing import Route, Router

    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:  # pragma: no cover - never entered
        yield

    routes = [Route("/x", _endpoint, methods=["GET"])]
    router = Starlette(routes=routes, lifespan=lifespan).router
    plain = Router(routes, lifespan=lifespan)
    assert type(router) is Router and router.routes == routes and router.lifespan_context is lifespan, (
        f"starlette {version('starlette')}: Starlette's Router is no longer made from its routes and lifespan; {REVIEW}"
    )
    assert router.middleware_stack == router.app and router.redirect_slashes == plain.redirect_slashes, (
        f"starlette {version('starlette')}: Starlette now configures its Router further; {REVIEW}"
    )


async def _no_receive() -> Any:  # pragma: no cover - never called
    raise NotImplementedError


async def _no_send(message: Any) -> None:  # pragma: no cover - never called
    raise NotImplementedError


# --- uvicorn: the HTTP protocol -----------------------------------------------------------------


@pytest.mark.parametrize("hook", sorted(HOOKS))
def test_the_overridden_hooks_exist_with_the_parameters_relied_on(hook: str) -> None:
    base = _base()
    method = getattr(base, hook, None)
    assert callable(method), f"uvicorn {uvicorn.__version__}: HttpToolsProtocol.{hook} is gone; {REVIEW}"
    parameters = list(inspect.signature(method).parameters)
    assert parameters == HOOKS[hook], (
        f"uvicorn {uvicorn.__version__}: HttpToolsProtocol.{hook}{inspect.signature(method)} no longer takes "
        f"{HOOKS[hook]}; {REVIEW}"
    )


async def _app(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.close"})
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})


def _protocol(timeout: float) -> Any:
    from node.framework_internals import protocol_with_deadline

    config = uvicorn.Config(_app, http=protocol_with_deadline(timeout), lifespan="off", log_config=None)
    config.load()
    assert config.http_protocol_class.__name__ == "DeadlineHttpToolsProtocol", (
        f"uvicorn {uvicorn.__version__} no longer takes a protocol class as Config(http=...); {REVIEW}"
    )
    protocol_class: Any = config.http_protocol_class
    return protocol_class(config=config, server_state=ServerState(), app_state={}, _loop=asyncio.get_running_loop())


def test_the_parser_calls_the_hooks_that_arm_and_disarm_the_deadline() -> None:
    async def scenario() -> tuple[Any, Any, Any]:
        protocol = _protocol(30)
        transport = FakeTransport()
        protocol.connection_made(transport)
        armed_at_connect = protocol._due
        protocol.data_received(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        after_request = protocol._due
        protocol.data_received(b"GET / HTTP/1.1\r\nHo")
        mid_request = protocol._due
        protocol.connection_lost(None)
        return armed_at_connect, after_request, mid_request

    armed_at_connect, after_request, mid_request = asyncio.run(scenario())
    assert armed_at_connect is not None, f"connection_made is not called as before; {REVIEW}"
    assert after_request is None, f"on_message_complete is not called once a request is in; {REVIEW}"
    assert mid_request is not None, f"on_message_begin is not called when a request starts; {REVIEW}"


def test_a_request_that_does_not_arrive_in_time_closes_the_connection() -> None:
    async def scenario() -> FakeTransport:
        protocol = _protocol(0.05)
        transport = FakeTransport()
        protocol.connection_made(transport)
        protocol.data_received(b"GET / HTTP/1.1\r\nHo")
        for _ in range(100):  # a generous bound: liveness, not speed
            if transport.closed:
                break
            await asyncio.sleep(0.05)
        protocol.connection_lost(None)
        return transport

    assert asyncio.run(scenario()).closed, f"the request deadline did not close the connection; {REVIEW}"


def test_responses_are_written_through_the_transport_given_to_connection_made() -> None:
    async def scenario() -> FakeTransport:
        protocol = _protocol(30)
        transport = FakeTransport()
        protocol.connection_made(transport)
        protocol.data_received(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        for _ in range(100):
            if transport.writes:
                break
            await asyncio.sleep(0.01)
        protocol.connection_lost(None)
        return transport

    writes = asyncio.run(scenario()).writes
    assert len(writes) == 1 and writes[0].startswith(b"HTTP/1.1 200") and writes[0].endswith(b"\r\n\r\nok"), (
        f"uvicorn {uvicorn.__version__} did not send the response as one write through the connection's "
        f"transport (got {writes!r}); {REVIEW}"
    )


def test_a_websocket_upgrade_hands_the_real_transport_to_the_websocket_protocol() -> None:
    async def scenario() -> tuple[FakeTransport, Any]:
        protocol = _protocol(30)
        transport = FakeTransport()
        protocol.connection_made(transport)
        protocol.data_received(
            b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        return transport, protocol

    transport, protocol = asyncio.run(scenario())
    assert protocol.transport is transport, f"handle_websocket_upgrade no longer uses self.transport; {REVIEW}"
    assert transport.protocol is not None and transport.protocol is not protocol, (
        f"uvicorn {uvicorn.__version__} did not switch the transport to its WebSocket protocol; {REVIEW}"
    )
