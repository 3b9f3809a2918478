"""Filesystem trouble (a symlink loop, a path through a file, a name too long, a dangling link,
a read-only place to write) is a typed PermanentError of one line, for the client, the CLI
and the worker's storage alike. Issue 16: a symlink loop gave a bare RuntimeError, and
``farm transcribe`` printed 51 lines of traceback.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from farm.client import Client
from farm.config import Settings
from farm.errors import PermanentError, StorageAccessError, StorageNotFoundError
from farm.io.roots import Roots, check_local_output, check_output_directory
from farm.io.storage import LocalStorage
from tests.conftest import ROOT, worker_env


def _loop(directory: Path) -> Path:
    (directory / "a.wav").symlink_to(directory / "b.wav")
    (directory / "b.wav").symlink_to(directory / "a.wav")
    return directory / "a.wav"


def _through_a_file(directory: Path) -> Path:
    (directory / "plain").write_bytes(b"x")
    return directory / "plain" / "audio.wav"


def _dangling(directory: Path) -> Path:
    (directory / "gone.wav").symlink_to(directory / "never-there.wav")
    return directory / "gone.wav"


def _too_long(directory: Path) -> Path:
    return directory / ("x" * 300 + ".wav")


CASES: dict[str, Callable[[Path], Path]] = {
    "symlink_loop": _loop,
    "through_a_file": _through_a_file,
    "dangling_link": _dangling,
    "name_too_long": _too_long,
}


def _one_line(error: BaseException) -> None:
    assert isinstance(error, PermanentError), type(error)
    assert str(error) and "\n" not in str(error), str(error)


@pytest.mark.parametrize("make", CASES.values(), ids=CASES.keys())
def test_the_worker_storage_reads_with_a_typed_error(tmp_path: Path, make: Callable[[Path], Path]) -> None:
    path = make(tmp_path)
    with pytest.raises(PermanentError) as caught:
        LocalStorage(Roots(inputs=(str(tmp_path),))).read(str(path))
    _one_line(caught.value)


@pytest.mark.parametrize("make", CASES.values(), ids=CASES.keys())
def test_the_client_refuses_with_a_typed_error(
    farm_settings: Settings, tmp_path: Path, make: Callable[[Path], Path]
) -> None:
    client = Client(farm_settings)
    try:
        with pytest.raises(PermanentError) as caught:
            client.submit(make(tmp_path))
    finally:
        client.close()
    _one_line(caught.value)


def test_a_symlink_loop_is_named_as_such(tmp_path: Path) -> None:
    with pytest.raises(StorageAccessError, match="symlink loop"):
        LocalStorage(Roots()).read(str(_loop(tmp_path)))


def test_results_into_a_symlink_loop_or_under_a_file_are_refused(tmp_path: Path) -> None:
    loop = _loop(tmp_path)
    with pytest.raises(StorageAccessError, match="symlink loop"):
        check_output_directory(str(loop), Roots(outputs=(str(tmp_path),)))
    with pytest.raises(StorageAccessError, match="symlink loop"):
        check_local_output(loop / "job.txt", Roots())
    with pytest.raises(PermanentError) as caught:
        LocalStorage(Roots()).write(str(_through_a_file(tmp_path)), b"text", "text/plain")
    _one_line(caught.value)


def test_writing_where_nothing_can_be_written_is_permanent(tmp_path: Path) -> None:
    with pytest.raises(PermanentError) as caught:
        LocalStorage(Roots()).write("/proc/whisperfarm-result.txt", b"text", "text/plain")
    _one_line(caught.value)


def test_farm_submit_of_a_symlink_loop_prints_one_line(farm_settings: Settings, tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "farm.cli", "submit", str(_loop(tmp_path))],
        env=worker_env(farm_settings), cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("error: ") and "symlink loop" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_missing_file_is_still_not_found(tmp_path: Path) -> None:
    with pytest.raises(StorageNotFoundError, match="no such file"):
        LocalStorage(Roots()).read(str(tmp_path / "absent.wav"))
