"""An action timeline of a long video, then live predictions from a stream.

    python examples/timeline_and_stream.py models/i3d-kinetics-400 long_video.mp4 [rtsp://camera/stream]

The timeline is written to ``long_video-timeline/`` in the current folder (timeline.json, windows.csv, timeline.png). With a
third argument, predictions from that live source are printed until it ends or Ctrl-C.
"""

import sys
from pathlib import Path

from actionkit import Recognizer


def main(model: str, video: str, live: str | None = None) -> None:
    recognizer = Recognizer.from_pretrained(model)
    timeline = recognizer.timeline(video, window=64, stride=32, progress=True)
    for segment in timeline.segments:
        print(f"{segment.start:7.1f} - {segment.end:7.1f} s  {segment.label} ({segment.score:.2f})")
    print("whole video:", ", ".join(f"{label} {score:.2f}" for label, score in timeline.summary[:3]))
    out = Path.cwd() / (Path(video).stem + "-timeline")  # in the current folder, never beside the video
    print("wrote", ", ".join(str(p) for p in timeline.save(out)))
    if live:
        for prediction in recognizer.stream(live, stride=16, timeout=10):
            window = prediction.window
            print(f"{window.start:7.1f} - {window.end:7.1f} s  {prediction.label} ({prediction.score:.2f}), "
                  f"{1000 * prediction.latency:.0f} ms latency, {prediction.skipped} windows skipped")


if __name__ == "__main__":
    main(*sys.argv[1:4])
