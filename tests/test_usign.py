"""Tests of asu.formats.usign against OpenWrt's real keys and signatures and our
own keys.

The data in ``data/usign`` is real: the x86_64 ``packages`` feed index of the 24.10.4
release as OpenWrt published it (its signature covers the uncompressed ``Packages``)
and OpenWrt's 24.10 and 23.05 release keys.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import multiprocessing
import stat
from pathlib import Path

import pytest

from asu.formats.usign import (
    PublicKey,
    SecretKey,
    Signature,
    UsignError,
    load_or_create_secret_key,
    verify,
)

DATA = Path(__file__).parent / "data" / "usign"
KEY_24_10 = "d310c6f2833e97f7"
KEY_23_05 = "b5043e70f9a75cde"

# RFC 8032, section 7.1, TEST 1: a seed, its public key and its signature of b"".
RFC8032_SEED = bytes.fromhex(
    "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"
)
RFC8032_PUBLIC = bytes.fromhex(
    "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
)
RFC8032_SIGNATURE = bytes.fromhex(
    "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
    "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
)


@pytest.fixture(scope="module")
def packages() -> bytes:
    return gzip.decompress((DATA / "Packages.gz").read_bytes())


@pytest.fixture(scope="module")
def packages_sig() -> str:
    return (DATA / "Packages.sig").read_text()


@pytest.fixture(scope="module")
def key_24_10() -> str:
    return (DATA / KEY_24_10).read_text()


@pytest.fixture(scope="module")
def key_23_05() -> str:
    return (DATA / KEY_23_05).read_text()


def _payload(text: str) -> bytes:
    """The decoded base64 line of a usign file."""
    return base64.b64decode(text.splitlines()[1])


def _with_payload(text: str, payload: bytes) -> str:
    """``text`` with its base64 line replaced by ``payload``."""
    comment = text.splitlines()[0]
    return f"{comment}\n{base64.b64encode(payload).decode()}\n"


# The real OpenWrt feed index


def test_real_feed_verifies_with_openwrt_24_10_key(
    packages: bytes, packages_sig: str, key_24_10: str, key_23_05: str
) -> None:
    key = verify(packages, packages_sig, [key_23_05, key_24_10])
    assert key.key_id_hex == KEY_24_10
    assert key == PublicKey.from_text(key_24_10)


def test_real_feed_accepts_parsed_public_keys(
    packages: bytes, packages_sig: str, key_24_10: str
) -> None:
    trusted = PublicKey.from_text(key_24_10)
    assert verify(packages, packages_sig, [trusted]) is trusted


def test_real_key_ids_match_their_file_names(key_24_10: str, key_23_05: str) -> None:
    assert PublicKey.from_text(key_24_10).key_id_hex == KEY_24_10
    assert PublicKey.from_text(key_23_05).key_id_hex == KEY_23_05


def test_real_signature_parses_with_its_key_id(packages_sig: str) -> None:
    signature = Signature.from_text(packages_sig)
    assert signature.key_id_hex == KEY_24_10
    assert len(signature.sig) == 64
    assert signature.to_text(comment="verify with usign.pub") == packages_sig


def test_real_feed_refused_under_other_key(
    packages: bytes, packages_sig: str, key_23_05: str
) -> None:
    with pytest.raises(UsignError, match=f"by key {KEY_24_10}, which is not trusted"):
        verify(packages, packages_sig, [key_23_05])


def test_refused_without_trusted_keys(packages: bytes, packages_sig: str) -> None:
    with pytest.raises(UsignError, match="not trusted"):
        verify(packages, packages_sig, [])


def test_real_feed_refused_when_one_byte_changes(
    packages: bytes, packages_sig: str, key_24_10: str
) -> None:
    middle = len(packages) // 2
    tampered = (
        packages[:middle] + bytes([packages[middle] ^ 1]) + packages[middle + 1 :]
    )
    with pytest.raises(UsignError, match="signature does not match the data"):
        verify(tampered, packages_sig, [key_24_10])


def test_compressed_index_is_not_what_is_signed(
    packages_sig: str, key_24_10: str
) -> None:
    with pytest.raises(UsignError, match="does not match"):
        verify((DATA / "Packages.gz").read_bytes(), packages_sig, [key_24_10])


@pytest.mark.parametrize(
    "mangle",
    [
        pytest.param(lambda sig: "", id="empty"),
        pytest.param(lambda sig: sig.splitlines()[0], id="comment-only"),
        pytest.param(lambda sig: "untrusted comment: x\nnot base64!\n", id="garbage"),
        pytest.param(lambda sig: sig[:-20], id="truncated"),
        pytest.param(lambda sig: sig + sig.splitlines()[1], id="two-lines"),
        pytest.param(
            lambda sig: _with_payload(sig, b"XX" + _payload(sig)[2:]), id="not-ed25519"
        ),
        pytest.param(
            lambda sig: _with_payload(sig, _payload(sig)[:-1]), id="short-signature"
        ),
    ],
)
def test_malformed_signature_refused(
    mangle, packages: bytes, packages_sig: str, key_24_10: str
) -> None:
    with pytest.raises(UsignError, match="malformed signature"):
        verify(packages, mangle(packages_sig), [key_24_10])


def test_trusted_key_with_same_id_but_other_key_does_not_verify(
    packages: bytes, packages_sig: str, key_24_10: str
) -> None:
    impostor = PublicKey(
        key_id=bytes.fromhex(KEY_24_10), key=SecretKey.generate().public_key.key
    )
    with pytest.raises(UsignError, match="does not match"):
        verify(packages, packages_sig, [impostor])


# Public key text


def test_public_key_accepts_bare_base64_line_and_whitespace(key_24_10: str) -> None:
    bare = key_24_10.splitlines()[1]
    assert PublicKey.from_text(f"  \n{bare}\n\n") == PublicKey.from_text(key_24_10)
    assert PublicKey.from_text(f"\n\n{key_24_10}  \n") == PublicKey.from_text(key_24_10)


def test_public_key_text_round_trip(key_24_10: str) -> None:
    key = PublicKey.from_text(key_24_10)
    comment = "Public usign key for 24.10 release builds"
    assert key.to_text(comment=comment) == key_24_10
    assert key.to_text() == f"untrusted comment: public key {KEY_24_10}\n" + (
        key_24_10.splitlines()[1] + "\n"
    )


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("", id="empty"),
        pytest.param("untrusted comment: only a comment\n", id="comment-only"),
        pytest.param("RWTTEMbygz6X95lKDAulctZy3aj1", id="truncated"),
        pytest.param("untrusted comment: x\n%%%%\n", id="not-base64"),
    ],
)
def test_malformed_public_key_refused(text: str) -> None:
    with pytest.raises(UsignError, match="malformed public key"):
        PublicKey.from_text(text)


def test_signature_is_not_a_public_key(packages_sig: str) -> None:
    with pytest.raises(UsignError, match="malformed public key: 74 bytes"):
        PublicKey.from_text(packages_sig)


def test_malformed_trusted_key_refused(packages: bytes, packages_sig: str) -> None:
    with pytest.raises(UsignError, match="malformed public key"):
        verify(packages, packages_sig, ["untrusted comment: broken\nRWTT\n"])


def test_comment_must_fit_on_one_line(key_24_10: str) -> None:
    with pytest.raises(ValueError, match="one line"):
        PublicKey.from_text(key_24_10).to_text(comment="two\nlines")


def test_fields_must_have_their_sizes() -> None:
    with pytest.raises(ValueError, match="key_id must be 8 bytes"):
        PublicKey(key_id=b"1234", key=bytes(32))
    with pytest.raises(ValueError, match="sig must be 64 bytes"):
        Signature(key_id=bytes(8), sig=bytes(32))
    with pytest.raises(ValueError, match="seed must be 32 bytes"):
        SecretKey.from_seed(bytes(31))


# Our own keys


def test_generate_sign_verify() -> None:
    key = SecretKey.generate()
    signature = key.sign(b"firmware image")
    assert verify(b"firmware image", signature, [key.public_key]) == key.public_key
    with pytest.raises(UsignError, match="does not match"):
        verify(b"firmware imagE", signature, [key.public_key])


def test_generated_keys_differ() -> None:
    first, second = SecretKey.generate(), SecretKey.generate()
    assert first.seed != second.seed
    assert first.public_key != second.public_key


def test_signature_text_format() -> None:
    key = SecretKey.from_seed(RFC8032_SEED)
    text = key.sign(b"data")
    comment, line = text.splitlines()
    assert comment == f"untrusted comment: signed by key {key.public_key.key_id_hex}"
    assert text == f"{comment}\n{line}\n"
    payload = base64.b64decode(line)
    assert payload[:2] == b"Ed"
    assert payload[2:10] == key.key_id
    assert key.sign(b"data", comment="mine").startswith("untrusted comment: mine\n")


def test_signature_text_round_trip() -> None:
    text = SecretKey.generate().sign(b"data", comment="a comment")
    assert Signature.from_text(text).to_text(comment="a comment") == text


def test_from_seed_matches_rfc8032_test_vector() -> None:
    key = SecretKey.from_seed(RFC8032_SEED)
    assert key.public_key.key == RFC8032_PUBLIC
    assert Signature.from_text(key.sign(b"")).sig == RFC8032_SIGNATURE


def test_from_seed_is_deterministic() -> None:
    first, again = SecretKey.from_seed(bytes(32)), SecretKey.from_seed(bytes(32))
    assert first == again
    assert first.to_text() == again.to_text()
    assert first.sign(b"data") == again.sign(b"data")
    other = SecretKey.from_seed(bytes(31) + b"\1")
    assert other.key_id != first.key_id
    assert other.public_key.key != first.public_key.key


def test_secret_key_text_round_trip() -> None:
    key = SecretKey.generate()
    text = key.to_text()
    assert text.startswith(f"untrusted comment: secret key {key.key_id.hex()}\n")
    assert SecretKey.from_text(text) == key
    assert SecretKey.from_text(text.splitlines()[1]) == key


def test_secret_key_layout() -> None:
    key = SecretKey.from_seed(RFC8032_SEED)
    payload = _payload(key.to_text())
    assert len(payload) == 104
    assert payload[0:4] == b"EdBK"
    assert int.from_bytes(payload[4:8], "big") == 0
    secret = RFC8032_SEED + RFC8032_PUBLIC
    assert payload[24:32] == hashlib.sha512(secret).digest()[:8]
    assert payload[32:40] == key.key_id
    assert payload[40:] == secret


def test_repr_does_not_show_the_seed() -> None:
    key = SecretKey.from_seed(RFC8032_SEED)
    assert RFC8032_SEED.hex() not in repr(key)
    assert repr(RFC8032_SEED) not in repr(key)


@pytest.mark.parametrize("offset", [24, 40, 71, 72, 103], ids=lambda o: f"byte{o}")
def test_corrupted_secret_key_refused(offset: int) -> None:
    text = SecretKey.generate().to_text()
    payload = bytearray(_payload(text))
    payload[offset] ^= 0x40
    with pytest.raises(UsignError, match="malformed secret key: checksum"):
        SecretKey.from_text(_with_payload(text, bytes(payload)))


def test_secret_key_with_foreign_public_half_refused() -> None:
    text = SecretKey.generate().to_text()
    payload = _payload(text)
    secret = payload[40:72] + SecretKey.generate().public_key.key
    forged = (
        payload[:24] + hashlib.sha512(secret).digest()[:8] + payload[32:40] + secret
    )
    with pytest.raises(UsignError, match="public half does not match"):
        SecretKey.from_text(_with_payload(text, forged))


def test_encrypted_secret_key_refused() -> None:
    text = SecretKey.generate().to_text()
    payload = _payload(text)
    encrypted = payload[:4] + (64).to_bytes(4, "big") + payload[8:]
    with pytest.raises(UsignError, match=r"encrypted \(64 kdf rounds\)"):
        SecretKey.from_text(_with_payload(text, encrypted))


def test_public_key_is_not_a_secret_key(key_24_10: str) -> None:
    with pytest.raises(UsignError, match="malformed secret key"):
        SecretKey.from_text(key_24_10)


# load_or_create_secret_key


def test_load_or_create_creates_once_then_reuses(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "secret.key"
    created = load_or_create_secret_key(path)
    assert SecretKey.from_text(path.read_text()) == created
    assert load_or_create_secret_key(path) == created
    assert sorted(p.name for p in path.parent.iterdir()) == [
        "secret.key",
        "secret.key.pub",
    ]


def test_load_or_create_writes_secret_key_private(tmp_path: Path) -> None:
    path = tmp_path / "secret.key"
    load_or_create_secret_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_public_key_file_verifies_signatures(tmp_path: Path) -> None:
    path = tmp_path / "secret.key"
    key = load_or_create_secret_key(path)
    public_text = (tmp_path / "secret.key.pub").read_text()
    signature = key.sign(b"sysupgrade image")
    assert verify(b"sysupgrade image", signature, [public_text]) == key.public_key


def test_load_or_create_reads_an_existing_key(tmp_path: Path) -> None:
    path = tmp_path / "secret.key"
    existing = SecretKey.from_seed(RFC8032_SEED)
    path.write_text(existing.to_text())
    assert load_or_create_secret_key(path) == existing
    public = PublicKey.from_text((tmp_path / "secret.key.pub").read_text())
    assert public == existing.public_key


def test_load_or_create_replaces_a_stale_public_key(tmp_path: Path) -> None:
    path = tmp_path / "secret.key"
    pub = tmp_path / "secret.key.pub"
    key = load_or_create_secret_key(path)
    pub.write_text(SecretKey.generate().public_key.to_text())
    load_or_create_secret_key(path)
    assert PublicKey.from_text(pub.read_text()) == key.public_key
    pub.unlink()
    load_or_create_secret_key(path)
    assert PublicKey.from_text(pub.read_text()) == key.public_key


def test_load_or_create_refuses_a_corrupted_key(tmp_path: Path) -> None:
    path = tmp_path / "secret.key"
    path.write_text("untrusted comment: x\nRWRCSw==\n")
    with pytest.raises(UsignError, match="malformed secret key"):
        load_or_create_secret_key(path)
    assert path.read_text() == "untrusted comment: x\nRWRCSw==\n"


def _race_for_key(path: Path, barrier, results) -> None:
    """Start at the same moment as the other processes, report the key we got."""
    barrier.wait()
    key = load_or_create_secret_key(path)
    results.put(key.to_text())


def test_concurrent_first_start_ends_with_one_key(tmp_path: Path) -> None:
    path = tmp_path / "secret.key"
    context = multiprocessing.get_context("spawn")
    count = 6
    barrier = context.Barrier(count)
    results = context.Queue()
    processes = [
        context.Process(target=_race_for_key, args=(path, barrier, results))
        for _ in range(count)
    ]
    for process in processes:
        process.start()
    texts = {results.get(timeout=60) for _ in processes}
    for process in processes:
        process.join(timeout=60)
        assert process.exitcode == 0
    assert texts == {path.read_text()}
    key = SecretKey.from_text(path.read_text())
    pub = PublicKey.from_text((tmp_path / "secret.key.pub").read_text())
    assert pub == key.public_key
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "secret.key",
        "secret.key.pub",
    ]
