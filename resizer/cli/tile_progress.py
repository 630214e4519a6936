"""The per-image progress bar: tiles done / total, once one image has run for about a second.

A learned resize of a large photo takes minutes on a CPU; without this the terminal shows
nothing meanwhile. The engine reports every finished tile (``progress(done, total)``,
from its worker threads); :class:`TileProgress` turns that into a bar on standard error,
only on a terminal, never with ``--quiet`` or ``--json`` (the caller decides), and only
for an image that has already run for ``RESIZER_PROGRESS_AFTER`` seconds (default 1):
small images finish before any bar would be readable. A folder run shows it as a second
line under the files bar.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress, TaskID

    from ..pipeline import BatchSettings, FileResult

DEFAULT_DELAY_S = 1.0


def _delay() -> float:
    """Seconds an image must have run before its bar appears (``RESIZER_PROGRESS_AFTER``, else 1)."""
    try:
        return max(0.0, float(os.environ.get("RESIZER_PROGRESS_AFTER", DEFAULT_DELAY_S)))
    except ValueError:
        return DEFAULT_DELAY_S


class TileProgress:
    """Tiles done / total of the image being resized, as a rich bar (see the module docstring).

    An image's clock starts when the previous image's result arrived (``image_done``) or
    when the bar was made, so it includes decoding. ``use(progress)`` puts the bar into an
    existing display (the folder bar) instead of starting its own.
    """

    def __init__(self, console: "Console", delay: float | None = None) -> None:
        self.console = console
        self.delay = _delay() if delay is None else delay
        self._lock = threading.Lock()
        self._started = time.monotonic()
        self._shared: "Progress | None" = None
        self._own: "Progress | None" = None
        self._task: "TaskID | None" = None
        self.shown = 0  # images that got a bar (tests, and the curious)

    def use(self, progress: "Progress") -> None:
        """Show the bar as a task of ``progress`` (already started by the caller)."""
        self._shared = progress

    def attach(self, settings: "BatchSettings") -> "BatchSettings":
        """``settings`` whose learned methods report their tiles here."""
        return dataclasses.replace(settings, run=dataclasses.replace(settings.run, progress=self))

    def wrap(self, on_result: Callable[["FileResult"], None]) -> Callable[["FileResult"], None]:
        """``on_result`` that also closes the finished image's bar."""
        def report(result: "FileResult") -> None:
            self.image_done()
            on_result(result)

        return report

    def __call__(self, done: int, total: int) -> None:
        with self._lock:
            if self._task is None:
                if done >= total or time.monotonic() - self._started < self.delay:
                    return
                self._task = self._display().add_task("tiles", total=total, completed=done)
                self.shown += 1
            else:
                self._display().update(self._task, completed=done, total=total)

    def image_done(self) -> None:
        """Remove the bar of the image that just finished; the next image's clock starts now."""
        with self._lock:
            if self._task is not None:
                self._display().refresh()  # draw the last tile's count before the bar goes (rich redraws on a timer)
                self._display().remove_task(self._task)
                self._task = None
            self._started = time.monotonic()

    def close(self) -> None:
        """Stop the bar's own display, if it started one."""
        self.image_done()
        if self._own is not None:
            self._own.stop()
            self._own = None

    def _display(self) -> "Progress":
        if self._shared is not None:
            return self._shared
        if self._own is None:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self._own = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeRemainingColumn(), console=self.console, transient=True)
            self._own.start()
        return self._own
