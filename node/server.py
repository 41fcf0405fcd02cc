"""Server(config).run(): open the node, bind the socket, serve with uvicorn until a signal."""

from __future__ import annotations

import contextlib
import errno
import gc
import signal
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import uvicorn

from node.config import Config
from node.framework_internals import protocol_with_deadline
from node.runtime import Node

if TYPE_CHECKING:
    from node.metrics import MetricsListener


MANUAL = (
    str(Path(__file__).resolve().parent.parent / "docs" / "index.md")
    if (Path(__file__).resolve().parent.parent / "mkdocs.yml").exists()
    else "docs/ in the node's source"
)
"""Where the operator's manual is: the source tree's docs/ (mkdocs serve renders it)."""

UVICORN_SETTINGS: dict[str, Any] = {
    "lifespan": "on",
    "server_header": False,
    "timeout_graceful_shutdown": 10,
    "h11_max_incomplete_event_size": 64 * 1024,
    # X-Forwarded-* headers are not trusted: client addresses (per-IP limits, logs) are the peers'.
    "proxy_headers": False,
}
"""The HTTP server settings; bench/ serves its bare ceiling app with the same ones."""


YOUNG_COLLECTION_THRESHOLD = 10_000
"""Container objects allocated (net of those freed) between two young-generation collections;
CPython's default is 700. A request's objects are freed by reference counting, so at 700 the
collector ran ~60 times a second under load and found nothing (~1.2% of the core:
`python -m bench load --workload lifecycle --profile DIR`); cycles are still collected, later."""


def settle_heap() -> None:
    """Take what start-up allocated (modules, routes, templates, the genesis: a few hundred
    thousand objects) out of the cyclic collector's reach, so that a full collection does not
    walk it all (a ~20 ms pause on the event loop). Objects allocated afterwards are collected
    as before, the young ones once YOUNG_COLLECTION_THRESHOLD of them have piled up."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, middle, old)


class ServerError(Exception):
    """The server could not start; the message is meant for an operator."""


def bind_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ServerError(f"port {port} on {host} is already in use (choose another with --port)") from None
        raise ServerError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


class _Uvicorn(uvicorn.Server):
    """uvicorn re-raises SIGTERM/SIGINT after its graceful shutdown, which would turn an
    operator's clean stop into death by signal (or a KeyboardInterrupt); we exit 0 instead."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        handled = (signal.SIGINT, signal.SIGTERM)
        original = {sig: signal.signal(sig, self.handle_exit) for sig in handled}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)


def start_metrics_listener(node: Node) -> MetricsListener | None:
    """With --metrics HOST:PORT, serve /metrics there (errors are worded like the API's)."""
    from node.metrics import MetricsListener, parse_listen

    try:
        where = parse_listen(node.config.metrics)
    except ValueError as exc:
        raise ServerError(f"--metrics: {exc}") from None
    if isinstance(where, str):
        return None
    listener = MetricsListener(node.metrics, *where)
    try:
        listener.start()
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise ServerError(
                f"metrics port {where[1]} on {where[0]} is already in use (choose another with --metrics)"
            ) from None
        raise ServerError(f"cannot serve metrics on {where[0]}:{where[1]}: {exc.strerror or exc}") from None
    return listener


class Server:
    def __init__(self, config: Config) -> None:
        self.config = config

    def run(self) -> None:
        from node.backup import local_url, remove_node_url, write_node_url
        from node.composition import create_app
        from node.demo import demo_admin_key, start_demo
        from node.logging_setup import configure_logging

        configure_logging(self.config.log_level, self.config.log_format)
        node = Node(self.config)
        init = node.open()
        try:
            demo_key = demo_admin_key(node) if self.config.demo else None
        except BaseException:
            node.close()
            raise
        try:
            sock = bind_socket(self.config.host, self.config.port)
        except ServerError:
            node.close()
            raise
        base = f"http://{self.config.host}:{self.config.port}"
        if ":" in self.config.host:
            base = f"http://[{self.config.host}]:{self.config.port}"

        def announce() -> None:
            height = node.store.tip().height
            lines = [
                f"aitbc-node {node.version}: chain '{init.genesis.chain_id}' at height {height}, role {node.role.name}",
                f"  data dir:  {node.datadir.path}",
                f"  API:       {base}/v1",
                f"  docs:      {base}/docs (the API), {MANUAL} (the manual)",
                f"  explorer:  {base}/",
                f"  health:    {base}/health",
            ]
            if init.admin_key:
                lines += [
                    f"  admin key: {init.admin_key}",
                    f"             (shown once; saved with mode 0600 in {node.datadir.admin_key_path})",
                ]
            print("\n".join(lines), flush=True)
            node.datadir.announced()
            settle_heap()
            if demo_key is not None:
                start_demo(node, app, demo_key)

        app = create_app(node, on_started=announce)
        # log_config=None: node.logging_setup configured logging (text or JSON); access_log=False:
        # api.middleware writes the access log, with request ids.
        uv_config = uvicorn.Config(
            app,
            log_level=self.config.log_level,
            log_config=None,
            access_log=False,
            http=protocol_with_deadline(
                self.config.request_timeout,
                self.config.header_timeout,
                self.config.max_header_bytes,
                self.config.max_pending_per_ip,
            ),
            # uvicorn annotates an int but uses it as a delay (loop.call_later), so fractions work.
            timeout_keep_alive=self.config.keep_alive_timeout,  # type: ignore[arg-type]  # see above
            limit_concurrency=self.config.max_connections,
            ws_max_size=self.config.ws_max_message_bytes,
            **UVICORN_SETTINGS,
        )
        server = _Uvicorn(uv_config)
        node.failure_hooks.append(lambda: setattr(server, "should_exit", True))
        try:
            metrics_listener = start_metrics_listener(node)
        except ServerError:
            node.close()
            sock.close()
            raise
        node.url = self.config.advertise_url or local_url(self.config.host, sock.getsockname()[1])
        write_node_url(node.datadir, local_url(self.config.host, sock.getsockname()[1]))
        try:
            server.run(sockets=[sock])
        finally:
            remove_node_url(node.datadir)
            if metrics_listener is not None:
                metrics_listener.close()
            node.close()
            sock.close()
        if not server.started:
            print("aitbc-node: the server failed to start (see the log above)", file=sys.stderr)
            raise SystemExit(1)
        if node.failure is not None:
            print(f"aitbc-node: {node.failure}", file=sys.stderr)
            raise SystemExit(1)
