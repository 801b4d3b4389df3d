"""Progress display for long work: click's bar on a terminal, a line every 10 % otherwise.

click's bar redraws one terminal line; written to a log file (``nohup``, a
batch job, CI) it shows only its label until the end, so an hour-long epoch
looks hung. Off a terminal this prints ``label: 40 % (156/391, 612 s)`` at
every tenth instead.
"""
from __future__ import annotations

import sys
import time

import click


class ProgressBar:
    """update(n) after n more items of `length`; close() when done (safe to call twice)."""

    def __init__(self, length: int, label: str, stream=None):
        self.stream = stream or sys.stderr
        self.length = max(int(length), 1)
        self.label = label
        self.done = 0
        self.bar = None
        self.t0 = time.perf_counter()
        self.next_tenth = 1
        if self.stream.isatty():
            self.bar = click.progressbar(length=length, label=label, show_pos=True, file=self.stream)
            self.bar.__enter__()

    def update(self, n: int) -> None:
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
            return
        tenth = self.done * 10 // self.length
        if tenth >= self.next_tenth:
            self.next_tenth = tenth + 1
            click.echo(f"{self.label}: {min(tenth, 10) * 10} % ({self.done}/{self.length}, "
                       f"{time.perf_counter() - self.t0:.0f} s)", file=self.stream)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None


class LazyProgressBar:
    """A ProgressBar created at the first call (done, total), when the total is known; close() when done."""

    def __init__(self, label: str):
        self.label = label
        self.bar: ProgressBar | None = None

    def __call__(self, done: int, total: int) -> None:
        if self.bar is None:
            self.bar = ProgressBar(total, self.label)
        self.bar.update(done)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
