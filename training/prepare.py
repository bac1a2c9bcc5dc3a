"""Videos -> sharded TFRecords of `tf.train.SequenceExample` (one record per video).

Each record holds the video's frames as JPEGs (feature list `image/encoded`) plus
label, id, stored fps and the source frame count (`training/records.py`), enough
frames that training can draw a different window every epoch.

Entries are stored in a seeded random order (`shuffle_seed`, recorded in the plan and the
manifest): annotation lists are sorted by class (Kinetics CSVs, HMDB51 split files, class
folders), and shards written in list order would each hold one class, so no reading order
could give batches that mix classes. Shard `i` holds positions `i * shard_size ...
(i + 1) * shard_size - 1` of that order, so a rerun knows exactly which videos a shard
holds: a shard is finished iff its final file exists (it is written to
`<name>.tmp-<pid>` and renamed when complete), and finished shards are skipped. Videos
that fail to decode are skipped, logged and listed in `manifest.json` (with their index
in the entry list); they never stop the job. Finished shards are never rewritten, so a
rerun does not retry the videos that failed in them (a fresh output does); it says so.
Ctrl-C raises `PrepareInterrupted` (a `KeyboardInterrupt`) naming the finished shards.

Whole videos are stored by default. With `max_frames`, a video that would store more
frames is stored with a uniform temporal stride covering its whole duration (its record's
`clip/frame_rate` says at what rate); the manifest lists every such video. Nothing is cut.

Decoding and JPEG encoding run in worker processes (spawned: forking a process that
has imported TensorFlow is unsafe); the parent process only builds and writes records.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import json
import math
import os
import time
from typing import Any, Iterator, Sequence

from absl import logging

from keras_squeezetime import file_paths
from keras_squeezetime.training.annotations import VideoEntry, skipped_kinds
from keras_squeezetime.training.shard_manifest import MANIFEST_NAME
from keras_squeezetime.video.decode import VideoDecodeError, probe_video, read_frames
from keras_squeezetime.worker_pool import TaskFailure, run_tasks

# Bookkeeping next to the shards: the plan of this output and one status file per finished shard.
STATE_DIR = ".prepare"
# Bump when the stored content changes meaning, so old outputs are not resumed into.
# 2: entries in a seeded random order; `max_frames` strides over the whole video.
_FORMAT_VERSION = 2
# The order the shards store the entries in unless told otherwise (None: list order).
DEFAULT_SHUFFLE_SEED = 0


class PrepareInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped `prepare_dataset`: `finished` of `total` shards are complete in
    `output` (the one being written was removed); the same call again resumes."""

    def __init__(self, output: str, finished: int, total: int):
        self.output, self.finished, self.total = output, finished, total
        super().__init__(f"interrupted; {finished} of {total} shards finished in {output}; "
                         "the same call again resumes")


@dataclasses.dataclass(frozen=True)
class PrepareSettings:
    """How frames are stored; part of the output's plan (a rerun must use the same)."""

    short_side: int | None = 256  # mmaction's Kinetics frames (`Resize(-1, 256)`)
    fps: float | None = None
    max_frames: int | None = None
    jpeg_quality: int = 90


DEFAULT_SETTINGS = PrepareSettings()
DEFAULT_SHARD_SIZE = 100


def storage_order(num_entries: int, shuffle_seed: int | None = DEFAULT_SHUFFLE_SEED) -> list[int]:
    """Entry indices in the order the shards store them: a seeded permutation, or list order.

    Shard `i` holds positions `i * shard_size ...` of this order.
    """
    if shuffle_seed is None:
        return list(range(num_entries))
    import numpy as np

    return [int(i) for i in np.random.default_rng(shuffle_seed).permutation(num_entries)]


def shard_names(num_entries: int, shard_size: int, prefix: str = "clips") -> list[str]:
    """File names of the shards for `num_entries` videos: `clips-00000-of-00012.tfrecord`."""
    count = max(1, math.ceil(num_entries / shard_size))
    return [f"{prefix}-{i:05d}-of-{count:05d}.tfrecord" for i in range(count)]


