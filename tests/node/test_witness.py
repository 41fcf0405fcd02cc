"""The witness's check of one checkpoint against the last one seen, with several authorities."""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import pytest

from chain.crypto import NodeKey
from chain.merkle import consistency_proof, merkle_root
from chain.proofs import sign_checkpoint
from node.witness import WitnessAlarm, check, load_state, save_state

A, B, C = (NodeKey(bytes([n]) * 32) for n in (1, 2, 3))
LEAVES = [bytes([n]) * 32 for n in range(6)]


def served(size: int, key: NodeKey, leaves: list[bytes] = LEAVES) -> dict[str, Any]:
    return {"note": sign_checkpoint("group", size, merkle_root(leaves[:size]), key), "signer": key.public_hex}


def proofs(leaves: list[bytes]) -> Any:
    return lambda old, new: {"proof": [h.hex() for h in consistency_proof(leaves[:new], old)]}


def test_checkpoints_signed_by_different_authorities_extend_each_other() -> None:
    group = [A.public_hex, B.public_hex]
    first = check(None, served(3, A), group, proofs(LEAVES))
    second = check(first, served(5, B), group, proofs(LEAVES))
    assert (second.size, second.signer) == (5, B.public_hex)
    assert check(second, served(5, A), group, proofs(LEAVES)) == second  # same size, same root


def test_an_inconsistent_checkpoint_alarms_whichever_authority_signs_it() -> None:
    group = [A.public_hex, B.public_hex]
    first = check(None, served(3, A), group, proofs(LEAVES))
    rewritten = [LEAVES[0], b"x" * 32, *LEAVES[2:]]
    with pytest.raises(WitnessAlarm, match="not consistent"):
        check(first, served(5, B, rewritten), group, proofs(rewritten))
    with pytest.raises(WitnessAlarm, match="two different roots"):
        check(first, served(3, B, rewritten), group, proofs(rewritten))
    with pytest.raises(WitnessAlarm, match="no valid signature by a trusted key"):
        check(first, served(5, C), group, proofs(LEAVES))


def test_authorities_trusted_on_first_use_are_kept_and_checked(tmp_path: Path) -> None:
    state = tmp_path / "w.json"
    first = check(None, served(3, A), [A.public_hex, B.public_hex], proofs(LEAVES))
    save_state(state, replace(first, authorities=(A.public_hex, B.public_hex)))
    kept = load_state(state)
    assert kept is not None and kept.authorities == (A.public_hex, B.public_hex)
    assert check(kept, served(4, B), None, proofs(LEAVES)).signer == B.public_hex
    with pytest.raises(WitnessAlarm, match="trusted key"):
        check(kept, served(4, C), None, proofs(LEAVES))


def test_a_state_file_without_authorities_trusts_its_signer(tmp_path: Path) -> None:
    state = tmp_path / "w.json"
    first = check(None, served(3, A), None, proofs(LEAVES))
    state.write_text(json.dumps({k: v for k, v in asdict(first).items() if k != "authorities"}))
    kept = load_state(state)
    assert kept is not None and kept.authorities == ()
    assert check(kept, served(4, A), None, proofs(LEAVES)).size == 4
    with pytest.raises(WitnessAlarm, match="trusted key"):
        check(kept, served(4, B), None, proofs(LEAVES))
