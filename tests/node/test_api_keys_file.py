"""--api-keys files: what a provisioned key must be, since its hash becomes public."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import pytest

from node.datadir import MIN_KEY_BITS, DataDirError, key_strength_bits, load_api_keys


def keys_file(tmp_path: Path, key: str) -> Path:
    path = tmp_path / "keys.json"
    path.write_text(json.dumps([{"key": key, "role": "client", "name": "alice"}]))
    return path


@pytest.mark.parametrize("key", [secrets.token_hex(16), secrets.token_urlsafe(16), "client-a-key-0000000000000000"])
def test_keys_of_128_bits_or_more_are_provisioned(tmp_path: Path, key: str) -> None:
    assert key_strength_bits(key) >= MIN_KEY_BITS
    (provisioned,) = load_api_keys(keys_file(tmp_path, key))
    assert provisioned.name == "alice" and key not in repr(provisioned)


@pytest.mark.parametrize(
    "key", ["a" * 40, "passwordpassword1234", "abcdefghijklmnopqrst", secrets.token_hex(12), "0123456789" * 3]
)
def test_guessable_keys_are_refused_naming_the_strength_needed(tmp_path: Path, key: str) -> None:
    with pytest.raises(DataDirError, match="too easy to guess") as refused:
        load_api_keys(keys_file(tmp_path, key))
    assert "128" in str(refused.value) and key not in str(refused.value)
