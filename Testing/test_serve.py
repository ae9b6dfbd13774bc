"""`mstkd serve`, the warm engine: a real process with a real tiny model answering JSON-line requests."""

from __future__ import annotations

import io
import json
import os
import subprocess
import threading
import time

import pytest

from mstkd.bench.engine import WarmEngineClient
from mstkd.cli.serve import PredictorCache, Server
from mstkd.errors import MSTKDError
from mstkd.inference.messages import READY, decode_reply, encode_request

CASE = "BraTS2021_00002"


def case_file(root, sequence, case=CASE):
    return root / case / f"{case}_{sequence}.nii.gz"


def test_one_engine_answers_device_and_segment_requests_keeping_the_model(
    phantom_root, tiny_model_file, tmp_path
):
    engine = WarmEngineClient(log=subprocess.PIPE)
    try:
        greeting = decode_reply(engine.process.stdout.readline())
        assert greeting.kind == READY and greeting.data["pid"] == engine.process.pid

        checked, _ = engine.ask("d", "device", {"model": str(tiny_model_file), "device": "auto"})
        report = checked.data["device"]
        assert checked.status == 0 and report["device"] == "cpu" and report["kind"] == "cpu"
        assert "built without GPU support" in report["reason"] and report["fell_back"] is False
        assert report["speed"]["seconds_per_window"] > 0 and report["speed"]["patch"] == [32, 32, 32]

        outputs = []
        for run in ("1", "2"):
            out = tmp_path / f"labels{run}.nrrd"
            arguments = [
                "--t2",
                str(case_file(phantom_root, "t2")),
                "--flair",
                str(case_file(phantom_root, "flair")),
            ]
            arguments += ["-o", str(out), "--summary", str(tmp_path / f"s{run}.json")]
            arguments += ["--model", str(tiny_model_file), "--device", "auto", "--progress", "jsonl"]
            done, progress = engine.ask(run, "segment", arguments)
            assert done.status == 0, done.data
            assert progress[0]["stage"] == "load" and progress[-1]["fraction"] == 1.0
            outputs.append(json.loads((tmp_path / f"s{run}.json").read_text()))
        assert outputs[0]["model"]["sha256"] == outputs[1]["model"]["sha256"]

        refused, _ = engine.ask(
            "3", "segment", ["--flair", str(case_file(phantom_root, "flair")), "--model", "nope"]
        )
        assert refused.status == 2 and refused.error.startswith("Name the label map to write")
        refused, _ = engine.ask("4", "segment", ["--no-such-option"])
        assert refused.status == 2 and "refused these arguments" in refused.error
        refused, _ = engine.ask("5", "device", {"model": str(tiny_model_file), "device": "cuda"})
        assert refused.status == 2 and refused.error.startswith("A GPU was requested but PyTorch sees none")
        assert engine.process.poll() is None  # user errors leave the engine up
    finally:
        status = engine.close()
    assert status == 0
    log = engine.process.stderr.read()
    # One model load served the device check and both runs (the same model on the same device).
    assert log.count("loaded on cpu") == 1, log


def test_the_engine_stops_when_stdin_closes_even_mid_request():
    replies = io.StringIO()
    read, write = os.pipe()
    entered, release = threading.Event(), threading.Event()
    gone = []

    def blocking(payload, out):
        entered.set()
        release.wait(10)
        return {"status": 0}

    server = Server(os.fdopen(read), replies, {"segment": blocking}, on_parent_gone=lambda: gone.append(True))
    thread = threading.Thread(target=server.serve, daemon=True)
    thread.start()
    with os.fdopen(write, "w") as requests:
        requests.write(encode_request("1", "segment", []) + "\n")
    assert entered.wait(10)
    deadline = time.monotonic() + 10
    while not gone and time.monotonic() < deadline:
        time.sleep(0.01)
    assert gone == [True]  # the front end is gone: the engine would exit at once (os._exit)
    release.set()
    thread.join(10)
    assert not thread.is_alive()
    assert [json.loads(line) for line in replies.getvalue().splitlines()][-1] == {"id": "1", "status": 0}


def test_a_failing_request_is_answered_and_the_kept_model_released():
    released = []

    def user_error(payload, out):
        raise MSTKDError("say what to do")

    def bug(payload, out):
        raise RuntimeError("CUDA error: an illegal memory access was encountered")

    replies = io.StringIO()
    lines = [encode_request("1", "segment", []), encode_request("2", "device", {}), "not json"]
    server = Server(
        io.StringIO("\n".join(lines) + "\n"),
        replies,
        {"segment": user_error, "device": bug},
        on_release=lambda: released.append(True),
        on_parent_gone=lambda: None,  # all requests arrive with the end of input here
    )
    assert server.serve() == 0
    answers = [json.loads(line) for line in replies.getvalue().splitlines()]
    assert answers[0]["ready"] is True
    assert answers[1:] == [
        {"id": "1", "status": 2, "error": "say what to do"},
        {
            "id": "2",
            "status": 1,
            "error": "RuntimeError: CUDA error: an illegal memory access was encountered",
        },
        {"id": "?", "status": 2, "error": "not a JSON request: 'not json'"},
    ]
    assert released == [True]  # only after the failure, whose state is unknown


def test_the_predictor_cache_reloads_when_the_model_file_or_device_changes(tmp_path):
    loaded = []

    class Loaded:
        def __init__(self, model, device, progress=None):
            self.path, self.name = tmp_path / "m.safetensors", "m"
            loaded.append((model, device))

    (tmp_path / "m.safetensors").write_bytes(b"weights")
    cache = PredictorCache(Loaded)
    first = cache("m", "auto")
    assert cache("m", "cpu") is first and loaded == [("m", "cpu")]  # auto is the CPU here
    os.utime(tmp_path / "m.safetensors", ns=(1, 1))
    assert cache("m", "cpu") is not first and len(loaded) == 2
    cache.release()
    assert cache.predictor is None
    with pytest.raises(MSTKDError, match="Unknown device"):
        cache("m", "tpu")
