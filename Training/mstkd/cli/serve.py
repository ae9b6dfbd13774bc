"""`mstkd serve`: a warm engine for front ends, one process that keeps PyTorch imported and the model
loaded on its device between runs (the Slicer module keeps one per session).

Requests arrive as JSON lines on stdin and are answered on stdout (mstkd.inference.messages): a
`segment` request carries the arguments of `mstkd segment` and runs that command's own code with
the kept model; a `device` request says which device a run will use and how fast the model is
there. stderr carries the log. The engine ends when stdin closes, at once even mid-run (its front
end has quit or died); a front end cancels a run by ending the process and starting another.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import queue
import sys
import threading
import traceback
from pathlib import Path
from typing import Any, Callable, Dict, Optional, TextIO, Tuple

from mstkd import __version__

DESCRIPTION = """\
Keep the engine warm for a program that segments several exams: read requests as JSON lines on
stdin, answer with JSON lines on stdout (log on stderr), keep the model loaded between requests,
and stop when stdin closes. See mstkd/inference/messages.py for the messages.
"""

FAILURE = 1

Handler = Callable[[Any, TextIO], Dict[str, Any]]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `serve` subcommand."""
    parser = subparsers.add_parser(
        "serve",
        help="a warm engine: segment exams on request (JSON lines on stdin/stdout), model kept loaded",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Answer requests until stdin closes."""
    replies = sys.stdout
    sys.stdout = sys.stderr  # whatever else is printed, by us or a library, is log
    import mstkd.inference.device_check  # noqa: F401  (PyTorch, MONAI, SimpleITK: imported before "ready")
    import mstkd.inference.output  # noqa: F401

    predictors = PredictorCache()
    handlers: Dict[str, Handler] = {
        "segment": lambda argv, out: {"status": segment_request(argv, out, predictors)},
        "device": lambda payload, out: device_request(payload, predictors),
    }
    return Server(sys.stdin, replies, handlers, on_release=predictors.release).serve()


class Server:
    """The request loop: one request at a time, replies and progress on `replies`.

    `handlers` maps a request kind to a function (payload, replies) -> fields of the END reply.
    A handler's MSTKDError ends its request with status 2 and the message; any other exception with
    status 1, its traceback in the log, and `on_release()` (the kept model may be in a bad state).
    """

    def __init__(
        self,
        requests: TextIO,
        replies: TextIO,
        handlers: Dict[str, Handler],
        on_release: Callable[[], None] = lambda: None,
        on_parent_gone: Callable[[], None] = lambda: os._exit(0),
    ) -> None:
        self.requests = requests
        self.replies = replies
        self.handlers = handlers
        self.on_release = on_release
        self.on_parent_gone = on_parent_gone
        self._lines: queue.Queue = queue.Queue()
        self._unanswered = 0  # requests read and not yet answered
        self._lock = threading.Lock()

    def serve(self) -> int:
        """Greet, then answer each request line until stdin closes."""
        threading.Thread(target=self._read, daemon=True).start()
        self.send(ready=True, pid=os.getpid(), version=__version__)
        while True:
            line = self._lines.get()
            if line is None:
                return 0
            try:
                if line.strip():
                    self.answer(line)
            finally:
                with self._lock:
                    self._unanswered -= 1

    def answer(self, line: str) -> None:
        """Run one request and send its END reply."""
        from mstkd.errors import USER_ERROR_STATUS, MSTKDError
        from mstkd.inference.messages import decode_request

        request_id = "?"
        try:
            request_id, kind, payload = decode_request(line)
            fields = self.handlers[kind](payload, self.replies)
        except MSTKDError as error:
            fields = {"status": USER_ERROR_STATUS, "error": str(error)}
        except Exception as error:  # the engine stays up for the next request
            traceback.print_exc(file=sys.stderr)
            self.on_release()
            fields = {"status": FAILURE, "error": f"{type(error).__name__}: {error}"}
        self.send(id=request_id, **fields)

    def send(self, **fields: Any) -> None:
        """Write one reply line and flush it."""
        from mstkd.inference.messages import encode_reply

        self.replies.write(encode_reply(**fields) + "\n")
        self.replies.flush()

    def _read(self) -> None:
        for line in self.requests:
            with self._lock:
                self._unanswered += 1
            self._lines.put(line)
        # stdin closed: the front end is gone or asks us to stop; work in progress is abandoned.
        with self._lock:
            abandoned = self._unanswered > 0
        if abandoned:
            self.on_parent_gone()
        self._lines.put(None)


class PredictorCache:
    """The kept model: one Predictor, reused while the model, its file and the device stay the same.

    Called like the Predictor class: (model, device, progress=None) -> Predictor.
    """

    def __init__(self, factory: Optional[Callable[..., Any]] = None) -> None:
        self.factory = factory
        self.predictor: Optional[Any] = None
        self._key: Optional[Tuple[str, str, Tuple[int, int]]] = None

    def __call__(self, model: Any, device: str, progress: Optional[Callable] = None) -> Any:
        from mstkd.devices import resolve_device

        resolved = str(resolve_device(device))
        if self.predictor is not None and self._key == (str(model), resolved, _stamp(self.predictor.path)):
            return self.predictor
        self.release()
        if self.factory is None:
            from mstkd.inference.predictor import Predictor as factory
        else:
            factory = self.factory
        self.predictor = factory(model, resolved, progress=progress)
        self._key = (str(model), resolved, _stamp(self.predictor.path))
        print(f"mstkd serve: model {self.predictor.name} loaded on {resolved}", file=sys.stderr)
        return self.predictor

    def release(self) -> None:
        """Forget the kept model and give its memory back."""
        if self.predictor is None:
            return
        from mstkd.inference.predictor import release_gpu_memory

        self.predictor, self._key = None, None
        release_gpu_memory()


def segment_request(argv: Any, replies: TextIO, load_predictor: Callable[..., Any]) -> int:
    """Run `mstkd segment` with these arguments and the kept model; its progress goes to `replies`."""
    from mstkd.cli import segment
    from mstkd.cli.main import build_parser
    from mstkd.errors import MSTKDError

    if not isinstance(argv, list) or not all(isinstance(a, str) for a in argv):
        raise MSTKDError("a segment request carries the arguments of `mstkd segment` as a list of strings")
    try:
        args = build_parser().parse_args(["segment", *argv])
    except SystemExit:  # argparse has printed what is wrong to the log
        raise MSTKDError(f"`mstkd segment` refused these arguments (see the log): {' '.join(argv)}") from None
    with contextlib.redirect_stdout(replies):
        return segment.run(args, load_predictor=load_predictor)


def device_request(payload: Any, load_predictor: Callable[..., Any]) -> Dict[str, Any]:
    """The device check of mstkd.inference.device_check for {"model": ..., "device": ...}."""
    from mstkd.errors import MSTKDError
    from mstkd.inference.device_check import check_device

    if not isinstance(payload, dict) or not payload.get("model"):
        raise MSTKDError('a device request carries {"model": NAME or PATH, "device": "auto"}')
    report = check_device(load_predictor, str(payload["model"]), str(payload.get("device") or "auto"))
    return {"status": 0, "device": report}


def _stamp(path: Path) -> Tuple[int, int]:
    """What tells a changed model file: its modification time and size."""
    try:
        stat = Path(path).stat()
    except OSError:
        return (0, 0)
    return (stat.st_mtime_ns, stat.st_size)
