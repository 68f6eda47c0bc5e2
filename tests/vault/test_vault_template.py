"""Template format v1: every way a blob can be wrong fails with the one opaque error."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from vault_helpers import PACK, Where, consent_for, matches, raw_sql, unit

from faceverify._errors import InvalidTemplateError
from faceverify._vault import FORMAT_VERSION, Vault, needs_reenroll, read_header
from faceverify._vault._template import open_template

OPAQUE = "template could not be opened"


def _row(vault: Vault, subject: str) -> tuple[bytes, str]:
    row = vault.store.get(subject)
    assert row is not None and row.blob is not None and row.consent_json is not None
    return row.blob, row.consent_json


def _set_blob(where: Where, subject: str, blob: bytes) -> None:
    raw_sql(where, "UPDATE subjects SET blob=? WHERE subject_id=?", (blob, subject))


def test_round_trip_and_self_describing_header(vault: Vault) -> None:
    embeddings = np.stack([unit(1), unit(2), unit(3)])
    header = vault.enroll("alice", embeddings, consent=consent_for("alice"), model_pack_id=PACK)
    blob, _ = _row(vault, "alice")
    described = read_header(blob)
    assert described == header
    assert (described.format_version, described.embedding_dim, described.embedding_count) == (
        FORMAT_VERSION,
        128,
        3,
    )
    assert described.model_pack_id == PACK and described.subject_id == "alice"
    assert embeddings.tobytes() not in blob and unit(1).tobytes()[:16] not in blob
    assert matches(vault, "alice", unit(2))
    assert not matches(vault, "alice", unit(99))


def test_every_flipped_byte_fails_opaquely(vault: Vault) -> None:
    vault.enroll("alice", unit(1), consent=consent_for("alice"), model_pack_id=PACK)
    blob, _ = _row(vault, "alice")
    header = read_header(blob)
    key = vault.keys.get("alice", header.key_id)
    digest = consent_for("alice").digest()
    open_template(blob, key, subject_id="alice", consent_sha256=digest)  # the original opens
    for i in range(len(blob)):
        flipped = bytearray(blob)
        flipped[i] ^= 0x01
        with pytest.raises(InvalidTemplateError) as info:
            open_template(bytes(flipped), key, subject_id="alice", consent_sha256=digest)
        assert str(info.value) == OPAQUE


def test_flipped_byte_in_store_refuses_verification(vault: Vault, where: Where) -> None:
    vault.enroll("alice", unit(1), consent=consent_for("alice"), model_pack_id=PACK)
    blob, _ = _row(vault, "alice")
    flipped = bytearray(blob)
    flipped[-20] ^= 0x80
    _set_blob(where, "alice", bytes(flipped))
    with pytest.raises(InvalidTemplateError, match=f"^{OPAQUE}$"):
        matches(vault, "alice", unit(1))


@pytest.mark.parametrize("keep", [0, 5, 9, 40, -17, -1])
def test_truncated_blob(vault: Vault, where: Where, keep: int) -> None:
    vault.enroll("alice", unit(1), consent=consent_for("alice"), model_pack_id=PACK)
    blob, _ = _row(vault, "alice")
    _set_blob(where, "alice", blob[:keep])
    with pytest.raises(InvalidTemplateError, match=f"^{OPAQUE}$"):
        matches(vault, "alice", unit(1))


def test_template_swapped_between_subjects(vault: Vault, where: Where) -> None:
    vault.enroll("alice", unit(1), consent=consent_for("alice"), model_pack_id=PACK)
    vault.enroll("bob", unit(2), consent=consent_for("bob"), model_pack_id=PACK)
    alice_blob, _ = _row(vault, "alice")
    _set_blob(where, "bob", alice_blob)  # an attacker with DB access makes Alice's face answer for Bob
    with pytest.raises(InvalidTemplateError, match=f"^{OPAQUE}$"):
        matches(vault, "bob", unit(1))
    # ... even if the attacker also moves Bob's key id into place: the header names Alice.
    key = vault.keys.get("alice", read_header(alice_blob).key_id)
    with pytest.raises(InvalidTemplateError, match=f"^{OPAQUE}$"):
        open_template(alice_blob, key, subject_id="bob", consent_sha256=consent_for("bob").digest())


def test_consent_swapped_breaks_the_binding(vault: Vault, where: Where) -> None:
    vault.enroll("alice", unit(1), consent=consent_for("alice", days=30), model_pack_id=PACK)
    longer = consent_for("alice", days=3000).to_json()
    raw_sql(where, "UPDATE subjects SET consent_json=? WHERE subject_id='alice'", (longer,))
    with pytest.raises(InvalidTemplateError, match=f"^{OPAQUE}$"):
        matches(vault, "alice", unit(1))


def test_wrong_or_missing_data_key(vault: Vault) -> None:
    vault.enroll("alice", unit(1), consent=consent_for("alice"), model_pack_id=PACK)
    blob, _ = _row(vault, "alice")
    digest = consent_for("alice").digest()
    for key in (None, b"\x00" * 32):
        with pytest.raises(InvalidTemplateError, match=f"^{OPAQUE}$"):
            open_template(blob, key, subject_id="alice", consent_sha256=digest)


def test_needs_reenroll_compares_recorded_parameters(vault: Vault, tmp_path: Path) -> None:
    vault.enroll("alice", unit(1), consent=consent_for("alice"), model_pack_id=PACK)
    header = read_header(_row(vault, "alice")[0])
    assert not needs_reenroll(header, PACK)
    assert needs_reenroll(header, "another-pack")
    assert vault.needs_reenroll("alice", "another-pack") and not vault.needs_reenroll("alice", PACK)


@pytest.mark.parametrize("count", [0, 6])
def test_one_to_five_embeddings(vault: Vault, count: int) -> None:
    with pytest.raises(ValueError, match="1 to 5"):
        vault.enroll(
            "alice", np.zeros((count, 128), np.float32), consent=consent_for("alice"), model_pack_id=PACK
        )


def test_garbage_is_not_a_header() -> None:
    for blob in (b"", b"FVTP", b"FVTP\x01\x00\x00\x00\x02{}", b"\x00" * 100):
        with pytest.raises(InvalidTemplateError, match=f"^{OPAQUE}$"):
            read_header(blob)