def prepare_dataset(
    entries: Sequence[VideoEntry],
    output: str,
    workers: int = 1,
    short_side: int | None = DEFAULT_SETTINGS.short_side,
    fps: float | None = DEFAULT_SETTINGS.fps,
    max_frames: int | None = DEFAULT_SETTINGS.max_frames,
    shard_size: int = DEFAULT_SHARD_SIZE,
    jpeg_quality: int = DEFAULT_SETTINGS.jpeg_quality,
    prefix: str = "clips",
    log_every: float = 10.0,
    video_timeout: float = 600.0,
    shuffle_seed: int | None = DEFAULT_SHUFFLE_SEED,
    skipped_files: Sequence[str] = (),
    class_names: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Writes `entries` as sharded TFRecords under `output` and returns the manifest.

    Args:
      entries: the videos, e.g. from `keras_squeezetime.training.annotations`.
      output: a local folder or a `gs://` prefix (created if missing).
      workers: decoding processes; 1 decodes in this process.
      short_side: resize so the short side has this many pixels; None keeps the size.
      fps: resample every video to this frame rate by timestamp; None keeps the source rate.
      max_frames: None stores every frame. Otherwise a video with more frames (after
        `fps`) is stored with the smallest whole stride `k` that fits, i.e. every `k`-th
        frame over its whole duration at `rate / k` (listed in the manifest).
      shard_size: videos per shard.
      jpeg_quality: JPEG quality of the stored frames (1-95).
      prefix: shard file name prefix.
      log_every: seconds between progress lines.
      video_timeout: seconds a worker may spend on one video before it is reported as
        failed (only with `workers > 1`); also catches a worker killed by a crash.
      shuffle_seed: the entries are stored in the order `storage_order(len(entries),
        shuffle_seed)`, so that shards (and batches) mix classes however the list is
        sorted; None keeps the list order.
      skipped_files: paths the entry list was made without (`ClassFolders.skipped`):
        counted and listed in the manifest's `skipped_files`, so none vanishes unseen.
      class_names: the source's whole class list (index i at position i), when it has one:
        the manifest's `classes` then lists every class, one without videos (an empty class
        folder) too, so training finds a name for each; None lists the classes the entries use.

    Returns:
      The manifest (also written to `output/manifest.json`): counts, settings, shards,
      per-class counts, every failed video with its reason and the skipped files.
      `num_written == 0` means nothing could be written; the caller decides whether that
      is an error (the CLI exits non-zero). `this_run["failed_not_retried"]` counts the
      failures in shards an earlier run finished: they are not retried (warned about).

    Raises:
      ValueError: bad arguments, or `output` holds shards of a different entry list or settings.
      PrepareInterrupted: Ctrl-C (SIGINT); the finished shards stay, a rerun resumes.
    """
    import tensorflow as tf  # Only the parent process needs TF.

    from keras_squeezetime.training import records

    _check_args(entries, workers, short_side, fps, max_frames, shard_size, jpeg_quality)
    settings = PrepareSettings(short_side, fps, max_frames, jpeg_quality)
    output = output.rstrip("/")
    state_dir = f"{output}/{STATE_DIR}"
    tf.io.gfile.makedirs(state_dir)
    _check_plan(tf, state_dir, entries, settings, shard_size, prefix, shuffle_seed)
    order = storage_order(len(entries), shuffle_seed)

    names = shard_names(len(entries), shard_size, prefix)
    # Leftovers of a killed run; two runs on one output at the same time are not supported.
    for stale in tf.io.gfile.glob(f"{output}/{prefix}-*.tfrecord.tmp-*"):
        tf.io.gfile.remove(stale)

    statuses: dict[int, dict[str, Any]] = {}
    pending: list[int] = []
    for shard, name in enumerate(names):
        if tf.io.gfile.exists(f"{output}/{name}"):
            statuses[shard] = _read_status(tf, state_dir, output, name)
        else:
            pending.append(shard)
    logging.info(
        "Preparing %d videos in %d shards under %s (%d shards already finished), %d worker(s).",
        len(entries), len(names), output, len(statuses), workers,
    )

    tasks = [
        (order[position], entries[order[position]], settings)
        for shard in pending
        for position in range(shard * shard_size, min((shard + 1) * shard_size, len(entries)))
    ]
    finished_before = sorted(statuses)
    progress = _Progress(len(tasks), len(pending), workers, log_every)
    # The workers only decode and encode (no Keras); results come back in task order.
    pool_workers = min(workers, len(tasks)) if len(tasks) > 1 else 1
    pool_results = run_tasks(_encode_entry, tasks, pool_workers, window=4 * workers,
                             timeout=video_timeout)
    try:
        with contextlib.closing(pool_results):  # terminates the workers however it ends
            results = _with_indices(tasks, pool_results)
            for shard in pending:
                positions = range(shard * shard_size, min((shard + 1) * shard_size, len(entries)))
                shard_entries = [order[position] for position in positions]
                statuses[shard] = _write_shard(
                    tf, records, entries, output, state_dir, names[shard], shard_entries, results,
                    progress,
                )
                progress.shard_done()
    except KeyboardInterrupt:
        # The pool's workers were terminated on the way out (`closing`). Counted on disk: the
        # interrupt may have come between a shard's rename and its status here.
        try:
            on_disk = set(tf.io.gfile.listdir(output))
        except Exception:  # a failing listing must not turn Ctrl-C into a traceback
            on_disk = {names[shard] for shard in statuses}
        done = sum(name in on_disk for name in names)
        raise PrepareInterrupted(output, done, len(names)) from None
    progress.log(final=True)
    not_retried = sum(len(statuses[shard]["failures"]) for shard in finished_before)
    if not_retried:
        logging.warning(
            "%d videos failed in the %d shards an earlier run finished under %s and were not "
            "retried: finished shards are never rewritten. To retry them (e.g. after restoring "
            "missing files), prepare into a fresh output folder.",
            not_retried, len(finished_before), output,
        )

    manifest = _manifest(
        entries, names, statuses, settings, shard_size, output, progress, shuffle_seed,
        skipped_files, class_names,
    )
    manifest["this_run"].update(shards_already_finished=len(finished_before),
                                failed_not_retried=not_retried)
    text = json.dumps(manifest, indent=2, ensure_ascii=False)
    file_paths.write_text(f"{output}/{MANIFEST_NAME}", text)
    return manifest


def encode_video(entry: VideoEntry, settings: PrepareSettings) -> dict[str, Any]:
    """Decodes one video and JPEG-encodes the frames to store (runs in a worker).

    Returns:
      `{"jpegs": [bytes], "frame_rate", "original_num_frames", "original_frame_rate",
      "stride"}`: `stride` > 1 when `settings.max_frames` made it keep every
      `stride`-th frame (over the whole video, at `frame_rate`).

    Raises:
      VideoDecodeError: the video is missing or broken.
    """
    from PIL import Image  # Pillow's libjpeg-turbo: as fast as tf.io.encode_jpeg, no TF in workers.

    info = probe_video(entry.path)
    frames = read_frames(entry.path, short_side=settings.short_side, fps=settings.fps)
    rate = settings.fps or info.fps
    stride = 1
    if settings.max_frames is not None and len(frames) > settings.max_frames:
        stride = math.ceil(len(frames) / settings.max_frames)
        frames = frames[::stride]
        rate = rate / stride
    jpegs = []
    for frame in frames:
        buffer = io.BytesIO()
        Image.fromarray(frame).save(buffer, format="JPEG", quality=settings.jpeg_quality)
        jpegs.append(buffer.getvalue())
    return {
        "jpegs": jpegs,
        "frame_rate": rate,
        "original_num_frames": info.num_frames,
        "original_frame_rate": info.fps,
        "stride": stride,
    }


def _encode_entry(task: tuple[int, VideoEntry, PrepareSettings]) -> tuple[int, dict | str]:
    """Worker entry point: `(index, encoded video)` or `(index, failure reason)`."""
    index, entry, settings = task
    try:
        return index, encode_video(entry, settings)
    except VideoDecodeError as error:
        return index, error.reason
    except Exception as error:  # A worker must report, not die, whatever one file does.
        return index, f"{type(error).__name__}: {error}"


def _with_indices(tasks, results) -> Iterator[tuple[int, dict | str]]:
    """`(index, result or failure reason)`; a task without result (a worker that hung or
    died) is reported as failed with the pool's reason."""
    for task, result in zip(tasks, results):
        yield (task[0], result.reason) if isinstance(result, TaskFailure) else result


