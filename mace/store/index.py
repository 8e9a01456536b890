"""The store's signed index: which section (by content hash) serves which device fingerprint,
and the store's policy (which device keys may contribute sections themselves).

    {"format": "mace-program-store", "version": 1,
     "index": {"sections": {FP_ID: {"path", "sha256", "size", "device", "programs", "tuning",
                                    "published_ns", "publisher"}},
               "policy": {"device_keys": [KEY_ID, ...]}, "updated_ns": N},
     "signatures": [{"key_id": KEY_ID, "signature": BASE64}]}

A signature is Ed25519 (the program cache's keys, programcache/signing.py) over a fixed prefix
and the canonical JSON of "index". Reading an index checks it against the trusted keys: no
valid signature by one of them and the whole index is refused.
"""
from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass, field

from mace.store.errors import StoreRefused

FORMAT = "mace-program-store"
VERSION = 1
INDEX_FILE = "index.json"
MESSAGE_PREFIX = b"mace program store index, version 1\n"


def canonical(doc) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def section_path(fp_id: str, sha256: str) -> str:
    return f"sections/{fp_id}/{sha256}.bin"


def queue_path(fp_id: str, sha256: str) -> str:
    return f"queue/{fp_id}/{sha256}.bin"


@dataclass
class Index:
    sections: dict[str, dict] = field(default_factory=dict)
    policy: dict = field(default_factory=lambda: {"device_keys": []})
    updated_ns: int = 0
    signed_by: list[str] = field(default_factory=list)      # trusted key ids whose signature held

    def body(self) -> dict:
        return {"sections": self.sections, "policy": self.policy, "updated_ns": self.updated_ns}

    def device_keys(self) -> set[str]:
        keys = self.policy.get("device_keys", [])
        return {str(k) for k in keys} if isinstance(keys, list) else set()

    def encode(self, private_keys) -> bytes:
        """The signed document (each of `private_keys` signs it)."""
        from mace.programcache.signing import key_id, raw_public
        self.updated_ns = time.time_ns()
        msg = MESSAGE_PREFIX + canonical(self.body())
        sigs = [{"key_id": key_id(raw_public(k)), "signature": base64.b64encode(k.sign(msg)).decode()}
                for k in private_keys]
        return json.dumps({"format": FORMAT, "version": VERSION, "index": self.body(), "signatures": sigs},
                          sort_keys=True, indent=1).encode("utf-8")


def decode(data: bytes, where: str, trusted=None) -> Index:
    """The index in `data`, checked against `trusted` (signing.TrustedKeys; default: this
    user's trusted keys). Raises StoreRefused (one line naming `where` and the fix)."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from mace.programcache import signing
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise StoreRefused(f"{where}: not a program store index (not JSON): check the store URL") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or not isinstance(doc.get("index"), dict):
        raise StoreRefused(f"{where}: not a program store index: check the store URL")
    if doc.get("version") != VERSION:
        raise StoreRefused(f"{where}: program store index version {doc.get('version')!r}, this mace "
                           f"reads version {VERSION}: upgrade mace")
    trusted = trusted if trusted is not None else signing.load_trusted_keys()
    msg = MESSAGE_PREFIX + canonical(doc["index"])
    good, notes = [], []
    sigs = doc.get("signatures") if isinstance(doc.get("signatures"), list) else []
    for s in sigs:
        kid = str(s.get("key_id", "")) if isinstance(s, dict) else ""
        pub = trusted.keys.get(kid)
        if pub is None:
            notes.append(f"signed by key {kid or '?'}, which is not a trusted key")
            continue
        try:
            Ed25519PublicKey.from_public_bytes(pub.raw).verify(base64.b64decode(s.get("signature", "")), msg)
            good.append(kid)
        except (InvalidSignature, ValueError, TypeError):
            notes.append(f"signature by key {kid} is invalid (the index was altered after signing)")
    if not good:
        why = "; ".join(notes) if notes else "unsigned"
        raise StoreRefused(f"{where}: index refused ({why}): publish with a key listed in "
                           f"{trusted.source} (`mace cache publish FILE STORE --key KEY`)")
    body = doc["index"]
    sections = body.get("sections") if isinstance(body.get("sections"), dict) else {}
    policy = body.get("policy") if isinstance(body.get("policy"), dict) else {"device_keys": []}
    return Index(sections, policy, int(body.get("updated_ns") or 0), good)


__all__ = ["Index", "decode", "section_path", "queue_path", "INDEX_FILE", "canonical"]
