import threading
import zipfile
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest

from train.data import find_samples
from train.download import DatasetSource, DownloadError, content_digest, download, main

from .conftest import write_competition_dataset


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def archive_server(tmp_path):
    """A zip laid out as GitHub serves a repository (one top folder), on a local HTTP server."""
    dataset = write_competition_dataset(tmp_path / "src" / "stage1_train", count=3)
    served = tmp_path / "served"
    served.mkdir()
    with zipfile.ZipFile(served / "master.zip", "w") as archive:
        for path in sorted(dataset.rglob("*")):
            archive.write(path, "fixes-master/stage1_train/" + path.relative_to(dataset).as_posix())
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(QuietHandler, directory=str(served)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/master.zip"
    yield url, content_digest(dataset)
    server.shutdown()


def test_downloads_unpacks_and_verifies(archive_server, tmp_path):
    url, digest = archive_server
    target = download(DatasetSource(url, "stage1_train", digest, 3), tmp_path / "cache" / "stage1_train")
    assert len(find_samples(target)) == 3 and content_digest(target) == digest
    assert not list((tmp_path / "cache").glob(".*download"))  # the archive is not kept twice


def test_a_verified_cache_is_used_without_network(archive_server, tmp_path):
    url, digest = archive_server
    target = download(DatasetSource(url, "stage1_train", digest, 3), tmp_path / "stage1_train")
    again = download(DatasetSource("http://127.0.0.1:9/nothing.zip", "stage1_train", digest, 3), target)
    assert again == target


def test_other_content_is_refused_with_what_differs(archive_server, tmp_path):
    url, _ = archive_server
    with pytest.raises(DownloadError, match="not the expected training set: 3 images"):
        download(DatasetSource(url, "stage1_train", "0" * 64, 3), tmp_path / "stage1_train")
    assert not (tmp_path / "stage1_train").exists()


def test_unreachable_url_and_wrong_layout_are_clear(archive_server, tmp_path, capsys):
    url, digest = archive_server
    assert main(["--url", url.replace("master.zip", "missing.zip"), "--to", str(tmp_path / "a")]) == 2
    assert "could not download" in capsys.readouterr().err
    with pytest.raises(DownloadError, match="no folder named 'stage2_test'"):
        download(DatasetSource(url, "stage2_test", digest, 3), tmp_path / "b")


def test_a_network_failure_is_told_by_its_system_reason():
    """A user test: the 200-character cut ended the message mid-word: "[Errn)."."""
    import requests

    from train.download import download_problem

    host = "x" * 150
    error = requests.exceptions.ConnectionError(
        f"HTTPSConnectionPool(host='{host}.com', port=443): Max retries exceeded with url: /a.zip (Caused by "
        "NameResolutionError(\"<urllib3.connection.HTTPSConnection object>: Failed to resolve 'x.com' "
        "([Errno -3] Temporary failure in name resolution)\"))")
    assert download_problem(error) == "[Errno -3] Temporary failure in name resolution"
    assert download_problem(OSError("short")) == "short"
    assert download_problem(PermissionError(13, "Permission denied", "/cache/a.zip")) == "Permission denied: /cache/a.zip"
    assert download_problem(ValueError("word " * 60)).endswith("word ...")


def test_digest_changes_with_any_file(tmp_path):
    dataset = write_competition_dataset(tmp_path / "d", count=2)
    before = content_digest(dataset)
    mask = sorted(dataset.rglob("masks/*.png"))[0]
    mask.write_bytes(mask.read_bytes() + b"\0")
    assert content_digest(dataset) != before
