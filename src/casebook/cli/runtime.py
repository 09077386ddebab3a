"""The tools' runtime: one-line errors with exit code 2, the argument parser, signals."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import warnings

EXIT_BAD_INPUT = 2


class CLIError(Exception):
    """A user error: reported as one line, exit code 2."""


class Terminated(BaseException):
    """SIGTERM, raised in the main thread so that ``finally`` blocks remove staged and temporary files."""


def first_line(error: BaseException) -> str:
    """The first non-empty line of an exception's message (some libraries start theirs with a newline)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (``prog: error: …``) and exit code 2."""

    def error(self, message):
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)


def _raise_terminated(signum, frame):
    raise Terminated(signum)


def run(main_fn, prog: str, argv=None) -> int:
    """Call ``main_fn(argv)``; turn :class:`CLIError` into one stderr line and exit code 2. SIGTERM and
    Ctrl-C unwind normally (so nothing staged is left behind) and exit with 128 + the signal number."""
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # library notices are not the tool's output
            return main_fn(argv) or 0
    except CLIError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 128 + signal.SIGINT
    except Terminated:
        print(f"{prog}: terminated", file=sys.stderr)
        return 128 + signal.SIGTERM
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
