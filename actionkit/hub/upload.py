"""Uploads to the Hugging Face Hub: a model, or a model folder as it is on disk.

What goes up is always the Hub-format trio: ``config.json``, ``model.safetensors`` and the ``README.md``
model card. A folder is checked first (loaded strictly, as ``from_pretrained`` would) so a broken model
never reaches the Hub, and its card keeps what training wrote into it (the metrics); only the usage
lines are pointed at the repo. Failures (offline mode, no token, the Hub unreachable, a refused request,
an answer that is not the Hub's JSON, such as a login page or a proxy's) are :class:`HubUploadError`,
one line naming the repo and the problem.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from actionkit.errors import ActionkitError, ModelNotFoundError
from actionkit.hub.checkpoints import checkpoint_to_model
from actionkit.hub.folders import (
    CARD_NAME,
    CONFIG_NAME,
    WEIGHTS_NAME,
    load_folder,
    model_folder,
    save_pretrained,
)
from actionkit.hub.model_card import LOCAL_MODEL_NAME
from actionkit.models.i3d import I3D

UPLOADED_FILES = (CONFIG_NAME, WEIGHTS_NAME, CARD_NAME)


class HubUploadError(ActionkitError):
    """An upload to ``repo_id`` did not happen; ``reason`` says why."""

    def __init__(self, repo_id: str, reason: str) -> None:
        self.repo_id = repo_id
        self.reason = reason
        super().__init__(f"upload to {repo_id} failed: {reason}")


def push_to_hub(model: I3D, repo_id: str, *, private: bool | None = None, token: str | bool | None = None,
                revision: str | None = None, commit_message: str = "Upload I3D model with actionkit",
                metrics: dict[str, Any] | None = None) -> str:
    """Upload exactly the folder :func:`~actionkit.hub.folders.save_pretrained` writes for ``model`` to
    ``repo_id`` (created if missing). Returns the commit URL."""
    _check_repo_id(repo_id)
    with tempfile.TemporaryDirectory(prefix="actionkit-push-") as tmp:
        save_pretrained(model, tmp, metrics=metrics, repo_id=repo_id)
        return _upload(Path(tmp), repo_id, private=private, token=token, revision=revision,
                       commit_message=commit_message)


def push(source: str | Path, repo_id: str, *, private: bool | None = None, token: str | bool | None = None,
         revision: str | None = None, commit_message: str = "Upload I3D model with actionkit") -> str:
    """``actionkit push``: a model folder, training run or export folder (:func:`push_folder`), or a
    DeepMind / pytorch-i3d checkpoint file (converted in memory, :func:`push_to_hub`). Returns the
    commit URL."""
    path = Path(source).expanduser()
    if path.suffix in (".onnx", ".engine"):
        raise ActionkitError(f"{path}: push uploads the PyTorch model (config.json + model.safetensors); "
                             "pass the export folder it is in, or the model it was exported from")
    options = {"private": private, "token": token, "revision": revision, "commit_message": commit_message}
    if path.is_dir():
        return push_folder(path, repo_id, **options)
    if path.is_file():
        _check_repo_id(repo_id)  # before the conversion, not after it
        return push_to_hub(checkpoint_to_model(path), repo_id, **options)
    raise ModelNotFoundError(str(source), "no such file or folder")


def push_folder(directory: str | Path, repo_id: str, *, private: bool | None = None,
                token: str | bool | None = None, revision: str | None = None,
                commit_message: str = "Upload I3D model with actionkit") -> str:
    """Upload a model folder (or a training run's ``best/`` model, else ``last/``) as it is: its
    config.json and model.safetensors byte for byte, its model card with the usage lines naming
    ``repo_id``. Other files there (an export's ONNX, a run's checkpoint) stay local. Returns the
    commit URL."""
    _check_repo_id(repo_id)
    folder = model_folder(Path(directory).expanduser())
    model = load_folder(folder)  # CheckpointError (naming the file) before anything is sent
    with tempfile.TemporaryDirectory(prefix="actionkit-push-") as tmp:
        staged = Path(tmp)
        for name in (CONFIG_NAME, WEIGHTS_NAME):
            _link_or_copy(folder / name, staged / name)
        card = folder / CARD_NAME
        text = card.read_text(encoding="utf-8") if card.is_file() else None
        if text is None:  # a folder written by hand: give it the card save_pretrained would
            save_pretrained(model, staged, repo_id=repo_id)
        else:
            (staged / CARD_NAME).write_text(text.replace(LOCAL_MODEL_NAME, repo_id), encoding="utf-8")
        return _upload(staged, repo_id, private=private, token=token, revision=revision,
                       commit_message=commit_message)


def _check_repo_id(repo_id: str) -> None:
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError as e:
        raise HubUploadError(repo_id, f"not a valid repo id ({e})") from None


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)  # no copy of a large weights file where the file system allows it
    except OSError:
        shutil.copyfile(source, target)


def _upload(folder: Path, repo_id: str, *, private: bool | None, token: str | bool | None,
            revision: str | None, commit_message: str) -> str:
    from huggingface_hub import HfApi, constants
    from huggingface_hub.errors import HfHubHTTPError

    if constants.HF_HUB_OFFLINE:
        raise HubUploadError(repo_id, "offline mode is on (HF_HUB_OFFLINE=1); nothing was sent")
    api = HfApi(token=token)
    try:
        api.create_repo(repo_id, private=private, exist_ok=True)
        info = api.upload_folder(repo_id=repo_id, folder_path=str(folder), revision=revision,
                                 commit_message=commit_message, allow_patterns=list(UPLOADED_FILES))
    except HfHubHTTPError as e:
        raise HubUploadError(repo_id, _http_reason(e)) from e
    except json.JSONDecodeError as e:  # a 200 answer whose body is not JSON: someone else answered
        raise HubUploadError(repo_id, _not_json_reason(api.endpoint, e.doc)) from None
    except Exception as e:  # the HTTP client's own errors (DNS, refused, timeout): their classes vary by version
        if type(e).__module__.split(".")[0] not in ("httpx", "httpx2", "requests", "urllib3"):
            raise
        raise HubUploadError(repo_id, f"the Hub could not be reached ({type(e).__name__}: {e})") from e
    return str(getattr(info, "commit_url", info))


def _not_json_reason(endpoint: str, body: str) -> str:
    page = "an HTML page" if body.lstrip()[:1] == "<" else "something"
    return (f"the Hub at {endpoint} answered with {page} that is not JSON (a login page or a proxy in the "
            "way? check HF_ENDPOINT and the network)")


def _http_reason(error: Exception) -> str:
    status = getattr(getattr(error, "response", None), "status_code", None)
    if status == 401:
        return "not logged in or the token is invalid (run `hf auth login` or set HF_TOKEN)"
    if status == 403:
        return "the token may not write to this repo (it needs write access to the user or organisation)"
    first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return f"the Hub refused the request (HTTP {status}): {first_line}" if status else first_line
