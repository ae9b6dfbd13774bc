"""The warm engine's messages (`mstkd serve`): one JSON object per line, requests in and replies out.

A request names what to do and carries its arguments:
    {"id": "1", "segment": ["--flair", "F.nrrd", "-o", "OUT.nrrd", "--progress", "jsonl"]}
    {"id": "2", "device": {"model": "demo", "device": "auto"}}
A reply is the engine's greeting, a progress event of the running request, or the request's end:
    {"ready": true, "pid": 123, "version": "0.1.0"}
    {"stage": "infer", "fraction": 0.5, "message": "window 3 of 6 (on cpu, 4 per batch)"}
    {"id": "1", "status": 0}       status 0 done; 2 a user error, 1 a failure, both with "error"

Front ends import this module without PyTorch: it only encodes and decodes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Dict, Optional, Tuple

from mstkd.errors import MSTKDError

SEGMENT = "segment"
DEVICE = "device"
REQUEST_KINDS = (SEGMENT, DEVICE)

READY = "ready"
PROGRESS = "progress"
END = "end"


@dataclass(frozen=True)
class Reply:
    """One line from the engine: its kind (READY, PROGRESS or END) and its fields."""

    kind: str
    data: Dict[str, Any]

    @property
    def request_id(self) -> Optional[str]:
        """The request an END reply closes."""
        value = self.data.get("id")
        return None if value is None else str(value)

    @property
    def status(self) -> int:
        """An END reply's exit status (0 done, 2 user error, 1 failure)."""
        return int(self.data.get("status", 1))

    @property
    def error(self) -> str:
        """An END reply's message for people, when the request failed."""
        return str(self.data.get("error") or "")


def encode_request(request_id: str, kind: str, payload: Any) -> str:
    """One request line (without the newline)."""
    if kind not in REQUEST_KINDS:
        raise ValueError(f"unknown request kind {kind!r}")
    return json.dumps({"id": str(request_id), kind: payload})


def decode_request(line: str) -> Tuple[str, str, Any]:
    """(id, kind, payload) of a request line; MSTKDError when it is not one."""
    try:
        data = json.loads(line)
    except ValueError:
        raise MSTKDError(f"not a JSON request: {line.strip()[:80]!r}") from None
    kinds = [kind for kind in REQUEST_KINDS if isinstance(data, dict) and kind in data]
    if len(kinds) != 1 or "id" not in data:
        kinds_text = ", ".join(REQUEST_KINDS)
        raise MSTKDError(f"a request needs an 'id' and one of {kinds_text}: {line.strip()[:80]!r}")
    return str(data["id"]), kinds[0], data[kinds[0]]


def encode_reply(**fields: Any) -> str:
    """One reply line (without the newline)."""
    return json.dumps(fields)


def decode_reply(line: str) -> Optional[Reply]:
    """The reply a line carries, or None when the line is not one."""
    try:
        data = json.loads(line)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    if data.get(READY) is True:
        return Reply(READY, data)
    if "id" in data and "status" in data:
        return Reply(END, data)
    if "stage" in data:
        return Reply(PROGRESS, data)
    return None
