"""`aitbc-node witness URL`: watch a node's signed checkpoints and check that each new one
extends the last one seen (RFC 9162 consistency), keeping that last one on disk.

Silent while all holds. Any inconsistency (a bad signature, another origin, a shrinking
chain, two roots for one size, a consistency proof that fails) raises WitnessAlarm, and
the CLI exits with ALARM_EXIT. Network trouble is not an alarm: it is retried.

A checkpoint may be signed by any of the chain's authorities: in an authority group each
member signs with its own key, so the signer changes with the member asked, while the history
it signs must not. Without --genesis, the witness trusts on first use the authorities of the
genesis the node serves (or, from a node that serves none, the first signer), and keeps them in
its state file.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import httpx

from chain.errors import LedgerError, ProofInvalid
from chain.genesis import parse_genesis
from chain.merkle import verify_consistency
from chain.proofs import Checkpoint, open_checkpoint

ALARM_EXIT = 3


class WitnessAlarm(Exception):
    """The node showed a checkpoint inconsistent with what it showed before."""


class WitnessError(Exception):
    """The witness cannot run (bad state file, refused key); not an alarm."""


@dataclass(frozen=True)
class WitnessState:
    """The last checkpoint verified, as kept in the state file."""

    origin: str
    size: int
    root: str
    signer: str
    note: str
    authorities: tuple[str, ...] = ()
    """The keys trusted on first use (the genesis authorities the node served); empty: the signer."""


def load_state(path: Path) -> WitnessState | None:
    if not path.exists():
        return None
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        state = WitnessState(**{k: raw[k] for k in ("origin", "size", "root", "signer", "note")})
        authorities = raw.get("authorities", [])
        if not isinstance(authorities, list) or not all(isinstance(k, str) for k in authorities):
            raise TypeError("authorities is not a list of keys")
        return replace(state, authorities=tuple(authorities))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise WitnessError(
            f"the witness state file {path} is unreadable ({exc}); move it away to start afresh"
        ) from None


def save_state(path: Path, state: WitnessState) -> None:
    """Write atomically: a crash leaves the old state or the new one, never half of one."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump({**asdict(state), "authorities": list(state.authorities)}, f, indent=2)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def check(
    last: WitnessState | None, served: Any, trusted: list[str] | None, consistency: Callable[[int, int], Any]
) -> WitnessState:
    """Verify a served checkpoint against the last one; the new state, or WitnessAlarm."""
    if not isinstance(served, dict) or not isinstance(served.get("note"), str):
        raise WitnessAlarm("the checkpoint answer carries no signed note")
    keys = trusted or (list(last.authorities or [last.signer]) if last else [str(served.get("signer", ""))])
    try:
        cp: Checkpoint = open_checkpoint(served["note"], [k for k in keys if len(k) == 64])
    except (ProofInvalid, ValueError) as exc:
        raise WitnessAlarm(f"checkpoint signature: {getattr(exc, 'detail', exc)}") from None
    state = WitnessState(cp.origin, cp.size, cp.root.hex(), cp.signer, served["note"], last.authorities if last else ())
    if last is None:
        return state
    if cp.origin != last.origin:
        raise WitnessAlarm(f"the origin changed from {last.origin!r} to {cp.origin!r}")
    if cp.size < last.size:
        raise WitnessAlarm(f"the chain shrank from {last.size} to {cp.size} blocks")
    if cp.size == last.size:
        if state.root != last.root:
            raise WitnessAlarm(f"two different roots for size {cp.size}: {last.root} then {state.root}")
        return last
    answer = consistency(last.size, cp.size)
    try:
        proof = [bytes.fromhex(h) for h in answer["proof"]]
    except (TypeError, KeyError, ValueError):
        raise WitnessAlarm(f"the consistency proof from {last.size} to {cp.size} is malformed") from None
    if not verify_consistency(last.size, cp.size, bytes.fromhex(last.root), cp.root, proof):
        raise WitnessAlarm(
            f"the checkpoint of size {cp.size} is not consistent with the one of size {last.size}: "
            "history was rewritten"
        )
    return state


def served_authorities(get: Callable[[str], Any], served: Any) -> tuple[str, ...]:
    """The authorities of the genesis the node serves (GET /v1/chain/genesis), for trust on first
    use; empty if it serves none (the first signer is trusted then), or one of another chain than
    its checkpoint's."""
    try:
        genesis = parse_genesis(get("/v1/chain/genesis"))
    except (httpx.HTTPError, ValueError, LedgerError):  # none served, or not a genesis
        return ()
    note = served.get("note") if isinstance(served, dict) else None
    origin = note.split("\n", 1)[0] if isinstance(note, str) else None
    return genesis.authorities if genesis.chain_id == origin else ()


def run_witness(
    url: str,
    api_key: str,
    state_path: Path,
    *,
    trusted: list[str] | None,
    interval: float,
    once: bool,
    say: Callable[[str], None],
    verbose: bool = False,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Poll until stopped (or once); raise WitnessAlarm on any inconsistency."""
    last = load_state(state_path)
    with httpx.Client(base_url=url.rstrip("/"), headers={"X-Api-Key": api_key}, timeout=30) as http:

        def get(path: str, **params: Any) -> Any:
            response = http.get(path, params=params)
            if response.status_code in (401, 403):
                raise WitnessError(f"{url} refused the API key: {response.status_code} {response.text[:200]}")
            response.raise_for_status()
            return response.json()

        def consistency(old: int, new: int) -> Any:
            return get("/v1/chain/consistency", **{"from": old, "to": new})

        while True:
            try:
                served = get("/v1/chain/checkpoint")
                first_use = served_authorities(get, served) if last is None and not trusted else ()
                new = check(last, served, trusted or list(first_use) or None, consistency)
            except (httpx.HTTPError, ValueError) as exc:
                say(f"warning: cannot fetch from {url}: {exc}; retrying in {interval:g} s")
            else:
                if first_use:
                    new = replace(new, authorities=first_use)
                    say(
                        f"trusting the {len(first_use)} authorities of chain {new.origin!r} that {url} serves, on "
                        "first use (pass --genesis to check against a genesis of your own)"
                    )
                elif last is None and not trusted:
                    say(
                        f"trusting signer {new.signer} on first use "
                        "(pass --genesis to check against the chain's authorities)"
                    )
                if new != last:
                    save_state(state_path, new)
                    if verbose:
                        say(f"checkpoint {new.origin} size {new.size} root {new.root[:16]}… ok")
                last = new
            if once:
                return
            sleep(interval)
