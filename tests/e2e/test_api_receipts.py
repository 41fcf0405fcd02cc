"""Receipts: list, read, verify over HTTP, and verify independently with PyNaCl and genesis.json."""

from __future__ import annotations

import base64
import copy
import json
from typing import Any

import nacl.exceptions
import nacl.signing
import pytest

from tests.e2e.conftest import Api
from tests.vectors.aitbc_protocol import reference_verify


@pytest.fixture(scope="module")
def receipts(api: Api) -> dict[str, Any]:
    """Receipts of two clients and two providers, in a known order (oldest first)."""
    p1 = api.register(api.m1, capabilities=["llama3.2", "mistral-7b"])
    p2 = api.register(api.m2, capabilities=["llama3.2"])
    made = []
    for client, miner_id, miner in [
        (api.a, p1, api.m1),
        (api.b, p1, api.m1),
        (api.a, p2, api.m2),
        (api.a, p1, api.m1),
        (api.b, p2, api.m2),
    ]:
        job = api.submit(client)
        api.claim(job["job_id"], miner_id, miner)
        made.append(api.complete(job["job_id"], miner_id, f"result for {job['job_id']}", miner))
    return {"p1": p1, "p2": p2, "all": made}


def ids(rs: list[dict[str, Any]]) -> list[str]:
    return [r["receipt_id"] for r in rs]


def test_list_newest_first_with_limit(api: Api, receipts: dict[str, Any]) -> None:
    newest_first = ids(receipts["all"])[::-1]
    assert ids(api.a.get("/v1/receipts")) == newest_first
    assert ids(api.a.get("/v1/receipts", params={"limit": 2})) == newest_first[:2]
    assert ids(api.a.get("/v1/receipts", params={"limit": 100})) == newest_first
    for params in ({"limit": 0}, {"limit": 101}, {"limit": "x"}):
        api.a.get("/v1/receipts", 400, params=params)


def test_list_filters_by_client_and_provider(api: Api, receipts: dict[str, Any]) -> None:
    made = receipts["all"][::-1]
    p1, p2 = receipts["p1"], receipts["p2"]
    assert ids(api.a.get("/v1/receipts", params={"client": "client-a"})) == ids(
        [r for r in made if r["client"] == "client-a"]
    )
    assert ids(api.a.get("/v1/receipts", params={"client": "client-b"})) == ids(
        [r for r in made if r["client"] == "client-b"]
    )
    assert ids(api.a.get("/v1/receipts", params={"provider": p1})) == ids([r for r in made if r["provider"] == p1])
    assert ids(api.a.get("/v1/receipts", params={"provider": p2})) == ids([r for r in made if r["provider"] == p2])
    both = api.a.get("/v1/receipts", params={"client": "client-a", "provider": p1})
    assert ids(both) == ids([r for r in made if r["client"] == "client-a" and r["provider"] == p1])
    assert len(both) == 2
    assert ids(api.a.get("/v1/receipts", params={"client": "client-a", "provider": p1, "limit": 1})) == ids(both[:1])
    assert api.a.get("/v1/receipts", params={"client": "nobody"}) == []
    assert api.a.get("/v1/receipts", params={"provider": "nobody"}) == []


def test_get_receipt_and_unknown_is_404(api: Api, receipts: dict[str, Any]) -> None:
    for r in receipts["all"]:
        assert api.a.get(f"/v1/receipts/{r['receipt_id']}") == r
    err = api.a.get("/v1/receipts/rcpt_does_not_exist", 404)
    assert err["error_code"]


def test_verify_real_receipt(api: Api, receipts: dict[str, Any]) -> None:
    for r in receipts["all"]:
        verdict = api.a.post("/v1/receipts/verify", json=r)
        assert verdict["signature_valid"] is True
        assert verdict["signer_is_authority"] is True
        assert verdict["on_chain"] is True
        assert isinstance(verdict["block_height"], int) and verdict["block_height"] >= 1
        if "valid" in verdict:
            assert verdict["valid"] is True
    # The height is the block whose transaction carried the receipt.
    r = receipts["all"][-1]
    verdict = api.a.post("/v1/receipts/verify", json=r)
    txs = api.anon.get("/explorer/transactions", params={"limit": 100})
    carrying = [t for t in txs if t.get("summary", {}).get("receipt_id") == r["receipt_id"]]
    if carrying:
        assert carrying[0]["block_height"] == verdict["block_height"]
    height = api.anon.get("/explorer/stats")["block_height"]
    assert verdict["block_height"] <= height


