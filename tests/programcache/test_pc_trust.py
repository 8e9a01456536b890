"""Trust of program caches without OpenCL: the location rule, Ed25519 section signatures, the
trusted keys file, binaries marked with a foreign origin, and the range checks of tuning
records (synthetic fingerprints and blobs; the engine's end-to-end cases are in
tests/test_trust_e2e.py)."""
from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from mace.cli import cli
from mace.programcache import ProgramCache, signing, trust
from mace.programcache import format as F

LOG = "mace.programcache"


@pytest.fixture
def keys(tmp_path, monkeypatch):
    """A trusted key pair (listed in a private MACE_TRUSTED_KEYS file) and a stranger's."""
    home = tmp_path / "keys"
    home.mkdir(mode=0o700)
    trusted = home / "trusted_keys"
    monkeypatch.setenv("MACE_TRUSTED_KEYS", str(trusted))
    pub = signing.write_key_pair(home / "farm.pem", "farm")
    signing.add_trusted(pub, trusted)
    signing.write_key_pair(home / "stranger.pem", "stranger")
    return {"trusted": home / "farm.pem", "stranger": home / "stranger.pem", "file": trusted,
            "id": pub.key_id}


@pytest.fixture
def shared_dir(tmp_path):
    """A world-writable directory without the sticky bit (like public storage on a phone)."""
    d = tmp_path / "public"
    d.mkdir()
    d.chmod(0o777)
    return d


def saved(path: Path, fp, blobs: dict[str, bytes]) -> Path:
    c = ProgramCache.open(path, device_fp=fp)
    for k, v in blobs.items():
        c.put_binary(fp, k, v)
    c.put_tuning(fp, "conv:1x8:fp32:abc", {"lws": [[4, 4]], "driver": "x"})
    assert c.save()
    return path


def codes(c: ProgramCache) -> list[str]:
    return [f.code for f in c.report.findings]


# {{{ the location rule

def test_private_location_is_trusted(tmp_path):
    f = tmp_path / "c.bin"
    f.write_bytes(b"x")
    loc = trust.location_trust(f)
    assert loc.trusted and loc.reason == "private location"


@pytest.mark.parametrize("mode, why", [(0o777, "writable by others"), (0o775, "writable by its group")])
def test_writable_directory_is_untrusted(tmp_path, mode, why):
    d = tmp_path / "d"
    d.mkdir()
    (d / "c.bin").write_bytes(b"x")
    d.chmod(mode)
    loc = trust.location_trust(d / "c.bin")
    assert not loc.trusted and why in loc.reason and str(d) in loc.reason


def test_sticky_world_writable_directory_is_trusted(tmp_path):
    d = tmp_path / "tmp"
    d.mkdir()
    d.chmod(0o1777)
    (d / "c.bin").write_bytes(b"x")
    assert trust.location_trust(d / "c.bin").trusted


def test_writable_file_and_foreign_owner_are_untrusted(tmp_path):
    f = tmp_path / "c.bin"
    f.write_bytes(b"x")
    f.chmod(0o666)
    assert "writable by others" in trust.location_trust(f).reason
    f.chmod(0o644)
    if os.geteuid() != 0:
        pytest.skip("chown to another user needs root")
    os.chown(f, 12345, 12345)
    loc = trust.location_trust(f)
    assert not loc.trusted and "owned by uid 12345" in loc.reason


def test_a_symlink_is_judged_by_its_target(tmp_path, shared_dir):
    target = shared_dir / "c.bin"
    target.write_bytes(b"x")
    link = tmp_path / "link.bin"
    link.symlink_to(target)
    loc = trust.location_trust(link)
    assert not loc.trusted and loc.real == str(target)

# }}}


# {{{ signatures

def test_untrusted_location_unsigned_is_not_loaded(shared_dir, fp_a, keys, caplog):
    path = saved(shared_dir / "c.bin", fp_a, {"k1": b"one", "k2": b"two"})
    with caplog.at_level(logging.WARNING, LOG):
        c = ProgramCache.open(path, device_fp=fp_a)
    assert c.get_binary(fp_a, "k1") is None and c.get_binary(fp_a, "k2") is None
    assert c.report.untrusted == 2 and "UNTRUSTED" in codes(c)
    assert "2 of the 2 cached binaries for this device are not trusted" in caplog.text
    assert "writable by others" in caplog.text and "mace cache sign" in caplog.text
    assert c.get_tuning(fp_a, "conv:1x8:fp32:abc") == {"lws": [[4, 4]], "driver": "x"}  # data
    assert "2 untrusted" in c.report.summary_line() and "UNTRUSTED" in c.report.summary_line()
    assert c.report.trust["location"] == "untrusted"
    assert c.report.trust["sections"] == {fp_a.id: "unsigned"}


