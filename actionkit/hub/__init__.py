"""``actionkit.hub``: everything that knows files and the Hugging Face Hub.

- model folders: :func:`save_pretrained`, :func:`load_pretrained` (folder, run, checkpoint or repo id);
- ``config.json``: :class:`ModelConfig` (architecture, labels, preprocessing, provenance);
- checkpoint import: :func:`convert_checkpoint`, :func:`checkpoint_to_model` (DeepMind, pytorch-i3d);
- upload: :func:`push`, :func:`push_folder`, :func:`push_to_hub`, :class:`HubUploadError`;
- :class:`I3D`: the model with ``from_pretrained`` / ``save_pretrained`` / ``push_to_hub``.
"""

from actionkit.hub.checkpoints import checkpoint_to_model, import_checkpoint
from actionkit.hub.folders import (
    CARD_NAME,
    CONFIG_NAME,
    RUN_MODEL_FOLDERS,
    WEIGHTS_NAME,
    convert_checkpoint,
    load_folder,
    load_pretrained,
    model_config_of,
    model_folder,
    save_pretrained,
)
from actionkit.hub.model_config import ModelConfig
from actionkit.hub.pretrained import I3D, HubMixin
from actionkit.hub.upload import HubUploadError, push, push_folder, push_to_hub

__all__ = ["CARD_NAME", "CONFIG_NAME", "RUN_MODEL_FOLDERS", "WEIGHTS_NAME", "HubMixin", "HubUploadError", "I3D", "ModelConfig",
           "checkpoint_to_model", "convert_checkpoint", "import_checkpoint", "load_folder", "load_pretrained",
           "model_config_of", "model_folder", "push", "push_folder", "push_to_hub", "save_pretrained"]
