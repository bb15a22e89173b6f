"""Importing from the cloud: a real S3 protocol test against moto's server on 127.0.0.1, a
plain web server for http://, and the one-line refusals (no server, missing packages,
unknown schemes). Nothing here leaves this computer."""

from __future__ import annotations

import http.server
import io
import json
import socket
import sys
import threading
import zipfile
from pathlib import Path

import pytest

from engine.data import ingest
from engine.data.store import Dataset


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_cli(argv, capsys):
    from engine.cli import main

    code = main(["data", "import", *argv])
    out, err = capsys.readouterr()
    return code, out, err


# ---- S3 (moto's server mode) --------------------------------------------------------------------
@pytest.fixture
def s3(monkeypatch):
    """A local S3 server; yields (boto3 client, list of (method, path) requests it got)."""
    from moto.moto_server import threaded_moto_server as tms
    from moto.server import ThreadedMotoServer

    requests: list[tuple[str, str]] = []

    class Counting(tms.MotoRequestHandler):
        def log_request(self, code="-", size="-"):
            requests.append((self.command, self.path))

    monkeypatch.setattr(tms, "MotoRequestHandler", Counting)
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    for k, v in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
    }.items():
        monkeypatch.setenv(k, v)
    for k in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/aws-config")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/aws-credentials")
    import boto3

    client = boto3.client("s3")
    try:
        yield client, requests
    finally:
        server.stop()


def gets(requests, key_part: str = "") -> list[str]:
    """Downloads of objects (GETs of a key, not listings)."""
    return [p for m, p in requests if m == "GET" and "list-type" not in p and key_part in p]


def test_s3_import_through_the_cli_and_a_rerun_downloads_nothing(media, s3, tmp_path, capsys):
    client, requests = s3
    client.create_bucket(Bucket="studio")
    wav = media.write_audio(tmp_path / "src" / "a.wav", seconds=0.5, rate=8000).read_bytes()
    client.put_object(Bucket="studio", Key="takes/a.wav", Body=wav)
    client.put_object(Bucket="studio", Key="takes/midi/b.mid", Body=media.midi_bytes())
    client.put_object(Bucket="studio", Key="takes/broken.wav", Body=b"RIFF\x24\x00\x00\x00WAVEjunk")
    client.put_object(Bucket="studio", Key="takes/metadata.csv", Body=b"file,genre\na.wav,soul\n")
    client.put_object(Bucket="studio", Key="other/c.wav", Body=wav)
    target = tmp_path / "cloud-set"

    code, out, err = run_cli(["s3://studio/takes/", "--into", str(target)], capsys)
    assert code == 0, err
    ds = Dataset.open(target)
    items = {i.path: i for i in ds.items()}
    assert sorted(items) == ["takes/a.wav", "takes/midi/b.mid"]
    a, b = items["takes/a.wav"], items["takes/midi/b.mid"]
    assert a.source == "s3://studio/takes/a.wav" and a.kind == "audio"
    assert ds.file(a).read_bytes() == wav
    assert a.info["sample_rate"] == 8000 and a.info["frames"] == 4000
    assert a.info["remote"]["size"] == len(wav) and a.info["remote"]["etag"]
    assert a.meta == {"genre": "soul"} and a.meta_from == {"genre": "sidecar"}
    assert b.meta["meter"] == "3/4" and b.meta_from["meter"] == "estimate"
    assert "skipped: s3://studio/takes/broken.wav: not a readable audio file" in out
    assert out.splitlines()[-1].startswith("added 2, changed 0, already there 0, skipped 1")
    assert len(gets(requests, "/takes/a.wav")) == 1
    # the unreadable file's download is not kept
    assert sum(1 for p in (target / "objects").rglob("*") if p.is_file()) == 2

    # a rerun lists the bucket and downloads nothing it already has
    requests.clear()
    code, out, err = run_cli(["s3://studio/takes/", "--into", str(target)], capsys)
    assert code == 0 and "already there 2" in out
    assert gets(requests, "/takes/a.wav") == [] and gets(requests, "/takes/midi/") == []
    assert gets(requests, "/takes/broken.wav")  # the bad file is tried again (still bad)

    # a changed object is downloaded again and replaces its item
    client.put_object(Bucket="studio", Key="takes/a.wav", Body=wav[:-200])
    requests.clear()
    code, out, err = run_cli(["s3://studio/takes/", "--into", str(target)], capsys)
    assert code == 0 and "changed 1, already there 1" in out
    assert len(gets(requests, "/takes/a.wav")) == 1
    new = {i.path: i for i in Dataset.open(target).items()}["takes/a.wav"]
    assert new.id == a.id and new.hash != a.hash
    # no credentials are recorded anywhere in the dataset
    for f in (target / "versions").iterdir():
        assert "testing" not in f.read_text()


