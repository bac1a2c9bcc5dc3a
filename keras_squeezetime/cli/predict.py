"""`squeezetime-predict VIDEO... --model MODEL`: classify videos, or time-line long ones.

Examples:
  squeezetime-predict clip.mp4 --model kinetics400
  squeezetime-predict a.mp4 b.webm --model runs/exp1 --json          # a trained model folder
  squeezetime-predict clip.mp4 --model model.tflite --top 3
  squeezetime-predict clip.mp4 --model ckpt.pth --labels classes.txt --image-size 112
  squeezetime-predict match.mp4 --model kinetics400 --long --window-stride 16 --output out/

`--model` is a `.keras` file or a folder holding `model.keras` (with its `config.json`),
a `.tflite` export, an official `.pth` checkpoint or a preset name. Each video is
classified by `keras_squeezetime.predict_video` (with `--long`,
`keras_squeezetime.predict_long_video` and `Timeline.save`). `--long` writes
`<video>.timeline.csv` (segments), `<video>.windows.csv`, `<video>.timeline.json`
and `<video>.timeline.png` into `--output`.

Exit status: 0 on success, 1 when a video could not be read (the others are still
classified), 2 when the model or the labels cannot be used.
"""

from __future__ import annotations

import json
import os
import sys

from absl import app, flags

from keras_squeezetime.cli.clip_flags import define_clip_flags, predictor_from_flags
from keras_squeezetime.cli.entry_point import run_tool

FLAGS = flags.FLAGS
flags.DEFINE_string("model", None,
                    ".keras file or model folder, .tflite, official .pth, or preset.")
flags.DEFINE_string("labels", None, "Class names: a text file (one per line) or a built-in list "
                    "(kinetics400, kinetics600, hmdb51); overrides the model's own names.")
flags.DEFINE_integer("top", 5, "Classes to print per video (per window with --long).",
                     lower_bound=1)
flags.DEFINE_boolean("json", False, "Print JSON (a list, one entry per video) instead of text.")
flags.DEFINE_integer("num-clips", 1, "Evenly spaced clips averaged per video.", lower_bound=1)
flags.DEFINE_boolean("long", False, "Score sliding windows and write a timeline of segments.")
flags.DEFINE_integer("window-stride", None, "With --long: source frames between window starts "
                     "(default: half a window).", lower_bound=1)
flags.DEFINE_float("min-score", 0.0, "With --long: windows whose top probability is lower "
                   "belong to no segment.", lower_bound=0.0, upper_bound=1.0)
flags.DEFINE_integer("min-windows", 1, "With --long: drop segments of fewer windows.",
                     lower_bound=1)
flags.DEFINE_string("output", ".", "With --long: folder for the timeline files.")
define_clip_flags()
for _name in ("num-clips", "window-stride", "min-score", "min-windows"):
    flags.DEFINE_alias(_name.replace("-", "_"), _name)
flags.mark_flag_as_required("model")

PROG = "squeezetime-predict"
_LONG_ONLY = ("window-stride", "min-score", "min-windows", "output")


def _error(message: object) -> None:
    print(f"{PROG}: error: {message}", file=sys.stderr)


def _format_ranking(predictions) -> str:
    width = max(len(p.label) for p in predictions)
    return "\n".join(f"  {rank}. {p.label:<{width}}  {p.probability:7.2%}"
                     for rank, p in enumerate(predictions, start=1))


def _run_long(video: str, predictor) -> dict:
    from keras_squeezetime.apps.timeline import predict_long_video

    timeline = predict_long_video(video, predictor, window_stride=FLAGS["window-stride"].value,
                                  min_score=FLAGS["min-score"].value,
                                  min_windows=FLAGS["min-windows"].value)
    files = timeline.save(FLAGS.output, top=FLAGS.top)
    if not FLAGS.json:
        print(f"{video}: {len(timeline.starts)} windows, {len(timeline.segments)} segments")
        for s in timeline.segments:
            print(f"  {s.start_time:8.2f}s - {s.end_time:8.2f}s  {s.label}  ({s.score:.2%})")
        print("  wrote " + ", ".join(files.values()))
    return {**timeline.to_dict(FLAGS.top), "files": files}


def _misplaced_flags() -> str | None:
    """A message for flags that would be ignored: window flags without --long, or
    --num-clips with it (each window is one clip)."""
    if FLAGS.long and FLAGS["num-clips"].present:
        return "--num-clips averages clips over a whole video; --long scores one clip per window."
    unused = [f"--{name}" for name in _LONG_ONLY if FLAGS[name].present]
    if not FLAGS.long and unused:
        return f"{', '.join(unused)} only apply with --long."
    return None


def main(argv: list[str]) -> int:
    videos = argv[1:]
    if not videos:
        raise app.UsageError("usage: squeezetime-predict VIDEO... --model MODEL [--json] [--long]")
    from keras_squeezetime.apps.prediction import predict_video
    from keras_squeezetime.video.decode import VideoDecodeError

    misplaced = _misplaced_flags()
    if misplaced:
        _error(misplaced)
        return 2
    if FLAGS.long:
        from keras_squeezetime.apps.timeline import file_stem

        by_stem: dict[str, list[str]] = {}
        for video in videos:
            by_stem.setdefault(file_stem(video), []).append(video)
        clashes = [paths for paths in by_stem.values() if len(paths) > 1]
        if clashes:
            _error(f"{' and '.join(clashes[0])} would write the same timeline files into "
                   f"{FLAGS.output!r}: predict them into different --output folders.")
            return 2
        try:
            os.makedirs(FLAGS.output, exist_ok=True)
        except OSError as error:
            _error(f"cannot create the output folder {FLAGS.output!r}: {error}")
            return 2
    try:
        predictor = predictor_from_flags()
    except (OSError, ValueError) as error:  # FileNotFoundError and download failures included
        _error(error)
        return 2
    results, failed = [], False
    for video in videos:
        try:
            if FLAGS.long:
                results.append(_run_long(video, predictor))
                continue
            prediction = predict_video(video, predictor, top=FLAGS.top,
                                       num_clips=FLAGS["num-clips"].value)
        except (VideoDecodeError, ValueError, OSError) as error:
            _error(error)
            results.append({"video": video, "error": str(error)})
            failed = True
            continue
        results.append(prediction.to_dict())
        if not FLAGS.json:
            print(f"{video}\n{_format_ranking(prediction.top)}")
    if FLAGS.json:
        print(json.dumps(results, indent=2))
    return 1 if failed else 0


def run() -> None:
    """Console-script entry point."""
    run_tool(main, __name__, PROG)


if __name__ == "__main__":
    run()
