"""Hostile or broken model files: each is refused at load time with one line naming the file, never a
traceback, a hang or a wrong answer.

Every file is made here: crafted checkpoint pickles (shared and circular dicts), pytorch-i3d's legacy
``.pt`` format, tiny ONNX / OpenVINO models whose shapes disagree with their labels, config.json values
of the wrong type or size, weights holding NaN or integers, and a local HTTP server answering ``push``
with a login page.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from actionkit import I3D, CheckpointError
from actionkit.config import PreprocessConfig
from actionkit.hub import ModelConfig, import_checkpoint, load_pretrained
from actionkit.hub.checkpoints import conv_units, read_numpy_pickle, state_dict_to_pytorch_i3d
from actionkit.models.i3d import I3DConfig
from actionkit.predict import Recognizer

# --- helpers ---------------------------------------------------------------------------------------


def _cli(*args: str, timeout: float = 120, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "actionkit.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


def _one_line_error(done: subprocess.CompletedProcess) -> str:
    """The single ``error: ...`` line of a failed command (no traceback, nothing else on stderr)."""
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: "), lines[0]
    return lines[0]


def _deepmind_tree(leaf: Any) -> dict:
    """Every array a DeepMind I3D checkpoint holds, each one ``leaf`` (one shared array keeps the pickle tiny)."""
    params: dict = {}
    stats: dict = {}
    for unit in conv_units():
        p, s = params, stats
        for key in unit.deepmind:
            p, s = p.setdefault(key, {}), s.setdefault(key, {})
        p["Conv_0"] = {"kernel": leaf}
        p["BatchNorm_0"] = {"bias": leaf}
        s["BatchNorm_0"] = {"mean": leaf, "var": leaf}
    params["Logits/Conv3d_0c_1x1"] = {"Conv_0": {"kernel": leaf, "bias": leaf}}
    return {"params": params, "batch_stats": stats}


def _deepmind_tree_of(model: I3D) -> dict:
    """A DeepMind-layout tree (THWIO kernels) holding ``model``'s weights."""
    sd = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    tree = _deepmind_tree(None)
    for unit in conv_units():
        p, s = tree["params"], tree["batch_stats"]
        for key in unit.deepmind:
            p, s = p[key], s[key]
        p["Conv_0"]["kernel"] = sd[f"{unit.ours}.conv.weight"].transpose(2, 3, 4, 1, 0).copy()
        p["BatchNorm_0"]["bias"] = sd[f"{unit.ours}.bn.bias"].copy()
        s["BatchNorm_0"]["mean"] = sd[f"{unit.ours}.bn.running_mean"].copy()
        s["BatchNorm_0"]["var"] = sd[f"{unit.ours}.bn.running_var"].copy()
    weight = sd["classifier.weight"]
    logits = tree["params"]["Logits/Conv3d_0c_1x1"]["Conv_0"]
    logits["kernel"] = weight.T.reshape(1, 1, 1, *weight.T.shape).copy()
    logits["bias"] = sd["classifier.bias"].copy()
    return tree


@pytest.fixture(scope="module")
def small_model() -> I3D:
    torch.manual_seed(0)
    return I3D(I3DConfig(num_classes=5)).eval()


# --- 1. crafted checkpoint pickles ------------------------------------------------------------------

def _shared_bomb(depth: int = 25) -> dict:
    node: dict = {"w": np.zeros((1, 1, 1, 1, 1), np.float32)}
    for _ in range(depth):
        node = {"a": node, "b": node}  # 2^depth paths through `depth` distinct dicts
    return node


def _circular() -> dict:
    loop: dict = {}
    loop["again"] = loop
    return loop


def _deep_chain(depth: int) -> dict:
    node: dict = {"w": np.zeros(1, np.float32)}
    for _ in range(depth):
        node = {"n": node}
    return node


def _dump(obj: Any, path: Path) -> Path:
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(20_000)  # pickling the 5000-deep chain
    try:
        path.write_bytes(pickle.dumps(obj, protocol=4))  # the protocol DeepMind's file uses
    finally:
        sys.setrecursionlimit(limit)
    return path