def test_signed_by_a_trusted_key_is_loaded(shared_dir, fp_a, fp_b, keys):
    path = saved(shared_dir / "c.bin", fp_a, {"k1": b"one", "k2": b"two"})
    c = ProgramCache.open(path, device_fp=fp_b)
    c.put_binary(fp_b, "kb", b"bee")
    assert c.save()
    res = signing.sign_file(path, keys["trusted"])
    assert res["sections"] == sorted([fp_a.id, fp_b.id]) and res["trusted_here"]
    c = ProgramCache.open(path, device_fp=fp_a)
    assert c.get_binary(fp_a, "k1") == b"one" and c.get_binary(fp_a, "k2") == b"two"
    assert c.report.untrusted == 0 and "UNTRUSTED" not in codes(c)
    assert c.report.trust["sections"] == {fp_a.id: "signed", fp_b.id: "signed"}
    assert ProgramCache.open(path, device_fp=fp_b).get_binary(fp_b, "kb") == b"bee"


def test_signatures_survive_use_and_new_programs_stay_unsigned(shared_dir, fp_a, keys):
    path = saved(shared_dir / "c.bin", fp_a, {"k1": b"one"})
    signing.sign_file(path, keys["trusted"])
    c = ProgramCache.open(path, device_fp=fp_a)
    assert c.get_binary(fp_a, "k1") == b"one"          # a hit: stats change, not the manifest
    c.put_binary(fp_a, "k2", b"built here")
    assert c.get_binary(fp_a, "k2") == b"built here"   # built by this process: trusted
    assert c.save()
    c = ProgramCache.open(path, device_fp=fp_a)
    assert c.get_binary(fp_a, "k1") == b"one"
    assert c.get_binary(fp_a, "k2") is None and c.report.untrusted == 1


def test_signed_by_an_unknown_key_is_not_loaded(shared_dir, fp_a, keys, caplog):
    path = saved(shared_dir / "c.bin", fp_a, {"k1": b"one"})
    signing.sign_file(path, keys["stranger"])
    with caplog.at_level(logging.WARNING, LOG):
        c = ProgramCache.open(path, device_fp=fp_a)
    assert c.get_binary(fp_a, "k1") is None
    assert {"SIGNATURE_INVALID", "UNTRUSTED"} <= set(codes(c))
    assert "which is not a trusted key" in caplog.text
    assert c.report.trust["sections"] == {fp_a.id: "unknown-key"}


def _swap_blob(path: Path, fp, key: str, blob: bytes) -> None:
    """What an attacker with write access does: replace a binary and fix every checksum."""
    dec = F.decode(path.read_bytes())
    e = dec.data.programs[(fp.id, key)]
    e.blob, e.sha256 = blob, hashlib.sha256(blob).digest()
    path.write_bytes(F.encode(dec.data))


def test_tampered_after_signing_is_not_loaded(shared_dir, fp_a, keys):
    path = saved(shared_dir / "c.bin", fp_a, {"k1": b"one", "k2": b"two"})
    signing.sign_file(path, keys["trusted"])
    _swap_blob(path, fp_a, "k1", b"\x7fELF evil")
    c = ProgramCache.open(path, device_fp=fp_a)
    assert c.get_binary(fp_a, "k1") is None            # not the signed digest
    assert c.get_binary(fp_a, "k2") == b"two"          # the rest of the section still is
    assert c.report.untrusted == 1
    r = CliRunner().invoke(cli, ["cache", "verify", str(path), "--json"])
    out = json.loads(r.output)
    assert r.exit_code == 1 and not out["ok"]
    bad = [f for f in out["findings"] if f["severity"] == "error"]
    assert [f["code"] for f in bad] == ["SIGNATURE_INVALID"] and bad[0]["key"] == "k1"