def _write_shard(tf, records, entries, output, state_dir, name, shard_entries, results, progress):
    """Writes one shard from the next results, then publishes it by renaming the temporary file."""
    temporary = f"{output}/{name}.tmp-{os.getpid()}"
    try:
        return _write_shard_to(tf, records, entries, output, state_dir, name, shard_entries,
                               results, progress, temporary)
    except BaseException:
        # Ctrl-C or an error mid-shard: leave no partial file behind (a rerun would remove it).
        with contextlib.suppress(Exception):
            if tf.io.gfile.exists(temporary):
                tf.io.gfile.remove(temporary)
        raise


def _write_shard_to(tf, records, entries, output, state_dir, name, shard_entries, results,
                    progress, temporary):
    failures, strided = [], []
    written = 0
    with tf.io.TFRecordWriter(temporary) as writer:
        for expected in shard_entries:
            index, result = next(results)
            if index != expected:  # imap keeps the task order; anything else is a bug
                raise RuntimeError(f"Expected result of entry {expected}, got {index}.")
            entry = entries[index]
            if isinstance(result, str):
                failures.append(
                    {"index": index, "path": entry.path, "video_id": entry.video_id,
                     "reason": result}
                )
                progress.video_done(failed=True)
                logging.warning("Skipping %r: %s", entry.path, result)
                continue
            example = records.make_sequence_example(
                result["jpegs"],
                label_index=entry.label_index,
                label_text=entry.label_text,
                media_id=entry.video_id,
                frame_rate=result["frame_rate"],
                original_num_frames=result["original_num_frames"],
                original_frame_rate=result["original_frame_rate"],
            )
            writer.write(example.SerializeToString())
            written += 1
            if result["stride"] > 1:
                strided.append(
                    {"index": index, "video_id": entry.video_id, "stride": result["stride"],
                     "stored_frames": len(result["jpegs"]), "frame_rate": result["frame_rate"]}
                )
            progress.video_done(failed=False)
    num_bytes = tf.io.gfile.stat(temporary).length
    progress.add_bytes(num_bytes, written)
    status = {"name": name, "records": written, "bytes": num_bytes, "failures": failures,
              "strided": strided}
    # The status goes first: a final shard file always has its status next to it.
    file_paths.write_text(f"{state_dir}/{name}.json", json.dumps(status, ensure_ascii=False))
    tf.io.gfile.rename(temporary, f"{output}/{name}", overwrite=True)
    return status


