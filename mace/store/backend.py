"""Where a store's bytes live: a local directory, an HTTP(S) server, or any other fsspec URL
(S3 with the `s3` extra, ...).

Directories and HTTP(S) need nothing beyond the standard library (pathlib, urllib): importing
fsspec and aiohttp takes seconds on a loaded machine, and an engine's pull is bounded by
MACE_PROGRAM_STORE_TIMEOUT (2 s by default), so the common stores must not spend that bound
importing a transport. Other protocols go through fsspec, imported only for them.

Every call is bounded by the store's timeout; every failure becomes a StoreUnavailable (or a
StoreError for a missing extra) naming the store, never a traceback from the transport.
"""
from __future__ import annotations

import hashlib
import os
import posixpath
import uuid
from pathlib import Path

from mace.store.errors import StoreError, StoreUnavailable

#: fsspec protocol -> the extra of mace-engine that installs its implementation
EXTRAS = {"s3": "s3", "s3a": "s3", "gcs": "gcs", "gs": "gcs"}
MAX_INDEX_BYTES = 16 << 20


def Store(url: str, timeout: float = 30.0) -> StoreBase:   # noqa: N802 - the stores' one constructor
    """The store at `url`: a directory (a path or file://), http(s)://, or another fsspec URL."""
    url = str(url)
    protocol = url.split("://", 1)[0].lower() if "://" in url else "file"
    if protocol == "file":
        return LocalStore(url, timeout)
    if protocol in ("http", "https"):
        return HttpStore(url, timeout)
    return FsspecStore(url, timeout)


class StoreBase:
    """One store URL opened: relative paths (`index.json`, `sections/...`) read and written."""

    http = False

    def __init__(self, url: str, timeout: float):
        self.url = url
        self.timeout = float(timeout)

    def version(self, rel: str) -> str | None:
        """A token that changes when the file changes (its ETag, else size and time; a fresh token
        each call when the store gives neither), or None when it is missing."""
        raise NotImplementedError

    def read(self, rel: str, limit: int | None = None) -> bytes:
        raise NotImplementedError

    def exists(self, rel: str) -> bool:
        return self.version(rel) is not None

    def write(self, rel: str, data: bytes) -> None:
        """Write `rel` whole (a temporary name, then a rename where the store has renames)."""
        raise NotImplementedError

    def delete(self, rel: str) -> None:
        raise NotImplementedError

    def listdir(self, rel: str) -> list[str]:
        """Relative paths of the files under `rel` (empty when there is none)."""
        raise NotImplementedError

    def require_writable(self) -> StoreBase:
        return self

    def _missing(self, rel: str) -> StoreUnavailable:
        return StoreUnavailable(f"program store {self.url}: no {rel} there: publish to it first "
                                f"(`mace cache publish FILE {self.url}`)")

    def _over(self, rel: str, limit: int) -> StoreUnavailable:
        return StoreUnavailable(f"program store {self.url}: {rel} is over {limit} bytes: "
                                f"check the URL names a mace program store")

    def _unavailable(self, rel: str, exc: BaseException) -> StoreUnavailable:
        return StoreUnavailable(f"program store {self.url}: cannot read {rel} ({_first(exc)}): "
                                f"check the URL and the network; engines compile from source meanwhile")

    def _unwritable(self, rel: str, exc: BaseException) -> StoreError:
        return StoreError(f"program store {self.url}: cannot write {rel} ({_first(exc)}): "
                          f"check the store is writable by you")


class LocalStore(StoreBase):
    """A directory of this machine (a path or file://...)."""

    def __init__(self, url: str, timeout: float):
        super().__init__(url, timeout)
        self.root = Path(os.path.expanduser(url[len("file://"):] if url.startswith("file://") else url))

    def _p(self, rel: str) -> Path:
        return self.root / rel

    def version(self, rel: str) -> str | None:
        try:
            st = self._p(rel).stat()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise self._unavailable(rel, exc) from None
        return f"size:{st.st_size}:time:{st.st_mtime_ns}"

    def read(self, rel: str, limit: int | None = None) -> bytes:
        from mace import fileio
        try:
            data = fileio.read_or_none(self._p(rel), limit if limit is not None else 1 << 40)
        except fileio.FileRefused as exc:
            raise StoreUnavailable(f"program store {self.url}: {rel}: {exc}") from None
        except OSError as exc:
            raise self._unavailable(rel, exc) from None
        if data is None:
            raise self._missing(rel)
        return data

    def write(self, rel: str, data: bytes) -> None:
        from mace import fileio
        try:
            self._p(rel).parent.mkdir(parents=True, exist_ok=True)
            fileio.write_atomic(self._p(rel), data)
        except OSError as exc:
            raise self._unwritable(rel, exc) from None

    def delete(self, rel: str) -> None:
        try:
            self._p(rel).unlink(missing_ok=True)
        except OSError as exc:
            raise self._unwritable(rel, exc) from None

    def listdir(self, rel: str) -> list[str]:
        base = self._p(rel)
        if not base.is_dir():
            return []
        return sorted(p.relative_to(self.root).as_posix() for p in base.rglob("*")
                      if p.is_file() and ".tmp" not in p.name)


