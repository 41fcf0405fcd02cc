"""The aitbc-node command line. It parses flags and calls run functions; only it exits."""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import click

from node import __version__
from node.config import Config

PathArg = click.Path(path_type=Path)
ExistingFile = click.Path(path_type=Path, exists=True, dir_okay=False)
CONTEXT = {"help_option_names": ["-h", "--help"], "show_default": True}

data_dir_option = click.option(
    "--data-dir", type=PathArg, default=Path(".aitbc"), envvar="AITBC_DATA_DIR", show_envvar=True,
    help="Where the chain, the node key and the effective genesis live.",
)
genesis_option = click.option(
    "--genesis", type=ExistingFile, default=None, envvar="AITBC_GENESIS", show_envvar=True,
    help="Genesis file to initialise a fresh data dir from (default: the bundled devnet genesis.json).",
)
node_key_option = click.option(
    "--node-key", type=ExistingFile, default=None, envvar="AITBC_NODE_KEY", show_envvar=True,
    help="File with this node's Ed25519 seed (hex), when the genesis already names it as authority.",
)


def fail(message: str, code: int = 1) -> None:
    click.echo(f"aitbc-node: {message}", err=True)
    sys.exit(code)


def run_guarded(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Turn the errors an operator can fix into one line and a non-zero exit."""
    from node.datadir import DataDirError
    from node.server import ServerError
    from node.store import StoreError

    try:
        return fn(*args, **kwargs)
    except (DataDirError, StoreError, ServerError) as exc:
        fail(str(exc))


@click.group(context_settings=CONTEXT)
@click.version_option(__version__, prog_name="aitbc-node")
def cli() -> None:
    """AITBC node: a blockchain-backed coordinator for decentralized AI compute.

    Run 'aitbc-node start' with no arguments to create a local devnet and serve it.
    """


@cli.command(context_settings=CONTEXT)
@data_dir_option
@click.option("--host", default="127.0.0.1", envvar="AITBC_HOST", show_envvar=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8001, envvar="AITBC_PORT", show_envvar=True, help="Port to listen on.")
@genesis_option
@click.option(
    "--api-keys", type=ExistingFile, default=None, envvar="AITBC_API_KEYS", show_envvar=True,
    help='JSON list of {"key","role","name"}; keys not yet on chain become accounts at start.',
)
@node_key_option
@click.option(
    "--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default="info",
    envvar="AITBC_LOG_LEVEL", show_envvar=True, help="Log verbosity.",
)
def start(**kwargs: Any) -> None:
    """Start the node (initialising the data dir if it is fresh) and serve the API."""
    run_start(**kwargs)


def run_start(**kwargs: Any) -> None:
    from node.server import Server

    run_guarded(lambda: Server(Config(**kwargs)).run())


@cli.command(context_settings=CONTEXT)
@data_dir_option
@genesis_option
@node_key_option
def init(data_dir: Path, genesis: Path | None, node_key: Path | None) -> None:
    """Initialise a data dir without starting the node."""
    from node.datadir import DataDir
    from node.store import Store

    def go() -> None:
        datadir = DataDir(data_dir)
        result = datadir.initialise(genesis, node_key)
        Store(datadir.chain_path, result.genesis).close()
        if not result.created:
            click.echo(f"{datadir.path} is already initialised for chain '{result.genesis.chain_id}'")
            return
        click.echo(f"initialised {datadir.path} for chain '{result.genesis.chain_id}' (genesis {result.genesis.hash[:16]}…)")
        if result.admin_key:
            click.echo(f"admin key: {result.admin_key}")
            click.echo(f"           (shown once; saved with mode 0600 in {datadir.admin_key_path})")

    run_guarded(go)


@cli.command(context_settings=CONTEXT)
@data_dir_option
@click.option("--quiet", "-q", is_flag=True, help="Print only problems.")
def verify(data_dir: Path, quiet: bool) -> None:
    """Re-verify the whole chain from genesis: links, roots, signatures and state."""
    from node.datadir import DataDir
    from node.verify import ChainInvalid, verify_datadir

    try:
        report = run_guarded(verify_datadir, DataDir(data_dir))
    except ChainInvalid as exc:
        fail(f"verification failed: {exc.message}")
    if not quiet:
        click.echo(
            f"ok: {report.height + 1} blocks, {report.transactions} transactions, "
            f"{report.state_entries} state entries; tip {report.tip_hash}"
        )


@cli.group(context_settings=CONTEXT)
def keys() -> None:
    """Manage API keys (accounts)."""


@keys.command("create", context_settings=CONTEXT)
@click.option("--role", type=click.Choice(["client", "miner", "admin", "peer"]), required=True, help="The account's role.")
@click.option("--name", required=True, help="The account's name (what the chain and explorer show).")
@data_dir_option
@click.option("--node", "node_url", default=None, envvar="AITBC_NODE", show_envvar=True, help="URL of a running node; needs --admin-key.")
@click.option("--admin-key", default=None, envvar="AITBC_ADMIN_KEY", show_envvar=True, help="An admin API key for --node.")
def keys_create(role: str, name: str, data_dir: Path, node_url: str | None, admin_key: str | None) -> None:
    """Create an account and print its key once.

    With --node it asks a running node (POST /v1/admin/accounts). Without it, it writes
    to a stopped node's data dir directly.
    """
    if node_url:
        if not admin_key:
            fail("--node needs --admin-key (or AITBC_ADMIN_KEY)")
        account = create_key_online(node_url, admin_key, role, name)
    else:
        account = run_guarded(create_key_offline, data_dir, role, name)
    click.echo(account["key"])
    click.echo(f"created {account['role']} account '{account['name']}'; the key above is shown once", err=True)


def create_key_offline(data_dir: Path, role: str, name: str) -> dict[str, Any]:
    from chain.transactions import Transaction
    from node.datadir import DataDir, DataDirError, api_key_hash, new_api_key
    from node.producer import now_ms
    from node.runtime import commit_offline
    from node.store import Store, StoreLocked

    datadir = DataDir(data_dir)
    key = datadir.node_key()
    genesis = datadir.genesis()
    if key is None or key.public_hex not in genesis.authorities:
        raise DataDirError(f"{datadir.path} holds no authority key; create keys on the authority")
    try:
        store = Store(datadir.chain_path, genesis, create=False)
    except StoreLocked as exc:
        raise DataDirError(f"{exc}; while it runs, use --node URL --admin-key KEY") from None
    try:
        api_key = new_api_key()
        payload = {"name": name, "role": role, "key_hash": api_key_hash(api_key)}
        commit_offline(store, key, [Transaction("account.create", payload, now_ms())])
    finally:
        store.close()
    return {"name": name, "role": role, "key": api_key}


def create_key_online(node_url: str, admin_key: str, role: str, name: str) -> dict[str, Any]:
    body = json.dumps({"name": name, "role": role}).encode()
    request = urllib.request.Request(
        node_url.rstrip("/") + "/v1/admin/accounts",
        data=body,
        headers={"Content-Type": "application/json", "X-Api-Key": admin_key},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())  # type: ignore[no-any-return]
    except urllib.error.HTTPError as exc:
        try:
            detail = json.loads(exc.read()).get("detail", exc.reason)
        except ValueError:
            detail = exc.reason
        fail(f"the node refused: {exc.code} {detail}")
    except (urllib.error.URLError, OSError) as exc:
        fail(f"cannot reach {node_url}: {getattr(exc, 'reason', exc)}")
    raise AssertionError("unreachable")


def main() -> None:
    cli()
