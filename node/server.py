"""Server(config).run(): open the node, bind the socket, serve with uvicorn until a signal."""

from __future__ import annotations

import contextlib
import errno
import logging
import signal
import socket
import sys
from collections.abc import Iterator

import uvicorn

from node.config import Config
from node.runtime import Node


UVICORN_SETTINGS: dict[str, object] = {
    "lifespan": "on",
    "server_header": False,
    "timeout_keep_alive": 5,
    "timeout_graceful_shutdown": 10,
    "h11_max_incomplete_event_size": 64 * 1024,
}
"""The HTTP server settings; bench/ serves its bare ceiling app with the same ones."""


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


class Server:
    def __init__(self, config: Config) -> None:
        self.config = config

    def run(self) -> None:
        from api.app import create_app

        logging.basicConfig(
            level=self.config.log_level.upper(),
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        )
        node = Node(self.config)
        init = node.open()
        try:
            sock = bind_socket(self.config.host, self.config.port)
        except ServerError:
            node.close()
            raise
        base = f"http://{self.config.host}:{self.config.port}"
        if ":" in self.config.host:
            base = f"http://[{self.config.host}]:{self.config.port}"

        def announce() -> None:
            tip = node.store.tip() if node.store else None
            lines = [
                f"aitbc-node {node.version}: chain '{init.genesis.chain_id}' at height {tip.height if tip else 0}, role {node.role}",
                f"  data dir:  {node.datadir.path}",
                f"  API:       {base}/v1",
                f"  docs:      {base}/docs",
                f"  explorer:  {base}/",
                f"  health:    {base}/health",
            ]
            if init.admin_key:
                lines += [
                    f"  admin key: {init.admin_key}",
                    f"             (shown once; saved with mode 0600 in {node.datadir.admin_key_path})",
                ]
            print("\n".join(lines), flush=True)

        app = create_app(node, on_started=announce)
        uv_config = uvicorn.Config(app, log_level=self.config.log_level, **UVICORN_SETTINGS)
        server = _Uvicorn(uv_config)
        try:
            server.run(sockets=[sock])
        finally:
            node.close()
            sock.close()
        if not server.started:
            print("aitbc-node: the server failed to start (see the log above)", file=sys.stderr)
            raise SystemExit(1)