def test_s3_single_object_imports_as_its_name(media, s3, tmp_path):
    client, _ = s3
    client.create_bucket(Bucket="solo")
    client.put_object(Bucket="solo", Key="deep/x/tune.mid", Body=media.midi_bytes())
    ds = Dataset.create(tmp_path / "ds")
    report = ingest.import_sources(ds, ["s3://solo/deep/x/tune.mid"])
    assert [i.path for i in report.added] == ["tune.mid"]


def test_s3_with_no_server_fails_in_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")  # botocore's own setting: fail fast here
    monkeypatch.setenv("FSSPEC_S3_RETRIES", "1")  # fsspec's config for s3fs
    code, out, err = run_cli(["s3://studio/takes/", "--into", str(tmp_path / "ds")], capsys)
    assert code == 2 and err.count("\n") == 1
    assert err.startswith("error: s3://studio/takes/: cannot reach")
    assert not (tmp_path / "ds").exists()


def test_s3_without_credentials_says_where_they_go(tmp_path, monkeypatch):
    for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    ds = Dataset.create(tmp_path / "ds")
    report = ingest.import_sources(ds, ["s3://studio/x.wav"])
    assert len(report.skipped) == 1
    assert "AWS" in report.skipped[0][1] and "\n" not in report.skipped[0][1]


def test_a_missing_backend_names_the_pip_command(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "gcsfs", None)  # as if it were not installed
    ds = Dataset.create(tmp_path / "ds")
    report = ingest.import_sources(ds, ["gs://bucket/takes"])
    ((source, reason),) = report.skipped
    assert source == "gs://bucket/takes"
    assert reason.endswith("install it with: pip install 'disco-musica[data]'")