def _read_status(tf, state_dir: str, output: str, name: str) -> dict[str, Any]:
    """The status of a shard finished by an earlier run (recounted if its status file is gone)."""
    path = f"{state_dir}/{name}.json"
    if tf.io.gfile.exists(path):
        with tf.io.gfile.GFile(path, "r") as handle:
            return json.load(handle)
    shard = f"{output}/{name}"
    count = sum(1 for _ in tf.data.TFRecordDataset(shard))
    reason = "status file missing: failures of this shard are unknown"
    logging.warning("%s: %s.", shard, reason)
    return {"name": name, "records": count, "bytes": tf.io.gfile.stat(shard).length,
            "failures": [], "strided": [], "note": reason}


def _check_args(entries, workers, short_side, fps, max_frames, shard_size, jpeg_quality) -> None:
    if not entries:
        raise ValueError("No videos to prepare: the entry list is empty.")
    if workers < 1:
        raise ValueError(f"workers must be >= 1; got {workers}.")
    if short_side is not None and short_side < 1:
        raise ValueError(f"short_side must be >= 1; got {short_side}.")
    if fps is not None and fps <= 0:
        raise ValueError(f"fps must be > 0; got {fps}.")
    if max_frames is not None and max_frames < 1:
        raise ValueError(f"max_frames must be >= 1; got {max_frames}.")
    if shard_size < 1:
        raise ValueError(f"shard_size must be >= 1; got {shard_size}.")
    if not 1 <= jpeg_quality <= 95:
        raise ValueError(f"jpeg_quality must be in 1..95; got {jpeg_quality}.")


def _plan(entries, settings, shard_size, prefix, shuffle_seed) -> dict[str, Any]:
    digest = hashlib.sha256()
    for entry in entries:
        digest.update(json.dumps(dataclasses.astuple(entry), ensure_ascii=False).encode("utf-8"))
        digest.update(b"\n")
    return {
        "format_version": _FORMAT_VERSION,
        "entries_sha256": digest.hexdigest(),
        "num_entries": len(entries),
        "shard_size": shard_size,
        "prefix": prefix,
        "shuffle_seed": shuffle_seed,
        "settings": dataclasses.asdict(settings),
    }


def _check_plan(tf, state_dir, entries, settings, shard_size, prefix, shuffle_seed) -> None:
    """Refuses to resume into an output made from other entries or settings (shards would mix)."""
    plan = _plan(entries, settings, shard_size, prefix, shuffle_seed)
    path = f"{state_dir}/plan.json"
    if tf.io.gfile.exists(path):
        with tf.io.gfile.GFile(path, "r") as handle:
            previous = json.load(handle)
        if previous != plan:
            changed = sorted(key for key in plan if previous.get(key) != plan[key])
            raise ValueError(
                f"{path} was written for a different run (differs in {changed}); "
                "use a new output folder, or delete the old one to start over."
            )
        return
    file_paths.write_text(path, json.dumps(plan, indent=2))


