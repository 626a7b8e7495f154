"""Progress on the terminal for the CLI: a rich progress bar when stderr is a terminal, plain
timestamped lines when it is piped, nothing with ``--quiet``.

The library reports progress through a callable ``progress(message, done=None, total=None)``:
a stage name, and for work that counts (files of a batch, blocks of a long file, clips, plugin
bundles) how far it is. :class:`Reporter` is that callable. Plain lines are thinned out so that
a long count prints about every tenth of the way, not once per block.
"""

from __future__ import annotations

import sys
import time
from typing import Any, Sequence, TextIO


class Reporter:
    """The CLI's progress callable; use as a context manager (the bar ends with the command)."""

    def __init__(self, mode: str, stream: TextIO | None = None):
        if mode not in ("bar", "lines", "quiet"):
            raise ValueError(f"unknown progress mode {mode!r}")
        self.mode = mode
        self._stream = stream or sys.stderr
        self._start = time.perf_counter()
        self._last: tuple[str, int] | None = None  # message and tenth of the way last printed
        self._bar: Any = None  # a rich.progress.Progress once a bar is shown
        self._task: Any = None

    @classmethod
    def for_terminal(cls, quiet: bool, verbose: bool = False) -> "Reporter":
        """``quiet``: nothing; a terminal: a bar (lines with ``verbose``, beside the log); else lines."""
        if quiet:
            return cls("quiet")
        return cls("bar" if sys.stderr.isatty() and not verbose else "lines")

    def __call__(self, message: str, done: float | None = None, total: float | None = None) -> None:
        if self.mode == "quiet":
            return
        if self.mode == "bar":
            self._update_bar(message, done, total)
            return
        tenth = int(10 * done / total) if done is not None and total else -1
        if self._last == (message, tenth):
            return
        self._last = (message, tenth)
        count = f" ({100 * done / total:.0f} %)" if done is not None and total else ""
        print(f"  [{time.perf_counter() - self._start:5.1f} s] {message}{count}", file=self._stream, flush=True)

    def _update_bar(self, message: str, done: float | None, total: float | None) -> None:
        if self._bar is None:
            # lazy: rich is imported only for a bar on a terminal (piped and quiet runs never need it)
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                Progress,
                SpinnerColumn,
                TaskProgressColumn,
                TextColumn,
                TimeElapsedColumn,
            )

            self._bar = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                                 TaskProgressColumn(), TimeElapsedColumn(),
                                 console=Console(file=self._stream), transient=True)
            self._bar.start()
            self._task = self._bar.add_task(message, total=None)
        self._bar.update(self._task, description=message, total=total, completed=done or 0)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def __enter__(self) -> "Reporter":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def print_rows(rows: Sequence[tuple[str, str]], notes: Sequence[str] = (), plain: str = "",
               stream: TextIO | None = None) -> None:
    """A two-column table: drawn by rich on a terminal, ``plain`` (the same rows as aligned text,
    which scripts parse) when the output is piped."""
    stream = stream or sys.stdout
    if not stream.isatty():
        print(plain, file=stream)
        return
    from rich.console import Console  # lazy: rich only on a terminal
    from rich.table import Table

    table = Table(show_header=False, box=None, padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    for label, value in rows:
        table.add_row(label, value)
    console = Console(file=stream)
    console.print(table)
    for note in notes:
        console.print(f"  note: {note}", style="yellow")


def print_lines(lines: Sequence[str], stream: TextIO | None = None) -> None:
    """Text whose Markdown tables (runs of ``| a | b |`` lines, the second ``| --- |``) are drawn
    by rich on a terminal, aligned as their separator says (``---:`` right). Piped, the lines are
    printed as they are: Markdown, which scripts and the docs take."""
    stream = stream or sys.stdout
    if not stream.isatty():
        for line in lines:
            print(line, file=stream)
        return
    from rich.console import Console  # lazy: rich only on a terminal
    from rich.table import Table

    console = Console(file=stream)

    def cells(line: str) -> list[str]:
        return [c.strip() for c in line.strip().strip("|").split("|")]

    i = 0
    while i < len(lines):
        line = lines[i]
        if line.lstrip().startswith("|") and i + 1 < len(lines) and set(lines[i + 1].strip()) <= set("|-: "):
            table = Table(show_lines=False)
            for name, rule in zip(cells(line), cells(lines[i + 1])):
                table.add_column(name, justify="right" if rule.endswith(":") else "left")
            i += 2
            while i < len(lines) and lines[i].lstrip().startswith("|"):
                table.add_row(*cells(lines[i]))
                i += 1
            console.print(table)
            continue
        console.print(line, markup=False, highlight=False)
        i += 1