def test_google_drive_without_credentials_says_how_to_give_them(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for k in list(__import__("os").environ):
        if k.startswith("FSSPEC_GDRIVE"):
            monkeypatch.delenv(k)
    ds = Dataset.create(tmp_path / "ds")
    report = ingest.import_sources(ds, ["gdrive://root/Music"])
    ((_, reason),) = report.skipped
    # either PyDrive2's fsspec support is missing, or the credentials are
    assert "pip install 'disco-musica[data]'" in reason or "FSSPEC_GDRIVE_CLIENT_ID" in reason


@pytest.mark.parametrize("scheme", ["gs", "https"])
def test_a_host_with_no_address_fails_at_once_in_one_line(tmp_path, capsys, monkeypatch, scheme):
    """Offline (or a mistyped host) the address is refused before any client is made: gcsfs
    alone looked for credentials and retried for about 85 s first. (.invalid never resolves.)"""
    if scheme == "gs":
        pytest.importorskip("gcsfs")
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", "http://nowhere.invalid:4443")
    url = "gs://bucket/takes/" if scheme == "gs" else "https://nowhere.invalid/take.wav"
    made = []
    monkeypatch.setattr(ingest.src, "remote_fs", lambda u: made.append(u) or 1 / 0)
    code, out, err = run_cli([url, "--into", str(tmp_path / "ds")], capsys)
    where = "Google Cloud Storage" if scheme == "gs" else "nowhere.invalid"
    assert code == 2 and err.count("\n") == 1, err
    assert err.startswith(f"error: {url}: cannot reach {where} (no address for nowhere.invalid")
    assert err.rstrip().endswith("check the network and the address")
    assert made == [] and not (tmp_path / "ds").exists()


def test_an_unreached_host_is_not_called_a_missing_file():
    """fsspec's web client raises FileNotFoundError for a host it could not reach; the
    Hub's client raises httpx's ConnectError. Both mean: cannot reach."""
    from engine.data.sources import remote_reason

    try:
        try:
            raise socket.gaierror(-2, "Name or service not known")
        except OSError as dns:
            raise FileNotFoundError("https://example.com/a.mid") from dns
    except FileNotFoundError as e:
        web = remote_reason(e, "https://example.com/a.mid")
    assert web == (
        "cannot reach example.com ([Errno -2] Name or service not known); "
        "check the network and the address"
    )
    ConnectError = type("ConnectError", (Exception,), {})
    hub = remote_reason(ConnectError("[Errno -2] Name or service not known"), "hf://datasets/a/b")
    assert hub.startswith("cannot reach the Hugging Face Hub (")
    assert remote_reason(FileNotFoundError("x"), "https://example.com/a.mid") == (
        "not found there (check the address)"
    )


def test_the_hub_offline_fails_in_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants as c

    monkeypatch.setattr(c, "HF_HUB_OFFLINE", True)
    ds = Dataset.create(tmp_path / "ds")
    report = ingest.import_sources(ds, ["hf://datasets/someone/songs/takes"])
    ((source, reason),) = report.skipped
    assert source == "hf://datasets/someone/songs/takes" and "\n" not in reason and reason


# ---- http(s) ------------------------------------------------------------------------------------
@pytest.fixture
def web(tmp_path):
    """A web server on 127.0.0.1 serving tmp_path/www; yields (base URL, requests)."""
    root = tmp_path / "www"
    root.mkdir()
    requests: list[tuple[str, str]] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **k):
            super().__init__(*a, directory=str(root), **k)

        def log_request(self, code="-", size="-"):
            requests.append((self.command, self.path))

        def log_message(self, *a):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", requests, root
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_http_file_and_archive_import_and_rerun_by_stamp(media, web, tmp_path, capsys):
    base, requests, root = web
    wav = media.write_audio(root / "song.wav", seconds=0.25, rate=8000).read_bytes()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("b.mid", media.midi_bytes())
    (root / "pack.zip").write_bytes(buf.getvalue())
    target = tmp_path / "web-set"
    url = f"{base}/song.wav?token=s3cret"
    code, out, err = run_cli([url, f"{base}/pack.zip", "--into", str(target)], capsys)
    assert code == 0, err
    ds = Dataset.open(target)
    items = {i.path: i for i in ds.items()}
    assert sorted(items) == ["pack/b.mid", "song.wav"]
    assert ds.file(items["song.wav"]).read_bytes() == wav
    assert items["song.wav"].source == f"{base}/song.wav"  # the token is not recorded
    assert items["pack/b.mid"].source == f"{base}/pack.zip!/b.mid"
    for f in (target / "versions").iterdir():
        assert "s3cret" not in f.read_text()
    assert [m for m, p in requests if p.startswith("/song.wav")].count("GET") == 1

    requests.clear()
    code, out, err = run_cli([url, "--into", str(target)], capsys)
    assert code == 0 and "already there 1" in out
    assert [m for m, p in requests if p.startswith("/song.wav")] == ["HEAD"]


def test_http_errors_are_one_line(web, tmp_path, capsys):
    base, _, _ = web
    code, out, err = run_cli([f"{base}/gone.wav", "--into", str(tmp_path / "ds")], capsys)
    assert code == 2 and err.count("\n") == 1
    assert err.startswith(f"error: {base}/gone.wav: not found there")
    code, out, err = run_cli([f"{base}/", "--into", str(tmp_path / "ds")], capsys)
    assert code == 2 and "give the address of a file" in err


def test_sources_are_recorded_without_secrets():
    from engine.data.sources import clean_command, clean_source

    assert clean_source("https://me:pw@example.com:8443/a/b.wav?sig=x#y") == (
        "https://example.com:8443/a/b.wav"
    )
    assert clean_command(["data", "import", "s3://k:s@b/x", "--into", "d"]) == [
        "data",
        "import",
        "s3://b/x",
        "--into",
        "d",
    ]
    assert Path(clean_source("rel/x.wav")).is_absolute()
    assert json.dumps(clean_source("gdrive://root/Music")) == '"gdrive://root/Music"'
