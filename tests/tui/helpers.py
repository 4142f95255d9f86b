"""Helpers for pilot tests: plain screen text and waiting for the workbench."""

from __future__ import annotations

import io
import time

from rich.console import Console


def screen_text(app) -> str:
    """Everything on screen as plain text, one line per row."""
    update = app.screen._compositor.render_update(full=True)
    console = Console(width=app.size.width, record=True, file=io.StringIO(), color_system=None, legacy_windows=False)
    console.print(update)
    return console.export_text()


def rich_text(renderable, width: int = 400) -> str:
    """A rich renderable as plain text, wide enough that no line wraps."""
    console = Console(width=width, record=True, file=io.StringIO(), color_system=None)
    console.print(renderable)
    return console.export_text()


def screen_segments(app) -> list[str]:
    """The text of every segment the screen would send to the terminal, cursor moves left out."""
    update = app.screen._compositor.render_update(full=True)
    console = Console(width=app.size.width, file=io.StringIO(), color_system=None)
    return [segment.text for segment in console.render(update) if not segment.control]


async def wait_for(pilot, condition, timeout: float = 30.0, step: float = 0.05) -> bool:
    """Let the app run until ``condition()`` holds; return whether it did before ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        await pilot.pause(step)
    return condition()


async def wait_text(pilot, text: str, timeout: float = 10.0) -> str:
    """Wait until ``text`` is on screen (panes are laid out on the next refresh); return the screen."""
    await wait_for(pilot, lambda: text in screen_text(pilot.app), timeout, step=0.1)
    return screen_text(pilot.app)


async def wait_loaded(pilot, timeout: float = 30.0) -> bool:
    return await wait_for(pilot, lambda: not getattr(pilot.app.screen, "rows_loading", True), timeout)


async def wait_generation(pilot, generation: int, timeout: float = 60.0) -> bool:
    """Wait until the final scores of ``generation`` (or a later one) are painted."""
    return await wait_for(pilot, lambda: getattr(pilot.app.screen, "painted_generation", 0) >= generation, timeout)
