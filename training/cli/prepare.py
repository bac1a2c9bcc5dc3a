r"""`squeezetime-prepare`: videos + annotations -> sharded TFRecords for training.

Example:
  squeezetime-prepare --csv kinetics400/train.csv --video-root kinetics400/train \\
      --output gs://bucket/k400/train --workers 8 --short-side 256

Rerunning the same command resumes: finished shards are kept as they are, so videos
that failed in them (e.g. files that were missing) are not retried, even once they are
back; the run ends with a note saying how many. Prepare into a fresh --output to retry
them. Ctrl-C stops the run (the shard being written is dropped); run the same command
again to resume.

With --folder, videos are the files '<folder>/<class>/<file>' with a video extension
(.mp4, .mkv, .webm, .avi, .mov, .ts, .mpg, .wmv, .flv, .3gp, .ogv, ...); other files
are skipped with one warning and listed in manifest.json's 'skipped_files' (hidden files
are ignored).

Exit status: 0 when records were written (also when some videos failed: they are
listed in manifest.json and counted in the summary line), 1 when nothing could be
written, 2 for bad arguments, 130 when interrupted.
"""

from __future__ import annotations

import os
import sys

from absl import app, flags

from keras_squeezetime.cli.entry_point import run_tool
from keras_squeezetime.training.cli.storage import unreachable_storage_as_usage_error
from keras_squeezetime.training.prepare import (
    DEFAULT_SETTINGS,
    DEFAULT_SHARD_SIZE,
    DEFAULT_SHUFFLE_SEED,
    PrepareInterrupted,
    prepare_dataset,
)

FLAGS = flags.FLAGS

flags.DEFINE_string("list", None, "mmaction-style list: one 'path label_index' per line.")
flags.DEFINE_string("csv", None, "Kinetics CSV: label,youtube_id,time_start,time_end,split.")
flags.DEFINE_string(
    "hmdb-splits", None, "Folder of HMDB51 split files '<class>_test_split<k>.txt'."
)
flags.DEFINE_string("folder", None, "A folder with one sub-folder of videos per class.")
flags.DEFINE_string("video-root", None, "Folder the annotation paths are relative to "
                    "(default: the list's folder for --list, as every tool reads a list; the "
                    "working directory for --csv).")
flags.DEFINE_string(
    "output", None, "Output folder or gs:// prefix for the shards. Rerunning with the same "
    "folder resumes (finished shards are kept; videos that failed in them are not retried); "
    "a fresh folder prepares everything again.",
)
flags.DEFINE_string(
    "labels", None,
    "Class names: kinetics400, kinetics600, hmdb51 or a text file (one per line). Defaults: "
    "kinetics400 for --csv, hmdb51 for --hmdb-splits, the folder names for --folder, "
    "none for --list.",
)
flags.DEFINE_integer("hmdb-split", 1, "HMDB51 split number (1, 2, 3).")
flags.DEFINE_enum("hmdb-subset", "train", ["train", "test"], "HMDB51 subset.")
flags.DEFINE_integer("workers", max(1, (os.cpu_count() or 1)), "Decoding processes.")
flags.DEFINE_integer(
    "short-side", DEFAULT_SETTINGS.short_side,
    "Resize frames so the short side has this many pixels (0 keeps the size; smaller videos "
    "are enlarged to it, as mmaction's Resize does).",
)
flags.DEFINE_float(
    "fps", None, "Resample videos to this frame rate (default: keep the source rate)."
)
flags.DEFINE_integer(
    "max-frames", 0,
    "0 stores every frame. Otherwise a longer video keeps every k-th frame over its whole "
    "duration (the smallest k that fits; listed in manifest.json).",
)
flags.DEFINE_integer(
    "shuffle-seed", DEFAULT_SHUFFLE_SEED,
    "Seed of the order the shards store the videos in (class-sorted lists would otherwise "
    "give one class per shard); -1 keeps the list order.",
)
flags.DEFINE_integer("shard-size", DEFAULT_SHARD_SIZE, "Videos per TFRecord shard.")
flags.DEFINE_integer("jpeg-quality", DEFAULT_SETTINGS.jpeg_quality,
                     "JPEG quality of the stored frames.")
flags.DEFINE_float("log-every", 10.0, "Seconds between progress lines.")


