"""apk's ADB format: the real ``packages.adb`` of a 25.12 build, and the offline
upstream's signed indexes and v3 packages, tampered with in every way that matters."""

from __future__ import annotations

import importlib.util
import json
import struct
import sys
import zlib
from dataclasses import replace
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from asu.formats import adb, apk_index
from asu.formats.adb import AdbError, Dependency, PackageInfo
from asu.formats.apk_index import ApkKey, SignatureError
from offline_upstream import adb_writer

SAMPLE = Path(__file__).resolve().parents[2] / (
    "shared/openwrt-samples/builds/openwrt-25.12-r32802-x86_64-apk/packages/x86_64/base"
)
needs_sample = pytest.mark.skipif(
    not (SAMPLE / "packages.adb").is_file(),
    reason="the real 25.12 samples (../shared/openwrt-samples) are not here",
)

TEST_KEY = adb_writer.signing_key()
OTHER_KEY = adb_writer.SigningKey.from_seed(b"someone else")


def trusted(*keys) -> list[ApkKey]:
    return [ApkKey.from_text(key.public_pem()) for key in keys]


# -- the real packages.adb -----------------------------------------------------------


@needs_sample
def test_the_real_index_holds_every_package_of_its_index_json():
    index = apk_index.read_index((SAMPLE / "packages.adb").read_bytes(), keys=None)
    listed = json.loads((SAMPLE / "index.json").read_text())["packages"]
    read = {apk_index.plain_name(p): p.version for p in index.packages}
    assert len(index.packages) == len(listed) == 130
    assert read == listed
    assert index.pkgname_spec == "${name}-${version}.apk"


@needs_sample
def test_the_real_index_has_the_provides_index_json_lacks():
    index = apk_index.read_index((SAMPLE / "packages.adb").read_bytes(), keys=None)
    by_name = {p.name: p for p in index.packages}
    nftables = by_name["nftables-json"]
    assert Dependency("nftables", "1.1.6-r1") in nftables.provides
    assert Dependency("nftables-json-any") in nftables.provides
    assert nftables.filename() == "nftables-json-1.1.6-r1.apk"
    assert len(nftables.hashes) == 32  # the SHA-256 identity of the package
    libubox = by_name["libubox20260213"]
    assert "openwrt:abiversion=20260213" in libubox.tags
    assert libubox.provider_priority == 10
    assert "ucode>=2022.03.22" in [str(d) for d in by_name["firewall4"].depends]
    provides = [d for p in index.packages for d in p.provides]
    assert len(provides) == sum(len(p.provides) for p in index.packages) > 130


@needs_sample
def test_the_real_index_gives_the_names_apk_would_accept():
    index = apk_index.read_index((SAMPLE / "packages.adb").read_bytes(), keys=None)
    names = apk_index.package_index(index)
    assert names.packages["nftables-json"] == "1.1.6-r1"
    assert "nftables" in names.provides  # versioned provide: selectable
    assert names.versions["nftables"] == {"1.1.6-r1"}
    assert names.packages["libubox"] == "2026.03.13~81563384-r2"  # ABI name cut
    assert "libubox20260213" in names.provides
    assert "busybox-any" in names.provides  # busybox has a provider_priority
    assert names.virtual["nftables-json-any"] == {"nftables-json"}  # it has none


@needs_sample
def test_the_real_signature_is_by_a_key_nobody_published():
    """The sample's builder signed it with their own key, which is not published:
    the signature can only be shown not to be by a key we trust."""
    content = (SAMPLE / "packages.adb").read_bytes()
    container = adb.parse(content, adb.SCHEMA_INDEX)
    [signature] = container.signatures
    assert signature.hash_alg == adb.DIGEST_SHA512
    assert signature.key_id.hex() == "deaf232ca54052bc27975ecda720b9d8"
    with pytest.raises(SignatureError, match="no trusted key.*deaf232c"):
        apk_index.read_index(content, trusted(TEST_KEY))


# -- the offline upstream's indexes ----------------------------------------------------