class HttpStore(StoreBase):
    """A store served over HTTP(S): read-only; ETags (else Last-Modified and size) as versions."""

    http = True

    def __init__(self, url: str, timeout: float):
        super().__init__(url, timeout)
        self.root = url.rstrip("/")

    def _request(self, rel: str, method: str):
        import urllib.request
        req = urllib.request.Request(f"{self.root}/{rel}", method=method,
                                     headers={"User-Agent": "mace-program-store"})
        return urllib.request.urlopen(req, timeout=self.timeout)      # noqa: S310 - the user's store URL

    def version(self, rel: str) -> str | None:
        import urllib.error
        try:
            with self._request(rel, "HEAD") as r:
                headers = r.headers
        except urllib.error.HTTPError as exc:
            if exc.code in (404, 410):
                return None
            raise self._unavailable(rel, exc) from None
        except (OSError, ValueError) as exc:         # URLError, timeouts, resets, a bad URL
            raise self._unavailable(rel, exc) from None
        if headers.get("ETag"):
            return f"ETag:{headers['ETag']}"
        if headers.get("Last-Modified"):
            return f"size:{headers.get('Content-Length')}:time:{headers['Last-Modified']}"
        return f"unversioned:{uuid.uuid4().hex}"     # a server that names no version: read every time

    def read(self, rel: str, limit: int | None = None) -> bytes:
        import urllib.error
        try:
            with self._request(rel, "GET") as r:
                data = r.read(limit + 1 if limit is not None else -1)
        except urllib.error.HTTPError as exc:
            if exc.code in (404, 410):
                raise self._missing(rel) from None
            raise self._unavailable(rel, exc) from None
        except (OSError, ValueError) as exc:
            raise self._unavailable(rel, exc) from None
        if limit is not None and len(data) > limit:
            raise self._over(rel, limit)
        return bytes(data)

    def listdir(self, rel: str) -> list[str]:
        raise StoreError(f"program store {self.url}: an HTTP store cannot be listed: give the directory "
                         f"(or bucket) the server serves")

    def require_writable(self) -> StoreBase:
        raise StoreError(f"program store {self.url}: an HTTP store is read-only here: publish "
                         f"to the directory (or bucket) the server serves")

    write = delete = lambda self, rel, *a: self.require_writable()


class FsspecStore(StoreBase):
    """Any other fsspec URL (s3://bucket/path with the `s3` extra, ...)."""

    def __init__(self, url: str, timeout: float):
        super().__init__(url, timeout)
        self.fs, self.root = _open(url, self.timeout)

    def path(self, rel: str) -> str:
        return posixpath.join(self.root, rel)

    def version(self, rel: str) -> str | None:
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
        if when is None:
            return f"unversioned:{uuid.uuid4().hex}"
        return f"size:{info.get('size')}:time:{when}"

    def read(self, rel: str, limit: int | None = None) -> bytes:
        try:
            data = self.fs.cat_file(self.path(rel))
        except FileNotFoundError:
            raise self._missing(rel) from None
        except Exception as exc:        # noqa: BLE001
            raise self._unavailable(rel, exc) from None
        if limit is not None and len(data) > limit:
            raise self._over(rel, limit)
        return bytes(data)

    def write(self, rel: str, data: bytes) -> None:
        try:
            self.fs.makedirs(posixpath.dirname(self.path(rel)), exist_ok=True)
            self.fs.pipe_file(self.path(rel), data)
        except Exception as exc:        # noqa: BLE001
            raise self._unwritable(rel, exc) from None

    def delete(self, rel: str) -> None:
        try:
            self.fs.rm_file(self.path(rel))
        except FileNotFoundError:
            pass
        except Exception as exc:        # noqa: BLE001
            raise self._unwritable(rel, exc) from None

    def listdir(self, rel: str) -> list[str]:
        try:
            found = self.fs.find(self.path(rel))
        except FileNotFoundError:
            return []
        except Exception as exc:        # noqa: BLE001
            raise self._unavailable(rel, exc) from None
        base = self.root.rstrip("/") + "/"
        return sorted(p[len(base):] if p.startswith(base) else p for p in found)


def _first(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:200]


def _open(url: str, timeout: float):
    try:
        import fsspec
    except ImportError:
        raise StoreError("program stores need fsspec: pip install 'mace-engine'") from None
    protocol = url.split("://", 1)[0].lower()
    kwargs: dict = {}
    if protocol in ("s3", "s3a"):
        kwargs["connect_timeout"] = timeout
        kwargs["read_timeout"] = timeout
    try:
        return fsspec.core.url_to_fs(url, **kwargs)
    except ImportError:
        extra = EXTRAS.get(protocol)
        fix = f"pip install 'mace-engine[{extra}]'" if extra else f"install fsspec's {protocol} support"
        raise StoreError(f"program store {url}: the {protocol}:// protocol needs an extra: {fix}") from None
    except ValueError as exc:
        if "Protocol not known" in str(exc):
            raise StoreError(f"program store {url}: unknown protocol {protocol!r}: give a directory, "
                             f"an http(s):// URL or s3://bucket/path") from None
        raise StoreError(f"program store {url}: {_first(exc)}: check the URL") from None


def url_key(url: str) -> str:
    """A short name for a store URL (the directory of its local copy)."""
    return hashlib.sha256(str(url).encode("utf-8")).hexdigest()[:16]


__all__ = ["Store", "StoreBase", "LocalStore", "HttpStore", "FsspecStore", "url_key", "EXTRAS", "MAX_INDEX_BYTES"]
