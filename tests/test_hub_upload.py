"""Uploads: what reaches the Hub from a folder, and one clear line for every way an upload fails.

The Hub is unreachable here, so the upload calls themselves are patched where the files sent are
checked; the failures run for real, in `actionkit push` subprocesses, against a local HTTP server
that answers like the Hub refusing a token, a closed port, and offline mode.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator

import pytest

from actionkit import I3D, CheckpointError
from actionkit.hub.upload import push, push_folder

REPO_ID = "acme/ut-interaction-i3d"
FILES = {"config.json", "model.safetensors", "README.md"}


def _record_uploads(monkeypatch: pytest.MonkeyPatch) -> dict:
    from huggingface_hub import HfApi

    calls: dict = {}

    def create_repo(self, repo_id, **kwargs):
        calls["create_repo"] = (repo_id, kwargs)

    def upload_folder(self, *, repo_id, folder_path, **kwargs):
        calls["upload"] = {p.name: p.read_bytes() for p in Path(folder_path).iterdir()}
        calls["upload_kwargs"] = dict(kwargs, repo_id=repo_id)
        return type("CommitInfo", (), {"commit_url": f"https://hub.example/{repo_id}/commit/2"})()

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    return calls


def test_push_to_hub_uploads_exactly_the_saved_folder(k400_model: I3D, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _record_uploads(monkeypatch)
    url = k400_model.push_to_hub(REPO_ID, private=True, revision="main")

    from actionkit.hub import save_pretrained
    saved = save_pretrained(k400_model, tmp_path / "saved", repo_id=REPO_ID)
    assert calls["create_repo"] == (REPO_ID, {"private": True, "exist_ok": True})
    assert calls["upload_kwargs"]["repo_id"] == REPO_ID and calls["upload_kwargs"]["revision"] == "main"
    assert calls["upload"] == {p.name: p.read_bytes() for p in saved.iterdir()}
    assert set(calls["upload"]) == FILES
    assert url.endswith("/commit/2")


def test_push_folder_sends_the_run_model_as_saved_with_its_metrics(k400_model: I3D, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    run = tmp_path / "run"  # a training run folder: the best/ model inside is what goes up
    k400_model.save_pretrained(str(run / "best"), metrics={"val top1": 0.75})
    (run / "checkpoint.pt").write_bytes(b"optimizer state, never uploaded")
    local_card = (run / "best" / "README.md").read_text()
    calls = _record_uploads(monkeypatch)

    url = push_folder(run, REPO_ID, private=True, revision="v1")

    assert url.endswith("/commit/2") and calls["create_repo"] == (REPO_ID, {"private": True, "exist_ok": True})
    assert set(calls["upload"]) == FILES and calls["upload_kwargs"]["revision"] == "v1"
    for name in ("config.json", "model.safetensors"):
        assert calls["upload"][name] == (run / "best" / name).read_bytes(), name
    card = calls["upload"]["README.md"].decode()
    assert "| val top1 | 0.7500 |" in card  # what training wrote into the card survives the upload
    assert f'Recognizer.from_pretrained("{REPO_ID}")' in card and "path/to/this/folder" not in card
    assert card == local_card.replace("path/to/this/folder", REPO_ID)
    assert (run / "best" / "README.md").read_text() == local_card  # the local card is left alone


def test_push_folder_refuses_a_broken_model_before_sending_anything(k400_dir: Path, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(k400_dir, broken)
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    calls = _record_uploads(monkeypatch)
    with pytest.raises(CheckpointError, match="model.safetensors"):
        push_folder(broken, REPO_ID)
    assert calls == {}


class _RefusingHub(BaseHTTPRequestHandler):
    """Answers every request with ``status`` and a Hub-style JSON error."""

    status = 401

    def _refuse(self) -> None:
        body = json.dumps({"error": "Invalid username or password."}).encode()
        self.send_response(self.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_HEAD = _refuse

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def refusing_hub(request: pytest.FixtureRequest) -> Iterator[str]:
    handler = type("Refusing", (_RefusingHub,), {"status": request.param})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _push(model: Path, tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    environment.update(HF_HOME=str(tmp_path / "hf_home"), **env)
    return subprocess.run([sys.executable, "-m", "actionkit.cli", "push", str(model), REPO_ID, "--token", "hf_test"],
                          env=environment, capture_output=True, text=True, timeout=300)


def _one_line_error(done: subprocess.CompletedProcess) -> str:
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    (line,) = done.stderr.strip().splitlines()
    return line


@pytest.mark.parametrize(("refusing_hub", "reason"), [
    (401, "not logged in or the token is invalid (run `hf auth login` or set HF_TOKEN)"),
    (403, "the token may not write to this repo"),
], indirect=["refusing_hub"])
def test_cli_push_names_the_hubs_refusal(k400_dir: Path, tmp_path: Path, refusing_hub: str, reason: str) -> None:
    line = _one_line_error(_push(k400_dir, tmp_path, HF_ENDPOINT=refusing_hub))
    assert line.startswith(f"error: upload to {REPO_ID} failed: {reason}")


def test_cli_push_when_the_hub_is_unreachable_or_offline(k400_dir: Path, tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port nothing listens on: the connection is refused
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    line = _one_line_error(_push(k400_dir, tmp_path, HF_ENDPOINT=closed))
    assert line.startswith(f"error: upload to {REPO_ID} failed: the Hub could not be reached (")

    line = _one_line_error(_push(k400_dir, tmp_path, HF_HUB_OFFLINE="1"))
    assert line == f"error: upload to {REPO_ID} failed: offline mode is on (HF_HUB_OFFLINE=1); nothing was sent"

    line = _one_line_error(_push(tmp_path / "no-such-model", tmp_path, HF_HUB_OFFLINE="1"))
    assert line == f"error: {tmp_path / 'no-such-model'}: no such file or folder"


def test_push_refuses_a_folder_without_a_model_and_a_bad_repo_id(k400_dir: Path, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from actionkit.hub.upload import HubUploadError

    calls = _record_uploads(monkeypatch)
    with pytest.raises(CheckpointError, match="config.json is missing: not a model folder, nor a training run .no best/ or last/ model inside."):
        push_folder(tmp_path, REPO_ID)
    with pytest.raises(HubUploadError, match="upload to acme/a/b failed: not a valid repo id"):
        push_folder(k400_dir, "acme/a/b")
    assert calls == {}


def test_push_converts_a_checkpoint_file_and_refuses_an_onnx_file(checkpoint: Path, k400_dir: Path, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from actionkit import ActionkitError

    calls = _record_uploads(monkeypatch)
    push(checkpoint, REPO_ID)  # DeepMind's checkpoint, converted in memory: the same weights `convert` writes
    assert calls["upload"]["model.safetensors"] == (k400_dir / "model.safetensors").read_bytes()
    assert f'Recognizer.from_pretrained("{REPO_ID}")' in calls["upload"]["README.md"].decode()

    onnx = tmp_path / "model.onnx"
    onnx.write_bytes(b"not needed: refused by its name")
    with pytest.raises(ActionkitError, match="push uploads the PyTorch model"):
        push(onnx, REPO_ID)
