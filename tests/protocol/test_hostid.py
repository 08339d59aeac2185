"""Host IDs: 65 bits of the key hash, typeable, and every malformed input is one ValueError."""

from __future__ import annotations

import hashlib
import re

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given, settings
from hypothesis import strategies as st

from rdesk.protocol.hostid import ALPHABET, ID_SYMBOLS, MAX_ID_INPUT, host_id, parse_host_id

SHAPE = re.compile(r"^[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{5}$")


def reference_id(data: bytes) -> str:
    """The ID computed another way: as a string of bits, five at a time."""
    bits = "".join(f"{b:08b}" for b in hashlib.sha256(data).digest())[:65]
    symbols = "".join(ALPHABET[int(bits[i : i + 5], 2)] for i in range(0, 65, 5))
    return f"{symbols[:4]}-{symbols[4:8]}-{symbols[8:]}"


def test_alphabet_is_32_distinct_unambiguous_symbols() -> None:
    assert len(ALPHABET) == len(set(ALPHABET)) == 32
    assert not set(ALPHABET) & set("OILU")


def test_known_values() -> None:
    # SHA-256("") starts e3 b0 c4 42 98 fc 1c 14 9a: 11100 01110 11000 ... = W E R ...
    assert host_id(b"") == reference_id(b"") == "WERC-8GMR-ZGE19"
    assert host_id(b"abc") == reference_id(b"abc") == "Q9W1-DFWF-077YM"


def test_real_key() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    spki = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    ident = host_id(spki)
    assert SHAPE.match(ident)
    assert ident == reference_id(spki)
    assert parse_host_id(ident) == ident


@given(st.binary(max_size=200))
@settings(max_examples=300, deadline=None)
def test_round_trip(data: bytes) -> None:
    ident = host_id(data)
    assert SHAPE.match(ident)
    assert ident == reference_id(data)
    assert parse_host_id(ident) == ident
    assert parse_host_id(ident.lower()) == ident
    assert parse_host_id(ident.replace("-", "")) == ident
    assert parse_host_id(" " + ident.replace("-", " ") + " ") == ident


@given(st.binary(max_size=64), st.data())
@settings(max_examples=200, deadline=None)
def test_confusable_symbols_read_as_one(data: bytes, draw: st.DataObject) -> None:
    ident = host_id(data)
    typed = "".join(
        draw.draw(st.sampled_from({"0": "0oO", "1": "1iIlL"}.get(c, c + c.lower())))
        for c in ident
    )
    assert parse_host_id(typed) == ident


def test_changing_one_bit_of_the_key_changes_the_id() -> None:
    assert host_id(b"key-a") != host_id(b"key-b")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "13 symbols, not 0"),
        ("ABCD-EFGH-JKMN", "13 symbols, not 12"),
        ("ABCD-EFGH-JKMNPQ", "13 symbols, not 14"),
        ("ABCD-EFGH-JKMNU", "'U' is not a host ID symbol"),
        ("ABCD_EFGH_JKMNP", "'_' is not a host ID symbol"),
        ("ABCD-EFGH-JKMN\x00", "0x00 is not a host ID symbol"),
        ("ABCD-EFGH-JKMNı", "only letters, digits"),
        ("A" * (MAX_ID_INPUT + 1), "too long"),
    ],
)
def test_malformed(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=re.escape(reason)):
        parse_host_id(text)


def test_not_text() -> None:
    with pytest.raises(ValueError, match="must be text"):
        parse_host_id(b"ABCD-EFGH-JKMNP")  # type: ignore[arg-type]


def _is_valid(text: str) -> bool:
    if len(text) > MAX_ID_INPUT or not text.isascii():
        return False
    kept = [c for c in text.upper() if c not in " -\t"]
    return len(kept) == ID_SYMBOLS and all(c in ALPHABET + "OIL" for c in kept)


@given(st.one_of(st.text(max_size=80), st.text(alphabet=ALPHABET + "oilu -_\t\n", max_size=20)))
@settings(max_examples=500, deadline=None)
def test_any_text_parses_or_is_one_line_value_error(text: str) -> None:
    try:
        ident = parse_host_id(text)
    except ValueError as exc:
        message = str(exc)
        assert message and "\n" not in message and len(message) < 120
        assert not _is_valid(text)
    else:
        assert _is_valid(text)
        assert SHAPE.match(ident)
        assert parse_host_id(ident) == ident
