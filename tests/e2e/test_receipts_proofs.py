"""Receipt proof bundles, checkpoints and miner co-signatures against a real node.

`independent_verify` below is written from README.md ("Receipt proofs") alone, with PyNaCl,
blake3 and json: no project code.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import blake3
import pytest
from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

from tests.e2e.conftest import Api
from tests.support import run_cli

# -- an independent verifier, from the README's description --------------------------------


def _b64url(text: str) -> bytes:
    raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    assert base64.urlsafe_b64encode(raw).rstrip(b"=").decode() == text
    return raw


def _ed25519(key: bytes, message: bytes, sig: bytes) -> None:
    VerifyKey(key).verify(message, sig)


def _hex32(value: Any) -> bytes:
    assert isinstance(value, str) and len(value) == 64 and value == value.lower()
    return bytes.fromhex(value)


def independent_verify(data: bytes, genesis: dict[str, Any]) -> None:
    """Raise on anything that does not hold."""

    def no_dupes(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        assert len({k for k, _ in pairs}) == len(pairs)
        return dict(pairs)

    bundle = json.loads(data.decode("utf-8"), object_pairs_hook=no_dupes)
    assert set(bundle) == {
        "format",
        "chain_id",
        "transaction",
        "tx_index",
        "inclusion_path",
        "header",
        "header_signature",
    }
    assert bundle["format"] == "aitbc-receipt-proof/1"
    assert bundle["chain_id"] == genesis["chain_id"]
    authorities = genesis["authorities"]
    # the receipt, from the transaction
    tx_bytes = bundle["transaction"].encode("utf-8")
    tx = json.loads(tx_bytes, object_pairs_hook=no_dupes)
    assert set(tx) == {"type", "payload", "timestamp"} and tx["type"] == "job.complete"
    receipt = tx["payload"]["receipt"]
    assert tx["payload"]["job_id"] == receipt["job_id"]
    # the authority's receipt signature (the receipt protocol's bytes)
    signature = receipt["signature"]
    assert signature["alg"] == "Ed25519"
    key = _b64url(signature["key_id"])
    assert key.hex() in authorities
    body = {k: v for k, v in receipt.items() if k != "signature" and v is not None}
    signing = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")
    _ed25519(key, signing, _b64url(signature["sig"]))
    # the miner's co-signature, when present
    if "miner_signature" in receipt or "result_hash" in receipt:
        assert tx["payload"]["result"] == {"blake3": receipt["result_hash"]}
        ms = receipt["miner_signature"]
        assert ms["alg"] == "Ed25519"
        message = json.dumps(
            {"job_id": receipt["job_id"], "result_hash": receipt["result_hash"]},
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
        ).encode("utf-8")
        _ed25519(_b64url(ms["key_id"]), message, _b64url(ms["sig"]))
    # the inclusion path (RFC 9162 with BLAKE3)
    header = bundle["header"]
    assert set(header) == {"height", "prev_hash", "timestamp", "tx_root", "state_root", "tx_count", "proposer"}
    index, size = bundle["tx_index"], header["tx_count"]
    assert isinstance(index, int) and isinstance(size, int) and 0 <= index < size

    def h(data: bytes) -> bytes:
        return blake3.blake3(data).digest()

    r = h(b"\x00" + h(tx_bytes))
    fn, sn = index, size - 1
    for p in bundle["inclusion_path"]:
        p = _hex32(p)
        assert sn > 0
        if fn & 1 or fn == sn:
            r = h(b"\x01" + p + r)
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            r = h(b"\x01" + r + p)
        fn >>= 1
        sn >>= 1
    assert sn == 0 and r == _hex32(header["tx_root"])
    # the header hash and the proposer's signature
    for name in ("prev_hash", "state_root"):
        _hex32(header[name])
    assert header["proposer"] in authorities
    header_hash = h(json.dumps(header, sort_keys=True, separators=(",", ":")).encode())
    sig = bundle["header_signature"]
    assert isinstance(sig, str) and sig == sig.lower()
    _ed25519(bytes.fromhex(header["proposer"]), header_hash, bytes.fromhex(sig))


# -- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def genesis(api: Api) -> dict[str, Any]:
    answer: dict[str, Any] = json.loads((api.data_dir / "genesis.json").read_text())
    return answer


@pytest.fixture(scope="module")
def miner_key() -> SigningKey:
    return SigningKey(secrets.token_bytes(32))


@pytest.fixture(scope="module")
def cosigning_miner(api: Api, miner_key: SigningKey) -> str:
    return api.register(miner_pubkey=bytes(miner_key.verify_key).hex())


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def cosign(key: SigningKey, job_id: str, result: str) -> str:
    digest = blake3.blake3(result.encode()).hexdigest()
    message = json.dumps({"job_id": job_id, "result_hash": digest}, sort_keys=True, separators=(",", ":")).encode()
    return b64url(key.sign(message).signature)


def cosigned_receipt(
    api: Api, miner_id: str, key: SigningKey, result: str = "café au lait, s'il vous plaît"
) -> dict[str, Any]:
    job = api.submit()
    api.claim(job["job_id"], miner_id)
    body = {"miner_id": miner_id, "result": result, "miner_signature": cosign(key, job["job_id"], result)}
    answer: dict[str, Any] = api.m1.post(f"/v1/jobs/{job['job_id']}/complete", 200, json=body)
    return answer


def proof_bytes(api: Api, receipt_id: str, key: str | None = None) -> bytes:
    with api.node.client(key or api.a.key) as http:
        resp = http.get(f"/v1/receipts/{receipt_id}/proof")
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    assert "attachment" in resp.headers["content-disposition"]
    return resp.content


@pytest.fixture(scope="module")
def bundle_file(
    api: Api, cosigning_miner: str, miner_key: SigningKey, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Path]:
    receipt = cosigned_receipt(api, cosigning_miner, miner_key)
    path = tmp_path_factory.mktemp("bundle") / "receipt.proof.json"
    path.write_bytes(proof_bytes(api, receipt["receipt_id"]))
    yield path


# -- tests --------------------------------------------------------------------------------------


def test_an_independent_verifier_accepts_a_real_cosigned_bundle(bundle_file: Path, genesis: dict[str, Any]) -> None:
    independent_verify(bundle_file.read_bytes(), genesis)


def test_an_independent_verifier_rejects_the_bundle_with_any_single_byte_altered(
    bundle_file: Path, genesis: dict[str, Any]
) -> None:
    data = bundle_file.read_bytes()
    accepted = []
    for i in range(len(data)):
        for new in {data[i] ^ 0x01, data[i] ^ 0x20}:
            altered = data[:i] + bytes([new]) + data[i + 1 :]
            try:
                independent_verify(altered, genesis)
            except (
                AssertionError,
                ValueError,
                KeyError,
                TypeError,
                AttributeError,
                BadSignatureError,
                UnicodeError,
                IndexError,
            ):
                continue
            accepted.append((i, chr(data[i]), chr(new)))
    assert accepted == []


def test_verify_receipt_accepts_a_real_bundle_and_names_the_block(bundle_file: Path, api: Api) -> None:
    done = run_cli("verify-receipt", str(bundle_file), "--genesis", str(api.data_dir / "genesis.json"))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ok: receipt rcpt_") and "miner co-signature: ok" in done.stdout


def test_verify_receipt_exits_1_naming_the_failed_check(bundle_file: Path, api: Api, tmp_path: Path) -> None:
    bundle = json.loads(bundle_file.read_bytes())
    bundle["header"]["timestamp"] += 1
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(bundle))
    done = run_cli("verify-receipt", str(bad), "--genesis", str(api.data_dir / "genesis.json"))
    assert done.returncode == 1
    assert "verification failed: proposer signature over the header hash does not verify" in done.stderr
    other = json.loads((api.data_dir / "genesis.json").read_text())
    other["authorities"] = [bytes(SigningKey(bytes(32)).verify_key).hex()]
    (tmp_path / "other.json").write_text(json.dumps(other))
    done = run_cli("verify-receipt", str(bundle_file), "--genesis", str(tmp_path / "other.json"))
    assert done.returncode == 1 and "not an authority" in done.stderr


def test_a_receipt_without_a_miner_key_has_a_bundle_that_verifies_too(api: Api, genesis: dict[str, Any]) -> None:
    _, receipt = api.run_job()
    assert "miner_signature" not in receipt
    independent_verify(proof_bytes(api, receipt["receipt_id"]), genesis)


def test_the_bundle_is_public_and_reveals_no_result(api: Api, cosigning_miner: str, miner_key: SigningKey) -> None:
    secret = "the secret result 7f3a"
    receipt = cosigned_receipt(api, cosigning_miner, miner_key, result=secret)
    path = f"/v1/receipts/{receipt['receipt_id']}/proof"
    bundles = [caller.http.get(path) for caller in (api.a, api.b, api.m1, api.m2, api.admin)]
    bundles.append(api.anon.http.get(f"/explorer/receipts/{receipt['receipt_id']}/proof"))
    assert all(b.status_code == 200 for b in bundles)
    assert len({b.content for b in bundles}) == 1
    assert secret.encode() not in bundles[0].content
    assert api.anon.get(path, 401)["error_code"] == "unauthorized"
    assert api.anon.get("/explorer/receipts/rcpt_nope/proof", 404)["error_code"] == "receipt_not_found"
    assert api.a.get("/v1/receipts/rcpt_nope/proof", 404)["error_code"] == "receipt_not_found"


def test_a_cosigned_receipt_carries_the_miners_signature_and_verifies_through_the_api(
    api: Api, cosigning_miner: str, miner_key: SigningKey
) -> None:
    receipt = cosigned_receipt(api, cosigning_miner, miner_key, result="hello world")
    assert receipt["result_hash"] == blake3.blake3(b"hello world").hexdigest()
    assert receipt["miner_signature"]["key_id"] == b64url(bytes(miner_key.verify_key))
    verdict = api.a.post("/v1/receipts/verify", 200, json=receipt)
    assert verdict["valid"] and verdict["miner_signature_valid"] and verdict["on_chain"]
    forged = {
        **receipt,
        "miner_signature": {**receipt["miner_signature"], "sig": cosign(miner_key, "job_other", "hello world")},
    }
    verdict = api.a.post("/v1/receipts/verify", 200, json=forged)
    assert not verdict["valid"] and verdict["miner_signature_valid"] is False


def test_complete_without_or_with_a_wrong_miner_signature_is_400(
    api: Api, cosigning_miner: str, miner_key: SigningKey
) -> None:
    job = api.submit()
    api.claim(job["job_id"], cosigning_miner)
    path = f"/v1/jobs/{job['job_id']}/complete"
    missing = api.m1.post(path, 400, json={"miner_id": cosigning_miner, "result": "x y"})
    assert missing["error_code"] == "miner_signature_required"
    wrong = api.m1.post(
        path,
        400,
        json={
            "miner_id": cosigning_miner,
            "result": "x y",
            "miner_signature": cosign(miner_key, job["job_id"], "other"),
        },
    )
    assert wrong["error_code"] == "miner_signature_invalid"
    garbage = api.m1.post(path, 400, json={"miner_id": cosigning_miner, "result": "x y", "miner_signature": "%%%"})
    assert garbage["error_code"] == "miner_signature_invalid"
    assert api.a.get(f"/v1/jobs/{job['job_id']}")["status"] == "running"
    api.m1.post(
        path,
        200,
        json={"miner_id": cosigning_miner, "result": "x y", "miner_signature": cosign(miner_key, job["job_id"], "x y")},
    )


def test_a_miner_without_a_key_may_not_send_a_signature_and_a_bad_key_is_400(api: Api, miner_key: SigningKey) -> None:
    job = api.submit()
    plain = api.register()
    api.claim(job["job_id"], plain)
    body = {"miner_id": plain, "result": "x", "miner_signature": cosign(miner_key, job["job_id"], "x")}
    assert api.m1.post(f"/v1/jobs/{job['job_id']}/complete", 400, json=body)["error_code"] == "validation_error"
    bad = api.m1.post(
        "/v1/miners/register", 400, json={"miner_id": "k", "capabilities": ["llama3.2"], "miner_pubkey": "AB" * 32}
    )
    assert "miner_pubkey" in bad["detail"]


def test_re_registering_without_a_key_keeps_the_registered_key(api: Api, cosigning_miner: str) -> None:
    miner = api.m1.post("/v1/miners/register", 201, json={"miner_id": cosigning_miner, "capabilities": ["llama3.2"]})
    assert len(miner["miner_pubkey"]) == 64


def test_checkpoint_is_a_signed_note_over_all_blocks(api: Api, genesis: dict[str, Any]) -> None:
    cp = api.a.get("/v1/chain/checkpoint")
    height = api.anon.http.get("/health").json()["height"]
    assert cp["chain_id"] == genesis["chain_id"] and cp["size"] >= height + 1
    body, sigline = cp["note"].split("\n\n")
    assert body == f"{cp['chain_id']}\n{cp['size']}\n{base64.b64encode(bytes.fromhex(cp['root_hash'])).decode()}"
    name, blob = sigline.rstrip("\n").removeprefix("\u2014 ").split(" ")
    raw = base64.b64decode(blob)
    key = bytes.fromhex(genesis["authorities"][0])
    assert raw[:4] == hashlib.sha256(name.encode() + b"\n\x01" + key).digest()[:4]
    VerifyKey(key).verify((body + "\n").encode(), raw[4:])


def test_consistency_proofs_link_checkpoints_and_bad_ranges_are_400(api: Api) -> None:
    before = api.a.get("/v1/chain/checkpoint")
    api.run_job()
    after = api.a.get("/v1/chain/checkpoint")
    proof = api.a.get("/v1/chain/consistency", params={"from": before["size"], "to": after["size"]})
    assert proof["from_root"] == before["root_hash"] and proof["to_root"] == after["root_hash"]
    assert proof["proof"]
    for params in (
        {"from": 0, "to": 1},
        {"from": 3, "to": 2},
        {"from": 1, "to": after["size"] + 1000},
        {"to": 2},
        {"from": "x", "to": 2},
    ):
        assert api.a.get("/v1/chain/consistency", 400, params=params)["error_code"] == "validation_error"


def test_a_witness_stays_silent_while_the_node_runs_normally(api: Api, tmp_path: Path) -> None:
    state = tmp_path / "witness.json"
    args = (
        "witness",
        api.node.url,
        "--api-key",
        api.a.key or "",
        "--state",
        str(state),
        "--once",
        "--genesis",
        str(api.data_dir / "genesis.json"),
    )
    for _ in range(3):
        done = run_cli(*args)
        assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
        api.run_job()
    assert json.loads(state.read_text())["size"] > 1
