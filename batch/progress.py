"""The batch's terminal display: an overall bar and a bar per clip in progress (``rich``), or plain lines when the
output is not a terminal (CI logs, ``| tee``). No bpy, no torch. Called from the driver's main thread only.
"""
from __future__ import annotations

import sys
import time


class Display:
    def __init__(self, total: int, skipped: int, *, plain: bool | None = None, stream=None):
        from rich.console import Console

        self.console = Console(file=stream or sys.stderr, highlight=False)
        self.plain = (not self.console.is_terminal) if plain is None else plain
        self.total, self.done = total, skipped
        self._tasks: dict[str, int] = {}
        self._last: dict[str, float] = {}
        self._progress = None
        if not self.plain:
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn,
                                       TimeElapsedColumn, TimeRemainingColumn)

            self._progress = Progress(SpinnerColumn(), TextColumn("{task.description}", justify="left"), BarColumn(),
                                      MofNCompleteColumn(), TextColumn("{task.fields[rate]}"), TimeElapsedColumn(),
                                      TimeRemainingColumn(), console=self.console, transient=False)
            self._progress.start()
            self._overall = self._progress.add_task("[bold]all clips", total=total, completed=skipped, rate="")

    def line(self, text: str, markup: bool = False) -> None:
        """Print a line above the bars (``markup``: ``text`` holds rich markup, anything else is printed as is)."""
        console = self._progress.console if self._progress is not None else self.console
        console.print(text, soft_wrap=True, markup=markup, highlight=False)

    def started(self, name: str) -> None:
        if self._progress is not None:
            self._tasks[name] = self._progress.add_task(f"{name} · starting", total=1, rate="")
        else:
            self.line(f"[batch] started {name}")
        self._last[name] = 0.0

    def progress(self, name: str, stage: str, done: int, total: int, fps: float) -> None:
        if self._progress is None or name not in self._tasks:
            return
        now = time.monotonic()
        if now - self._last.get(name, 0.0) < 0.1 and done < total:
            return
        self._last[name] = now
        self._progress.update(self._tasks[name], description=f"{name} · {stage}", total=max(total, 1),
                              completed=done, rate=f"{fps:.1f} frames/s" if fps else "")

    def finished(self, record: dict) -> None:
        name = record["name"]
        self.done += 1
        self._last.pop(name, None)
        if self._progress is not None and name in self._tasks:
            self._progress.remove_task(self._tasks.pop(name))
            self._progress.update(self._overall, completed=self.done)
        from rich.markup import escape

        if record.get("status") == "ok":
            metrics = record.get("metrics") or {}
            ok, text = True, f"{name}: {metrics.get('frames', '?')} frames in {record.get('seconds', 0):.1f} s"
        else:
            fix = f" — fix: {record['fix']}" if record.get("fix") else ""
            ok, text = False, (f"{name}: {record.get('status')} at {record.get('stage', '?')}: "
                               f"{record.get('error', '')}{fix}")
        if self.plain:
            self.line(f"[batch] {self.done}/{self.total} {'ok' if ok else 'FAILED'} {text}")
        else:
            self.line(("[green]✓[/] " if ok else "[red]✗[/] ") + escape(text), markup=True)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
