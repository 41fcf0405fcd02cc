"""Typed configuration. Config only stores; Node does the side effects."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

LogLevel = Literal["debug", "info", "warning", "error"]


@dataclass(frozen=True)
class Config:
    data_dir: Path = Path(".aitbc")
    host: str = "127.0.0.1"
    port: int = 8001
    genesis: Path | None = None
    """A genesis file to initialise from (or check against); default: the bundled devnet."""
    api_keys: Path | None = None
    """JSON list of {key, role, name} provisioned as accounts at start."""
    node_key: Path | None = None
    """A file holding the node's Ed25519 seed (hex), for an authority named in the genesis."""
    log_level: LogLevel = "info"
    max_body_bytes: int = 2 * 1024 * 1024
    """Largest request body accepted, in bytes (413 beyond)."""