def sample_packages() -> list[PackageInfo]:
    return [
        PackageInfo(
            "nftables-json",
            "1.1.6-r1",
            hashes=bytes(range(32)),
            arch="x86_64",
            depends=(Dependency("firewall", match=16), Dependency("libc")),
            provides=(Dependency("nft-any"), Dependency("nftables", "1.1.6-r1")),
            installed_size=799780,
        ),
        PackageInfo(
            "libubox20260213",
            "2026.03.13~81563384-r2",
            hashes=bytes(32),
            provider_priority=10,
            tags=("openwrt:abiversion=20260213",),
            provides=(Dependency("libubox"),),
        ),
    ]


def test_a_written_index_reads_back_the_same():
    content = adb_writer.index_file(sample_packages(), TEST_KEY)
    assert content[:4] == b"ADBd"
    index = apk_index.read_index(content, trusted(TEST_KEY))
    assert list(index.packages) == sorted(sample_packages(), key=lambda p: p.name)
    assert [str(d) for d in index.packages[1].depends] == ["!firewall", "libc"]


def _recompressed(content: bytes, change) -> bytes:
    raw = bytearray(adb.decompress(content))
    change(raw)
    return adb_writer.compress(bytes(raw))


def test_one_byte_changed_in_the_index_is_refused():
    content = adb_writer.index_file(sample_packages(), TEST_KEY)
    version = adb.decompress(content).find(b"1.1.6-r1")

    def forge(raw: bytearray) -> None:
        raw[version] = ord("9")

    forged = _recompressed(content, forge)
    assert apk_index.read_index(forged, None).packages[1].version == "9.1.6-r1"
    with pytest.raises(SignatureError, match="does not match"):
        apk_index.read_index(forged, trusted(TEST_KEY))


def test_an_index_signed_by_another_key_or_none_is_refused():
    other = adb_writer.index_file(sample_packages(), OTHER_KEY)
    with pytest.raises(SignatureError, match="no trusted key"):
        apk_index.read_index(other, trusted(TEST_KEY))
    assert apk_index.read_index(other, trusted(TEST_KEY, OTHER_KEY)).packages
    raw = adb_writer.container(adb.SCHEMA_INDEX, adb_writer.Builder().finish(0))
    with pytest.raises(SignatureError, match="not signed"):
        apk_index.read_index(raw, trusted(TEST_KEY))


def test_a_corrupt_file_is_a_clear_error():
    content = adb_writer.index_file(sample_packages(), TEST_KEY)
    for broken, message in [
        (b"", "not an ADB file"),
        (content[:40], "deflate"),
        (b"ADBc\x02\x00" + content[4:], "zstd"),
        (adb.decompress(content)[:30], "past the end"),
        (adb.MAGIC + b"pckg", "schema"),
    ]:
        with pytest.raises(AdbError, match=message):
            apk_index.read_index(broken, None)


def test_a_value_pointing_outside_the_block_is_an_error():
    builder = adb_writer.Builder()
    root = builder.obj({adb.NDX_PACKAGES: adb.TYPE_ARRAY << 28 | 0x0FFFFFF0})
    raw = adb_writer.container(adb.SCHEMA_INDEX, builder.finish(root))
    with pytest.raises(AdbError, match="past the end"):
        apk_index.read_index(raw, None)


class RsaSigningKey:
    """An RSA key signing as apk does, to check RSA-signed indexes."""

    def __init__(self) -> None:
        self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.pem = pem.decode()
        self.key_id = ApkKey.from_text(self.pem).key_id

    def sign(self, message: bytes) -> bytes:
        return self.private.sign(message, padding.PKCS1v15(), hashes.SHA512())


def test_an_index_signed_with_rsa_is_read():
    key = RsaSigningKey()
    adb_block = adb_writer.Builder().finish(0)
    block = adb_writer.signature_block(adb.SCHEMA_INDEX, adb_block, key)
    sig = struct.pack("<I", 1 << 30 | (4 + len(block))) + block
    sig += b"\0" * (-len(sig) % 8)
    raw = adb_writer.container(adb.SCHEMA_INDEX, adb_block) + sig
    assert apk_index.read_index(raw, [ApkKey.from_text(key.pem)]).packages == ()


