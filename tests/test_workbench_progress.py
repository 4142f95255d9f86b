"""The progress record a worker shares with the session: whole snapshots only, even mid-write."""

from __future__ import annotations

import os
import time

from tui_eval.workbench.protocol import PROGRESS_SIZE, ProgressBlock


def test_progress_begin_end_round_trip():
    block, fd = ProgressBlock.create()
    try:
        assert block.read() == (0, 0, 0, 0.0)
        block.begin(41, 2, 123.5)
        assert block.read() == (1, 41, 2, 123.5)
        block.end()
        assert block.read() == (2, 41, 2, 123.5)
    finally:
        block.close()
        os.close(fd)


def test_progress_half_written_record_rejected():
    block, fd = ProgressBlock.create()
    try:
        block.begin(7, 1, time.monotonic())
        block.end()
        block.begin(8, 0, time.monotonic())
        whole = bytes(block._memory)
        # What a reader sees while the worker is between zeroing and filling the start time:
        # the new sequence and item, with a start of 0 that reads as a call running for hours.
        torn = whole[:24] + bytes(8) + whole[32:]
        block._memory[:] = torn
        assert block.read() is None
        block._memory[:] = bytes(PROGRESS_SIZE - 8) + whole[-8:]
        assert block.read() is None
        block._memory[:] = whole
        sequence, item, scorer, started = block.read()
        assert (sequence, item, scorer) == (3, 8, 0)
        assert started > 0
    finally:
        block.close()
        os.close(fd)


def test_progress_cross_process_reads_whole():
    """A writer process hammers the record while this process reads it, as the session does."""
    block, fd = ProgressBlock.create()
    pid = os.fork()
    if pid == 0:
        try:
            writer = ProgressBlock(fd)
            deadline = time.monotonic() + 1.5
            item = 0
            while time.monotonic() < deadline:
                item += 1
                writer.begin(item, item % 3, time.monotonic())
                writer.end()
        finally:
            os._exit(0)
    try:
        reads = torn = 0
        oldest = 0.0
        while True:
            finished, _ = os.waitpid(pid, os.WNOHANG)
            snapshot = block.read()
            now = time.monotonic()
            if snapshot is None:
                torn += 1
            else:
                reads += 1
                sequence, item, scorer, started = snapshot
                if sequence % 2 == 1:
                    oldest = max(oldest, now - started)
                    assert scorer == item % 3
            if finished:
                break
        assert reads > 1000
        # Each call of the writer lasts microseconds, so a start a second old comes from a torn read.
        assert oldest < 1.0, f"a snapshot said a call had run for {oldest:.3f} s"
    finally:
        block.close()
        os.close(fd)
