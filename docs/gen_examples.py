"""Write docs/protocol/examples.md: worked examples of the chain format, computed by the code.

Every byte string on that page comes from chain/ itself (a fixed key, fixed times, a two-block
chain), so the page cannot drift from the code: tests/test_docs_site.py regenerates it and
compares. Run it after changing the chain format:

    .venv/bin/python docs/gen_examples.py          # rewrite docs/protocol/examples.md
    .venv/bin/python docs/gen_examples.py --check  # exit 1 if the page is stale
"""

from __future__ import annotations

import base64
import sys
from pathlib import Path
from typing import Any

from chain.blocks import Block
from chain.context import ApplyContext
from chain.crypto import NodeKey, hash_bytes, hash_hex
from chain.encoding import canonical
from chain.genesis import Genesis, parse_genesis
from chain.jobs import get_job
from chain.merkle import inclusion_proof, leaf_hash, merkle_root, node_hash
from chain.proofs import checkpoint_body, note_key_hash, sign_checkpoint
from chain.receipts import receipt_body, sign_receipt, signing_bytes
from chain.state import EmptyState, WorkingState, state_root
from chain.transactions import Transaction
from chain.transition import GENESIS_STATE_ROOT, apply_tx, genesis_block, seal_block

PAGE = Path(__file__).resolve().parent / "protocol" / "examples.md"
AUTHORITY = NodeKey(bytes(range(32)))
T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
WRAP = 96


def example_genesis() -> Genesis:
    return parse_genesis(
        {
            "chain_id": "aitbc-example",
            "genesis_time": "2026-01-01T00:00:00Z",
            "authorities": [AUTHORITY.public_hex],
            "params": {"prices": {"llama3.2": {"tokens": "0.000002"}}},
            "accounts": [{"name": "ops", "role": "admin", "key_hash": hash_hex(b"ops-key-for-the-example")}],
        }
    )


def wrapped(text: str) -> str:
    return "\n".join(text[i : i + WRAP] for i in range(0, len(text), WRAP)) or "(empty)"


def code(text: str, lang: str = "text") -> str:
    return f"```{lang}\n{text}\n```\n"


