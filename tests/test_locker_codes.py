"""Pickup codes: generation, keyed hashing, constant-time checking, input validation, secrets."""

from __future__ import annotations

import hmac
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings, strategies as st

from hubagent.errors import ConfigError, InputError
from hubagent.lockers import codes
from hubagent.lockers.codes import generate_code, hash_code, load_secret, normalise_code, verify

SECRET = bytes(range(32))
OTHER_SECRET = bytes(range(1, 33))


def test_generated_codes_are_digits_of_the_asked_length() -> None:
    batch = {generate_code() for _ in range(200)}
    assert all(len(c) == 6 and c.isascii() and c.isdigit() for c in batch)
    assert len(batch) > 190  # random, not a counter or a constant
    assert len(generate_code(8)) == 8
    with pytest.raises(ValueError):
        generate_code(2)


def test_hash_verifies_only_the_right_code_secret_and_purpose() -> None:
    stored = hash_code(SECRET, "123456", "pickup")
    assert len(stored) == 64 and int(stored, 16) >= 0
    assert "123456" not in stored
    assert verify(SECRET, "123456", "pickup", stored)
    assert verify(SECRET, "123 456", "pickup", stored)  # typed as printed in the SMS
    assert not verify(SECRET, "123457", "pickup", stored)
    assert not verify(SECRET, "123456", "staff", stored)  # a pickup code is no staff code
    assert not verify(SECRET, "123456", "return", stored)
    assert not verify(OTHER_SECRET, "123456", "pickup", stored)
    assert hash_code(SECRET, "123456", "staff") != stored


def test_verify_compares_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    compared: list[tuple[Any, Any]] = []
    real = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(codes.hmac, "compare_digest", spy)
    stored = hash_code(SECRET, "654321", "pickup")
    assert verify(SECRET, "654321", "pickup", stored)
    assert not verify(SECRET, "000000", "pickup", stored)
    assert not verify(SECRET, "abc", "pickup", stored)  # malformed guesses take the same path
    assert [b for _, b in compared] == [stored, stored, stored]


@pytest.mark.parametrize("raw", ["", "   ", "12a456", "12345\n6", "١٢٣٤٥٦", "１２３４５６", "123", "1" * 13, "12_456"])
def test_bad_codes_are_input_errors(raw: str) -> None:
    with pytest.raises(InputError) as err:
        normalise_code(raw)
    assert err.value.code == "bad_code" and err.value.message
    assert not verify(SECRET, raw, "pickup", hash_code(SECRET, "123456", "pickup"))


@pytest.mark.parametrize("raw", [None, 123456, b"123456"])
def test_non_text_codes_are_input_errors(raw: Any) -> None:
    with pytest.raises(InputError, match="bad_code"):
        normalise_code(raw)
    assert not verify(SECRET, raw, "pickup", hash_code(SECRET, "123456", "pickup"))


def test_normalise_strips_grouping() -> None:
    assert normalise_code(" 123-456 ") == "123456"
    assert normalise_code("1234", min_length=4) == "1234"
    with pytest.raises(InputError):
        normalise_code("12345", max_length=4)


def test_hash_code_wants_a_normalised_code_and_sound_arguments() -> None:
    with pytest.raises(InputError, match="normalise"):
        hash_code(SECRET, "123 456", "pickup")
    with pytest.raises(InputError, match="bad_code"):
        hash_code(SECRET, "12x456", "pickup")
    with pytest.raises(ValueError, match="secret"):
        hash_code(b"short", "123456", "pickup")
    with pytest.raises(ValueError, match="purpose"):
        hash_code(SECRET, "123456", "Pick Up")


@pytest.mark.parametrize("stored", ["", "zz" * 32, "A" * 64, "0" * 63, "é" * 64])
def test_malformed_stored_hash_never_verifies(stored: str) -> None:
    assert verify(SECRET, "123456", "pickup", stored) is False


@settings(max_examples=60, deadline=None)
@given(code=st.text(alphabet="0123456789", min_size=4, max_size=12),
       other=st.text(alphabet="0123456789", min_size=4, max_size=12))
def test_roundtrip_property(code: str, other: str) -> None:
    stored = hash_code(SECRET, code, "pickup")
    assert verify(SECRET, code, "pickup", stored)
    assert verify(SECRET, other, "pickup", stored) == (other == code)


# -- the secret ------------------------------------------------------------


def test_secret_from_systemd_credentials(tmp_path: Path) -> None:
    (tmp_path / "hubagent-code-secret").write_text(SECRET.hex() + "\n")
    env = {"CREDENTIALS_DIRECTORY": str(tmp_path), "HUBAGENT_CODE_SECRET": OTHER_SECRET.hex()}
    assert load_secret(environ=env) == SECRET  # the credential wins over the variable


def test_secret_from_environment(tmp_path: Path) -> None:
    assert load_secret(environ={"HUBAGENT_CODE_SECRET": OTHER_SECRET.hex()}) == OTHER_SECRET
    with pytest.raises(ConfigError, match="hex"):
        load_secret(environ={"HUBAGENT_CODE_SECRET": "not hex at all"})
    with pytest.raises(ConfigError, match="at least 32 hex"):
        load_secret(environ={"HUBAGENT_CODE_SECRET": "abcd"})


def test_secret_created_once_in_a_private_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no code secret"):
        load_secret(state_dir=tmp_path, environ={})
    created = load_secret(state_dir=tmp_path, create=True, environ={})
    path = tmp_path / "hubagent-code-secret"
    assert len(created) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_secret(state_dir=tmp_path, create=True, environ={}) == created  # never regenerated
    os.chmod(path, 0o644)
    with pytest.raises(ConfigError, match="readable by others"):
        load_secret(state_dir=tmp_path, environ={})


def test_no_secret_anywhere_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="no code secret"):
        load_secret(environ={})
