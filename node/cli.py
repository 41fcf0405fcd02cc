"""The aitbc-node command line. It parses flags and calls run functions; only it exits."""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

from node import __version__
from node.config import CONFIG_DOCS, Config
from node.config_file import ConfiguredGroup

if TYPE_CHECKING:
    from node.logging_setup import LogFormat

PathArg = click.Path(path_type=Path)
ExistingFile = click.Path(path_type=Path, exists=True, dir_okay=False)
CONTEXT = {"help_option_names": ["-h", "--help"], "show_default": True}
MIN_TAIL_BLOCKS = 10
"""The fewest blocks a group keeps in etcd: fewer, and a standby that pauses for a moment would have
to catch up over HTTP."""
MIN_BLOCK_BYTES = 128 * 1024
"""The smallest --max-block-bytes: a block must hold the largest transaction of a small request."""

data_dir_option = click.option(
    "--data-dir",
    type=PathArg,
    default=Path(".aitbc"),
    envvar="AITBC_DATA_DIR",
    show_envvar=True,
    help="Where the chain, the node key and the effective genesis live.",
)
genesis_option = click.option(
    "--genesis",
    type=ExistingFile,
    default=None,
    envvar="AITBC_GENESIS",
    show_envvar=True,
    help="Genesis file to initialise a fresh data dir from (default: the bundled devnet genesis.json).",
)
node_key_option = click.option(
    "--node-key",
    type=ExistingFile,
    default=None,
    envvar="AITBC_NODE_KEY",
    show_envvar=True,
    help="File with this node's Ed25519 seed (hex), when the genesis already names it as authority.",
)

log_format_option = click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    envvar="AITBC_LOG_FORMAT",
    show_envvar=True,
    help="Log lines as human-readable text, or one JSON object per line.",
)


Decorated = TypeVar("Decorated", bound=Callable[..., Any] | click.Command)
"""What a click option decorates: a command's function, or the command (as click.option types it)."""


def limit_option(
    field: str, kind: Any, *, flag: str | None = None, extra: str = "", **kwargs: Any
) -> Callable[[Decorated], Decorated]:
    """A `start` flag for a Config field: its default and help come from Config, its variable is AITBC_<FIELD>."""
    spec = Config.__dataclass_fields__[field]
    doc = CONFIG_DOCS[field] + (" " + extra if extra else "")
    return click.option(
        flag or "--" + field.replace("_", "-"),
        field,
        type=kind,
        default=spec.default,
        envvar="AITBC_" + field.upper(),
        show_envvar=True,
        help=doc,
        **kwargs,
    )