@pytest.mark.parametrize(("junk", "reason"), [
    (_shared_bomb, "shared or circular"),
    (_circular, "shared or circular"),
    (lambda: _deep_chain(5000), "nested deeper than"),
])
def test_convert_refuses_crafted_pickles_quickly_in_one_line(tmp_path: Path, junk, reason: str) -> None:
    tree = _deepmind_tree(np.zeros((1, 1, 1, 1, 1), np.float32))
    tree["params"]["junk"] = junk()
    ckpt = _dump(tree, tmp_path / "crafted.ckpt")
    assert ckpt.stat().st_size < 1_000_000  # sharing keeps the 2^25-path pickle tiny
    started = time.monotonic()
    try:
        done = _cli("convert", str(ckpt), "--out", str(tmp_path / "out"), timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail("actionkit convert hung on a crafted pickle")
    assert time.monotonic() - started < 20
    line = _one_line_error(done)
    assert str(ckpt) in line and reason in line, line
    assert not (tmp_path / "out").exists()


def test_numpy_pickle_bounds_on_size(tmp_path: Path) -> None:
    leaf = np.zeros(1, np.float32)  # one array under every key keeps the file small
    wide = _dump({"params": {f"k{i}": leaf for i in range(300_000)}}, tmp_path / "wide.ckpt")
    with pytest.raises(CheckpointError, match=r"wide\.ckpt: .*more than"):
        read_numpy_pickle(wide)
    with pytest.raises(CheckpointError, match="keys must be strings"):
        read_numpy_pickle(_dump({"params": {1: np.zeros(1)}}, tmp_path / "intkey.ckpt"))


def test_real_deepmind_checkpoint_still_imports(checkpoint: Path) -> None:
    assert read_numpy_pickle(checkpoint)["params"]  # the tree check accepts DeepMind's own file
    assert import_checkpoint(checkpoint).num_classes == 400


# --- 3. pytorch-i3d's legacy (non-zip) .pt format ---------------------------------------------------

def test_legacy_pytorch_i3d_file_converts_like_the_zip_one(small_model: I3D, tmp_path: Path) -> None:
    theirs = {k: v.clone() for k, v in state_dict_to_pytorch_i3d(small_model.state_dict()).items()}
    legacy = tmp_path / "rgb_legacy.pt"
    with open(legacy, "wb") as f:
        torch.save(theirs, f, _use_new_zipfile_serialization=False)
    imported = import_checkpoint(legacy)
    assert imported.source_format == "pytorch-i3d" and imported.num_classes == 5
    for name, tensor in small_model.state_dict().items():
        if not name.endswith("num_batches_tracked"):
            assert torch.equal(imported.state_dict[name], tensor), name

    done = _cli("convert", str(legacy), "--out", str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr
    assert load_pretrained(tmp_path / "out").pretrained_cfg.source["format"] == "pytorch-i3d"


def test_legacy_pt_that_runs_code_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    evil = tmp_path / "evil.pt"
    with open(evil, "wb") as f:
        torch.save({"logits.conv3d.bias": Exploit()}, f, _use_new_zipfile_serialization=False)
    line = _one_line_error(_cli("convert", str(evil), "--out", str(tmp_path / "out")))
    assert str(evil) in line and "not a readable PyTorch checkpoint" in line, line
    assert not marker.exists()


# --- 5. NaN / integer weights -----------------------------------------------------------------------

def test_weights_with_nan_or_integers_are_refused_in_folders(small_model: I3D, tmp_path: Path) -> None:
    small_model.save_pretrained(str(tmp_path / "good"))
    state = load_file(str(tmp_path / "good" / "model.safetensors"))
    for name, change, message in (
            ("nan", lambda s: s["Mixed_4c.branch1.conv.weight"].view(-1)[7].fill_(float("nan")),
             "tensor Mixed_4c.branch1.conv.weight holds NaN/inf values"),
            ("inf", lambda s: s["classifier.bias"].fill_(float("inf")), "tensor classifier.bias holds NaN/inf values"),
            ("int", lambda s: s.update({k: v.to(torch.int32) for k, v in s.items()}),
             "has dtype torch.int32, not a floating-point type")):
        folder = tmp_path / name
        small_model.save_pretrained(str(folder))
        changed = {k: v.clone() for k, v in state.items()}
        change(changed)
        save_file(changed, str(folder / "model.safetensors"))
        with pytest.raises(CheckpointError, match=message) as err:
            load_pretrained(folder)
        assert err.value.source == str(folder / "model.safetensors")
    line = _one_line_error(_cli("predict", str(tmp_path / "missing.mp4"), "--model", str(tmp_path / "nan")))
    assert str(tmp_path / "nan" / "model.safetensors") in line and "NaN/inf" in line, line


def test_checkpoint_import_refuses_nan_and_integer_weights(small_model: I3D, tmp_path: Path) -> None:
    theirs = {k: v.clone() for k, v in state_dict_to_pytorch_i3d(small_model.state_dict()).items()}
    theirs["Mixed_3b.b0.bn.running_var"][3] = float("nan")
    pt = tmp_path / "nan.pt"
    torch.save(theirs, pt)
    line = _one_line_error(_cli("convert", str(pt), "--out", str(tmp_path / "out")))
    assert str(pt) in line and "holds NaN/inf values" in line, line

    ints = {k: v.to(torch.int64) if v.is_floating_point() else v for k, v in theirs.items()}
    torch.save(ints, tmp_path / "int.pt")
    with pytest.raises(CheckpointError, match="Conv3d_1a_7x7.conv3d.weight has dtype torch.int64"):
        import_checkpoint(tmp_path / "int.pt")

    tree = _deepmind_tree_of(small_model)
    tree["params"]["Mixed_5c"]["Branch_0/Conv3d_0a_1x1"]["Conv_0"]["kernel"] = (
        tree["params"]["Mixed_5c"]["Branch_0/Conv3d_0a_1x1"]["Conv_0"]["kernel"].astype(np.int16))
    with pytest.raises(CheckpointError, match="Branch_0/Conv3d_0a_1x1/Conv_0/kernel' has dtype int16"):
        import_checkpoint(_dump(tree, tmp_path / "int.ckpt"))
    tree = _deepmind_tree_of(small_model)
    tree["batch_stats"]["Conv3d_1a_7x7"]["BatchNorm_0"]["var"][0] = np.inf
    with pytest.raises(CheckpointError, match="nan_dm.ckpt: tensor Conv3d_1a_7x7.bn.running_var holds NaN/inf"):
        import_checkpoint(_dump(tree, tmp_path / "nan_dm.ckpt"))
    assert import_checkpoint(_dump(_deepmind_tree_of(small_model), tmp_path / "ok.ckpt")).num_classes == 5


# --- 2. config.json values --------------------------------------------------------------------------

def _config(**preprocessing: Any) -> dict:
    config = ModelConfig(model=I3DConfig(num_classes=3), id2label={0: "a", 1: "b", 2: "c"},
                         preprocessing=PreprocessConfig(clip_len=8, resize_short_side=32, crop_size=32)).to_dict()
    config["preprocessing"].update(preprocessing)
    return config


BAD_CONFIGS = {
    "clip_len 8.7": (lambda c: c["preprocessing"].update(clip_len=8.7), "clip_len must be an integer"),
    "clip_len 10^7": (lambda c: c["preprocessing"].update(clip_len=10**7), "clip_len must be an integer in [8, 4096]"),
    "clip_len '64'": (lambda c: c["preprocessing"].update(clip_len="64"), "clip_len must be an integer"),
    "clip_len true": (lambda c: c["preprocessing"].update(clip_len=True), "clip_len must be an integer"),
    "crop 0": (lambda c: c["preprocessing"].update(crop_size=0), "crop_size must be an integer in [16, 4096]"),
    "crop -5": (lambda c: c["preprocessing"].update(crop_size=-5), "crop_size must be an integer in [16, 4096]"),
    "resize 10^6": (lambda c: c["preprocessing"].update(resize_short_side=10**6),
                    "resize_short_side must be an integer in [16, 4096]"),
    "num_clips 1000": (lambda c: c["preprocessing"].update(num_clips=1000), "num_clips must be an integer in [1, 64]"),
    "num_crops 2": (lambda c: c["preprocessing"].update(num_crops=2), "num_crops must be 1"),
    "stride 0": (lambda c: c["preprocessing"].update(frame_stride=0), "frame_stride must be an integer"),
    "value_range nan": (lambda c: c["preprocessing"].update(value_range=[float("nan"), 1.0]),
                        "value_range must be two finite numbers"),
    "value_range words": (lambda c: c["preprocessing"].update(value_range=["low", "high"]),
                          "value_range must be two finite numbers"),
    "value_range 3": (lambda c: c["preprocessing"].update(value_range=[0, 1, 2]), "value_range must be two"),
    "huge clip": (lambda c: c["preprocessing"].update(clip_len=4096, resize_short_side=4096, crop_size=4096),
                  "too large"),
    "unknown key": (lambda c: c["preprocessing"].update(colour="blue"), "unknown preprocessing field 'colour'"),
    "preprocessing list": (lambda c: c.update(preprocessing=[1, 2]), "preprocessing must be an object"),
    "id2label gap": (lambda c: c.update(id2label={"0": "a", "1": "b", "3": "c"}),
                     "id2label keys must be exactly 0..2"),
    "id2label list": (lambda c: c.update(id2label=["a", "b", "c"]), "id2label must be an object"),
    "id2label words": (lambda c: c.update(id2label={"zero": "a", "1": "b", "2": "c"}),
                       "id2label keys must be exactly 0..2"),
    "id2label numbers": (lambda c: c.update(id2label={"0": 1, "1": "b", "2": "c"}), "id2label values must be strings"),
    "num_classes 2.5": (lambda c: c["model"].update(num_classes=2.5), "num_classes must be an integer"),
    "num_classes -3": (lambda c: c["model"].update(num_classes=-3), "num_classes must be an integer"),
    "dropout 7": (lambda c: c["model"].update(dropout=7), "dropout must be a number in [0, 1)"),
    "not an object": (lambda c: c.clear() or c.update(x=[]), "'model' is missing"),
}


@pytest.mark.parametrize("case", BAD_CONFIGS)
def test_config_values_of_the_wrong_type_or_size_are_refused(tmp_path: Path, case: str) -> None:
    change, message = BAD_CONFIGS[case]
    config = _config()
    change(config)
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    with pytest.raises(CheckpointError) as err:
        ModelConfig.load(path)
    assert err.value.source == str(path)
    assert err.value.reason.startswith("invalid config.json: ") and message in err.value.reason, err.value.reason


def test_config_json_that_is_not_an_object(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text("[1, 2, 3]")
    with pytest.raises(CheckpointError, match="invalid config.json: the file must hold a JSON object"):
        ModelConfig.load(path)


def test_valid_configs_still_load(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(_config(value_range=[0, 1], num_clips=3, num_crops=3)))
    config = ModelConfig.load(path)
    assert config.preprocessing.value_range == (0.0, 1.0) and config.labels == ["a", "b", "c"]
    assert PreprocessConfig(clip_len=np.int64(16)).clip_len == 16  # numpy integers are integers
    with pytest.raises(ValueError, match="clip_len must be an integer in"):
        PreprocessConfig(clip_len=4)


@pytest.mark.parametrize("case", ["clip_len 10^7", "id2label list", "crop -5"])
def test_cli_reports_a_bad_config_in_one_line(small_model: I3D, tmp_path: Path, case: str) -> None:
    folder = tmp_path / "model"
    small_model.save_pretrained(str(folder))
    config = json.loads((folder / "config.json").read_text())
    BAD_CONFIGS[case][0](config)
    (folder / "config.json").write_text(json.dumps(config))
    line = _one_line_error(_cli("predict", str(tmp_path / "any.mp4"), "--model", str(folder), timeout=60))
    assert line.startswith(f"error: {folder / 'config.json'}: invalid config.json: "), line
    assert BAD_CONFIGS[case][1] in line, line


# --- 2. ONNX / OpenVINO models that disagree with their labels -------------------------------------

def _tiny_onnx(path: Path, classes: int, labels: int, batch: int | str = "batch", metadata: bool = True,
               clip_len: int = 8, crop: int = 32) -> Path:
    """A real ONNX video classifier (mean over T×H×W, then a 3×classes matmul) carrying ``labels`` labels."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    video = helper.make_tensor_value_info("video", TensorProto.FLOAT, [batch, 3, clip_len, crop, crop])
    logits = helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, classes])
    weight = np.random.default_rng(0).standard_normal((3, classes)).astype(np.float32)
    nodes = [helper.make_node("ReduceMean", ["video", "axes"], ["pooled"], keepdims=0),
             helper.make_node("MatMul", ["pooled", "w"], ["logits"])]
    graph = helper.make_graph(nodes, "tiny", [video], [logits],
                              [numpy_helper.from_array(weight, "w"),
                               numpy_helper.from_array(np.array([2, 3, 4], np.int64), "axes")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    if metadata:
        config = ModelConfig(model=I3DConfig(num_classes=labels), id2label={i: f"label {i}" for i in range(labels)},
                             preprocessing=PreprocessConfig(clip_len=8, resize_short_side=32, crop_size=32))
        helper.set_model_props(model, {"actionkit.config": json.dumps(config.to_dict())})
    onnx.save(model, str(path))
    return path


def test_onnx_whose_output_width_differs_from_its_labels_is_refused(tmp_path: Path) -> None:
    onnx_file = _tiny_onnx(tmp_path / "ten.onnx", classes=10, labels=400)
    with pytest.raises(CheckpointError, match="it outputs 10 classes but its config has 400 labels") as err:
        Recognizer.from_pretrained(str(onnx_file))
    assert err.value.source == str(onnx_file)
    line = _one_line_error(_cli("predict", str(tmp_path / "any.mp4"), "--model", str(onnx_file)))
    assert str(onnx_file) in line and "it outputs 10 classes but its config has 400 labels" in line, line

    matching = _tiny_onnx(tmp_path / "ok.onnx", classes=400, labels=400)
    frames = np.random.default_rng(1).integers(0, 255, (12, 40, 48, 3), dtype=np.uint8)
    (result,) = Recognizer.from_pretrained(str(matching)).predict([frames], top_k=2)
    assert result.ok and len(result.predictions) == 2


def test_torch_model_whose_classes_differ_from_the_labels_is_refused(small_model: I3D) -> None:
    config = ModelConfig(model=I3DConfig(num_classes=400))  # 400 labels for a 5-class model
    with pytest.raises(CheckpointError, match="it outputs 5 classes but its config has 400 labels"):
        Recognizer(small_model, config, device="cpu")


def test_openvino_width_check_says_the_same(tmp_path: Path) -> None:
    ov = pytest.importorskip("openvino")
    folder = tmp_path / "ov"
    folder.mkdir()
    model = ov.convert_model(str(_tiny_onnx(tmp_path / "ten.onnx", classes=10, labels=400)))
    ov.save_model(model, str(folder / "model.xml"))
    (folder / "config.json").write_text(json.dumps(_config()))  # 3 labels
    with pytest.raises(CheckpointError, match="it outputs 10 classes but its config has 3 labels"):
        Recognizer.from_pretrained(str(folder / "model.xml"))
    ten = _config()
    ten.update(id2label={str(i): f"c{i}" for i in range(10)}, model={**ten["model"], "num_classes": 10})
    (folder / "config.json").write_text(json.dumps(ten))
    frames = np.random.default_rng(1).integers(0, 255, (12, 40, 48, 3), dtype=np.uint8)
    (result,) = Recognizer.from_pretrained(str(folder / "model.xml")).predict([frames], num_clips=3, top_k=2)
    assert result.ok and len(result.predictions) == 2


@pytest.mark.parametrize("config_beside", [False, True])
def test_onnx_runtime_cannot_load_is_one_line(tmp_path: Path, config_beside: bool) -> None:
    import onnx
    from onnx import helper

    garbage = tmp_path / "garbage" / "model.onnx"
    garbage.parent.mkdir()
    garbage.write_bytes(b"\x08\x07" + b"\xff" * 64 + b"not a protobuf")
    broken = _tiny_onnx(tmp_path / "tmp.onnx", classes=3, labels=3)
    model = onnx.load(str(broken))
    model.graph.node.append(helper.make_node("NoSuchOperator", ["logits"], ["extra"]))
    (tmp_path / "unknown_op").mkdir()
    onnx.save(model, str(tmp_path / "unknown_op" / "model.onnx"))
    for path in (garbage, tmp_path / "unknown_op" / "model.onnx"):
        if config_beside:
            (path.parent / "config.json").write_text(json.dumps(_config()))
        with pytest.raises(CheckpointError) as err:
            Recognizer.from_pretrained(str(path))
        assert err.value.source == str(path)
    line = _one_line_error(_cli("predict", str(tmp_path / "any.mp4"), "--model", str(garbage)))
    assert str(garbage) in line, line


def test_onnx_with_a_fixed_batch_of_1_runs_clip_by_clip(tmp_path: Path) -> None:
    fixed = _tiny_onnx(tmp_path / "fixed.onnx", classes=3, labels=3, batch=1)
    dynamic = _tiny_onnx(tmp_path / "dynamic.onnx", classes=3, labels=3)
    frames = [np.random.default_rng(i).integers(0, 255, (20, 40, 48, 3), dtype=np.uint8) for i in range(3)]
    one_by_one = Recognizer.from_pretrained(str(fixed))
    together = Recognizer.from_pretrained(str(dynamic))
    for _ in range(4):  # batches of every size the loader makes: 3 clips per video, 4 clips per batch
        got = one_by_one.predict(frames, num_clips=3, batch_size=4, top_k=3)
        want = together.predict(frames, num_clips=3, batch_size=4, top_k=3)
        assert [r.error for r in got] == [None] * 3
        for a, b in zip(got, want):
            assert [p.label for p in a.predictions] == [p.label for p in b.predictions]
            assert np.allclose([p.score for p in a.predictions], [p.score for p in b.predictions], atol=1e-5)

    with pytest.raises(CheckpointError, match="batch axis is fixed at 2"):
        Recognizer.from_pretrained(str(_tiny_onnx(tmp_path / "two.onnx", classes=3, labels=3, batch=2)))


def test_onnx_input_that_disagrees_with_its_config_is_refused(tmp_path: Path) -> None:
    wrong_crop = _tiny_onnx(tmp_path / "crop.onnx", classes=3, labels=3, crop=64)
    with pytest.raises(CheckpointError, match="not N×3×T×32×32 as its config says"):
        Recognizer.from_pretrained(str(wrong_crop))
    wrong_len = _tiny_onnx(tmp_path / "len.onnx", classes=3, labels=3, clip_len=16)
    with pytest.raises(CheckpointError, match="its config's clip_len 8 does not fit: it takes clips of exactly 16"):
        Recognizer.from_pretrained(str(wrong_len))


def test_onnx_metadata_that_is_not_a_valid_config(tmp_path: Path) -> None:
    import onnx
    from onnx import helper

    path = _tiny_onnx(tmp_path / "bad_meta.onnx", classes=3, labels=3)
    model = onnx.load(str(path))
    del model.metadata_props[:]
    bad = _config()
    bad["preprocessing"]["clip_len"] = 10**7
    helper.set_model_props(model, {"actionkit.config": json.dumps(bad)})
    onnx.save(model, str(path))
    with pytest.raises(CheckpointError, match="clip_len must be an integer in") as err:
        Recognizer.from_pretrained(str(path))
    assert err.value.source == str(path)
    path.write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="bad_meta.onnx"):
        Recognizer.from_pretrained(str(path))


# --- 4. push answered by a login page ---------------------------------------------------------------

class _LoginPage(BaseHTTPRequestHandler):
    """Answers every request 200 with an HTML sign-in page, as a captive portal or SSO proxy does."""

    def _page(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        body = b"<!DOCTYPE html><html><body><form action='/login'>Sign in</form></body></html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_HEAD = _page

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def login_page() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _LoginPage)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_push_to_a_login_page_says_the_answer_is_not_json(small_model: I3D, tmp_path: Path, login_page: str) -> None:
    folder = tmp_path / "model"
    small_model.save_pretrained(str(folder))
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env.update(HF_HOME=str(tmp_path / "hf_home"), HF_ENDPOINT=login_page)
    done = subprocess.run([sys.executable, "-m", "actionkit.cli", "push", str(folder), "acme/tiny", "--token",
                           "hf_test"], env=env, capture_output=True, text=True, timeout=300)
    line = _one_line_error(done)
    assert line.startswith("error: upload to acme/tiny failed: "), line
    assert login_page in line and "not JSON" in line and "login page" in line, line
    assert "Expecting value" not in line