def _manifest(
    entries, names, statuses, settings, shard_size, output, progress, shuffle_seed,
    skipped_files, class_names,
) -> dict[str, Any]:
    shards = [statuses[i] for i in range(len(names))]
    failures = [failure for status in shards for failure in status["failures"]]
    strided = [video for status in shards for video in status.get("strided", [])]
    written = sum(status["records"] for status in shards)
    total_bytes = sum(status["bytes"] for status in shards)
    return {
        "output": output,
        "num_videos": len(entries),
        "num_written": written,
        "num_failed": len(failures),
        "num_shards": len(names),
        "shard_size": shard_size,
        "settings": dataclasses.asdict(settings),
        "entry_order": (
            "list order" if shuffle_seed is None else f"shuffled with seed {shuffle_seed}"
        ),
        "shuffle_seed": shuffle_seed,
        "frames_stored": (
            "every frame" if settings.max_frames is None else
            f"every frame, or every k-th over the whole video when more than "
            f"{settings.max_frames} (the {len(strided)} videos in 'strided')"
        ),
        "strided": strided,
        "total_bytes": total_bytes,
        "bytes_per_video": total_bytes / written if written else 0.0,
        "this_run": progress.summary(),
        "shards": [{k: status[k] for k in ("name", "records", "bytes")} for status in shards],
        "classes": _classes(entries, failures, class_names),
        "failures": failures,
        "skipped_files": {
            "what": "paths not taken as videos: files without a video extension or beside "
                    "the class folders, sub-folders of class folders (ending in a separator); "
                    "hidden files are not counted",
            "count": len(skipped_files),
            "by_kind": skipped_kinds(skipped_files),
            "paths": sorted(skipped_files),
        },
    }


def _classes(entries, failures, class_names=None) -> list[dict[str, Any]]:
    """Each class of `class_names` and each index the entries use, its name (empty when the
    source names none), how many videos were listed for it (`videos`, failed ones included:
    existing readers know it so) and how many of those were `written` or `failed` (by the
    failures list, which misses those of a shard whose status file was lost); training
    checks `--labels` against the indices and names, and names its classes from them."""
    names: dict[int, str] = dict(enumerate(class_names or ()))
    videos: dict[int, int] = {}
    failed: dict[int, int] = {}
    for entry in entries:
        videos[entry.label_index] = videos.get(entry.label_index, 0) + 1
        if entry.label_text:
            names.setdefault(entry.label_index, entry.label_text)
    for failure in failures:
        label = entries[failure["index"]].label_index
        failed[label] = failed.get(label, 0) + 1
    return [{"index": index, "name": names.get(index, ""), "videos": videos.get(index, 0),
             "written": videos.get(index, 0) - failed.get(index, 0),
             "failed": failed.get(index, 0)}
            for index in sorted(set(videos) | set(range(len(class_names or ()))))]


class _Progress:
    """Counts finished videos and logs rate and ETA at most every `log_every` seconds."""

    def __init__(self, total: int, shards: int, workers: int, log_every: float):
        self.total, self.shards, self.workers, self.log_every = total, shards, workers, log_every
        self.done = self.failed = self.shards_done = self.bytes = self.records = 0
        self.start = self.last_log = time.monotonic()

    def video_done(self, failed: bool) -> None:
        self.done += 1
        self.failed += int(failed)
        if time.monotonic() - self.last_log >= self.log_every:
            self.log()

    def add_bytes(self, num_bytes: int, records: int) -> None:
        self.bytes += num_bytes
        self.records += records

    def shard_done(self) -> None:
        self.shards_done += 1

    def summary(self) -> dict[str, float]:
        elapsed = time.monotonic() - self.start
        rate = self.done / elapsed if elapsed > 0 else 0.0
        return {
            "videos": self.done,
            "failed": self.failed,
            "shards": self.shards_done,
            "seconds": round(elapsed, 3),
            "videos_per_second": round(rate, 3),
            "videos_per_second_per_worker": round(rate / self.workers, 3),
        }

    def log(self, final: bool = False) -> None:
        self.last_log = time.monotonic()
        summary = self.summary()
        rate = summary["videos_per_second"]
        eta = (self.total - self.done) / rate if rate > 0 else float("inf")
        size = f", {self.bytes / self.records / 1e6:.2f} MB/video" if self.records else ""
        logging.info(
            "%s %d/%d videos (%d failed), %d/%d shards, %.2f videos/s (%.2f per worker)%s, %s %s",
            "Done:" if final else "Progress:", self.done, self.total, self.failed,
            self.shards_done, self.shards, rate, summary["videos_per_second_per_worker"], size,
            "elapsed" if final else "ETA", _duration(summary["seconds"] if final else eta),
        )


def _duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "unknown"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes = f"{rest // 60:02d}m{rest % 60:02d}s" if hours else f"{rest // 60}m{rest % 60:02d}s"
    return f"{hours}h{minutes}" if hours else minutes