def test_keys_are_pem_public_keys():
    assert apk_index.is_apk_key(TEST_KEY.public_pem())
    assert ApkKey.from_text(TEST_KEY.public_pem()).key_id == TEST_KEY.key_id
    usign_key = "RWS1BD5w+adc3j2Hqg9+b66CvLR7NlHbsj7wjNVj0XGt/othDgIAOJS+"
    assert not apk_index.is_apk_key(usign_key)
    broken = TEST_KEY.public_pem().replace("M", "*", 1)
    assert not apk_index.is_apk_key(broken)
    assert apk_index.load_keys([usign_key, TEST_KEY.public_pem()])[0].key_id


# -- packages ------------------------------------------------------------------------


def written_package() -> tuple[bytes, PackageInfo]:
    info = PackageInfo("htop", "3.4.1-r1", arch="x86_64", depends=(Dependency("libc"),))
    files = {"usr": None, "usr/bin": None, "usr/bin/htop": b"\x7fELF" + bytes(100)}
    package = adb_writer.package_file(info, files, {"post-install": "#!/bin/sh\n"})
    return package, replace(info, hashes=adb_writer.identity(package))


def test_a_package_is_checked_against_its_index_entry():
    package, entry = written_package()
    apk_index.check_package(package, entry)
    container = adb.parse(package, adb.SCHEMA_PACKAGE)
    read = adb.read_package(container)
    assert read.info.name == "htop"
    assert read.scripts == {"post-install": "#!/bin/sh\n"}
    [(file, content)] = list(adb.package_contents(container, read))
    assert (file.path, file.mode, content[:4]) == ("usr/bin/htop", 0o644, b"\x7fELF")
    assert ("usr/bin", 0o755) in read.directories


def test_a_package_that_is_not_what_the_index_says_is_refused():
    package, entry = written_package()
    with pytest.raises(SignatureError, match="does not match the index"):
        apk_index.check_package(package, replace(entry, hashes=bytes(32)))
    raw = adb.decompress(package)

    def flip_data(raw: bytearray) -> None:
        raw[-12] ^= 1  # inside the file's data block

    with pytest.raises(SignatureError, match="does not match its hash"):
        apk_index.check_package(_recompressed(package, flip_data), entry)
    with pytest.raises(SignatureError, match="not an ADB file"):
        apk_index.check_package(zlib.compress(raw), entry)


def test_a_pem_key_may_be_written_on_one_line_with_escaped_line_breaks():
    one_line = TEST_KEY.public_pem().replace("\n", "\\n")
    assert ApkKey.from_text(one_line).key_id == TEST_KEY.key_id


def _imagebuilder_apk_keys():
    """The pure-Python checker the offline ImageBuilder ships (no cryptography)."""
    path = Path(adb_writer.__file__).parent / "imagebuilder" / "apk_keys.py"
    spec = importlib.util.spec_from_file_location("apk_keys", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("apk_keys", module)  # dataclasses look the module up
    spec.loader.exec_module(sys.modules["apk_keys"])
    return sys.modules["apk_keys"]


def test_the_imagebuilder_checks_signatures_as_apk_does():
    apk_keys = _imagebuilder_apk_keys()
    rsa_key = RsaSigningKey()
    for signer, pem in ((TEST_KEY, TEST_KEY.public_pem()), (rsa_key, rsa_key.pem)):
        key = apk_keys.PublicKey.from_pem(pem)
        assert key.key_id == ApkKey.from_text(pem).key_id
        signature = signer.sign(b"the signed part of an index")
        assert key.verifies(b"the signed part of an index", signature)
        assert not key.verifies(b"the signed part of an indeX", signature)
        assert not key.verifies(b"the signed part of an index", signature[:-1])
    with pytest.raises(ValueError):
        apk_keys.PublicKey.from_pem("RWS1BD5w+adc3j2Hqg9+b66CvLR7NlHbsj7wjNVj0XGt")
