"""Signed notes, checkpoints and cosignatures against the specifications' own examples.

Vectors (read, not copied as code):
- c2sp.org/signed-note, section "Example" (C2SP/C2SP signed-note.md): a vkey and the note it verifies;
- golang.org/x/mod sumdb/note/note_test.go TestSign / TestOpen: the PeterNeumann private key and the
  exact signed note Go produces with it (Ed25519 is deterministic, so our bytes must be equal);
- transparency-dev/formats note/note_cosigv1_test.go: a native cosignature/v1 vkey
  (``remora.n621.de``, type 0x04) and a cosignature whose timestamp is 1727964367;
- c2sp.org/tlog-cosignature: the example cosignature line of ``witness.example.com/w1``.
"""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger.checkpoint import Checkpoint
from ledger.notes import (
    COSIGNATURE_V1,
    ED25519,
    Note,
    NoteError,
    Signature,
    VerifierKey,
    cosign,
    cosignature_time,
    parse_note,
    sign_note,
    verify_cosignature,
    verify_note,
)

C2SP_VKEY = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"
C2SP_NOTE = (
    "This is an example message.\n\n"
    "\u2014 example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n"  # noqa: E501 (a vector, verbatim)
)
GO_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
)
GO_SIGNED = (
    GO_TEXT + "\n\u2014 PeterNeumann "
    "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)
FORMATS_ED25519_VKEY = "TEST+7997405c+AQcC+FTVKf0jlTdHDY3rbevmnKxxPjigCXlVtGe6RIr6"  # "+" in its base64
REMORA_COSIG_VKEY = "remora.n621.de+da77ade7+BOvN63jn/bLvkieywe8R6UYAtVtNbZpXh34x7onlmtw2"
FORMATS_COSIGNATURE = (
    "ZGhGuQAAAABm/qTPeyKXD+R2rzyQsxPiP8mXum7qq/iF0u4vanlqJyocWODBt97w9uL+8qT7S5gxEHWWOworDcFiEBYJXORmnFBOBA=="
)
C2SP_CHECKPOINT = (
    "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n\n"
    "\u2014 example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n"  # noqa: E501 (a vector, verbatim)
    "\u2014 witness.example.com/w1 jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9dlrDJsX3b2oyin1nPZqhf5nNo0xUe+mbIUBkBIfZ+qnA==\n"  # noqa: E501 (a vector, verbatim)
)


def go_private_key() -> Ed25519PrivateKey:
    raw = base64.b64decode(GO_SKEY.split("+", 4)[4])
    assert raw[0] == ED25519
    return Ed25519PrivateKey.from_private_bytes(raw[1:])


def test_c2sp_signed_note_example_verifies_and_any_change_breaks_it() -> None:
    vkey = VerifierKey.parse(C2SP_VKEY)
    assert str(vkey) == C2SP_VKEY
    note = parse_note(C2SP_NOTE)
    assert note.text == "This is an example message.\n"
    verify_note(note, vkey)
    assert str(note) == C2SP_NOTE
    with pytest.raises(NoteError, match="does not verify"):
        verify_note(parse_note(C2SP_NOTE.replace("example message", "exampel message")), vkey)


def test_go_sumdb_signature_is_reproduced_byte_for_byte() -> None:
    key = go_private_key()
    vkey = VerifierKey("PeterNeumann", ED25519, key.public_key())
    assert str(vkey) == GO_VKEY  # the key hash c74f20a3 = SHA-256(name || 0x0A || 0x01 || pub)[:4]
    assert str(sign_note(Note(GO_TEXT), "PeterNeumann", key)) == GO_SIGNED
    verify_note(parse_note(GO_SIGNED), VerifierKey.parse(GO_VKEY))


def test_a_verifier_key_whose_base64_holds_a_plus_parses() -> None:
    vkey = VerifierKey.parse(FORMATS_ED25519_VKEY)
    assert (vkey.name, vkey.sig_type, str(vkey)) == ("TEST", ED25519, FORMATS_ED25519_VKEY)


def test_mangled_verifier_keys_are_refused() -> None:
    for bad in (
        GO_VKEY[:-1],
        GO_VKEY.replace("c74f20a3", "c74f20a4"),
        GO_VKEY.replace("PeterNeumann", "PeterNeuman"),
        "PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # unknown type (Go test)
        "bananas.sigstore.dev+12344556",
    ):
        with pytest.raises(NoteError):
            VerifierKey.parse(bad)


def test_cosignature_vectors_key_hash_and_timestamp() -> None:
    remora = VerifierKey.parse(REMORA_COSIG_VKEY)  # checks da77ade7 = SHA-256(name||0x0A||0x04||pub)[:4]
    assert remora.sig_type == COSIGNATURE_V1 and str(remora) == REMORA_COSIG_VKEY
    raw = base64.b64decode(FORMATS_COSIGNATURE)
    assert cosignature_time(Signature("w", raw[:4], raw[4:])) == 1727964367
    checkpoint, note = Checkpoint.from_note(C2SP_CHECKPOINT)
    assert (checkpoint.origin, checkpoint.size) == ("example.com/behind-the-sofa", 20852163)
    witness = next(s for s in note.signatures if s.name == "witness.example.com/w1")
    assert cosignature_time(witness) == 1679315147  # the spec's "time 1679315147" example


def test_cosign_round_trip_is_the_spec_message_and_rejects_changes() -> None:
    key = Ed25519PrivateKey.generate()
    note = Checkpoint(
        "example.com/behind-the-sofa",
        20852163,
        base64.b64decode("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I="),
    ).note()
    line = cosign(note, "witness.example.com/w1", key, 1679315147)
    key.public_key().verify(
        line.signature[8:],
        b"cosignature/v1\ntime 1679315147\n"
        b"example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",
    )
    vkey = VerifierKey("witness.example.com/w1", COSIGNATURE_V1, key.public_key())
    cosigned = parse_note(str(note.with_signature(line)))
    assert verify_cosignature(cosigned, vkey) == 1679315147
    forged = Note(cosigned.text.replace("20852163", "20852164"), cosigned.signatures)
    with pytest.raises(NoteError, match="does not verify"):
        verify_cosignature(forged, vkey)
    # A plain note signature by the same key and name is not a cosignature (different key ID).
    with pytest.raises(NoteError, match="no cosignature"):
        verify_cosignature(sign_note(note, "witness.example.com/w1", key), vkey)


@pytest.mark.parametrize(
    "text",
    [
        "origin\n01\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",
        "origin\n1\nCsUYapGG\n",
        "\n1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",
        "origin\n-1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",
        "origin\n1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\next\n",
    ],
)
def test_malformed_checkpoints_are_refused(text: str) -> None:
    with pytest.raises(NoteError):
        Checkpoint.from_text(text)


def test_malformed_notes_are_refused() -> None:
    no_dash, control = GO_SIGNED.replace("\u2014", "-"), GO_SIGNED.replace("\n\n", "\n\x01\n")
    for bad in (GO_TEXT, no_dash, control, GO_TEXT + "\n"):
        with pytest.raises(NoteError):
            parse_note(bad)
