"""Where a store's bytes live: one fsspec filesystem per URL (a directory, HTTP(S), S3...).

Every call is bounded by the store's timeout; every failure becomes a StoreUnavailable (or a
StoreError for a missing extra) naming the store, never a traceback from the transport.
"""
from __future__ import annotations

import hashlib
import os
import posixpath
import uuid

from mace.store.errors import StoreError, StoreUnavailable

#: fsspec protocol -> the extra of mace-engine that installs its implementation
EXTRAS = {"s3": "s3", "s3a": "s3", "gcs": "gcs", "gs": "gcs"}
MAX_INDEX_BYTES = 16 << 20


class Store:
    """One store URL opened: relative paths (`index.json`, `sections/...`) read and written."""

    def __init__(self, url: str, timeout: float = 30.0):
        self.url = str(url)
        self.timeout = float(timeout)
        self.fs, self.root = _open(self.url, self.timeout)
        self.local = "file" in _protocols(self.fs)
        self.http = bool({"http", "https"} & set(_protocols(self.fs)))

    def path(self, rel: str) -> str:
        if self.http:
            return self.root.rstrip("/") + "/" + rel
        return posixpath.join(self.root, rel)

    def version(self, rel: str) -> str | None:
        """A token that changes when the file changes (its ETag, else size and time; a fresh token
        each call when the store gives neither), or None when it is missing."""
        try:
            info = self.fs.info(self.path(rel))
        except FileNotFoundError:
            return None
        except Exception as exc:        # noqa: BLE001 - any transport failure is "unavailable"
            raise self._unavailable(rel, exc) from None
        for k in ("ETag", "etag", "checksum", "md5"):
            if info.get(k):
                return f"{k}:{info[k]}"
        when = info.get("mtime") or info.get("LastModified") or info.get("last_modified")
        if when is None:              # a server that names no version: read the file every time
            return f"unversioned:{uuid.uuid4().hex}"
        return f"size:{info.get('size')}:time:{when}"

    def read(self, rel: str, limit: int | None = None) -> bytes:
        try:
            data = self.fs.cat_file(self.path(rel))
        except FileNotFoundError:
            raise StoreUnavailable(f"program store {self.url}: no {rel} there: publish to it first "
                                   f"(`mace cache publish FILE {self.url}`)") from None
        except Exception as exc:        # noqa: BLE001
            raise self._unavailable(rel, exc) from None
        if limit is not None and len(data) > limit:
            raise StoreUnavailable(f"program store {self.url}: {rel} is over {limit} bytes: "
                                   f"check the URL names a mace program store")
        return bytes(data)

    def require_writable(self) -> Store:
        if self.http:
            raise StoreError(f"program store {self.url}: an HTTP store is read-only here: publish "
                             f"to the directory (or bucket) the server serves")
        return self

    def write(self, rel: str, data: bytes) -> None:
        """Write `rel` whole: a temporary name, then a rename where the store has renames."""
        self.require_writable()
        target = self.path(rel)
        try:
            self.fs.makedirs(posixpath.dirname(target), exist_ok=True)
            if self.local:
                tmp = f"{target}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
                self.fs.pipe_file(tmp, data)
                self.fs.mv(tmp, target)
            else:
                self.fs.pipe_file(target, data)
        except Exception as exc:        # noqa: BLE001
            raise StoreError(f"program store {self.url}: cannot write {rel} ({_first(exc)}): "
                             f"check the store is writable by you") from None

    def exists(self, rel: str) -> bool:
        try:
            return bool(self.fs.exists(self.path(rel)))
        except Exception as exc:        # noqa: BLE001
            raise self._unavailable(rel, exc) from None

    def listdir(self, rel: str) -> list[str]:
        """Relative paths of the files under `rel` (empty when there is none)."""
        try:
            found = self.fs.find(self.path(rel))
        except FileNotFoundError:
            return []
        except Exception as exc:        # noqa: BLE001
            raise self._unavailable(rel, exc) from None
        base = self.root.rstrip("/") + "/"
        return sorted(p[len(base):] if p.startswith(base) else p for p in found)

    def _unavailable(self, rel: str, exc: Exception) -> StoreUnavailable:
        return StoreUnavailable(f"program store {self.url}: cannot read {rel} ({_first(exc)}): "
                                f"check the URL and the network; engines compile from source meanwhile")


def _first(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:200]


def _protocols(fs) -> tuple:
    p = fs.protocol
    return tuple(p) if isinstance(p, (tuple, list)) else (p,)


def _open(url: str, timeout: float):
    try:
        import fsspec
    except ImportError:
        raise StoreError("program stores need fsspec: pip install 'mace-engine'") from None
    protocol = url.split("://", 1)[0].lower() if "://" in url else "file"
    kwargs: dict = {}
    if protocol in ("http", "https"):
        import aiohttp
        kwargs["client_kwargs"] = {"timeout": aiohttp.ClientTimeout(total=timeout)}
    elif protocol in ("s3", "s3a"):
        kwargs["connect_timeout"] = timeout
        kwargs["read_timeout"] = timeout
    try:
        fs, root = fsspec.core.url_to_fs(url, **kwargs)
    except ImportError:
        extra = EXTRAS.get(protocol)
        fix = f"pip install 'mace-engine[{extra}]'" if extra else f"install fsspec's {protocol} support"
        raise StoreError(f"program store {url}: the {protocol}:// protocol needs an extra: {fix}") from None
    except ValueError as exc:
        if "Protocol not known" in str(exc):
            raise StoreError(f"program store {url}: unknown protocol {protocol!r}: give a directory, "
                             f"an http(s):// URL or s3://bucket/path") from None
        raise StoreError(f"program store {url}: {_first(exc)}: check the URL") from None
    if protocol in ("http", "https"):
        root = url                       # HTTP paths are the URL itself
    return fs, root


def url_key(url: str) -> str:
    """A short name for a store URL (the directory of its local copy)."""
    return hashlib.sha256(str(url).encode("utf-8")).hexdigest()[:16]


__all__ = ["Store", "url_key", "EXTRAS", "MAX_INDEX_BYTES"]
