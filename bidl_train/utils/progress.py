"""Console progress bars with ETA that vanish when nobody is watching.

A bar is drawn only when the stream (``sys.stdout`` by default) is a
terminal; in CI logs, pipes and files every function here does nothing and
adds no output, so log files keep only mmengine's logger lines.

Two entry points:

* :func:`track` wraps any iterable: ``for item in track(items, 'caching',
  total=n): ...``. For one-off loops such as building a dataset cache or
  verifying a deployed model.
* :class:`ProgressDisplay`: one live display with several bars that are
  added, advanced and removed by hand (what the runner hook uses).

While a display is live, the console handlers of the given loggers print
through it, so log lines appear above the bar instead of tearing it. This
module imports nothing of bidl-train, so any layer may use it.
"""
import logging
import sys

from rich.console import Console
from rich.errors import LiveError
from rich.file_proxy import FileProxy
from rich.progress import (BarColumn, MofNCompleteColumn, Progress,
                           TextColumn, TimeElapsedColumn, TimeRemainingColumn)

__all__ = ['ProgressDisplay', 'is_interactive', 'track']


def is_interactive(stream=None):
    """Whether ``stream`` (default ``sys.stdout``) is a terminal."""
    stream = sys.stdout if stream is None else stream
    isatty = getattr(stream, 'isatty', None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # closed stream
        return False


class ProgressDisplay:
    """A live set of progress bars on one stream, or nothing.

    Args:
        stream: where to draw (default ``sys.stdout``).
        enabled (bool, optional): force on or off; by default on exactly
            when ``stream`` is a terminal.
        loggers (list[logging.Logger]): loggers whose console handlers
            print above the bars while the display is live.

    Methods are no-ops when disabled, so callers never branch on it. A
    second live display on the same console (``rich`` allows one) is not
    an error: this one then stays silent.
    """

    def __init__(self, stream=None, enabled=None, loggers=()):
        self.stream = sys.stdout if stream is None else stream
        self.enabled = is_interactive(self.stream) if enabled is None \
            else bool(enabled)
        self.loggers = list(loggers)
        self._progress = None
        self._swapped = []

    @property
    def live(self):
        return self._progress is not None

    def start(self):
        if not self.enabled or self._progress is not None:
            return self
        console = Console(file=self.stream, force_terminal=self.enabled)
        progress = Progress(
            TextColumn('[bold]{task.description}'),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn('elapsed'),
            TimeElapsedColumn(),
            TextColumn('eta'),
            TimeRemainingColumn(),
            TextColumn('{task.fields[info]}'),
            console=console,
            transient=False,
            redirect_stdout=False,
            redirect_stderr=False)
        try:
            progress.start()
        except LiveError:
            return self
        self._progress = progress
        self._route_loggers(console)
        return self

    def stop(self):
        if self._progress is None:
            return
        try:
            self._progress.stop()
        finally:
            self._progress = None
            for handler, stream in self._swapped:
                handler.setStream(stream)
            self._swapped = []

    def add(self, description, total=None, info=''):
        """A new bar; returns its id (None when disabled)."""
        if self._progress is None:
            return None
        return self._progress.add_task(description, total=total, info=info)

    def advance(self, task, steps=1, info=None):
        """Move bar ``task`` on by ``steps``; ``info`` replaces its note."""
        if self._progress is None or task is None:
            return
        fields = {} if info is None else {'info': info}
        self._progress.update(task, advance=steps, **fields)

    def remove(self, task):
        if self._progress is None or task is None:
            return
        self._progress.remove_task(task)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False

    def _route_loggers(self, console):
        for logger in self.loggers:
            for handler in logger.handlers:
                if type(handler) is not logging.StreamHandler:
                    continue  # file handlers keep writing to their files
                if handler.stream not in (sys.stdout, sys.stderr,
                                          sys.__stdout__, sys.__stderr__):
                    continue
                original = handler.stream
                handler.setStream(FileProxy(console, original))
                self._swapped.append((handler, original))


def track(iterable, description, total=None, stream=None, enabled=None,
          loggers=()):
    """Yield from ``iterable`` with a progress bar when on a terminal.

    ``total`` defaults to ``len(iterable)`` when it has one.
    """
    if total is None and hasattr(iterable, '__len__'):
        total = len(iterable)
    display = ProgressDisplay(stream=stream, enabled=enabled,
                              loggers=loggers)
    if not display.enabled:
        yield from iterable
        return
    with display:
        task = display.add(description, total=total)
        for item in iterable:
            yield item
            display.advance(task)
