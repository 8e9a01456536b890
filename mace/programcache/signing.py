"""Ed25519 signatures of device sections, and the trusted public keys.

A signature covers a *manifest* of one section: the device's fingerprint fields and the
SHA-256 of every program binary and tuning record it holds, keyed by program/tuning key. The
mutable bookkeeping (hit counts, last-used times) is left out, so using a file does not break
its signatures; a program added to a signed section later is simply not covered by them, and a
program whose bytes changed no longer matches its digest. The signed message starts with the
file's magic and format major, which binds a signature to this format.

Keys: `mace cache keygen` writes a PEM (PKCS#8) private key (mode 0600) and its public half
in OpenSSH's one-line format (`ssh-ed25519 AAAA... comment`). Trusted public keys are listed,
one per line, in one file: `$MACE_TRUSTED_KEYS`, else `<user config dir>/mace/trusted_keys`.
"""
from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

from mace import fileio
from mace import settings as _settings
from mace.errors import MaceError
from mace.programcache.fingerprint import DeviceFingerprint
from mace.programcache.format import FORMAT_MAJOR, MAGIC, CacheData, SignatureEntry

log = logging.getLogger("mace.programcache")

MESSAGE_PREFIX = MAGIC + b" section signature, format %d\n" % FORMAT_MAJOR
TRUSTED_KEYS_FILE = "trusted_keys"
PRIVATE_KEY_FILE = "signing_key.pem"
MAX_KEY_FILE_BYTES = 1 << 20
_ORIGIN = "origin"        # meta / record field naming where an entry came from (not signed)
_SIGNED_TABLES = ("tuning", "caps", "build_failures")     # keyed JSON records of a section


class SigningKeyError(MaceError):
    """A signing or trusted key file is missing, unreadable or not an Ed25519 key."""


# {{{ keys

@dataclass(frozen=True)
class PublicKey:
    key_id: str
    raw: bytes
    comment: str = ""

    def openssh(self) -> str:
        blob = _ssh_string(b"ssh-ed25519") + _ssh_string(self.raw)
        return f"ssh-ed25519 {base64.b64encode(blob).decode()}" + (f" {self.comment}" if self.comment else "")


def _ssh_string(b: bytes) -> bytes:
    return len(b).to_bytes(4, "big") + b


