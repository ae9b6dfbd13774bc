"""The engine as a child process per run: start it, read its progress without blocking, end its tree.

Protocol: stdout carries only JSON lines {"stage", "fraction", "message"}; a user error prints
`mstkd segment: error: <message>` on stderr and exits 2; anything else that fails exits non-zero
with a traceback on stderr. Cancelling never waits: the process tree is ended by a thread.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable, Deque, List, Mapping, Optional, Sequence, Union

from mstkd.errors import USER_ERROR_STATUS

_ERROR_LINE = re.compile(r"^mstkd(?: [\w-]+)?: error: (?P<message>.+)$")
# tqdm bars on stderr ('42%|####  | 5/12 [00:01<00:02, 3.1it/s]') are progress, not log.
_PROGRESS_BAR = re.compile(r"\d+%\|")
_LOG_LINES = 2000
# How long the output of an engine that has ended is still read.
LAST_WORDS_S = 2.0


@dataclass(frozen=True)
class Progress:
    """One progress line of the engine: the stage, the whole job's fraction done, a line for people."""

    stage: str
    fraction: float
    message: str


def parse_progress(line: str) -> Optional[Progress]:
    """The Progress a stdout line carries, or None when it is not a progress line."""
    try:
        data = json.loads(line)
    except ValueError:
        return None
    if not isinstance(data, dict) or "stage" not in data:
        return None
    try:
        fraction = min(max(float(data.get("fraction", 0.0)), 0.0), 1.0)
    except (TypeError, ValueError):
        fraction = 0.0
    return Progress(str(data["stage"]), fraction, str(data.get("message", "")))


def format_duration(seconds: float) -> str:
    """A rough human duration, said as approximate: 'a few seconds', 'about 40 s', 'about 3 min',
    'about 1 h 5 min'."""
    if seconds < 10:
        return "a few seconds"
    if seconds < 60:
        return f"about {int(round(seconds, -1))} s"
    minutes = int(round(seconds / 60))
    if minutes < 60:
        return f"about {minutes} min"
    return f"about {minutes // 60} h {minutes % 60} min"


class ProgressClock:
    """Time remaining from the fraction done so far, assuming the rest goes at the same pace."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.started = clock()
        self.fraction = 0.0

    def update(self, progress: Progress) -> None:
        """Record the latest fraction (it never goes back)."""
        self.fraction = max(self.fraction, progress.fraction)

    def remaining_s(self) -> Optional[float]:
        """Seconds left, or None until there is enough progress to tell."""
        elapsed = self.clock() - self.started
        if self.fraction < 0.02 or elapsed < 1.0:
            return None
        return elapsed * (1.0 - self.fraction) / self.fraction


Event = Union[Progress, str]


class EngineOutput:
    """What a run of the engine said: progress events and log lines, queued until `poll()` takes them."""

    def __init__(self) -> None:
        self.log: Deque[str] = deque(maxlen=_LOG_LINES)
        self.stderr: Deque[str] = deque(maxlen=_LOG_LINES)
        self._events: queue.Queue[Event] = queue.Queue()

    def add_line(self, raw: str, is_stderr: bool) -> None:
        """Take one line of the engine's stdout (progress, else log) or stderr (log; bars are dropped)."""
        line = raw.rstrip("\r\n")
        if not line.strip():
            return
        progress = None if is_stderr else parse_progress(line)
        if progress is not None:
            self._events.put(progress)
            return
        self.log.append(line)
        if is_stderr:
            self.stderr.append(line)
            if _PROGRESS_BAR.search(line):
                return
        self._events.put(line)

    def poll(self) -> List[Event]:
        """The progress events and log lines that arrived since the last call."""
        events = []
        while True:
            try:
                events.append(self._events.get_nowait())
            except queue.Empty:
                return events

    def failure(self, status: Optional[int], reported: str = "") -> str:
        """What went wrong, for people: the engine's own message (its `error:` line, or `reported`),
        else the last line of its traceback."""
        for line in reversed(self.stderr):
            match = _ERROR_LINE.match(line.strip())
            if match:
                return match.group("message").strip()
        if reported and status == USER_ERROR_STATUS:
            return reported
        last = reported or next((line.strip() for line in reversed(self.stderr) if line.strip()), "")
        text = f"The segmentation process failed (exit status {status})"
        return f"{text}: {last}" if last else f"{text} without a message."


