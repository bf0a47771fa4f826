"""Downloads from mirrors served on 127.0.0.1: MD5 checks, fallbacks, and nothing half-written left behind."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import pytest

from mnistlab.data.download import MIRRORS_ENV, download_file, md5sum
from mnistlab.errors import DataError

NAME = "t10k-labels-idx1-ubyte.gz"
GOOD = b"the real file " * 100
GOOD_MD5 = hashlib.md5(GOOD).hexdigest()


@pytest.fixture(autouse=True)
def _no_env_mirrors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(MIRRORS_ENV, raising=False)


@pytest.fixture
def mirrors(http_mirror: tuple[Path, str]) -> dict[str, str]:
    """Base URLs of a "good" mirror, a "bad" one (wrong bytes), an "empty" one (404) and a "hangup" one."""
    directory, url = http_mirror
    for sub, content in (("good", GOOD), ("bad", b"tampered " * 50)):
        (directory / sub).mkdir()
        (directory / sub / NAME).write_bytes(content)
    (directory / "empty").mkdir()
    # "bad" has no trailing slash: base URLs work either way.
    return {"good": url + "good/", "bad": url + "bad", "empty": url + "empty/", "hangup": url + "hangup/good"}


def assert_nothing_left(dest: Path, keep: tuple[str, ...] = ()) -> None:
    assert sorted(p.name for p in dest.iterdir()) == sorted(keep)


def test_md5sum(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(GOOD)
    assert md5sum(tmp_path / "f") == GOOD_MD5


def test_download(tmp_path: Path, mirrors: dict[str, str]) -> None:
    dest = tmp_path / "new" / "dir"
    path = download_file(NAME, GOOD_MD5, [mirrors["good"]], dest)
    assert path == dest / NAME and path.read_bytes() == GOOD
    assert_nothing_left(dest, keep=(NAME,))


def test_md5_mismatch_falls_back_to_the_next_mirror(tmp_path: Path, mirrors: dict[str, str]) -> None:
    path = download_file(NAME, GOOD_MD5, [mirrors["bad"], mirrors["empty"], mirrors["good"]], tmp_path)
    assert path.read_bytes() == GOOD
    assert_nothing_left(tmp_path, keep=(NAME,))


def test_all_mirrors_bad(tmp_path: Path, mirrors: dict[str, str], dead_mirror: str) -> None:
    with pytest.raises(DataError) as info:
        download_file(NAME, GOOD_MD5, [mirrors["bad"], mirrors["empty"], dead_mirror], tmp_path)
    message = str(info.value)
    assert "\n" not in message and f"could not download {NAME}" in message
    assert f"{mirrors['bad']}: MD5 mismatch" in message
    assert f"{mirrors['empty']}: HTTP 404" in message
    assert f"{dead_mirror}: Connection refused" in message
    assert_nothing_left(tmp_path)


def test_interrupted_download_leaves_nothing(tmp_path: Path, mirrors: dict[str, str]) -> None:
    # The server sends the whole good file but promised 1,000 bytes more, then hangs up.
    with pytest.raises(DataError, match=r"connection closed after 1400 of 2400 bytes"):
        download_file(NAME, GOOD_MD5, [mirrors["hangup"]], tmp_path)
    assert_nothing_left(tmp_path)


@pytest.mark.parametrize("mirror", ["bad", "hangup", "empty"])
def test_existing_file_survives_a_failed_download(tmp_path: Path, mirrors: dict[str, str], mirror: str):
    (tmp_path / NAME).write_bytes(GOOD)
    with pytest.raises(DataError):
        download_file(NAME, GOOD_MD5, [mirrors[mirror]], tmp_path)
    assert (tmp_path / NAME).read_bytes() == GOOD
    assert_nothing_left(tmp_path, keep=(NAME,))


def test_dead_mirror_fails_fast(tmp_path: Path, dead_mirror: str) -> None:
    start = time.monotonic()
    with pytest.raises(DataError, match="Connection refused"):
        download_file(NAME, GOOD_MD5, [dead_mirror, dead_mirror], tmp_path)
    assert time.monotonic() - start < 2


def test_env_overrides_the_mirror_list(
    tmp_path: Path, mirrors: dict[str, str], dead_mirror: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(MIRRORS_ENV, f" {mirrors['bad']} , {mirrors['good']},")
    assert download_file(NAME, GOOD_MD5, [dead_mirror], tmp_path).read_bytes() == GOOD


def test_unwritable_destination(tmp_path: Path, mirrors: dict[str, str]) -> None:
    (tmp_path / "file").write_text("not a directory")
    with pytest.raises(DataError, match="cannot create .*MNISTLAB_DATA"):
        download_file(NAME, GOOD_MD5, [mirrors["good"]], tmp_path / "file" / "sub")