def key_id(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()[:16]


def raw_public(private) -> bytes:
    """The 32 raw bytes of an Ed25519 private key's public key (what `key_id` and trust lists name)."""
    from cryptography.hazmat.primitives import serialization
    return private.public_key().public_bytes(serialization.Encoding.Raw,
                                             serialization.PublicFormat.Raw)


def generate(comment: str = "") -> tuple[bytes, PublicKey]:
    """A new key pair: (PEM private key, public key)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    raw = raw_public(private)
    return pem, PublicKey(key_id(raw), raw, comment)


def load_private_key(path: str | os.PathLike):
    """The Ed25519 private key in PEM file `path`. Raises SigningKeyError with the fix."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    path = Path(path)
    try:
        data = _read_small(path)
        key = serialization.load_pem_private_key(data, password=None)
    except OSError as exc:
        raise SigningKeyError(f"--key {path}: cannot read it ({exc.strerror or exc}): give the private "
                        f"key written by `mace cache keygen`") from None
    except (ValueError, TypeError) as exc:
        raise SigningKeyError(f"--key {path}: not an unencrypted PEM private key ({str(exc)[:80]}): "
                        f"give the private key written by `mace cache keygen`") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError(f"--key {path}: not an Ed25519 key: create one with `mace cache keygen`")
    return key


def _read_small(path: Path) -> bytes:
    return fileio.read_bounded(path, MAX_KEY_FILE_BYTES)


def parse_public_key(line: str) -> PublicKey:
    """One `ssh-ed25519 BASE64 [comment]` line. Raises ValueError."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    parts = line.strip().split(None, 2)
    if len(parts) < 2 or parts[0] != "ssh-ed25519":
        raise ValueError("expected `ssh-ed25519 BASE64 [comment]`")
    key = serialization.load_ssh_public_key(f"{parts[0]} {parts[1]}".encode())
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("not an Ed25519 key")
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return PublicKey(key_id(raw), raw, parts[2] if len(parts) > 2 else "")


def trusted_keys_path() -> Path:
    """$MACE_TRUSTED_KEYS, else <user config dir>/mace/trusted_keys."""
    raw = _settings.get("MACE_TRUSTED_KEYS")
    if raw:
        return Path(os.path.expanduser(raw))
    import platformdirs
    return Path(platformdirs.user_config_dir("mace")) / TRUSTED_KEYS_FILE


def default_private_key_path() -> Path:
    import platformdirs
    return Path(platformdirs.user_config_dir("mace")) / PRIVATE_KEY_FILE


@dataclass
class TrustedKeys:
    """The trusted public keys by key id, and why the list is what it is (for reports)."""

    keys: dict[str, PublicKey]
    source: str
    problems: list[str]


def load_trusted_keys(path: Path | None = None) -> TrustedKeys:
    """Never raises. A keys file anyone but its owner (or root) could edit is ignored, by the
    same rule as a cache file (trust.location_trust); so is every malformed line (each named)."""
    from mace.programcache.trust import location_trust
    path = path if path is not None else trusted_keys_path()
    out = TrustedKeys({}, str(path), [])
    loc = location_trust(path)
    if not loc.exists:
        return out
    if not loc.trusted:
        out.problems.append(f"trusted keys file {path} ignored: {loc.reason}: make it and its "
                            f"directories writable only by you (chmod go-w)")
        return out
    try:
        text = _read_small(Path(loc.real)).decode("utf-8", "replace")
    except OSError as exc:
        out.problems.append(f"trusted keys file {path} unreadable: {exc}")
        return out
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            k = parse_public_key(line)
        except ValueError as exc:
            out.problems.append(f"{path}:{n}: not a public key ({exc}): skipped")
            continue
        out.keys[k.key_id] = k
    return out

# }}}


# {{{ manifests, signing and checking

def _record_digest(record: dict) -> str:
    clean = {k: v for k, v in record.items() if k != _ORIGIN}
    canon = json.dumps(clean, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canon.encode("utf-8")).hexdigest()


def manifest(data: CacheData, fp_id: str) -> str:
    """The canonical JSON a signature of section `fp_id` covers."""
    fp = data.sections[fp_id]
    doc = {"format": FORMAT_MAJOR, "fingerprint": fp_id, "device": fp.to_dict(),
           "programs": {k: e.sha256.hex() for (f, k), e in sorted(data.programs.items()) if f == fp_id}}
    for table in _SIGNED_TABLES:
        doc[table] = {k: _record_digest(t.record) for (f, k), t in sorted(getattr(data, table).items())
                      if f == fp_id}
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def sign(data: CacheData, private_key, sections: list[str] | None = None) -> list[str]:
    """Sign every section (or those listed) with `private_key`, replacing that key's older
    signatures. Returns the signed section ids."""
    raw = raw_public(private_key)
    kid = key_id(raw)
    now = time.time_ns()
    done = []
    for fp_id in sorted(sections if sections is not None else data.sections):
        text = manifest(data, fp_id)
        sig = private_key.sign(MESSAGE_PREFIX + text.encode("utf-8"))
        data.signatures[(fp_id, kid)] = SignatureEntry(fp_id, kid, text, sig, now)
        done.append(fp_id)
    return done


@dataclass
class SectionSignatures:
    """What the signatures of one section vouch for."""

    fp_id: str
    signed_by: list[str]                 # key ids of valid signatures by trusted keys
    covered: dict[str, set[str]]         # "programs"/"tuning" -> {key:digest} pairs vouched for
    notes: list[str]                     # why a signature does not count

    def state(self) -> str:
        if self.signed_by:
            return "signed"
        if self.notes:
            return "bad-signature" if any("invalid" in n or "does not match" in n
                                          for n in self.notes) else "unknown-key"
        return "unsigned"


def check_sections(data: CacheData, trusted: TrustedKeys) -> dict[str, SectionSignatures]:
    """Verify every signature of every section against the trusted keys."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    out = {fp_id: SectionSignatures(fp_id, [], {t: set() for t in ("programs", *_SIGNED_TABLES)}, [])
           for fp_id in data.sections}
    for (fp_id, kid), g in sorted(data.signatures.items()):
        res = out.get(fp_id)
        if res is None:
            continue
        pub = trusted.keys.get(kid)
        if pub is None:
            res.notes.append(f"signed by key {kid}, which is not a trusted key")
            continue
        try:
            Ed25519PublicKey.from_public_bytes(pub.raw).verify(
                g.signature, MESSAGE_PREFIX + g.manifest.encode("utf-8"))
            doc = json.loads(g.manifest)
        except (InvalidSignature, ValueError):
            res.notes.append(f"signature by key {kid} is invalid (the section was altered after signing)")
            continue
        fp: DeviceFingerprint = data.sections[fp_id]
        if not isinstance(doc, dict) or doc.get("fingerprint") != fp_id or doc.get("device") != \
                json.loads(json.dumps(fp.to_dict(), default=str)) or doc.get("format") != FORMAT_MAJOR:
            res.notes.append(f"signature by key {kid} does not match this section's device")
            continue
        res.signed_by.append(kid)
        for kind in ("programs", *_SIGNED_TABLES):
            items = doc.get(kind)
            if isinstance(items, dict):
                res.covered[kind].update(f"{k}:{v}" for k, v in items.items() if isinstance(v, str))
    return out


