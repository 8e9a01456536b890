"""Publishing device sections to a store, and a device's own contribution after a miss.

`publish(FILE, STORE, key)`: every section of FILE is signed with `key`, written once under
its content hash, and named in the index, which is then signed with `key` too. A device
contributing its own section (`publish_on_miss`) publishes the same way when the store's
policy lists its key; otherwise the section goes to the store's queue for the farm to verify.
"""
from __future__ import annotations

import os
from pathlib import Path

from mace.programcache import signing
from mace.programcache.format import CacheData
from mace.store import index as _index
from mace.store import sections as _sections
from mace.store.backend import MAX_INDEX_BYTES, Store
from mace.store.errors import StoreError


def _trust_with(private_key) -> signing.TrustedKeys:
    """This user's trusted keys, plus the publisher's own key (it may extend its own index)."""
    keys = signing.load_trusted_keys()
    raw = signing.raw_public(private_key)
    keys.keys.setdefault(signing.key_id(raw), signing.PublicKey(signing.key_id(raw), raw))
    return keys


def current_index(store: Store, private_key) -> _index.Index:
    """The store's index (checked), or a new one for an empty store."""
    if store.version(_index.INDEX_FILE) is None:
        return _index.Index()
    blob = store.read(_index.INDEX_FILE, MAX_INDEX_BYTES)
    return _index.decode(blob, f"{store.url}/{_index.INDEX_FILE}", _trust_with(private_key))


def add_section(store: Store, idx: _index.Index, data: CacheData, fp_id: str, private_key) -> dict:
    """Sign section `fp_id` of `data`, write it under its hash (once) and name it in `idx`."""
    signing.sign(data, private_key, [fp_id])
    blob = _sections.to_bytes(_sections.normalized(data, fp_id))
    import hashlib
    sha = hashlib.sha256(blob).hexdigest()
    path = _index.section_path(fp_id, sha)
    old = idx.sections.get(fp_id)
    if isinstance(old, dict) and old.get("sha256") == sha and store.exists(path):
        return {"fp_id": fp_id, "sha256": sha, "path": path, "written": False}
    if not store.exists(path):
        store.write(path, blob)
    kid = signing.key_id(signing.raw_public(private_key))
    idx.sections[fp_id] = _sections.entry(blob, data, fp_id, kid, path)
    return {"fp_id": fp_id, "sha256": sha, "path": path, "written": True,
            "programs": idx.sections[fp_id]["programs"], "short": idx.sections[fp_id]["short"]}


def publish(file: str | os.PathLike, url: str, key_path: str | os.PathLike, *,
            accept_device_keys: list[str] = (), timeout: float = 60.0) -> dict:
    """`mace cache publish FILE STORE --key KEY`. Raises StoreError subclasses, SigningKeyError,
    OSError or ProgramCacheError."""
    from mace.programcache.maintenance import load
    data, findings = load(Path(file))
    if not data.sections:
        raise StoreError(f"{file}: holds no device section: nothing to publish: build or run a model "
                         f"on the device first")
    private = signing.load_private_key(key_path)
    store = Store(url, timeout).require_writable()
    idx = current_index(store, private)
    done = [add_section(store, idx, data, fp_id, private) for fp_id in sorted(data.sections)]
    keys = idx.device_keys()
    for line in accept_device_keys:
        keys.add(_key_id_of(line))
    idx.policy = {**idx.policy, "device_keys": sorted(keys)}
    store.write(_index.INDEX_FILE, idx.encode([private]))
    return {"store": url, "file": str(file), "sections": done, "key_id": signing.key_id(signing.raw_public(private)),
            "policy": idx.policy, "dropped": [f.message for f in findings]}


def _key_id_of(text: str) -> str:
    """A key id from a public key line, a .pub file, or a key id itself."""
    text = str(text).strip()
    p = Path(os.path.expanduser(text))
    if p.is_file():
        text = p.read_text(encoding="utf-8", errors="replace").strip()
    if text.startswith("ssh-ed25519"):
        try:
            return signing.parse_public_key(text).key_id
        except ValueError as exc:
            raise StoreError(f"--accept-device-key {text[:40]}...: {exc}: give a .pub file of "
                             f"`mace cache keygen`") from None
    if len(text) == 16 and all(c in "0123456789abcdef" for c in text):
        return text
    raise StoreError(f"--accept-device-key {text[:40]!r}: not a public key, .pub file or key id: "
                     f"give the .pub file written by `mace cache keygen`")


def contribute(url: str, data: CacheData, fp_id: str, key_path: str | os.PathLike | None,
               timeout: float) -> dict:
    """A device's own section after a miss: published when the store's policy accepts its key,
    else queued (signed when a key is given) for the farm to verify."""
    store = Store(url, timeout).require_writable()
    private = signing.load_private_key(key_path) if key_path else None
    if private is not None:
        idx = current_index(store, private)
        kid = signing.key_id(signing.raw_public(private))
        if kid in idx.device_keys():
            res = add_section(store, idx, data, fp_id, private)
            store.write(_index.INDEX_FILE, idx.encode([private]))
            return {"action": "published", "key_id": kid, **res}
        signing.sign(data, private, [fp_id])
    blob = _sections.to_bytes(_sections.split(data, fp_id))
    import hashlib
    path = _index.queue_path(fp_id, hashlib.sha256(blob).hexdigest())
    if not store.exists(path):
        store.write(path, blob)
    return {"action": "queued", "path": path, "fp_id": fp_id}


__all__ = ["publish", "contribute", "add_section", "current_index"]
