"""A real HTTP server over a store directory, started by the tests: it sends ETags (the file's
SHA-256), answers HEAD, counts every request and can be told to answer slowly."""
from __future__ import annotations

import hashlib
import http.server
import threading
import time
from collections import Counter
from pathlib import Path

import pytest


class _Handler(http.server.SimpleHTTPRequestHandler):
    server_version = "mace-test-store"

    def log_message(self, *args):      # quiet
        pass

    def _etag(self) -> str | None:
        p = Path(self.translate_path(self.path))
        return f'"{hashlib.sha256(p.read_bytes()).hexdigest()[:32]}"' if p.is_file() else None

    def end_headers(self):
        tag = self._etag()
        if tag:
            self.send_header("ETag", tag)
        super().end_headers()

    def _count(self):
        srv = self.server
        srv.requests[(self.command, self.path.split("/", 2)[-1] if self.path.count("/") > 1 else self.path)] += 1
        if srv.delay:
            time.sleep(srv.delay)

    def do_GET(self):
        self._count()
        super().do_GET()

    def do_HEAD(self):
        self._count()
        super().do_HEAD()


class StoreServer:
    def __init__(self, root: Path):
        handler = lambda *a, **kw: _Handler(*a, directory=str(root), **kw)
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.requests = Counter()
        self.httpd.delay = 0.0
        self.httpd.daemon_threads = True
        self.root = root
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/store"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @property
    def requests(self) -> Counter:
        return self.httpd.requests

    def gets(self) -> int:
        return sum(n for (m, _), n in self.requests.items() if m == "GET")

    def set_delay(self, seconds: float) -> None:
        self.httpd.delay = seconds

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def http_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("www")
    (root / "store").mkdir()
    return root


@pytest.fixture(scope="module")
def server(http_root):
    srv = StoreServer(http_root)
    yield srv
    srv.close()
