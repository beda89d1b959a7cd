"""Temporal payload encryption: AES-256-GCM, key id in the payload metadata so keys can rotate."""

from __future__ import annotations

import base64
import os
from collections.abc import Sequence

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec

ENCODING = b"binary/encrypted"
KEY_ID = "encryption-key-id"


def parse_keys(spec: str) -> dict[str, bytes]:
    """'kid=base64key,kid2=base64key' -> {kid: key}."""
    keys: dict[str, bytes] = {}
    for item in filter(None, (s.strip() for s in spec.split(","))):
        kid, _, b64 = item.partition("=")
        key = base64.b64decode(b64)
        if len(key) != 32:
            raise ValueError(f"codec key {kid!r} must be 32 bytes")
        keys[kid] = key
    return keys


def new_key_spec(kid: str) -> str:
    return f"{kid}={base64.b64encode(AESGCM.generate_key(bit_length=256)).decode()}"


class EncryptionCodec(PayloadCodec):
    def __init__(self, keys: dict[str, bytes], active_key_id: str) -> None:
        if active_key_id not in keys:
            raise ValueError("the active codec key id has no key")
        self._keys = {kid: AESGCM(key) for kid, key in keys.items()}
        self._active = active_key_id

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        aead = self._keys[self._active]
        out = []
        for p in payloads:
            nonce = os.urandom(12)
            out.append(
                Payload(
                    metadata={"encoding": ENCODING, KEY_ID: self._active.encode()},
                    data=nonce + aead.encrypt(nonce, p.SerializeToString(), None),
                )
            )
        return out

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        out = []
        for p in payloads:
            if p.metadata.get("encoding") != ENCODING:
                out.append(p)
                continue
            kid = p.metadata[KEY_ID].decode()
            aead = self._keys.get(kid)
            if aead is None:
                raise ValueError(f"unknown codec key id {kid!r}")
            out.append(Payload.FromString(aead.decrypt(p.data[:12], p.data[12:], None)))
        return out


def from_settings(keys_spec: str, active: str) -> EncryptionCodec:
    if not keys_spec or not active:
        raise RuntimeError("PSP_CODEC_KEYS and PSP_CODEC_ACTIVE_KEY must be set: payloads are always encrypted")
    return EncryptionCodec(parse_keys(keys_spec), active)


class Sealer:
    """Encrypts data kept at rest (evidence) with the same keys as the payload codec: AES-256-GCM, bound to its
    owner by associated data, the key id kept beside it so keys can rotate."""

    def __init__(self, keys: dict[str, bytes], active_key_id: str) -> None:
        if active_key_id not in keys:
            raise ValueError("the active codec key id has no key")
        self._keys = {kid: AESGCM(key) for kid, key in keys.items()}
        self.active = active_key_id

    def seal(self, data: bytes, owner: bytes) -> tuple[str, bytes]:
        nonce = os.urandom(12)
        return self.active, nonce + self._keys[self.active].encrypt(nonce, data, owner)

    def open(self, key_id: str, sealed: bytes, owner: bytes) -> bytes:
        aead = self._keys.get(key_id)
        if aead is None:
            raise ValueError(f"unknown key id {key_id!r}")
        return aead.decrypt(sealed[:12], sealed[12:], owner)


def sealer_from_settings(keys_spec: str, active: str) -> Sealer:
    if not keys_spec or not active:
        raise RuntimeError("PSP_CODEC_KEYS and PSP_CODEC_ACTIVE_KEY must be set: evidence is always encrypted")
    return Sealer(parse_keys(keys_spec), active)
