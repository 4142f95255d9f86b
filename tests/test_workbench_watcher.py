"""The module watcher against real files and real watchfiles: editor save styles, bursts, stability."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from tui_eval.workbench.watcher import EditorFileFilter, ModuleWatcher, is_editor_artifact

GOOD = "def f():\n    return {version}\n"


class Calls:
    """Record each reported burst with the module's content at that moment."""

    def __init__(self, module: Path):
        self.module = module
        self.items: list[tuple[list[Path], str]] = []
        self._event = threading.Condition()

    def __call__(self, paths: list[Path]) -> None:
        try:
            content = self.module.read_text()
        except FileNotFoundError:
            content = "<missing>"
        with self._event:
            self.items.append((paths, content))
            self._event.notify_all()

    def wait(self, count: int, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        with self._event:
            while len(self.items) < count:
                remaining = deadline - time.monotonic()
                assert remaining > 0, f"expected {count} reports, got {self.items}"
                self._event.wait(remaining)


@pytest.fixture
def watched(tmp_path):
    module = tmp_path / "scorers.py"
    module.write_text(GOOD.format(version=0))
    calls = Calls(module)
    watcher = ModuleWatcher([module], calls, ignored_paths=[tmp_path / "store.db"], quiet_ms=50, settle_ms=400)
    watcher.start()
    assert watcher.wait_ready()
    yield module, calls, watcher
    watcher.stop()


def settle(calls: Calls, count: int) -> None:
    """Wait for ``count`` reports, then long enough to see a duplicate if one were coming."""
    calls.wait(count)
    time.sleep(0.4)


def save_in_place(module: Path, version: int) -> None:
    module.write_text(GOOD.format(version=version))


def save_temp_then_rename(module: Path, version: int) -> None:
    temporary = module.with_name(module.name + ".tmp")
    temporary.write_text(GOOD.format(version=version))
    os.replace(temporary, module)


def save_jetbrains(module: Path, version: int) -> None:
    temporary = module.with_name(module.name + "___jb_tmp___")
    old = module.with_name(module.name + "___jb_old___")
    temporary.write_text(GOOD.format(version=version))
    os.replace(module, old)
    os.replace(temporary, module)
    old.unlink()


def save_vim(module: Path, version: int) -> None:
    swap = module.with_name("." + module.name + ".swp")
    swap.write_bytes(b"b0VIM 9.0")
    probe = module.with_name("4913")
    probe.write_text("")
    probe.unlink()
    backup = module.with_name(module.name + "~")
    os.replace(module, backup)
    module.write_text(GOOD.format(version=version))
    backup.unlink()
    swap.write_bytes(b"b0VIM 9.0 again")
    swap.unlink()


@pytest.mark.parametrize("save", [save_in_place, save_temp_then_rename, save_jetbrains, save_vim])
def test_save_style_reports_once(watched, save):
    module, calls, _watcher = watched

    save(module, 1)
    settle(calls, 1)

    assert len(calls.items) == 1
    paths, content = calls.items[0]
    assert paths == [module]
    assert content == GOOD.format(version=1)


def test_two_chunks_30_ms_apart_report_complete_file(watched):
    module, calls, _watcher = watched
    source = GOOD.format(version=2) + "\n\ndef g():\n    return 'second chunk'\n"
    half = len(source) // 2

    with module.open("w") as handle:
        handle.write(source[:half])
        handle.flush()
        time.sleep(0.03)
        handle.write(source[half:])
    settle(calls, 1)

    assert len(calls.items) == 1
    assert calls.items[0][1] == source


def test_empty_file_waits_for_content(watched):
    module, calls, _watcher = watched

    module.write_text("")
    time.sleep(0.15)
    module.write_text(GOOD.format(version=3))
    settle(calls, 1)

    assert len(calls.items) == 1
    assert calls.items[0][1] == GOOD.format(version=3)


def test_broken_file_is_reported_after_settling(watched):
    module, calls, _watcher = watched
    started = time.monotonic()

    module.write_text("def f(:\n")
    calls.wait(1)

    assert time.monotonic() - started >= 0.35
    assert calls.items[0][1] == "def f(:\n"


def test_deleted_and_recreated_file_is_picked_up(watched):
    module, calls, _watcher = watched

    module.unlink()
    calls.wait(1)
    assert calls.items[0][1] == "<missing>"
    module.write_text(GOOD.format(version=4))
    settle(calls, 2)

    assert len(calls.items) == 2
    assert calls.items[1][1] == GOOD.format(version=4)


def test_untracked_and_store_files_are_ignored(watched, tmp_path):
    module, calls, watcher = watched

    (tmp_path / "other.py").write_text("x = 1\n")
    (tmp_path / "store.db").write_bytes(b"SQLite")
    (tmp_path / "store.db-wal").write_bytes(b"wal")
    (tmp_path / "__pycache__").mkdir()
    (tmp_path / "__pycache__" / "scorers.cpython-311.pyc").write_bytes(b"pyc")
    time.sleep(0.4)
    assert calls.items == []

    watcher.set_watch_all_python(True)
    (tmp_path / "other.py").write_text("x = 2\n")
    calls.wait(1)
    assert calls.items[0][0] == [tmp_path / "other.py"]


def test_new_directory_is_watched_after_set_files(watched, tmp_path):
    module, calls, watcher = watched
    helpers = tmp_path / "lib" / "helpers.py"
    helpers.parent.mkdir()
    helpers.write_text("X = 1\n")

    assert watcher.set_files([module, helpers])
    assert watcher.wait_ready()
    assert watcher.directories == (tmp_path, helpers.parent)
    helpers.write_text("X = 2\n")
    settle(calls, 1)

    assert calls.items[0][0] == [helpers]


@pytest.mark.parametrize(
    "name",
    [".scorers.py.swp", ".scorers.py.swx", "scorers.py~", "4913", ".#scorers.py", "#scorers.py#",
     "scorers.py___jb_tmp___", "scorers.py___jb_old___", "scorers.py.tmp", "x.pyc"],
)
def test_editor_artifacts_are_recognised(name):
    assert is_editor_artifact(name)


@pytest.mark.parametrize("name", ["scorers.py", "helpers.py", "4913.py", "tmp_scorers.py"])
def test_source_files_are_not_artifacts(name):
    assert not is_editor_artifact(name)


def test_filter_drops_store_and_companions(tmp_path):
    store = tmp_path / "t.db"
    keep = EditorFileFilter([store])

    assert not keep(None, str(store))
    assert not keep(None, str(store) + "-shm")
    assert not keep(None, str(tmp_path / "__pycache__" / "a.py"))
    assert keep(None, str(tmp_path / "a.py"))