def _altered(receipt: dict[str, Any], field: str) -> dict[str, Any]:
    out = copy.deepcopy(receipt)
    value = out[field]
    if isinstance(value, bool) or value is None:
        out[field] = "tampered"
    elif isinstance(value, int):
        out[field] = value + 1
    elif isinstance(value, float):
        out[field] = value * 2 + 0.00000001
    else:
        out[field] = value + "x"
    return out


RECEIPT_BODY_FIELDS = [
    "receipt_id",
    "job_id",
    "provider",
    "client",
    "units",
    "unit_type",
    "price",
    "model",
    "started_at",
    "completed_at",
]


@pytest.mark.parametrize("field", RECEIPT_BODY_FIELDS)
def test_verify_altered_receipt_is_invalid(api: Api, receipts: dict[str, Any], field: str) -> None:
    verdict = api.a.post("/v1/receipts/verify", json=_altered(receipts["all"][0], field))
    assert verdict["signature_valid"] is False
    assert verdict["on_chain"] is False
    assert verdict.get("valid", False) is False


def test_verify_altered_or_foreign_signature_is_invalid(api: Api, receipts: dict[str, Any]) -> None:
    real = receipts["all"][0]
    flipped = copy.deepcopy(real)
    sig = bytearray(_b64url_decode(real["signature"]["sig"]))
    sig[0] ^= 1
    flipped["signature"]["sig"] = base64.urlsafe_b64encode(bytes(sig)).rstrip(b"=").decode()
    assert api.a.post("/v1/receipts/verify", json=flipped)["signature_valid"] is False

    # A well-formed signature by a key that is not an authority.
    stranger = nacl.signing.SigningKey.generate()
    forged = {k: v for k, v in real.items() if k != "signature"}
    forged["receipt_id"] = "rcpt_forged"
    forged["signature"] = {
        "alg": "ed25519",
        "key_id": base64.urlsafe_b64encode(bytes(stranger.verify_key)).rstrip(b"=").decode(),
        "sig": base64.urlsafe_b64encode(stranger.sign(signing_bytes(forged)).signature).rstrip(b"=").decode(),
    }
    verdict = api.a.post("/v1/receipts/verify", json=forged)
    assert verdict["signature_valid"] is True
    assert verdict["signer_is_authority"] is False
    assert verdict["on_chain"] is False
    assert verdict.get("valid", False) is False

    unsigned = {k: v for k, v in real.items() if k != "signature"}
    assert api.a.post("/v1/receipts/verify", json=unsigned)["signature_valid"] is False


def test_verify_rejects_a_body_that_is_not_a_receipt_object(api: Api) -> None:
    api.a.post("/v1/receipts/verify", 400, content=b"not json", headers={"content-type": "application/json"})
    api.a.post("/v1/receipts/verify", 400, json=["a", "list"])


# -- independent verification: only the effective genesis and the documented protocol --------


def _b64url_decode(text: str) -> bytes:
    assert "=" not in text, "base64url must come without padding"
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def signing_bytes(receipt: dict[str, Any]) -> bytes:
    body = {k: v for k, v in receipt.items() if k != "signature" and v is not None}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def independently_valid(receipt: dict[str, Any], authorities: list[str]) -> bool:
    sig = receipt["signature"]
    if sig.get("alg") != "Ed25519":
        return False
    public_key = _b64url_decode(sig["key_id"])
    if public_key.hex() not in authorities:
        return False
    try:
        nacl.signing.VerifyKey(public_key).verify(signing_bytes(receipt), _b64url_decode(sig["sig"]))
    except nacl.exceptions.BadSignatureError:
        return False
    return True


