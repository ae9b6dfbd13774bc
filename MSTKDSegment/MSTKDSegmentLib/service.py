"""The warm engine: one `mstkd serve` process kept for the session, so that only the first run pays for
starting Python, importing PyTorch and loading the model.

The service starts the engine on first use (it greets when its imports are done) and restarts it
transparently when it has died. Requests are answered in the order sent (a segmentation sent
while a device check runs waits for it). Cancelling a request ends the engine at once (with its
children, and the requests waiting); the next request starts a new one. `close()` ends it; it
also ends by itself when this process goes away, because its stdin closes.
"""

from __future__ import annotations

import contextlib
import itertools
import subprocess
import threading
from collections import deque
from typing import Any, Callable, Deque, Dict, Mapping, Optional, Sequence

from mstkd.errors import MSTKDError
from mstkd.inference.messages import DEVICE, END, PROGRESS, READY, SEGMENT, decode_reply, encode_request
from MSTKDSegmentLib.process import (
    LAST_WORDS_S,
    EngineOutput,
    end_in_background,
    kill_process_group,
    start_child,
)

_LOG_LINES = 2000


class ServiceJob(EngineOutput):
    """One request to the warm engine: polled, waited for or cancelled like a child process."""

    def __init__(self, service: EngineService, request_id: str) -> None:
        super().__init__()
        self.service = service
        self.request_id = request_id
        self.cancelled = False
        self.returncode: Optional[int] = None
        self.reply: Dict[str, Any] = {}
        self._done = threading.Event()

    @property
    def finished(self) -> bool:
        """True once the engine answered, died, or the request was cancelled."""
        return self.cancelled or self._done.is_set()

    @property
    def pid(self) -> Optional[int]:
        """The engine's process id."""
        return self.service.pid

    def end(self, status: int, reply: Optional[Dict[str, Any]] = None) -> None:
        """Record the request's end: the engine's END reply, or the status of an engine that died."""
        self.reply = dict(reply or {})
        self.returncode = status
        self._done.set()

    def wait(self, timeout: Optional[float] = None) -> Optional[int]:
        """Block until the request ends (or `timeout` seconds pass); returns its status or None."""
        self._done.wait(timeout)
        return self.returncode

    def cancel(self, grace_s: float = 3.0, then: Callable[[], None] = lambda: None) -> None:
        """End the request at once: the engine is ended (by a thread) and `then` called after."""
        self.cancelled = True
        self.service.stop(grace_s, then)

    def error_message(self) -> str:
        """What went wrong, for people."""
        return self.failure(self.returncode, str(self.reply.get("error") or ""))


class EngineService:
    """A `mstkd serve` process kept warm between requests; `command` starts it, `env` is its environment."""

    def __init__(self, command: Sequence[str], env: Optional[Mapping[str, str]] = None) -> None:
        self.command = list(command)
        self.env = env
        self.log: Deque[str] = deque(maxlen=_LOG_LINES)
        self.starts = 0
        self._popen: Optional[subprocess.Popen] = None
        self._ready = threading.Event()
        self._jobs: Deque[ServiceJob] = deque()  # sent and not answered yet, oldest (the running one) first
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    @property
    def alive(self) -> bool:
        """True while an engine process runs."""
        return self._popen is not None and self._popen.poll() is None

    @property
    def ready(self) -> bool:
        """True when a running engine has finished its imports and greeted."""
        return self.alive and self._ready.is_set()

    @property
    def pid(self) -> Optional[int]:
        """The engine's process id, while one runs."""
        return self._popen.pid if self._popen is not None else None

    def start(self) -> None:
        """Start an engine unless one runs; returns at once (it greets when ready)."""
        with self._lock:
            if self.alive:
                return
            popen = start_child(self.command, self.env, None, stdin=subprocess.PIPE)
            self._popen, self._ready = popen, threading.Event()
            self.starts += 1
        readers = [
            threading.Thread(target=self._read, args=(popen, stream, is_stderr), daemon=True)
            for stream, is_stderr in ((popen.stdout, False), (popen.stderr, True))
        ]
        for reader in readers:
            reader.start()
        threading.Thread(target=self._watch, args=(popen, readers[0]), daemon=True).start()

    def segment(self, arguments: Sequence[str], folder: str = "") -> ServiceJob:
        """Run `mstkd segment` with these arguments in the engine (`folder` is unused: paths are absolute)."""
        return self.submit(SEGMENT, [str(a) for a in arguments])

    def check_device(self, model: str, device: str) -> ServiceJob:
        """Ask which device a run of `model` will use and the model's speed there (see job.reply)."""
        return self.submit(DEVICE, {"model": str(model), "device": str(device)})

    def submit(self, kind: str, payload: Any) -> ServiceJob:
        """Send one request (answered after those sent before it), starting the engine as needed."""
        for attempt in range(2):
            self.start()
            job = ServiceJob(self, str(next(self._ids)))
            self._jobs.append(job)
            try:
                self._popen.stdin.write(encode_request(job.request_id, kind, payload) + "\n")
                self._popen.stdin.flush()
                return job
            except (OSError, ValueError):  # it died since it was started: once more with a new one
                self.stop(grace_s=0.0)
                if attempt:
                    raise MSTKDError("The segmentation engine could not be started; see the log.") from None
        raise AssertionError("unreachable")

    def stop(self, grace_s: float = 3.0, then: Callable[[], None] = lambda: None) -> None:
        """End the engine now (from a thread: this never waits); its requests end as cancelled."""
        with self._lock:
            popen, self._popen = self._popen, None
            jobs, self._jobs = self._jobs, deque()
        for job in jobs:
            job.cancelled = True
        end_in_background(popen, grace_s, then)

    def close(self, grace_s: float = 3.0) -> None:
        """End the engine: closing its stdin asks it to stop; what is left after `grace_s` is killed."""
        popen = self._popen
        if popen is not None and popen.stdin is not None:
            with contextlib.suppress(OSError):
                popen.stdin.close()
        self.stop(grace_s)

    def _read(self, popen: subprocess.Popen, stream, is_stderr: bool) -> None:
        for line in stream:
            self._take(popen, line, is_stderr)
        stream.close()

    def _watch(self, popen: subprocess.Popen, stdout_reader: threading.Thread) -> None:
        """When the engine ends, its unanswered requests have failed. Its last replies are read first,
        for a while only: a child it leaves behind may hold its stdout open."""
        popen.wait()
        stdout_reader.join(LAST_WORDS_S)
        kill_process_group(popen.pid)
        with self._lock:
            jobs = list(self._jobs) if popen is self._popen else []
            if jobs:
                self._jobs.clear()
        for job in jobs:
            job.end(popen.returncode or 1)  # an engine that ends mid-request has failed

    def _take(self, popen: subprocess.Popen, line: str, is_stderr: bool) -> None:
        job = self._jobs[0] if popen is self._popen and self._jobs else None
        reply = None if is_stderr else decode_reply(line)
        if reply is not None and reply.kind == READY:
            self._ready.set()
        elif reply is not None and reply.kind == END:
            if job is not None and reply.request_id == job.request_id:
                self._jobs.popleft()
                job.end(reply.status, reply.data)
        elif reply is not None and reply.kind == PROGRESS and job is not None:
            job.add_line(line, False)
        elif job is not None:
            job.add_line(line, is_stderr)
        elif line.strip():
            self.log.append(line.rstrip("\r\n"))