def program_covered(sig: SectionSignatures | None, key: str, sha256: bytes) -> bool:
    return sig is not None and f"{key}:{sha256.hex()}" in sig.covered["programs"]


def tuning_covered(sig: SectionSignatures | None, key: str, record: dict) -> bool:
    return sig is not None and f"{key}:{_record_digest(record)}" in sig.covered["tuning"]


def mark_unvouched(data: CacheData, location, source: str) -> int:
    """Before binaries of a file from an untrusted location join another file (a merge): mark
    each one no trusted signature covers with its origin, so that a private destination does
    not make it trusted. Returns how many were marked."""
    if location.trusted:
        return 0
    sigs = check_sections(data, load_trusted_keys()) if data.signatures else {}
    n = 0
    for (fp_id, key), e in data.programs.items():
        if _ORIGIN in e.meta or program_covered(sigs.get(fp_id), key, e.sha256):
            continue
        e.meta = {**e.meta, _ORIGIN: {"file": source, "untrusted": location.reason}}
        n += 1
    return n

# }}}


# {{{ files

def write_key_pair(private_path: Path, comment: str = "") -> PublicKey:
    """Create a new key pair: `private_path` (PEM, mode 0600, never over an existing file) and
    `private_path + ".pub"` (one OpenSSH line). Raises SigningKeyError."""
    private_path = Path(private_path)
    public_path = private_path.with_name(private_path.name + ".pub")
    for p in (private_path, public_path):
        if os.path.lexists(p):
            raise SigningKeyError(f"{p} exists: keys are never overwritten: choose another path "
                                  f"with -o, or remove the old key first")
    pem, pub = generate(comment)
    try:
        private_path.parent.mkdir(parents=True, exist_ok=True)
        fileio.write_atomic(private_path, pem, mode=0o600)     # 0600 from its first byte
        fileio.write_atomic(public_path, pub.openssh() + "\n", mode=0o644)
    except OSError as exc:
        raise SigningKeyError(f"cannot write the key pair at {private_path} "
                              f"({exc.strerror or exc}): choose a writable path with -o") from None
    return pub


def add_trusted(pub: PublicKey, path: Path | None = None) -> Path:
    """Append `pub` to the trusted keys file (created 0644 in a 0700 directory when missing)."""
    path = path if path is not None else trusted_keys_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    old = fileio.read_or_none(path, MAX_KEY_FILE_BYTES) or b""
    if pub.openssh().split()[1].encode() in old:
        return path
    sep = b"" if not old or old.endswith(b"\n") else b"\n"
    fileio.write_atomic(path, old + sep + (pub.openssh() + "\n").encode())
    return path


def sign_file(path: str | os.PathLike, key_path: str | os.PathLike) -> dict:
    """Sign every device section of cache `path` with the private key at `key_path`, under
    the file's lock, by atomic replace. Raises SigningKeyError, OSError or ProgramCacheError."""
    from mace.programcache import atomic, settings
    from mace.programcache.format import decode, encode
    from mace.programcache.trust import read_checked
    private = load_private_key(key_path)
    path = Path(path)
    with atomic.lock_for(path, settings.LOCK_TIMEOUT_S):
        buf, _ = read_checked(path, settings.read_limit())
        dec = decode(buf, str(path))
        if dec.header.newer_than_reader:
            from mace.programcache.errors import VersionMismatch
            raise VersionMismatch(f"{path} was written by {dec.header.writer} (format "
                                  f"{dec.header.format_major}.{dec.header.format_minor}): signing "
                                  f"would drop what this mace cannot read: upgrade mace")
        signed = sign(dec.data, private)
        fileio.write_atomic(path, encode(dec.data))
    raw = raw_public(private)
    trusted = load_trusted_keys()
    return {"path": str(path), "key_id": key_id(raw), "sections": signed,
            "public_key": PublicKey(key_id(raw), raw).openssh(),
            "trusted_here": key_id(raw) in trusted.keys, "trusted_keys_file": trusted.source,
            "dropped": [f.message for f in dec.findings]}

# }}}


__all__ = ["generate", "load_private_key", "parse_public_key", "load_trusted_keys", "sign",
           "check_sections", "manifest", "trusted_keys_path", "default_private_key_path",
           "PublicKey", "TrustedKeys", "SectionSignatures", "SigningKeyError", "write_key_pair",
           "add_trusted", "sign_file", "mark_unvouched"]