def validate_metrics(ctx: click.Context, param: click.Parameter, value: str) -> str:
    from node.metrics import parse_listen

    try:
        parse_listen(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    return value


def fail(message: str, code: int = 1) -> NoReturn:
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


@click.group(cls=ConfiguredGroup, context_settings=CONTEXT)
@click.version_option(__version__, prog_name="aitbc-node")
def cli() -> None:
    """AITBC node: a blockchain-backed coordinator for decentralized AI compute.

    Run 'aitbc-node start' with no arguments to create a local devnet and serve it.
    """


@cli.command(context_settings=CONTEXT)
@data_dir_option
@click.option("--host", default="127.0.0.1", envvar="AITBC_HOST", show_envvar=True, help="Address to listen on.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8001,
    envvar="AITBC_PORT",
    show_envvar=True,
    help="Port to listen on.",
)
@genesis_option
@click.option(
    "--api-keys",
    type=ExistingFile,
    default=None,
    envvar="AITBC_API_KEYS",
    show_envvar=True,
    help='JSON list of {"key","role","name"}; keys not yet on chain become accounts at start.',
)
@node_key_option
@click.option(
    "--follow",
    metavar="URL[,URL…]",
    default=None,
    envvar="AITBC_FOLLOW",
    show_envvar=True,
    help="Run as a follower of the node at URL: replicate and verify its chain, serve reads, forward writes. "
    "Several URLs (e.g. the members of an authority group): it uses one and moves to the next when that one "
    "fails. A fresh data dir needs --genesis (the authority's effective genesis).",
)
@click.option(
    "--peer-key",
    metavar="KEY",
    default=None,
    envvar="AITBC_PEER_KEY",
    show_envvar=True,
    help="With --follow or --etcd: an API key with the role peer (or admin) on the upstream or the group's members.",
)
@limit_option("etcd", str, metavar="URL[,URL…]")
@limit_option("lease_ttl", click.IntRange(2, 600))
@limit_option("etcd_tail_blocks", click.IntRange(MIN_TAIL_BLOCKS), metavar="N")
@limit_option("advertise_url", str, metavar="URL")
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    envvar="AITBC_LOG_LEVEL",
    show_envvar=True,
    help="Log verbosity.",
)
@limit_option("explorer_ws_queue", click.IntRange(1, 100_000))
@limit_option("rate_limit", click.FloatRange(0))
@limit_option("rate_burst", click.IntRange(1))
@limit_option("unauth_rate_limit", click.FloatRange(0))
@limit_option("unauth_rate_burst", click.IntRange(1))
@limit_option(
    "cors_origins", str, flag="--cors-origin", multiple=True, extra="Repeatable; in the environment, space-separated."
)
@limit_option("request_timeout", click.FloatRange(1), extra="(Slowloris.)")
@limit_option("header_timeout", click.FloatRange(1))
@limit_option("max_header_bytes", click.IntRange(1024, 1024 * 1024))
@limit_option("max_pending_per_ip", click.IntRange(1))
@limit_option("max_body_bytes", click.IntRange(1024))
@limit_option("max_block_bytes", click.IntRange(MIN_BLOCK_BYTES))
@limit_option("max_page_size", click.IntRange(1, 10_000))
@limit_option("keep_alive_timeout", click.FloatRange(0.1))
@limit_option("ws_per_ip", click.IntRange(1), extra="Closed with 1013 beyond.")
@limit_option("ws_max", click.IntRange(1), extra="Closed with 1013 beyond.")
@limit_option("ws_max_message_bytes", click.IntRange(256, 16 * 1024 * 1024))
@limit_option("ws_messages_per_s", click.FloatRange(0))
@limit_option("max_connections", click.IntRange(1))
@limit_option("offer_ms", click.IntRange(0, 60_000))
@log_format_option
@click.option(
    "--metrics",
    default="api",
    envvar="AITBC_METRICS",
    show_envvar=True,
    callback=validate_metrics,
    metavar="api|off|HOST:PORT",
    help="Serve Prometheus /metrics on the API port (api), not at all (off), or on its own HOST:PORT.",
)
@click.option(
    "--demo",
    is_flag=True,
    envvar="AITBC_DEMO",
    show_envvar=True,
    help="Also run an in-process echo miner and submit a sample job every few seconds (to watch blocks move).",
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
        click.echo(
            f"initialised {datadir.path} for chain '{result.genesis.chain_id}' (genesis {result.genesis.hash[:16]}…)"
        )
        if result.admin_key:
            click.echo(f"admin key: {result.admin_key}")
            click.echo(f"           (shown once; saved with mode 0600 in {datadir.admin_key_path})")
            datadir.announced()

    run_guarded(go)


@cli.command("group-init", context_settings=CONTEXT)
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--members", type=click.IntRange(1, 64), default=3, show_default=True, help="Authorities in the group.")
@genesis_option
def group_init(directory: Path, members: int, genesis: Path | None) -> None:
    """Create an authority group's files in DIRECTORY: genesis.json naming N new authorities,
    member-N.key (each member's --node-key), admin.key and peer.key (API keys, mode 0600).

    --genesis takes the chain id and params from a genesis that names no authority (default:
    the bundled one). Copy genesis.json and one member key to each member's machine.
    """
    from node.datadir import create_group_files

    files = run_guarded(create_group_files, directory, members, genesis)
    click.echo(f"wrote {files.genesis} naming {members} authorities")
    for n, path in enumerate(files.member_keys):
        click.echo(f"member {n}: --node-key {path}")
    click.echo(f"admin API key in {files.admin_key}, peer API key (--peer-key) in {files.peer_key}")


@cli.command(context_settings=CONTEXT)
@data_dir_option
@click.option("--quiet", "-q", is_flag=True, help="Print only problems.")
@log_format_option
def verify(data_dir: Path, quiet: bool, log_format: LogFormat) -> None:
    """Re-verify the whole chain from genesis: links, roots, signatures and state.

    Shows a progress bar on a terminal, progress lines on stderr otherwise.
    """
    from node.datadir import DataDir
    from node.logging_setup import configure_logging
    from node.progress import Progress
    from node.verify import ChainInvalid, verify_datadir

    configure_logging("info", log_format)
    try:
        with Progress("verify", enabled=not quiet) as progress:
            report = run_guarded(verify_datadir, DataDir(data_dir), progress.callback)
    except ChainInvalid as exc:
        fail(f"verification failed: {exc.message}")
    if not quiet:
        click.echo(
            f"ok: {report.height + 1} blocks, {report.transactions} transactions, "
            f"{report.state_entries} state entries; tip {report.tip_hash}"
        )


@cli.command(context_settings=CONTEXT)
@data_dir_option
@log_format_option
def reindex(data_dir: Path, log_format: LogFormat) -> None:
    """Rebuild the state, indexes and counters from the stored blocks (node stopped).

    Interrupted, it leaves a mark: the node will not start until a new run completes. Shows a
    progress bar on a terminal, progress lines on stderr otherwise.
    """
    from node.datadir import DataDir
    from node.logging_setup import configure_logging
    from node.progress import Progress
    from node.reindex import reindex_store
    from node.store import Store
    from node.verify import ChainInvalid

    configure_logging("info", log_format)

    def go() -> Any:
        datadir = DataDir(data_dir)
        store = Store(datadir.chain_path, datadir.genesis(), create=False)
        try:
            click.echo(f"reindexing {store.tip().height + 1} blocks of {datadir.path}", err=True)
            with Progress("reindex", total=store.tip().height) as progress:
                return reindex_store(store, progress.callback)
        finally:
            store.close()

    try:
        report = run_guarded(go)
    except ChainInvalid as exc:
        fail(f"reindex stopped: {exc.message}")
    resumed = f" (resumed at block {report.resumed_from})" if report.resumed_from else ""
    click.echo(f"ok: state and indexes rebuilt from {report.height + 1} blocks{resumed}")


@cli.command(context_settings=CONTEXT)
@click.option(
    "--node",
    "node_url",
    default="http://127.0.0.1:8001",
    envvar="AITBC_NODE",
    show_envvar=True,
    help="URL of the node to ask.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
def status(node_url: str, as_json: bool) -> None:
    """A compact summary of a running node: role, chain, tip, mempool, sync, jobs and miners."""
    from node.status import render_status

    answer = get_json(node_url.rstrip("/") + "/status", node_url)
    click.echo(json.dumps(answer, indent=2, sort_keys=True) if as_json else render_status(answer, node_url))


@cli.command(context_settings=CONTEXT)
@data_dir_option
@click.option(
    "--to",
    "target",
    type=click.Path(path_type=Path, dir_okay=False),
    required=True,
    help="The backup file to write (replaced atomically).",
)
@click.option(
    "--node",
    "node_url",
    default=None,
    envvar="AITBC_NODE",
    show_envvar=True,
    help="Back up the node at URL (default: the node running on --data-dir, or the stopped data dir).",
)
@click.option(
    "--admin-key",
    default=None,
    envvar="AITBC_ADMIN_KEY",
    show_envvar=True,
    help="An admin API key for a running node (default: the data dir's admin_key).",
)
def backup(data_dir: Path, target: Path, node_url: str | None, admin_key: str | None) -> None:
    """Write a consistent backup (a LevelDB snapshot) of a running or stopped node.

    A running node keeps serving: it streams a snapshot through GET /v1/admin/backup.
    The backup holds the chain and the genesis, never the node key or API keys.
    """
    from node.backup import take_backup

    info = run_guarded(take_backup, data_dir, target, node_url, admin_key)
    click.echo(
        f"backup of chain '{info.chain_id}' at height {info.height} (tip {info.tip_hash}): "
        f"{target} ({target.stat().st_size} bytes, {info.entries} entries)"
    )


@cli.command(context_settings=CONTEXT)
@click.argument("source", type=ExistingFile)
@data_dir_option
@node_key_option
@log_format_option
def restore(source: Path, data_dir: Path, node_key: Path | None, log_format: LogFormat) -> None:
    """Restore a backup into a new data dir, verifying the whole chain before it is used."""
    from node.backup import restore as restore_backup
    from node.logging_setup import configure_logging
    from node.progress import Progress

    configure_logging("info", log_format)
    with Progress("restore: verify") as progress:
        info = run_guarded(restore_backup, source, data_dir, node_key, progress.callback)
    click.echo(
        f"restored chain '{info.chain_id}' at height {info.height} (tip {info.tip_hash}) into {data_dir}; verified"
    )
    if node_key is None:
        click.echo(
            "no --node-key given: copy the authority's node_key into the data dir to run it as the authority", err=True
        )


def get_json(url: str, node_url: str) -> Any:
    try:
        with urllib.request.urlopen(url, timeout=15) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        fail(f"{node_url} answered {exc.code} {exc.reason}")
    except (urllib.error.URLError, OSError, ValueError) as exc:
        fail(f"cannot reach {node_url}: {getattr(exc, 'reason', exc)}")


@cli.group(context_settings=CONTEXT)
def keys() -> None:
    """Manage API keys (accounts)."""


@keys.command("create", context_settings=CONTEXT)
@click.option(
    "--role", type=click.Choice(["client", "miner", "admin", "peer"]), required=True, help="The account's role."
)
@click.option("--name", required=True, help="The account's name (what the chain and explorer show).")
@data_dir_option
@click.option(
    "--node",
    "node_url",
    default=None,
    envvar="AITBC_NODE",
    show_envvar=True,
    help="URL of a running node; needs --admin-key.",
)
@click.option(
    "--admin-key", default=None, envvar="AITBC_ADMIN_KEY", show_envvar=True, help="An admin API key for --node."
)
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
    from node.backup import holder_of
    from node.clock import now_ms
    from node.datadir import DataDir, DataDirError, api_key_hash, new_api_key
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
        raise DataDirError(
            f"{exc}: {holder_of(datadir)}; while a node runs, create keys through it: --node URL --admin-key KEY"
        ) from None
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
            account: dict[str, Any] = json.loads(response.read())  # the account, as the API spec has it
            return account
    except urllib.error.HTTPError as exc:
        try:
            detail = json.loads(exc.read()).get("detail", exc.reason)
        except ValueError:
            detail = exc.reason
        fail(f"the node refused: {exc.code} {detail}")
    except (urllib.error.URLError, OSError) as exc:
        fail(f"cannot reach {node_url}: {getattr(exc, 'reason', exc)}")
    raise AssertionError("unreachable")


# -- receipts: offline verification, checkpoints witness, the reference miner ---------------


@cli.command("verify-receipt", context_settings=CONTEXT)
@click.argument("file", type=ExistingFile)
@click.option(
    "--genesis",
    "genesis_file",
    type=ExistingFile,
    default=None,
    envvar="AITBC_GENESIS",
    show_envvar=True,
    help="Check a proof bundle against the chain's effective genesis.json (the data dir's copy).",
)
@click.option(
    "--public-key",
    default=None,
    help="Check a bare AITBC receipt signed by this Ed25519 key (64 hex characters, or the base64url key_id).",
)
@click.pass_context
def verify_receipt(ctx: click.Context, file: Path, genesis_file: Path | None, public_key: str | None) -> None:
    """Check a receipt offline. Exits 0 if it verifies, 1 naming what failed.

    With --genesis, FILE is a receipt proof bundle (GET /v1/receipts/{id}/proof): the receipt
    signature (and the miner's, if co-signed), the inclusion path to tx_root, the header hash
    and the proposer's signature against the genesis authorities.

    With --public-key, FILE is a bare AITBC receipt, or the protocol sample's wrapper
    ({payload, signature}): no chain, any signer, checked by the AITBC receipt protocol.
    """
    genesis_given = (
        genesis_file is not None and ctx.get_parameter_source("genesis_file") == click.core.ParameterSource.COMMANDLINE
    )
    if public_key is not None and genesis_given:
        fail(
            "--public-key and --genesis are mutually exclusive: "
            "--public-key checks a bare receipt, --genesis a proof bundle"
        )
    if public_key is not None:
        verify_bare_receipt(file, public_key)
    elif genesis_file is not None:
        verify_proof_bundle(file, genesis_file)
    else:
        fail("give --genesis GENESIS for a proof bundle, or --public-key KEY for a bare receipt")


def verify_bare_receipt(file: Path, public_key: str) -> None:
    from chain.encoding import parse_strict
    from chain.receipts import SignatureRefused, check_bare_receipt, parse_public_key, unwrap_receipt

    try:
        key = parse_public_key(public_key)
    except ValueError as exc:
        fail(f"--public-key: {exc}")
    try:
        receipt = unwrap_receipt(parse_strict(file.read_text(encoding="utf-8")))
        check_bare_receipt(receipt, key)
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        # SignatureRefused is a ValueError too: its message names the reason
        reason = str(exc) if isinstance(exc, SignatureRefused) else f"cannot read {file} as JSON: {exc}"
        fail(f"verification failed: {reason}")
    click.echo(
        f"ok: receipt {receipt.get('receipt_id')} for job {receipt.get('job_id')}: "
        f"{receipt['signature']['alg']} signature by {key.hex()} verifies"
    )


def verify_proof_bundle(bundle: Path, genesis_file: Path) -> None:
    from chain.errors import LedgerError
    from chain.genesis import parse_genesis
    from chain.proofs import parse_bundle, verify_bundle

    try:
        genesis = parse_genesis(json.loads(genesis_file.read_text(encoding="utf-8")))
    except (ValueError, OSError) as exc:
        fail(f"cannot read {genesis_file}: {exc}")
    except LedgerError as exc:
        fail(f"{genesis_file}: {exc.detail}")
    try:
        verified = verify_bundle(parse_bundle(bundle.read_bytes()), genesis)
    except LedgerError as exc:
        fail(f"verification failed: {exc.detail}")
    r = verified.receipt
    click.echo(
        f"ok: receipt {r['receipt_id']} for job {r['job_id']}: provider {r['provider']}, client {r['client']}, "
        f"{r['units']} {r['unit_type']}, price {r['price']} ({r['model']})"
    )
    click.echo(f"  in block {verified.height} ({verified.block_hash}), transaction {verified.tx_index}")
    click.echo(f"  receipt signed by authority {verified.receipt_signer}; block sealed by {verified.proposer}")
    cosigned = "ok, key " + verified.miner_key if verified.miner_key else "none (the miner registered no key)"
    click.echo(f"  miner co-signature: {cosigned}")


@cli.command(context_settings=CONTEXT)
@click.argument("url")
@click.option(
    "--api-key", required=True, envvar="AITBC_API_KEY", show_envvar=True, help="Any valid API key of that node."
)
@click.option(
    "--state",
    "state_file",
    type=PathArg,
    default=Path("aitbc-witness.json"),
    envvar="AITBC_WITNESS_STATE",
    show_envvar=True,
    help="Where the last verified checkpoint is kept between runs.",
)
@click.option(
    "--genesis",
    "genesis_file",
    type=ExistingFile,
    default=None,
    envvar="AITBC_GENESIS",
    show_envvar=True,
    help=(
        "The chain's effective genesis: checkpoints must be signed by its authorities "
        "(default: trust on first use the authorities of the genesis the node serves)."
    ),
)
@click.option(
    "--interval",
    type=click.FloatRange(0.05),
    default=10.0,
    envvar="AITBC_WITNESS_INTERVAL",
    show_envvar=True,
    help="Seconds between polls.",
)
@click.option("--once", is_flag=True, help="Check one checkpoint and exit.")
@click.option("--verbose", "-v", is_flag=True, help="Print each new checkpoint verified (silent otherwise).")
def witness(
    url: str, api_key: str, state_file: Path, genesis_file: Path | None, interval: float, once: bool, verbose: bool
) -> None:
    """Watch a node's signed checkpoints; exit 3 with an ALARM on any inconsistency.

    Each new checkpoint must be signed, of the same chain, and provably extend the last one
    seen (RFC 9162 consistency proof); the last one is kept in --state across runs.
    """
    from chain.errors import LedgerError
    from chain.genesis import parse_genesis
    from node.witness import ALARM_EXIT, WitnessAlarm, WitnessError, run_witness

    trusted = None
    if genesis_file is not None:
        try:
            trusted = list(parse_genesis(json.loads(genesis_file.read_text(encoding="utf-8"))).authorities)
        except (ValueError, OSError, LedgerError) as exc:
            fail(f"cannot use {genesis_file}: {getattr(exc, 'detail', exc)}")
    try:
        run_witness(
            url,
            api_key,
            state_file,
            trusted=trusted,
            interval=interval,
            once=once,
            verbose=verbose,
            say=lambda line: click.echo(f"aitbc-node witness: {line}", err=True),
        )
    except WitnessAlarm as exc:
        fail(f"ALARM: {exc} (last good checkpoint kept in {state_file})", ALARM_EXIT)
    except WitnessError as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        pass


@cli.command(context_settings=CONTEXT)
@click.option(
    "--node", "node_url", required=True, envvar="AITBC_NODE", show_envvar=True, help="URL of the node to mine for."
)
@click.option("--api-key", required=True, envvar="AITBC_API_KEY", show_envvar=True, help="A miner (or admin) API key.")
@click.option(
    "--miner-id",
    required=True,
    envvar="AITBC_MINER_ID",
    show_envvar=True,
    help="This miner's id (registered at start).",
)
@click.option(
    "--backend",
    type=click.Choice(["echo", "ollama"]),
    default="echo",
    envvar="AITBC_BACKEND",
    show_envvar=True,
    help="echo returns the prompt (deterministic, for tests and demos); ollama asks a local Ollama server.",
)
@click.option(
    "--model",
    "models",
    multiple=True,
    default=("llama3.2",),
    envvar="AITBC_MODELS",
    show_envvar=True,
    help="A model this miner serves (repeatable; env: space-separated).",
)
@click.option(
    "--concurrency",
    type=click.IntRange(1, 256),
    default=1,
    envvar="AITBC_CONCURRENCY",
    show_envvar=True,
    help="Jobs run at the same time.",
)
@click.option(
    "--ollama-url",
    default="http://127.0.0.1:11434",
    envvar="AITBC_OLLAMA_URL",
    show_envvar=True,
    help="The Ollama server, for --backend ollama.",
)
@click.option(
    "--signing-key",
    type=PathArg,
    default=None,
    envvar="AITBC_MINER_SIGNING_KEY",
    show_envvar=True,
    help="Ed25519 seed file (hex; created if missing): register its key and co-sign every completion.",
)
@click.option(
    "--poll-max",
    type=click.FloatRange(0.05),
    default=5.0,
    envvar="AITBC_POLL_MAX",
    show_envvar=True,
    help="Longest wait between polls when there is no work (the wait doubles from 0.2 s).",
)
def mine(
    node_url: str,
    api_key: str,
    miner_id: str,
    backend: str,
    models: tuple[str, ...],
    concurrency: int,
    ollama_url: str,
    signing_key: Path | None,
    poll_max: float,
) -> None:
    """Run the reference miner: register, poll with backoff, claim, run, complete or fail.

    Ctrl-C once finishes the jobs in hand and stops; twice fails them (they go back to the queue).
    """
    import asyncio

    from node.client import ApiCallFailed
    from node.miner import MinerSettings, load_or_create_signing_key

    key = None
    if signing_key is not None:
        try:
            key, created = load_or_create_signing_key(signing_key)
        except (OSError, ValueError) as exc:
            fail(f"cannot use the signing key {signing_key}: {exc}")
        if created:
            click.echo(f"created signing key {signing_key} (public key {key.public_hex})", err=True)
    settings = MinerSettings(miner_id, tuple(models), concurrency, poll_max=max(poll_max, 0.2), signing_key=key)
    try:
        asyncio.run(run_miner(node_url, api_key, settings, backend, ollama_url))
    except ApiCallFailed as exc:
        fail(f"the node refused: {exc}")


async def run_miner(node_url: str, api_key: str, settings: Any, backend_name: str, ollama_url: str) -> None:
    import asyncio
    import signal

    from node.client import Client
    from node.miner import Backend, EchoBackend, Miner, OllamaBackend

    backend: Backend = OllamaBackend(ollama_url) if backend_name == "ollama" else EchoBackend()
    async with Client(node_url, api_key) as client:
        miner = Miner(client, settings, backend, say=lambda line: click.echo(line))
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, miner.stop)
        try:
            await miner.run()
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
            if isinstance(backend, OllamaBackend):
                await backend.aclose()


def main() -> None:
    cli()