def test_receipt_verifies_independently_from_effective_genesis(api: Api, receipts: dict[str, Any]) -> None:
    genesis = json.loads((api.data_dir / "genesis.json").read_text(encoding="utf-8"))
    authorities = genesis["authorities"]
    assert authorities and all(len(a) == 64 for a in authorities)
    fetched = api.a.get("/v1/receipts", params={"limit": 100})
    assert len(fetched) == len(receipts["all"])
    for r in fetched + receipts["all"]:
        assert len(_b64url_decode(r["signature"]["key_id"])) == 32
        assert len(_b64url_decode(r["signature"]["sig"])) == 64
        assert independently_valid(r, authorities), r
        for field in RECEIPT_BODY_FIELDS:
            assert not independently_valid(_altered(r, field), authorities), field
    explorer = api.anon.get("/explorer/receipts")
    assert explorer and all(independently_valid(r, authorities) for r in explorer)


# -- the AITBC SDK's receipt paths and its verifier's procedure ------------------------------------


def sdk_receipt_history(caller: Any, job_id: str) -> list[dict[str, Any]]:
    """The SDK's iter_receipts: pages of GET /v1/jobs/{id}/receipts?limit=100[&cursor=…]; a list is one page."""
    page = caller.get(f"/v1/jobs/{job_id}/receipts", params={"limit": 100})
    assert isinstance(page, list)
    return page


def test_job_receipt_paths_serve_the_receipt_as_complete_returned_it(api: Api, receipts: dict[str, Any]) -> None:
    for made in receipts["all"]:
        client = api.a if made["client"] == "client-a" else api.b
        assert client.get(f"/v1/jobs/{made['job_id']}/receipt") == made
        assert sdk_receipt_history(client, made["job_id"]) == [made]
        assert client.get(f"/v1/jobs/{made['job_id']}/receipts", params={"limit": 5, "cursor": "anything"}) == [made]
        assert api.admin.get(f"/v1/jobs/{made['job_id']}/receipt") == made
        assert api.a.get(f"/v1/receipts/{made['receipt_id']}") == made


def test_sdk_style_summary_verifies_every_receipt_of_a_job(api: Api, receipts: dict[str, Any]) -> None:
    for made in receipts["all"]:
        client = api.a if made["client"] == "client-a" else api.b
        history = sdk_receipt_history(client, made["job_id"])
        assert history and all(reference_verify(r) for r in history)
        latest = client.get(f"/v1/jobs/{made['job_id']}/receipt")
        assert reference_verify(latest)
        assert latest["version"] == "1.0" and latest["coordinator_id"] == api.anon.get("/health")["chain_id"]
        assert latest["duration_ms"] >= 0 and latest["signature"]["alg"] == "Ed25519"
        tampered = {**latest, "units": latest["units"] + 1}
        assert not reference_verify(tampered)


def test_job_receipt_paths_before_completion_and_across_clients(api: Api) -> None:
    job = api.submit(api.a)
    err = api.a.get(f"/v1/jobs/{job['job_id']}/receipt", 404)
    assert err["error_code"] == "not_found" and "no receipt" in err["detail"]
    assert api.a.get(f"/v1/jobs/{job['job_id']}/receipts") == []
    # Another client's job does not exist for them, exactly as GET /v1/jobs/{id}.
    for path in (f"/v1/jobs/{job['job_id']}/receipt", f"/v1/jobs/{job['job_id']}/receipts"):
        assert api.b.get(path, 404)["error_code"] == "job_not_found"
        assert api.a.get(path.replace(job["job_id"], "job_missing"), 404)["error_code"] == "job_not_found"
        api.m1.get(path, 403)
        api.anon.get(path, 401)
    for limit in (0, 101, "x"):
        api.a.get(f"/v1/jobs/{job['job_id']}/receipts", 400, params={"limit": limit})


def test_verify_names_why_a_receipt_is_refused(api: Api, receipts: dict[str, Any]) -> None:
    real = receipts["all"][0]
    assert api.a.post("/v1/receipts/verify", json=real)["reason"] is None
    verdict = api.a.post("/v1/receipts/verify", json={**real, "signature": {**real["signature"], "alg": "EdDSA"}})
    assert verdict["valid"] is False and verdict["signature_valid"] is False
    assert verdict["reason"] == "signature alg 'EdDSA' is not supported (expected 'Ed25519')"
    verdict = api.a.post("/v1/receipts/verify", json={**real, "units": real["units"] + 1})
    assert verdict["valid"] is False and "does not verify" in verdict["reason"]