class EngineProcess(EngineOutput):
    """A child process read by two threads; `poll()` hands over what arrived, never blocking."""

    def __init__(
        self, command: Sequence[str], env: Optional[Mapping[str, str]] = None, cwd: Optional[str] = None
    ):
        super().__init__()
        self.command = [str(c) for c in command]
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.cancelled = False
        self._popen: Optional[subprocess.Popen] = None
        self._readers: List[threading.Thread] = []
        self._ended: Optional[float] = None

    def start(self) -> None:
        """Start the child in its own process group, so that it and its children can be ended together."""
        self._popen = start_child(self.command, self.env, self.cwd)
        self._readers = [
            threading.Thread(target=self._read, args=(self._popen.stdout, False), daemon=True),
            threading.Thread(target=self._read, args=(self._popen.stderr, True), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _read(self, stream, is_stderr: bool) -> None:
        for raw in stream:
            self.add_line(raw, is_stderr)
        stream.close()

    @property
    def pid(self) -> Optional[int]:
        """The child's process id once started."""
        return self._popen.pid if self._popen else None

    @property
    def returncode(self) -> Optional[int]:
        """The exit status once the child has ended and its output has been read, else None.

        Its last output is waited for a while only: a child it left behind may hold its pipes open
        (that one is ended then)."""
        if self._popen is None or self._popen.poll() is None:
            return None
        if any(reader.is_alive() for reader in self._readers):
            if self._ended is None:
                self._ended = time.monotonic()
            if time.monotonic() - self._ended < LAST_WORDS_S:
                return None
            kill_process_group(self._popen.pid)
        return self._popen.returncode

    @property
    def finished(self) -> bool:
        """True when the child has ended and all its output is in, or once it was cancelled."""
        return self.cancelled or self.returncode is not None

    def wait(self, timeout: Optional[float] = None) -> Optional[int]:
        """Block until the child ends (or `timeout` seconds pass); returns the exit status or None."""
        if self._popen is None:
            return None
        try:
            self._popen.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        for reader in self._readers:
            reader.join(5.0)
        return self.returncode

    def cancel(self, grace_s: float = 3.0, then: Callable[[], None] = lambda: None) -> None:
        """End the child and every process it started, without waiting: a thread terminates them, kills
        what is left after `grace_s`, then calls `then` (e.g. to delete the child's files)."""
        self.cancelled = True
        end_in_background(self._popen, grace_s, then)

    def error_message(self) -> str:
        """What went wrong, for people: the engine's `error:` line, else the last line of its traceback."""
        return self.failure(self.returncode)


class ChildProcessEngine:
    """Each segmentation in a new `mstkd segment` child process: the engine's cold path."""

    def __init__(self, command: Sequence[str], env: Optional[Mapping[str, str]] = None) -> None:
        self.command = list(command)
        self.env = env

    def segment(self, arguments: Sequence[str], folder: str) -> EngineProcess:
        """Start `mstkd segment` with these arguments, in `folder`."""
        process = EngineProcess([*self.command, *arguments], env=self.env, cwd=folder)
        process.start()
        return process


def start_child(
    command: Sequence[str], env: Optional[Mapping[str, str]], cwd: Optional[str], stdin: Optional[int] = None
) -> subprocess.Popen:
    """A child with piped, line-buffered UTF-8 output, leading its own process group (so that it and
    its children can be ended together); `stdin` defaults to nothing to read."""
    options = {}
    if sys.platform == "win32":
        options["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP | getattr(
            subprocess, "CREATE_NO_WINDOW", 0
        )
    else:
        options["start_new_session"] = True
    return subprocess.Popen(
        [str(c) for c in command],
        stdin=subprocess.DEVNULL if stdin is None else stdin,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=None if env is None else dict(env),
        cwd=cwd,
        text=True,
        encoding="utf-8",
        errors="replace",
        bufsize=1,
        **options,
    )


def end_in_background(
    popen: Optional[subprocess.Popen], grace_s: float = 3.0, then: Callable[[], None] = lambda: None
) -> threading.Thread:
    """End a child's process tree from a thread (the caller, a GUI, never waits); then call `then`."""

    def end() -> None:
        if popen is not None and popen.poll() is None:
            end_process_tree(popen, grace_s)
        if popen is not None:
            _quietly(popen.wait)
        then()

    thread = threading.Thread(target=end, daemon=True)
    thread.start()
    return thread


def end_process_tree(popen: subprocess.Popen, grace_s: float = 3.0) -> None:
    """Terminate a child and its descendants (found with psutil), killing what outlives `grace_s`.

    The child leads its own process group (start_new_session), so on POSIX the group is killed
    too, which also catches descendants when psutil is not installed.
    """
    descendants = _descendants(popen.pid)
    for process in [popen, *descendants]:
        _quietly(process.terminate)
    try:
        popen.wait(grace_s)
    except subprocess.TimeoutExpired:
        _quietly(popen.kill)
        popen.wait()
    if descendants:
        import psutil

        _, alive = psutil.wait_procs(descendants, timeout=grace_s)
        for process in alive:
            _quietly(process.kill)
    kill_process_group(popen.pid)


def kill_process_group(pid: int) -> None:
    """Kill what is left of the process group a child led (POSIX): the children it left behind."""
    if sys.platform == "win32":
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _descendants(pid: int) -> list:
    try:
        import psutil
    except ImportError:
        return []
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []


def _quietly(action: Callable[[], object]) -> None:
    with contextlib.suppress(Exception):  # the process ended on its own meanwhile
        action()
