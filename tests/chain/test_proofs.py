"""Receipt proof bundles and signed checkpoints, verified with nothing but a genesis."""

from __future__ import annotations

import json
from typing import Any

import pytest

from chain.context import ApplyContext
from chain.crypto import b64url
from chain.encoding import canonical
from chain.errors import ProofInvalid, ValidationError
from chain.jobs import get_job
from chain.merkle import merkle_root
from chain.proofs import build_bundle, open_checkpoint, parse_bundle, sign_checkpoint, verify_bundle
from chain.receipts import (
    PROTOCOL_FIELDS,
    miner_signature_block,
    receipt_body,
    result_hash,
    sign_completion,
    sign_receipt,
    signing_bytes,
)
from chain.state import WorkingState
from chain.transition import apply_tx
from tests.chain.devchain import AUTHORITY, OUTSIDER, T0, Chain, job_chain, key_hash, make_genesis, tx

MINER_KEY = type(AUTHORITY)(bytes(range(50, 82)))


def bundle_of(chain: Chain) -> dict[str, Any]:
    block = chain.blocks[-1]
    index = next(i for i, t in enumerate(block.transactions) if t.type == "job.complete")
    return build_bundle(chain.genesis.chain_id, block, index)


def cosigned_chain(miner_sig: str | None = None, result: str = "four words of result", legacy: bool = False) -> Chain:
    """A chain whose miner registered MINER_KEY and co-signed its completion (legacy: the receipt
    as 0.1.x sealed it, without the protocol fields and with both algs spelled "ed25519")."""
    chain = Chain(make_genesis())
    t1, t2 = T0 + 1_000, T0 + 2_000
    chain.seal(
        [
            tx("account.create", t1, name="alice", role="client", key_hash=key_hash("alice-key")),
            tx("account.create", t1, name="minnie", role="miner", key_hash=key_hash("minnie-key")),
            tx(
                "miner.register",
                t1,
                miner_id="gpu-1",
                owner="minnie",
                capabilities=["llama3.2"],
                miner_pubkey=MINER_KEY.public_hex,
            ),
            tx("job.submit", t1, job_id="job-1", client="alice", prompt="hi", model="llama3.2"),
        ],
        t1,
    )
    claim = tx("job.claim", t2, job_id="job-1", miner_id="gpu-1", owner="minnie")
    working = WorkingState(chain.state)
    apply_tx(working, claim, ApplyContext(time_ms=t2, genesis=chain.genesis))
    body = receipt_body(
        receipt_id="rcpt-1",
        job=get_job(working, "job-1"),
        provider="gpu-1",
        result=result,
        completed_at_ms=t2,
        price_per_unit=chain.genesis.params.price_per_unit("llama3.2"),
        coordinator_id=chain.genesis.chain_id,
    )
    sig = miner_sig if miner_sig is not None else sign_completion(MINER_KEY, "job-1", result)
    body.update(result_hash=result_hash(result), miner_signature=miner_signature_block(MINER_KEY.public_key, sig))
    receipt = sign_receipt(body, AUTHORITY)
    if legacy:
        body = {k: v for k, v in body.items() if k not in PROTOCOL_FIELDS}
        body["miner_signature"] = {**body["miner_signature"], "alg": "ed25519"}
        receipt = {
            **body,
            "signature": {
                "alg": "ed25519",
                "key_id": AUTHORITY.key_id,
                "sig": b64url(AUTHORITY.sign(signing_bytes(body))),
            },
        }
    complete = tx(
        "job.complete",
        t2,
        job_id="job-1",
        miner_id="gpu-1",
        owner="minnie",
        result=result,
        completed_at=t2,
        receipt=receipt,
    )
    chain.seal([claim, complete], t2)
    return chain


def test_a_real_bundle_verifies_and_names_where_the_receipt_is() -> None:
    chain = job_chain()
    verified = verify_bundle(bundle_of(chain), chain.genesis)
    assert verified.receipt["receipt_id"] == "rcpt-1"
    assert (verified.height, verified.tx_index) == (2, 1)
    assert verified.block_hash == chain.blocks[2].hash
    assert verified.proposer == verified.receipt_signer == AUTHORITY.public_hex
    assert verified.miner_key is None


def test_a_bundle_survives_its_own_file_encoding() -> None:
    chain = job_chain()
    data = canonical(bundle_of(chain))
    assert verify_bundle(parse_bundle(data), chain.genesis).receipt["job_id"] == "job-1"