def _entries():
    """`(entries, skipped paths, the whole class list or None)` from the one annotation
    source given; the class list lets the manifest name classes without videos."""
    from keras_squeezetime import load_labels
    from keras_squeezetime.training import annotations

    sources = [name for name in ("list", "csv", "hmdb-splits", "folder") if FLAGS[name].value]
    if len(sources) != 1:
        raise app.UsageError(
            "Give exactly one of --list, --csv, --hmdb-splits, --folder.", exitcode=2
        )
    source = sources[0]
    video_root = FLAGS["video-root"].value
    if source == "list":
        if video_root is None:
            video_root = os.path.dirname(os.path.abspath(FLAGS.list))
        entries = annotations.parse_video_list(FLAGS.list, video_root, FLAGS.labels)
        return entries, [], load_labels(FLAGS.labels) if FLAGS.labels else None
    if source == "csv":
        labels = FLAGS.labels or "kinetics400"
        entries = annotations.parse_kinetics_csv(FLAGS.csv, video_root, labels)
        return entries, [], load_labels(labels)
    if source == "hmdb-splits":
        labels = FLAGS.labels or "hmdb51"
        entries = annotations.parse_hmdb51_splits(
            FLAGS["hmdb-splits"].value, FLAGS["hmdb-split"].value, FLAGS["hmdb-subset"].value,
            video_root, labels,
        )
        return entries, [], load_labels(labels)
    folders = annotations.list_class_folders(FLAGS.folder, FLAGS.labels)
    return folders.entries, folders.skipped, folders.class_names


def _strided_note(manifest) -> str:
    count = len(manifest["strided"])
    return f", {count} long videos stored every k-th frame" if count else ""


def _skipped_note(manifest) -> str:
    count = manifest["skipped_files"]["count"]
    return f", {count} non-video paths skipped" if count else ""


def main(argv: list[str]) -> int:
    """Prepares the records; one line on Ctrl-C instead of a traceback (exit status 130)."""
    try:
        return _prepare(argv)
    except KeyboardInterrupt as interrupt:
        done = (f"; {interrupt.finished} of {interrupt.total} shards finished in "
                f"{interrupt.output}" if isinstance(interrupt, PrepareInterrupted) else "")
        print(f"squeezetime-prepare: interrupted{done}; run the same command again to resume.",
              file=sys.stderr, flush=True)
        return 130


def _prepare(argv: list[str]) -> int:
    """Parses the annotations, prepares the records and prints a summary line."""
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}", exitcode=2)
    if not FLAGS.output:
        raise app.UsageError("--output is required.", exitcode=2)
    from keras_squeezetime.training.shard_manifest import MANIFEST_NAME

    try:
        entries, skipped, class_names = _entries()
    except (ValueError, OSError) as error:  # unreadable or malformed annotations, unknown labels
        raise app.UsageError(str(error), exitcode=2) from error
    try:
        with unreachable_storage_as_usage_error(FLAGS.output):
            manifest = prepare_dataset(
                entries,
                FLAGS.output,
                workers=FLAGS.workers,
                short_side=FLAGS["short-side"].value or None,
                fps=FLAGS.fps,
                max_frames=FLAGS["max-frames"].value or None,
                shuffle_seed=(None if FLAGS["shuffle-seed"].value < 0
                              else FLAGS["shuffle-seed"].value),
                shard_size=FLAGS["shard-size"].value,
                jpeg_quality=FLAGS["jpeg-quality"].value,
                log_every=FLAGS["log-every"].value,
                skipped_files=skipped,
                class_names=class_names,
            )
    except ValueError as error:  # bad settings, or an output made for another run
        raise app.UsageError(str(error), exitcode=2) from error
    summary = (
        f"squeezetime-prepare: wrote {manifest['num_written']} of {manifest['num_videos']} videos "
        f"to {manifest['num_shards']} shards in {FLAGS.output} ({manifest['num_failed']} failed, "
        f"{manifest['bytes_per_video'] / 1e6:.2f} MB/video"
        f"{_strided_note(manifest)}{_skipped_note(manifest)}); "
        f"manifest: {FLAGS.output.rstrip('/')}/{MANIFEST_NAME}"
    )
    print(summary, flush=True)
    not_retried = manifest["this_run"]["failed_not_retried"]
    if not_retried:
        print(
            f"squeezetime-prepare: note: {not_retried} of the failed videos are in shards an "
            f"earlier run finished and were not retried (finished shards are never rewritten); "
            f"to retry them, e.g. after restoring missing files, prepare into a fresh --output.",
            flush=True,
        )
    if manifest["num_written"] == 0:
        first = manifest["failures"][0] if manifest["failures"] else {}
        print(
            f"squeezetime-prepare: error: no video could be written (first failure: "
            f"{first.get('path')!r}: {first.get('reason')}).",
            file=sys.stderr,
        )
        return 1
    return 0


def run() -> None:
    """Console-script entry point."""
    run_tool(main, __name__, "squeezetime-prepare", quiet_tensorflow=False)


if __name__ == "__main__":
    run()