class Example:
    """A two-block chain built through chain/ as the authority builds it, and the page about it."""

    def __init__(self) -> None:
        self.genesis = example_genesis()
        self.block0, state0 = genesis_block(self.genesis, EmptyState())
        self.committed: dict[bytes, bytes] = {}
        self._commit(state0)
        self.parts: list[str] = []

    def _commit(self, working: WorkingState) -> None:
        for k, v in working.changes():
            if v is None:
                self.committed.pop(k, None)
            else:
                self.committed[k] = v

    def _base(self) -> WorkingState:
        base = WorkingState(EmptyState())
        for k, v in sorted(self.committed.items()):
            base.put(k, v)
        return base

    def seal(self, prev: Block, txs: list[Transaction], timestamp: int) -> tuple[Block, WorkingState]:
        working = WorkingState(self._base())
        ctx = ApplyContext(time_ms=timestamp, genesis=self.genesis)
        for tx in txs:
            apply_tx(working, tx, ctx)
        block = seal_block(prev.header, txs, working, timestamp, AUTHORITY)
        return block, working

    def build(self) -> str:
        t1 = T0 + 1_000
        block1_txs = [
            Transaction("account.create", {"name": "alice", "role": "client", "key_hash": hash_hex(b"alice")}, t1 - 4),
            Transaction("account.create", {"name": "minnie", "role": "miner", "key_hash": hash_hex(b"minnie")}, t1 - 3),
            Transaction(
                "miner.register", {"miner_id": "gpu-1", "owner": "minnie", "capabilities": ["llama3.2"]}, t1 - 2
            ),
            Transaction(
                "job.submit",
                {
                    "job_id": "job-1",
                    "client": "alice",
                    "prompt": "Say hello",
                    "model": "llama3.2",
                    "params": {"max_tokens": 256, "temperature": 0.7, "top_p": 0.9},
                },
                t1 - 1,
            ),
        ]
        block1, state1 = self.seal(self.block0, block1_txs, t1)
        self._commit(state1)

        t2 = T0 + 2_000
        claim = Transaction("job.claim_next", {"miner_id": "gpu-1", "owner": "minnie"}, t2 - 10)
        probe = WorkingState(self._base())
        apply_tx(probe, claim, ApplyContext(time_ms=t2, genesis=self.genesis))
        job = get_job(probe, "job-1")
        result = "Hello there"
        receipt = sign_receipt(
            receipt_body(
                receipt_id="rcpt-1",
                job=job,
                provider="gpu-1",
                result=result,
                completed_at_ms=t2,
                price_per_unit=self.genesis.params.price_per_unit("llama3.2"),
                coordinator_id=self.genesis.chain_id,
            ),
            AUTHORITY,
        )
        complete = Transaction(
            "job.complete",
            {
                "job_id": "job-1",
                "miner_id": "gpu-1",
                "owner": "minnie",
                "result": result,
                "completed_at": t2,
                "receipt": receipt,
            },
            t2 - 1,
        )
        block2, state2 = self.seal(block1, [claim, complete], t2)
        self._commit(state2)
        self.page(block1, block2, state2, receipt)
        return "\n".join(self.parts)

    def add(self, *texts: str) -> None:
        self.parts.extend(texts)

    def page(self, block1: Block, block2: Block, state2: WorkingState, receipt: dict[str, Any]) -> None:
        g = self.genesis
        self.add(
            "# Worked examples",
            "",
            "<!-- Generated by docs/gen_examples.py from the code; do not edit by hand. -->",
            "",
            "Every value on this page is computed by `chain/` (by `docs/gen_examples.py`, which a test",
            "reruns and compares), for a chain whose authority's Ed25519 seed is the 32 bytes",
            "`00 01 02 … 1f`. Long hex strings are wrapped at 96 characters; join the lines.",
            "See [the protocol reference](index.md) for the rules these examples follow.",
            "",
            "## Keys",
            "",
            code(
                f"seed (hex)        {AUTHORITY.seed.hex()}\n"
                f"public key (hex)  {AUTHORITY.public_hex}\n"
                f"key_id            {AUTHORITY.key_id}"
            ),
            "## Genesis and block 0",
            "",
            "The genesis document, canonical bytes (UTF-8):",
            "",
            code(canonical(g.raw).decode()),
            f"Genesis hash = BLAKE3(those bytes) = `{g.hash}`. Block 0 holds one `account.create` per",
            "genesis account, its `prev_hash` is the genesis hash, its `proposer` and signature are empty,",
            f"and its `state_root` chains from `{GENESIS_STATE_ROOT[:16]}…` (32 zero bytes):",
            "",
            code(canonical(self.block0.to_dict()).decode(), "json"),
            f"Block 0 hash: `{self.block0.hash}`",
            "",
        )
        self.transactions(block1)
        self.header(block1)
        self.state_changes(block1, block2, state2)
        self.merkle(block1)
        self.receipt(receipt)
        self.checkpoint(block1, block2)

    def transactions(self, block1: Block) -> None:
        submit = block1.transactions[3]
        self.add(
            "## A transaction and its hash",
            "",
            "Block 1's `job.submit`, as the block stores it (canonical bytes):",
            "",
            code(submit.encoded.decode(), "json"),
            'Its public form replaces the private `prompt` with `{"blake3": BLAKE3(UTF-8 of the prompt)}`',
            f"(BLAKE3(`Say hello`) = `{hash_hex(b'Say hello')}`):",
            "",
            code(submit.public_encoded.decode(), "json"),
            f"The transaction hash is BLAKE3 of the public form: `{submit.hash.hex()}`",
            "",
            "Every transaction of the example, with its hash:",
            "",
            "| block | type | hash |",
            "|---|---|---|",
        )

    def header(self, block1: Block) -> None:
        for tx in block1.transactions:
            self.parts.append(f"| 1 | `{tx.type}` | `{tx.hash.hex()}` |")
        self.add(
            "",
            "## Block header, hash and seal",
            "",
            "Block 1's header, canonical bytes:",
            "",
            code(canonical(block1.header.to_dict()).decode(), "json"),
            f"Block hash = BLAKE3(header bytes) = `{block1.hash}`",
            "",
            "The proposer's Ed25519 signature over the 32 raw hash bytes (hex):",
            "",
            code(wrapped(block1.signature)),
        )

    def state_changes(self, block1: Block, block2: Block, state2: WorkingState) -> None:
        changes = state2.changes()
        rows = ["| key (UTF-8, the NUL separator shown as `␀`) | value |", "|---|---|"]
        for k, v in changes:
            shown_key = k.decode("utf-8").replace("\x00", "␀")
            shown_value = "(deleted)" if v is None else v.decode("utf-8").replace("|", "\\|")
            if len(shown_value) > 80:
                shown_value = shown_value[:77] + "…"
            rows.append(f"| `{shown_key}` | `{shown_value}` |")
        first_key, first_value = changes[0]
        self.add(
            "",
            "## State changes and the state root",
            "",
            "Block 2 holds `job.claim_next` (which picks `job-1`, the oldest pending job of a model",
            "`gpu-1` serves) and `job.complete`:",
            "",
            *(f"- `{tx.type}` `{canonical(tx.payload).decode()[:120]}…`" for tx in block2.transactions),
            "",
            "Its net state changes, sorted by key (values abbreviated here; the root covers them whole):",
            "",
            *rows,
            "",
            "The state root's input is the previous block's `state_root` (32 bytes), then for each change",
            "in that order: the key's length (4 bytes, big-endian), the key, and either the value's",
            "length and the value or `ff ff ff ff` for a deletion. Its first change, in hex:",
            "",
            code(
                wrapped(
                    len(first_key).to_bytes(4, "big").hex()
                    + first_key.hex()
                    + (
                        "ffffffff"
                        if first_value is None
                        else len(first_value).to_bytes(4, "big").hex() + first_value.hex()
                    )
                )
            ),
            f"Previous root (block 1): `{block1.header.state_root}`",
            "",
            f"state_root of block 2 = BLAKE3(input) = `{state_root(block1.header.state_root, changes)}`",
            f"(the header says `{block2.header.state_root}`).",
            "",
        )

    def merkle(self, block1: Block) -> None:
        hashes = [tx.hash for tx in block1.transactions]
        leaves = [leaf_hash(h) for h in hashes]
        left, right = node_hash(leaves[0], leaves[1]), node_hash(leaves[2], leaves[3])
        path = inclusion_proof(hashes, 3)
        self.add(
            "## Merkle tree: tx_root and an inclusion proof",
            "",
            "Block 1 has four transactions. Leaves are `H(0x00 || tx hash)`, nodes `H(0x01 || left || right)`:",
            "",
            code(
                "\n".join(f"leaf {i}  {leaf.hex()}" for i, leaf in enumerate(leaves))
                + f"\nnode(0,1) {left.hex()}\nnode(2,3) {right.hex()}\nroot      {merkle_root(hashes).hex()}"
            ),
            f"The header's `tx_root`: `{block1.header.tx_root}`. The empty tree's root is BLAKE3 of no",
            f"bytes: `{hash_bytes(b'').hex()}`.",
            "",
            "The audit path of transaction 3 (the `job.submit`), leaf first:",
            "",
            code("\n".join(p.hex() for p in path)),
        )

    def receipt(self, receipt: dict[str, Any]) -> None:
        self.add(
            "## A receipt and the bytes its signature covers",
            "",
            "The receipt sealed in block 2's `job.complete`:",
            "",
            code(canonical(receipt).decode(), "json"),
            "Its signing bytes (no `signature`, no nulls, sorted keys, `,` `:`, ASCII-escaped):",
            "",
            code(signing_bytes(receipt).decode("ascii")),
            "`sig` is the Ed25519 signature of exactly those bytes, base64url without padding; in hex:",
            "",
            code(wrapped(base64.urlsafe_b64decode(receipt["signature"]["sig"] + "==").hex())),
        )

    def checkpoint(self, block1: Block, block2: Block) -> None:
        hashes = [self.block0.header.hash_bytes, block1.header.hash_bytes, block2.header.hash_bytes]
        root = merkle_root(hashes)
        origin = self.genesis.chain_id
        self.add(
            "## A checkpoint",
            "",
            "The block tree's leaves are the blocks' 32-byte hashes, block 0 first. At size 3:",
            "",
            code(f"root (hex)     {root.hex()}\nkey id (hex)   {note_key_hash(origin, AUTHORITY.public_key).hex()}"),
            "The signed text (three lines, each ending in a newline):",
            "",
            code(checkpoint_body(origin, 3, root).rstrip("\n")),
            "The whole note:",
            "",
            code(sign_checkpoint(origin, 3, root, AUTHORITY).rstrip("\n")),
        )


def render() -> str:
    return Example().build().rstrip("\n") + "\n"


def main(argv: list[str]) -> int:
    text = render()
    if argv == ["--check"]:
        if PAGE.read_text(encoding="utf-8") != text:
            print(f"{PAGE} is stale: run .venv/bin/python docs/gen_examples.py", file=sys.stderr)
            return 1
        return 0
    PAGE.parent.mkdir(parents=True, exist_ok=True)
    PAGE.write_text(text, encoding="utf-8")
    print(f"wrote {PAGE}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