def test_altered_manifest_or_moved_signature_is_invalid(shared_dir, fp_a, fp_b, keys):
    path = saved(shared_dir / "c.bin", fp_a, {"k1": b"one"})
    signing.sign_file(path, keys["trusted"])
    dec = F.decode(path.read_bytes())
    (k, g), = dec.data.signatures.items()
    doc = json.loads(g.manifest)
    doc["programs"]["k1"] = hashlib.sha256(b"evil").hexdigest()
    g.manifest = json.dumps(doc, sort_keys=True, separators=(",", ":"))
    path.write_bytes(F.encode(dec.data))
    c = ProgramCache.open(path, device_fp=fp_a)
    assert c.get_binary(fp_a, "k1") is None
    assert c.report.trust["sections"] == {fp_a.id: "bad-signature"}
    # a valid signature of section A copied onto section B does not vouch for B
    path2 = saved(shared_dir / "d.bin", fp_a, {"k1": b"one"})
    signing.sign_file(path2, keys["trusted"])
    dec = F.decode(path2.read_bytes())
    (k, g), = dec.data.signatures.items()
    dec.data.sections[fp_b.id] = fp_b
    dec.data.programs[(fp_b.id, "k1")] = F.ProgramEntry(fp_b.id, "k1", b"one",
                                                        hashlib.sha256(b"one").digest(), 1, 1)
    g2 = F.SignatureEntry(fp_b.id, g.key_id, g.manifest, g.signature, g.signed_ns)
    dec.data.signatures[(fp_b.id, g.key_id)] = g2
    path2.write_bytes(F.encode(dec.data))
    c = ProgramCache.open(path2, device_fp=fp_b)
    assert c.get_binary(fp_b, "k1") is None
    assert c.report.trust["sections"][fp_b.id] == "bad-signature"


def test_trusted_keys_file_others_can_edit_is_ignored(shared_dir, fp_a, keys, caplog):
    path = saved(shared_dir / "c.bin", fp_a, {"k1": b"one"})
    signing.sign_file(path, keys["trusted"])
    keys["file"].chmod(0o666)
    with caplog.at_level(logging.WARNING, LOG):
        c = ProgramCache.open(path, device_fp=fp_a)
    assert c.get_binary(fp_a, "k1") is None
    assert f"trusted keys file {keys['file']} ignored" in caplog.text


def test_malformed_trusted_key_lines_are_skipped(tmp_path, keys):
    with open(keys["file"], "a") as f:
        f.write("# a comment\nssh-rsa AAAA nope\ngarbage\n")
    tk = signing.load_trusted_keys()
    assert list(tk.keys) == [keys["id"]] and len(tk.problems) == 2


def test_pulled_binaries_need_a_signature_even_in_a_private_file(cache_path, fp_a, keys):
    c = ProgramCache.open(cache_path, device_fp=fp_a)
    c.put_binary(fp_a, "mine", b"built here")
    c.put_binary(fp_a, "theirs", b"from a board", meta={"origin": {"device": "board"}})
    assert c.save()
    c = ProgramCache.open(cache_path, device_fp=fp_a)
    assert c.get_binary(fp_a, "mine") == b"built here"
    assert c.get_binary(fp_a, "theirs") is None and c.report.untrusted == 1
    signing.sign_file(cache_path, keys["trusted"])
    assert ProgramCache.open(cache_path, device_fp=fp_a).get_binary(fp_a, "theirs") == b"from a board"


def test_a_pulled_binary_rebuilt_here_byte_for_byte_becomes_ours(cache_path, fp_a, keys):
    c = ProgramCache.open(cache_path, device_fp=fp_a)
    c.put_binary(fp_a, "k", b"same bytes", meta={"origin": {"device": "board"}})
    assert c.save()
    c = ProgramCache.open(cache_path, device_fp=fp_a)
    assert c.get_binary(fp_a, "k") is None
    c.put_binary(fp_a, "k", b"same bytes")       # compiled from source here: identical
    assert c.save()
    c = ProgramCache.open(cache_path, device_fp=fp_a)
    assert c.get_binary(fp_a, "k") == b"same bytes" and c.report.untrusted == 0