def test_a_legacy_receipt_sealed_by_0_1_still_verifies_in_its_bundle() -> None:
    chain = cosigned_chain(legacy=True)
    verified = verify_bundle(bundle_of(chain), chain.genesis)
    assert "version" not in verified.receipt and verified.receipt["signature"]["alg"] == "ed25519"
    assert verified.miner_key == MINER_KEY.public_hex


def test_a_bundle_whose_receipt_names_another_alg_says_so() -> None:
    chain = job_chain()
    bundle = bundle_of(chain)
    tx_doc = json.loads(bundle["transaction"])
    tx_doc["payload"]["receipt"]["signature"]["alg"] = "EdDSA"
    bundle["transaction"] = canonical(tx_doc).decode()
    with pytest.raises(ProofInvalid, match="alg 'EdDSA' is not supported"):
        verify_bundle(bundle, chain.genesis)


def test_a_cosigned_receipt_verifies_both_signatures() -> None:
    chain = cosigned_chain()
    verified = verify_bundle(bundle_of(chain), chain.genesis)
    assert verified.miner_key == MINER_KEY.public_hex


def test_a_completion_with_a_wrong_miner_signature_is_refused_by_the_chain() -> None:
    forged = b64url(OUTSIDER.sign(b"something else"))
    with pytest.raises(ValidationError) as err:
        cosigned_chain(miner_sig=forged)
    assert err.value.error_code == "miner_signature_invalid"


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda b: b.update(chain_id="other-chain"), "chain"),
        (lambda b: b.update(format="aitbc-receipt-proof/2"), "format"),
        (lambda b: b.update(tx_index=0), "inclusion path"),
        (lambda b: b.update(inclusion_path=b["inclusion_path"][:-1]), "inclusion path"),
        (lambda b: b.update(header_signature=OUTSIDER.sign(b"x").hex()), "proposer signature"),
        (lambda b: b["header"].update(timestamp=b["header"]["timestamp"] + 1), "proposer signature"),
        (lambda b: b["header"].update(tx_root="00" * 32), "tx_root"),
        (lambda b: b.update(transaction=b["transaction"].replace('"units":5', '"units":6')), "receipt signature"),
        (lambda b: b.update(transaction=b["transaction"].replace('"job.complete"', '"job.fail"')), "job.complete"),
        (lambda b: b.update(extra=1), "exactly the fields"),
        (lambda b: b.pop("header"), "exactly the fields"),
    ],
)
def test_a_bundle_with_any_claim_changed_fails_naming_the_check(mutate: Any, message: str) -> None:
    chain = job_chain()
    bundle = json.loads(canonical(bundle_of(chain)))
    mutate(bundle)
    with pytest.raises(ProofInvalid) as err:
        verify_bundle(bundle, chain.genesis)
    assert message in err.value.detail


def test_a_receipt_re_signed_by_an_outsider_is_not_from_an_authority() -> None:
    chain = job_chain()
    bundle = bundle_of(chain)
    raw = json.loads(bundle["transaction"])
    receipt = {k: v for k, v in raw["payload"]["receipt"].items() if k != "signature"}
    raw["payload"]["receipt"] = sign_receipt(receipt, OUTSIDER)
    bundle["transaction"] = canonical(raw).decode()
    with pytest.raises(ProofInvalid, match="not an authority"):
        verify_bundle(bundle, chain.genesis)


def test_a_bundle_checked_against_another_chains_genesis_fails() -> None:
    chain = job_chain()
    other = make_genesis(authorities=[OUTSIDER.public_hex])
    with pytest.raises(ProofInvalid, match="not an authority"):
        verify_bundle(bundle_of(chain), other)
    with pytest.raises(ProofInvalid, match="no authorities"):
        verify_bundle(bundle_of(chain), make_genesis(authorities=[]))


def test_a_signed_checkpoint_opens_with_the_authority_key_only() -> None:
    root = merkle_root([b"a", b"b", b"c"])
    note = sign_checkpoint("aitbc-test", 3, root, AUTHORITY)
    assert note.startswith("aitbc-test\n3\n") and "\n\n\u2014 aitbc-test " in note
    cp = open_checkpoint(note, [AUTHORITY.public_hex])
    assert (cp.origin, cp.size, cp.root, cp.signer) == ("aitbc-test", 3, root, AUTHORITY.public_hex)
    with pytest.raises(ProofInvalid, match="no valid signature"):
        open_checkpoint(note, [OUTSIDER.public_hex])
    with pytest.raises(ProofInvalid, match="no valid signature"):
        open_checkpoint(note.replace("\n3\n", "\n4\n"), [AUTHORITY.public_hex])
    with pytest.raises(ProofInvalid):
        open_checkpoint("not a note", [AUTHORITY.public_hex])
