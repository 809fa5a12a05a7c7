"""Hub persistence as methods: ``from_pretrained``, ``save_pretrained`` and ``push_to_hub``.

:class:`HubMixin` gives any :class:`~actionkit.models.I3D` subclass these methods, the way
huggingface_hub's ``PyTorchModelHubMixin`` does: loading rebuilds the model with ``cls(config.model)``.
The model file itself imports nothing of the Hub; the two meet here, in :class:`I3D`, which is the
class ``from actionkit import I3D`` gives.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

from actionkit.hub.folders import load_pretrained, save_pretrained
from actionkit.hub.upload import push_to_hub
from actionkit.models import i3d

Self = TypeVar("Self", bound="HubMixin")


class HubMixin:
    """``from_pretrained`` / ``save_pretrained`` / ``push_to_hub`` for a class built as ``cls(I3DConfig)``."""

    @classmethod
    def from_pretrained(cls: type[Self], source: str | Path, *, revision: str | None = None,
                        cache_dir: str | Path | None = None, local_files_only: bool = False,
                        token: str | bool | None = None) -> Self:
        """Load from a Hub-format folder, a training run, a DeepMind / pytorch-i3d checkpoint file or a
        Hub repo id; see :func:`actionkit.hub.load_pretrained`. The model is in eval mode."""
        return load_pretrained(source, revision=revision, cache_dir=cache_dir, local_files_only=local_files_only,
                               token=token, model_class=cls)  # type: ignore[arg-type]

    def save_pretrained(self, directory: str | Path, metrics: dict[str, Any] | None = None) -> str:
        """Write config.json, model.safetensors and a README.md model card into ``directory``; returns it."""
        return str(save_pretrained(self, directory, metrics=metrics))  # type: ignore[arg-type]

    def push_to_hub(self, repo_id: str, *, private: bool | None = None, token: str | bool | None = None,
                    revision: str | None = None) -> str:
        """Upload the :meth:`save_pretrained` folder to the Hugging Face Hub; returns the commit URL.
        Raises :class:`~actionkit.hub.HubUploadError` (one line) when the upload does not happen."""
        return push_to_hub(self, repo_id, private=private, token=token, revision=revision)  # type: ignore[arg-type]


class I3D(i3d.I3D, HubMixin):
    """DeepMind's I3D (:class:`actionkit.models.I3D`) with the Hub methods of :class:`HubMixin`."""