def test_merging_an_untrusted_file_does_not_launder_its_binaries(tmp_path, shared_dir, fp_a, keys):
    from mace.programcache.maintenance import merge
    bad = saved(shared_dir / "public.bin", fp_a, {"evil": b"planted"})
    good = saved(tmp_path / "mine.bin", fp_a, {"ok": b"mine"})
    res = merge(good, bad, tmp_path / "merged.bin")
    assert "UNTRUSTED" in [f.code for f in res.findings]
    c = ProgramCache.open(tmp_path / "merged.bin", device_fp=fp_a)
    assert c.get_binary(fp_a, "ok") == b"mine" and c.get_binary(fp_a, "evil") is None
    signing.sign_file(bad, keys["trusted"])       # vouched for: merged as trusted
    merge(good, bad, tmp_path / "merged2.bin")
    c = ProgramCache.open(tmp_path / "merged2.bin", device_fp=fp_a)
    assert c.get_binary(fp_a, "evil") == b"planted"


def test_keygen_and_sign_cli(tmp_path, shared_dir, fp_a, keys):
    key = tmp_path / "keys" / "new.pem"
    r = CliRunner().invoke(cli, ["cache", "keygen", "-o", str(key), "--trust", "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    assert oct(key.stat().st_mode & 0o777) == "0o600" and doc["added_to_trusted"]
    assert Path(doc["public_key_file"]).read_text().startswith("ssh-ed25519 ")
    r = CliRunner().invoke(cli, ["cache", "keygen", "-o", str(key)])
    assert r.exit_code == 2 and "never overwritten" in r.output and key.stat().st_size > 0
    path = saved(shared_dir / "c.bin", fp_a, {"k1": b"one"})
    r = CliRunner().invoke(cli, ["cache", "sign", str(path), "--key", str(key)])
    assert r.exit_code == 0 and "signed 1 section(s)" in r.output
    assert ProgramCache.open(path, device_fp=fp_a).get_binary(fp_a, "k1") == b"one"
    r = CliRunner().invoke(cli, ["cache", "sign", str(path), "--key", str(path)])
    assert r.exit_code == 2 and "not an unencrypted PEM private key" in r.output
    not_ours = tmp_path / "mace.yml"
    not_ours.write_text("library_name: x\n")
    r = CliRunner().invoke(cli, ["cache", "sign", str(not_ours), "--key", str(key)])
    assert r.exit_code == 2 and not_ours.read_text() == "library_name: x\n"


def test_inspect_and_doctor_show_signature_state(shared_dir, fp_a, keys):
    path = saved(shared_dir / "c.bin", fp_a, {"k1": b"one"})
    info = json.loads(CliRunner().invoke(cli, ["inspect", str(path), "--json"]).output)
    assert info["sections"][0]["signature"] == "unsigned" and info["trust"]["location"] == "untrusted"
    signing.sign_file(path, keys["trusted"])
    info = json.loads(CliRunner().invoke(cli, ["inspect", str(path), "--json"]).output)
    assert info["sections"][0]["signature"] == "signed"
    assert info["sections"][0]["signed_by"] == [keys["id"]]
    from mace.programcache.doctor import doctor
    res = doctor(path, fp_a)
    assert res.ok and res.stats["signature"] == "signed" and res.stats["trusted_programs"] == 1
    signing.sign_file(path, keys["stranger"])
    keys["file"].write_text("")                  # no key trusted any more
    res = doctor(path, fp_a)
    assert not res.ok and res.stats["trusted_programs"] == 0
    assert [f.code for f in res.findings if f.severity == "error"] == ["UNTRUSTED"]

# }}}


def test_tuning_record_range_checks():
    from types import SimpleNamespace as NS

    from mace.tuning.records import lws_problem
    dev = NS(max_work_group_size=256, max_work_item_sizes=[256, 256, 64])
    launches = [NS(gws=(64, 64)), NS(gws=(32,))]
    assert lws_problem([[8, 8], None], launches, dev) is None
    assert lws_problem([[8, 8]], launches, dev) == "launch count changed"
    assert lws_problem("junk", launches, dev) == "launch count changed"
    assert "out of range" in lws_problem([[0, 8], None], launches, dev)
    assert "out of range" in lws_problem([[8, True], None], launches, dev)
    assert "out of range" in lws_problem([[8], None], launches, dev)
    assert "does not divide" in lws_problem([[7, 8], None], launches, dev)
    assert "exceeds" in lws_problem([[64, 64], None], launches, dev)
