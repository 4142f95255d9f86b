"""Whether the process that began an unfinished trace is still running (Linux /proc where present)."""

from __future__ import annotations

import os
from pathlib import Path


def process_start_ticks(pid: int) -> int | None:
    """Return the process's start time in clock ticks after boot (Linux), to tell a reused pid apart."""
    stat = _read_proc_stat(pid)
    return stat[1] if stat else None


def _read_proc_stat(pid: int) -> tuple[str, int] | None:
    """Return (state letter, start ticks) from /proc/PID/stat, or None where /proc is not available."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name in field 2 may hold spaces and parentheses, so split after the last ')'.
    fields = text[text.rindex(")") + 2:].split()
    try:
        return fields[0], int(fields[19])
    except (IndexError, ValueError):
        return None


def process_alive(pid: int, started: int | None) -> bool:
    """Return whether ``pid`` runs and, when ``started`` is known, is the process that began then."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # It exists but belongs to another user.
    stat = _read_proc_stat(pid)
    if stat is None:
        return True
    state, ticks = stat
    if state in ("Z", "X"):
        return False
    if started is not None and ticks != started:
        return False  # The pid now belongs to another process.
    return True
