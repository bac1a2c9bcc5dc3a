"""`squeezetime-explain VIDEO --model MODEL`: Saliency and GradCAM++ of the centre clip.

Examples:
  squeezetime-explain clip.mp4 --model runs/exp1 --output explanations/
  squeezetime-explain clip.mp4 --model ckpt.pth --labels classes.txt --image-size 112
  squeezetime-explain clip.mp4 --model kinetics400 --class-index 12 --smooth-samples 20

Writes `<video>.explain.png` (rows: frames; columns: frame, saliency, GradCAM++) and
`<video>.explain.gif` (the same three panels, one image per input frame) into
`--output`. GradCAM++ gives one map per clip (SqueezeTime squeezes time into channels
at its first layer), drawn over every frame; saliency maps are per frame. `--model` is
a `.keras` file or model folder, an official `.pth` or a preset: a `.tflite` export
has no gradients.

The work is `keras_squeezetime.apps.explain.explain_video` and its `save_grid`/`save_gif`.

Exit status: 0 on success, 1 when a video could not be read, 2 when the model or the
labels cannot be used.
"""

from __future__ import annotations

import json
import os
import sys

from absl import app, flags

from keras_squeezetime.cli.clip_flags import define_clip_flags
from keras_squeezetime.cli.entry_point import run_tool

FLAGS = flags.FLAGS
flags.DEFINE_string("model", None, ".keras file or model folder, official .pth, or preset.")
flags.DEFINE_string("labels", None, "Class names: a text file (one per line) or a built-in list; "
                    "overrides the model's own names.")
flags.DEFINE_string("output", ".", "Folder for the PNG grid and the GIF.")
flags.DEFINE_integer("class-index", None, "Class to explain (default: the predicted one).",
                     lower_bound=0)
flags.DEFINE_integer("max-rows", 8, "Frames shown in the PNG grid (evenly chosen).", lower_bound=1)
flags.DEFINE_integer("smooth-samples", 0, "SmoothGrad samples for the saliency (0: plain).",
                     lower_bound=0)
flags.DEFINE_boolean("json", False, "Print a JSON summary instead of text.")
define_clip_flags()
for _name in ("class-index", "max-rows", "smooth-samples"):
    flags.DEFINE_alias(_name.replace("-", "_"), _name)
flags.mark_flag_as_required("model")

PROG = "squeezetime-explain"


def _error(message: object) -> None:
    print(f"{PROG}: error: {message}", file=sys.stderr)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        raise app.UsageError("usage: squeezetime-explain VIDEO --model MODEL [--output DIR]")
    video = argv[1]
    from keras_squeezetime.apps.explain import explain_video
    from keras_squeezetime.video.decode import VideoDecodeError

    try:
        os.makedirs(FLAGS.output, exist_ok=True)
        explanation = explain_video(
            video, FLAGS.model, FLAGS["class-index"].value, labels=FLAGS.labels,
            frames=FLAGS.frames, frame_interval=FLAGS["frame-interval"].value,
            image_size=FLAGS["image-size"].value, short_side=FLAGS["short-side"].value,
            smooth_samples=FLAGS["smooth-samples"].value)
        stem = os.path.join(FLAGS.output, os.path.splitext(os.path.basename(video))[0])
        png = explanation.save_grid(stem + ".explain.png", max_rows=FLAGS["max-rows"].value)
        gif = explanation.save_gif(stem + ".explain.gif")
    except VideoDecodeError as error:
        _error(error)
        return 1
    except (OSError, ValueError) as error:  # the model, the labels or the output folder
        _error(error)
        return 2
    if FLAGS.json:
        print(json.dumps({
            "video": video, "class_index": explanation.class_index, "label": explanation.label,
            "probability": explanation.probability,
            "frame_indices": explanation.frame_indices.tolist(), "png": png, "gif": gif,
        }, indent=2))
    else:
        print(f"{video}: explained {explanation.label} ({explanation.probability:.2%}); wrote "
              f"{png}, {gif}")
    return 0


def run() -> None:
    """Console-script entry point."""
    run_tool(main, __name__, PROG)


if __name__ == "__main__":
    run()
