"""`prepare_dataset` and `squeezetime-prepare` on real videos; records read back with TF."""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from keras_squeezetime.training.annotations import VideoEntry
from keras_squeezetime.training.prepare import prepare_dataset, shard_names, storage_order
from keras_squeezetime.training.pipeline import PipelineConfig, train_dataset
from keras_squeezetime.training.records import parse_sequence_example
from tests.helpers.class_mix import expected_distinct_classes
from tests.helpers.ctrl_c import answer_ctrl_c


def read_records(output: str) -> list[dict]:
    """Every record of every finished shard under `output`, frames via tf.io.decode_jpeg."""
    clips = []
    for shard in sorted(tf.io.gfile.glob(f"{output}/*.tfrecord")):
        for serialized in tf.data.TFRecordDataset(shard):
            parsed = parse_sequence_example(serialized)
            clips.append(
                {
                    "frames": np.stack(
                        [tf.io.decode_jpeg(jpeg).numpy() for jpeg in parsed["frames"]]
                    ),
                    "label": int(parsed["label"]),
                    "label_text": parsed["label_text"].numpy().decode("utf-8"),
                    "media_id": parsed["media_id"].numpy().decode("utf-8"),
                    "frame_rate": float(parsed["frame_rate"]),
                    "original_num_frames": int(parsed["original_num_frames"]),
                }
            )
    return clips


def entry(path: os.PathLike | str, label: int) -> VideoEntry:
    return VideoEntry(os.fspath(path), label, f"class {label}", pathlib.Path(path).stem)


def test_records_hold_frames_labels_and_failures(
    tmp_path, make_video, make_broken_file, palette, frame_ids
):
    good = {
        "h264": (make_video("h264.mp4", num_frames=24, height=48, width=64, fps=24), 24, (32, 43)),
        "vp9 portrait": (make_video("portrait.webm", num_frames=10, rotation=90), 10, (43, 32)),
        "mjpeg odd": (make_video("odd.avi", num_frames=7, height=33, width=47), 7, (32, 45)),
        "short": (make_video("short.mp4", num_frames=3), 3, (32, 43)),
        "unicode": (make_video("dossier été/vidéo [1] 東京.mp4", num_frames=6), 6, (32, 43)),
    }
    broken = {
        "truncated": make_broken_file("truncated"),
        "empty": make_broken_file("empty"),
        "text": make_broken_file("text", name="notes.mkv"),
        "missing": tmp_path / "never written.mp4",
    }
    # Interleave good and broken videos so failures land inside shards.
    paths = [
        good["h264"][0], broken["truncated"], good["vp9 portrait"][0], broken["empty"],
        good["mjpeg odd"][0], good["short"][0], broken["text"], broken["missing"],
        good["unicode"][0],
    ]
    entries = [entry(path, label) for label, path in enumerate(paths)]
    output = os.fspath(tmp_path / "records")

    manifest = prepare_dataset(entries, output, workers=1, short_side=32, shard_size=3,
                               shuffle_seed=None)

    counts = manifest["num_videos"], manifest["num_written"], manifest["num_failed"]
    assert counts == (9, 5, 4)
    assert sorted(os.listdir(output)) == [".prepare", *shard_names(9, 3), "manifest.json"]
    assert json.loads(pathlib.Path(output, "manifest.json").read_text("utf-8")) == manifest
    failed = {failure["path"]: failure["reason"] for failure in manifest["failures"]}
    assert failed.keys() == {os.fspath(p) for p in broken.values()}
    assert "no such file" in failed[os.fspath(broken["missing"])]
    assert "empty" in failed[os.fspath(broken["empty"])]
    # Every listed class, failed videos' too: what training checks --labels against;
    # `videos` counts the listed ones, `written` the stored ones.
    assert manifest["classes"] == [
        {"index": i, "name": f"class {i}", "videos": 1, "written": int(path not in broken.values()),
         "failed": int(path in broken.values())}
        for i, path in enumerate(paths)
    ]

    clips = read_records(output)
    expected = [(label, *good_video) for label, path in enumerate(paths)
                for good_video in good.values() if good_video[0] == path]
    assert len(clips) == len(expected) == 5
    for clip, (label, path, num_frames, (height, width)) in zip(clips, expected):
        assert (clip["label"], clip["label_text"]) == (label, f"class {label}")
        assert clip["media_id"] == path.stem
        assert clip["frames"].shape == (num_frames, height, width, 3), path
        assert clip["original_num_frames"] == num_frames
        assert frame_ids(clip["frames"]) == [i % len(palette) for i in range(num_frames)], path
    assert clips[0]["frame_rate"] == pytest.approx(24.0)


def test_fps_resampling(tmp_path, make_video, frame_ids):
    times = np.array([0.0, 0.05, 0.35, 0.4, 0.8, 1.3])
    vfr = make_video("vfr.mp4", num_frames=len(times), timestamps=times, fps=5)
    steady = make_video("steady.mp4", num_frames=30, fps=30)
    output = os.fspath(tmp_path / "out")

    entries = [entry(vfr, 0), entry(steady, 1)]
    manifest = prepare_dataset(entries, output, short_side=None, fps=10, shuffle_seed=None)

    vfr_clip, steady_clip = read_records(output)
    # Frame k is the one on screen at k/10 s, to the end of the last frame: nothing is cut.
    on_screen = np.searchsorted(times, np.arange(len(vfr_clip["frames"])) / 10 + 1e-9,
                                "right") - 1
    assert len(vfr_clip["frames"]) > 13  # past 1.3 s, where the last frame starts
    assert frame_ids(vfr_clip["frames"]) == on_screen.tolist()
    assert on_screen[-1] == len(times) - 1
    assert frame_ids(steady_clip["frames"]) == [(3 * k) % 12 for k in range(10)]
    assert vfr_clip["frames"].shape[1:] == (48, 64, 3)
    assert (vfr_clip["frame_rate"], steady_clip["frame_rate"]) == (10.0, 10.0)
    assert steady_clip["original_num_frames"] == 30
    assert manifest["strided"] == [] and manifest["frames_stored"] == "every frame"


def test_frame_cap_strides_over_the_whole_video(tmp_path, make_video, frame_ids):
    long = make_video("long.mp4", num_frames=30, fps=30)  # frame ids 0..11 repeating
    short = make_video("short.mp4", num_frames=9, fps=30)
    output = os.fspath(tmp_path / "out")

    manifest = prepare_dataset([entry(long, 0), entry(short, 1)], output, short_side=None,
                               max_frames=12, shuffle_seed=None)

    long_clip, short_clip = read_records(output)
    # 30 frames > 12: every 3rd frame (the smallest stride that fits), first to last.
    assert frame_ids(long_clip["frames"]) == [k % 12 for k in range(0, 30, 3)]
    assert long_clip["frame_rate"] == pytest.approx(10.0)
    assert frame_ids(short_clip["frames"]) == list(range(9))  # fits: untouched
    assert short_clip["frame_rate"] == pytest.approx(30.0)
    assert manifest["strided"] == [
        {"index": 0, "video_id": "long", "stride": 3, "stored_frames": 10,
         "frame_rate": pytest.approx(10.0)}
    ]
    assert "more than 12" in manifest["frames_stored"]


def test_class_sorted_list_is_stored_in_a_seeded_mixed_order(tmp_path, make_video):
    # A class-sorted list (as Kinetics CSVs, HMDB51 splits and class folders are).
    videos = [make_video(f"v{i}.mp4", num_frames=2, height=16, width=16) for i in range(12)]
    entries = [entry(path, i // 4) for i, path in enumerate(videos)]
    entries[5] = entry(tmp_path / "missing.mp4", 1)
    output = tmp_path / "out"

    manifest = prepare_dataset(entries, os.fspath(output), short_side=None, shard_size=4)

    order = storage_order(12, 0)
    assert sorted(order) == list(range(12)) and order != list(range(12))
    assert order == storage_order(12, 0) and order != storage_order(12, 1)
    stored = [clip["media_id"] for clip in read_records(os.fspath(output))]
    assert stored == [entries[i].video_id for i in order if i != 5]
    per_shard = [
        {int(parse_sequence_example(r)["label"]) for r in tf.data.TFRecordDataset(str(path))}
        for path in sorted(output.glob("*.tfrecord"))
    ]
    assert all(len(labels) > 1 for labels in per_shard)  # list order: one class per shard
    assert manifest["shuffle_seed"] == 0 and manifest["entry_order"] == "shuffled with seed 0"
    # Failures keep their index in the list, not in the stored order.
    assert [(f["index"], f["video_id"]) for f in manifest["failures"]] == [(5, "missing")]
    with pytest.raises(ValueError, match="shuffle_seed"):
        prepare_dataset(entries, os.fspath(output), short_side=None, shard_size=4,
                        shuffle_seed=1)


def test_class_sorted_list_through_prepare_and_train_dataset_gives_mixed_batches(
    tmp_path, make_video
):
    # A class-sorted list, 24 classes x 10 videos: list order would store one class per shard.
    classes, per_class, batch = 24, 10, 16
    video = make_video("v.mp4", num_frames=2, height=16, width=16)
    entries = [VideoEntry(os.fspath(video), label, f"class {label}", f"{label}-{i}")
               for label in range(classes) for i in range(per_class)]
    output = tmp_path / "out"
    prepare_dataset(entries, os.fspath(output), short_side=None, shard_size=per_class)
    config = PipelineConfig(frames=1, frame_interval=1, image_size=16, short_side=16,
                            multiscale_crop=False, hflip=False, color_jitter=False,
                            random_erasing=0.0, seed=0, deterministic=True)
    expected = expected_distinct_classes([per_class] * classes, batch)

    def mean_distinct(config):
        batches = train_dataset(str(output / "*.tfrecord"), batch, config)
        return np.mean([len(np.unique(labels.numpy())) for _, labels in batches])

    # Straight in storage order (one file at a time, no buffer): prepare's order alone mixes
    # classes as random batches do. In list order each batch would hold 2 or 3 classes.
    storage_order_only = dataclasses.replace(config, cycle_length=1, shuffle_buffer=1)
    assert mean_distinct(storage_order_only) >= 0.85 * expected
    assert mean_distinct(config) >= 0.85 * expected  # the pipeline's defaults


def test_rerun_skips_finished_shards_and_completes_the_rest(tmp_path, make_video):
    entries = [entry(make_video(f"v{i}.mp4", num_frames=4 + i), i) for i in range(6)]
    output = tmp_path / "out"
    names = shard_names(6, 2)
    prepare_dataset(entries, os.fspath(output), short_side=24, shard_size=2, shuffle_seed=None)
    before = {name: os.stat(output / name) for name in names}
    # What a run killed while writing shard 1 leaves: no final shard 1, a stale temporary file.
    (output / names[1]).unlink()
    (output / ".prepare" / f"{names[1]}.json").unlink()
    stale = output / f"{names[1]}.tmp-99999"
    stale.write_bytes(b"partial")

    manifest = prepare_dataset(entries, os.fspath(output), short_side=24, shard_size=2,
                               shuffle_seed=None)

    for name in (names[0], names[2]):
        after = os.stat(output / name)
        assert (after.st_ino, after.st_mtime_ns) == (before[name].st_ino, before[name].st_mtime_ns)
    assert (output / names[1]).exists() and not stale.exists()
    assert manifest["this_run"]["videos"] == 2 and manifest["num_written"] == 6
    lengths = [clip["frames"].shape[0] for clip in read_records(os.fspath(output))]
    assert lengths == [4, 5, 6, 7, 8, 9]


def test_rerun_does_not_retry_failures_of_finished_shards_and_says_so(
    tmp_path, make_video, caplog
):
    entries = [entry(make_video(f"v{i}.mp4", num_frames=3), i) for i in range(3)]
    entries.append(entry(tmp_path / "late.mp4", 3))  # missing during the first run
    settings = dict(short_side=24, shard_size=2, shuffle_seed=None)
    first = prepare_dataset(entries, os.fspath(tmp_path / "out"), **settings)
    make_video("late.mp4", num_frames=3)  # restored

    with caplog.at_level("WARNING"):
        rerun = prepare_dataset(entries, os.fspath(tmp_path / "out"), **settings)
    fresh = prepare_dataset(entries, os.fspath(tmp_path / "fresh"), **settings)

    assert first["this_run"]["failed_not_retried"] == 0 and first["num_failed"] == 1
    assert (rerun["num_written"], rerun["num_failed"]) == (3, 1)  # finished shards stay as they are
    assert rerun["this_run"]["failed_not_retried"] == 1
    assert rerun["this_run"]["shards_already_finished"] == 2
    (warning,) = [r.getMessage() for r in caplog.records if "not retried" in r.getMessage()]
    assert "fresh output folder" in warning and os.fspath(tmp_path / "out") in warning
    assert (fresh["num_written"], fresh["num_failed"]) == (4, 0)


def test_rerun_with_other_settings_is_refused(tmp_path, make_video):
    entries = [entry(make_video("v.mp4", num_frames=3), 0)]
    output = os.fspath(tmp_path / "out")
    prepare_dataset(entries, output, short_side=24)

    with pytest.raises(ValueError, match=r"different run \(differs in \['settings'\]\)"):
        prepare_dataset(entries, output, short_side=32)


def test_gfile_output_outside_the_local_disk(make_video):
    # TF's in-memory filesystem stands in for gs://: every output access goes through tf.io.gfile.
    output = f"ram://prepare-test-{os.getpid()}"
    manifest = prepare_dataset([entry(make_video("v.mp4", num_frames=5), 3)], output, short_side=24)

    assert manifest["num_written"] == 1
    assert tf.io.gfile.exists(f"{output}/manifest.json")
    (clip,) = read_records(output)
    assert clip["label"] == 3 and clip["frames"].shape == (5, 24, 32, 3)


def test_progress_lines_report_rate_and_eta(tmp_path, make_video, caplog):
    entries = [entry(make_video(f"v{i}.mp4", num_frames=3), i) for i in range(3)]

    # The absl logger's own level too: it is WARNING once absl flags were parsed in this
    # process (e.g. by TensorFlow reading a flag), and root's level alone would not lift it.
    with caplog.at_level("INFO", logger="absl"):
        prepare_dataset(entries, os.fspath(tmp_path / "out"), short_side=24, log_every=0)

    lines = [record.getMessage() for record in caplog.records]
    assert "Preparing 3 videos in 1 shards" in lines[0]
    progress = [line for line in lines if line.startswith("Progress:")]
    assert len(progress) == 3
    assert all(" videos/s (" in line and " ETA " in line for line in progress)
    assert progress[0].startswith("Progress: 1/3 videos (0 failed), 0/1 shards")
    assert any(line.startswith("Done: 3/3 videos (0 failed), 1/1 shards") for line in lines)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"shard_size": 0}, "shard_size"),
        ({"workers": 0}, "workers"),
        ({"jpeg_quality": 100}, "jpeg_quality"),
    ],
)
def test_bad_arguments(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        prepare_dataset([entry("/x.mp4", 0)], os.fspath(tmp_path), **kwargs)
    with pytest.raises(ValueError, match="empty"):
        prepare_dataset([], os.fspath(tmp_path))


@pytest.mark.slow
def test_worker_processes_give_the_same_records(tmp_path, make_video, make_broken_file):
    entries = [entry(make_video(f"v{i}.webm", num_frames=3 + i), i) for i in range(4)]
    entries.insert(2, entry(make_broken_file("text"), 9))

    settings = dict(short_side=24, shard_size=2)
    serial = prepare_dataset(entries, os.fspath(tmp_path / "serial"), workers=1, **settings)
    parallel = prepare_dataset(entries, os.fspath(tmp_path / "parallel"), workers=2, **settings)

    assert parallel["num_written"] == serial["num_written"] == 4
    assert parallel["failures"] == serial["failures"]
    for name in shard_names(5, 2):
        serial_bytes = (tmp_path / "serial" / name).read_bytes()
        assert serial_bytes == (tmp_path / "parallel" / name).read_bytes()


def _cli(*args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "keras_squeezetime.training.cli.prepare", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs,
    )


def test_cli_list_paths_are_relative_to_the_list_by_default(tmp_path, make_video):
    """As every other tool reads a video list: run from elsewhere, no --video-root."""
    folder = make_video("videos/a.mp4", num_frames=12, height=48, width=64).parent
    (folder / "list.txt").write_text("a.mp4 0\n", encoding="utf-8")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    process = _cli("--list", os.fspath(folder / "list.txt"), "--output",
                   os.fspath(tmp_path / "out"), "--short-side", "0", cwd=elsewhere)
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr
    assert "wrote 1 of 1 videos" in stdout, stdout + stderr


@pytest.mark.slow
def test_cli_killed_run_resumes(tmp_path, make_video):
    num_videos = 8
    lines = []
    for i in range(num_videos):
        path = make_video(f"clip {i}.mp4", num_frames=40, height=96, width=128)
        lines.append(f"{path.name} {i % 3}")
    lines.insert(4, "gone.mp4 1")  # listed but missing: reported, not fatal
    (tmp_path / "list.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    output = tmp_path / "out"
    # --fps 300 upsamples to ~480 frames a video so each shard takes a while to write.
    args = ["--list", os.fspath(tmp_path / "list.txt"), "--video-root", os.fspath(tmp_path),
            "--output", os.fspath(output), "--workers", "1", "--shard-size", "1",
            "--short-side", "0", "--fps", "300", "--labels", "kinetics400"]
    names = shard_names(num_videos + 1, 1)

    process = _cli(*args)
    deadline = time.monotonic() + 120
    while not (output / names[0]).exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the first shard never appeared"
        time.sleep(0.002)
    process.send_signal(signal.SIGKILL)
    process.communicate()
    finished = {name: os.stat(output / name) for name in names if (output / name).exists()}
    assert 1 <= len(finished) < len(names), "the run was not killed midway"

    rerun = _cli(*args)
    stdout, stderr = rerun.communicate(timeout=300)

    assert rerun.returncode == 0, stderr
    assert f"wrote {num_videos} of {num_videos + 1} videos" in stdout and "(1 failed" in stdout
    for name, before in finished.items():
        after = os.stat(output / name)
        assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert not list(output.glob("*.tmp-*"))
    clips = read_records(os.fspath(output))
    listed = [i % 3 for i in range(num_videos)]
    listed.insert(4, "gone")
    order = storage_order(num_videos + 1, 0)  # the default --shuffle-seed 0
    assert [clip["label"] for clip in clips] == [listed[i] for i in order if listed[i] != "gone"]
    # 1.6 s at 300 fps: whole videos by default, none cut short.
    assert {clip["frames"].shape[0] for clip in clips} == {480}
    manifest = json.loads((output / "manifest.json").read_text("utf-8"))
    assert [f["path"] for f in manifest["failures"]] == [os.fspath(tmp_path / "gone.mp4")]


@pytest.mark.slow
def test_cli_exit_codes(tmp_path, make_broken_file):
    (tmp_path / "list.txt").write_text(
        f"{make_broken_file('empty').name} 0\nmissing.mp4 1\n", encoding="utf-8"
    )
    nothing_written = _cli(
        "--list", os.fspath(tmp_path / "list.txt"), "--video-root", os.fspath(tmp_path),
        "--output", os.fspath(tmp_path / "out"), "--workers", "1",
    )
    two_sources = _cli("--list", "a.txt", "--folder", "b", "--output", os.fspath(tmp_path / "o2"))

    stdout, stderr = nothing_written.communicate(timeout=120)
    assert nothing_written.returncode == 1
    assert "wrote 0 of 2 videos" in stdout and "no video could be written" in stderr
    assert (tmp_path / "out" / "manifest.json").exists()
    _, stderr = two_sources.communicate(timeout=120)
    assert two_sources.returncode == 2 and "exactly one of --list" in stderr


def _live_processes_in_group(group: int) -> list[str]:
    """`pid command` of the processes (zombies aside) in process group `group`, from /proc."""
    found = []
    for stat in pathlib.Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # gone meanwhile
            continue
        fields = text[text.rindex(")") + 2:].split()  # state, ppid, pgrp, ...
        if int(fields[2]) == group and fields[0] != "Z":
            found.append(f"{stat.parent.name} {text[:text.rindex(')') + 1]}")
    return found


@pytest.mark.slow
@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads process groups from /proc")
def test_cli_ctrl_c_says_one_line_stops_its_workers_and_resumes(tmp_path, make_video):
    num_videos = 5
    for i in range(num_videos):
        make_video(f"data/class {i % 2}/clip {i}.mp4", num_frames=40, height=96, width=128)
    output = tmp_path / "out"
    # --fps 300 upsamples to ~480 frames a video so each shard takes a while to write.
    args = ["--folder", os.fspath(tmp_path / "data"), "--output", os.fspath(output),
            "--workers", "2", "--shard-size", "1", "--short-side", "0", "--fps", "300"]
    names = shard_names(num_videos, 1)

    # Its own session: Ctrl-C in a terminal signals the whole process group, workers too.
    process = _cli(*args, start_new_session=True, preexec_fn=answer_ctrl_c)
    deadline = time.monotonic() + 120
    while not (output / names[0]).exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the first shard never appeared"
        time.sleep(0.002)
    os.killpg(process.pid, signal.SIGINT)
    stdout, stderr = process.communicate(timeout=120)

    finished = [name for name in names if (output / name).exists()]
    assert process.returncode == 130, stderr[-3000:]
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr[-3000:]
    assert (f"squeezetime-prepare: interrupted; {len(finished)} of {num_videos} shards finished "
            f"in {output}; run the same command again to resume.") in stderr.splitlines()
    assert 1 <= len(finished) < num_videos, "the run was not interrupted midway"
    assert not list(output.glob("*.tmp-*")) and not (output / "manifest.json").exists()
    deadline = time.monotonic() + 60  # the pool's workers are gone with the run (a hang guard)
    while _live_processes_in_group(process.pid):
        assert time.monotonic() < deadline, _live_processes_in_group(process.pid)
        time.sleep(0.05)

    rerun = _cli(*args)
    stdout, stderr = rerun.communicate(timeout=300)

    assert rerun.returncode == 0, stderr[-3000:]
    assert f"wrote {num_videos} of {num_videos} videos" in stdout, stdout + stderr[-3000:]
    assert f"({len(finished)} shards already finished)" in stderr
    assert len(read_records(os.fspath(output))) == num_videos


def test_cli_folder_takes_transport_streams_and_reports_what_it_skips(
    tmp_path, make_video, frame_ids
):
    make_video("data/walk/full.ts", num_frames=8, codec="h264")  # MPEG-TS
    truncated = make_video("data/walk/trunc.ts", num_frames=8, codec="h264")
    truncated.write_bytes(truncated.read_bytes()[:300])  # not even two TS packets
    make_video("data/run/ok.mp4", num_frames=5)
    (tmp_path / "data" / "run" / "clip.mp4.part").write_bytes(b"half a download")
    (tmp_path / "data" / "run" / "notes.txt").write_text("not a video")
    (tmp_path / "data" / "walk" / ".DS_Store").write_bytes(b"")
    output = tmp_path / "out"

    result = _run_cli("--folder", os.fspath(tmp_path / "data"), "--output", os.fspath(output))

    assert result.returncode == 0, result.stderr[-2000:]
    assert "wrote 2 of 3 videos" in result.stdout and "(1 failed" in result.stdout
    assert "2 non-video paths skipped" in result.stdout
    (warning,) = [line for line in result.stderr.splitlines() if "Skipping 1 paths" in line]
    assert os.fspath(tmp_path / "data" / "run" / "clip.mp4.part") in warning
    clips = _by_id(output)
    assert set(clips) == {"full", "ok"}
    assert (clips["full"]["label_text"], frame_ids(clips["full"]["frames"])) == (
        "walk", list(range(8)))
    manifest = json.loads((output / "manifest.json").read_text("utf-8"))
    assert manifest["classes"] == [
        {"index": 0, "name": "run", "videos": 1, "written": 1, "failed": 0},
        {"index": 1, "name": "walk", "videos": 2, "written": 1, "failed": 1},
    ]
    assert [f["video_id"] for f in manifest["failures"]] == ["trunc"]
    skipped = manifest["skipped_files"]
    assert skipped["paths"] == [os.fspath(tmp_path / "data" / "run" / name)
                                for name in ("clip.mp4.part", "notes.txt")]
    assert (skipped["count"], skipped["by_kind"]) == (2, {".part": 1, ".txt": 1})


def test_cli_rerun_notes_that_failed_videos_are_not_retried(tmp_path, make_video):
    make_video("videos/a.mp4", num_frames=4)
    (tmp_path / "videos" / "list.txt").write_text("a.mp4 0\nlate.mp4 1\n", encoding="utf-8")
    args = ["--list", os.fspath(tmp_path / "videos" / "list.txt"), "--output",
            os.fspath(tmp_path / "out")]

    first = _run_cli(*args)
    make_video("videos/late.mp4", num_frames=4)  # e.g. a folder restored after the first run
    rerun = _run_cli(*args)
    help_text = _run_cli("--helpshort")

    assert first.returncode == rerun.returncode == 0, rerun.stderr[-2000:]
    assert "not retried" not in first.stdout + first.stderr
    assert "wrote 1 of 2 videos" in rerun.stdout and "(1 failed" in rerun.stdout
    note = rerun.stdout.splitlines()[-1]
    assert note.startswith("squeezetime-prepare: note: 1 of the failed videos are in shards an "
                           "earlier run finished and were not retried"), rerun.stdout
    assert "fresh --output" in note
    assert "not retried" in help_text.stdout and "fresh --output" in help_text.stdout


def _run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "keras_squeezetime.training.cli.prepare", "--workers", "1",
         "--short-side", "0", *args],
        capture_output=True, text=True, timeout=300,
    )


def _by_id(output) -> dict[str, dict]:
    return {clip["media_id"]: clip for clip in read_records(os.fspath(output))}


def test_cli_kinetics_csv(tmp_path, make_video, frame_ids):
    root = tmp_path / "k400"
    # Both download layouts: a class folder (with its spaces) and flat. 320 frames is past
    # the 300 the tool once kept: whole videos by default.
    make_video("k400/air drumming/abc_000000_000010.mp4", num_frames=320, height=16, width=16)
    make_video("k400/xyz_000005_000015.mp4", num_frames=7)
    (tmp_path / "train.csv").write_text(
        "label,youtube_id,time_start,time_end,split\n"
        "air drumming,abc,0,10,train\nabseiling,xyz,5,15,train\nabseiling,gone,0,10,train\n",
        encoding="utf-8")
    output = tmp_path / "out"

    result = _run_cli("--csv", os.fspath(tmp_path / "train.csv"), "--video-root",
                      os.fspath(root), "--output", os.fspath(output))

    assert result.returncode == 0, result.stderr[-2000:]
    assert "wrote 2 of 3 videos" in result.stdout and "(1 failed" in result.stdout
    clips = _by_id(output)
    assert set(clips) == {"abc_000000_000010", "xyz_000005_000015"}
    drumming, abseiling = clips["abc_000000_000010"], clips["xyz_000005_000015"]
    assert (drumming["label"], drumming["label_text"]) == (1, "air drumming")  # kinetics400
    assert (abseiling["label"], abseiling["label_text"]) == (0, "abseiling")
    assert len(drumming["frames"]) == drumming["original_num_frames"] == 320
    assert frame_ids(abseiling["frames"]) == list(range(7))
    manifest = json.loads((output / "manifest.json").read_text("utf-8"))
    assert manifest["frames_stored"] == "every frame" and manifest["strided"] == []
    assert [f["video_id"] for f in manifest["failures"]] == ["gone_000000_000010"]


def test_cli_hmdb51_splits(tmp_path, make_video, frame_ids):
    splits = tmp_path / "splits"
    splits.mkdir()
    # Marks: 1 train, 2 test, 0 unused; split 2's file must be ignored for --hmdb-split 1.
    (splits / "brush_hair_test_split1.txt").write_text("a.avi 1\nb.avi 2\nu.avi 0\n")
    (splits / "cartwheel_test_split1.txt").write_text("c.avi 1\n")
    (splits / "cartwheel_test_split2.txt").write_text("d.avi 1\n")
    for name, frames in (("brush_hair/a.avi", 4), ("brush_hair/b.avi", 5),
                         ("cartwheel/c.avi", 6), ("cartwheel/d.avi", 3)):
        make_video(f"videos/{name}", num_frames=frames)
    output = tmp_path / "out"

    result = _run_cli("--hmdb-splits", os.fspath(splits), "--hmdb-split", "1", "--hmdb-subset",
                      "train", "--video-root", os.fspath(tmp_path / "videos"),
                      "--output", os.fspath(output))

    assert result.returncode == 0, result.stderr[-2000:]
    assert "wrote 2 of 2 videos" in result.stdout
    clips = _by_id(output)
    assert set(clips) == {"a", "c"}
    assert (clips["a"]["label"], clips["a"]["label_text"]) == (0, "brush_hair")  # hmdb51
    assert (clips["c"]["label"], clips["c"]["label_text"]) == (1, "cartwheel")
    assert frame_ids(clips["a"]["frames"]) == list(range(4))
    assert frame_ids(clips["c"]["frames"]) == list(range(6))


def test_cli_class_folders_with_a_frame_cap(tmp_path, make_video, frame_ids):
    make_video("data/cats/x.webm", num_frames=40, fps=20)  # frame ids 0..11 repeating
    make_video("data/dogs/y.mp4", num_frames=9)
    (tmp_path / "data" / "dogs" / "notes.txt").write_text("not a video")
    output = tmp_path / "out"

    result = _run_cli("--folder", os.fspath(tmp_path / "data"), "--max-frames", "16",
                      "--output", os.fspath(output))

    assert result.returncode == 0, result.stderr[-2000:]
    assert "wrote 2 of 2 videos" in result.stdout
    assert "1 long videos stored every k-th frame" in result.stdout
    clips = _by_id(output)
    assert (clips["x"]["label"], clips["x"]["label_text"]) == (0, "cats")  # sorted folders
    assert (clips["y"]["label"], clips["y"]["label_text"]) == (1, "dogs")
    # 40 frames > 16: every 3rd over the whole video (frames 0..39), at 20 / 3 fps.
    assert frame_ids(clips["x"]["frames"]) == [k % 12 for k in range(0, 40, 3)]
    assert clips["x"]["frame_rate"] == pytest.approx(20 / 3, rel=1e-4)
    assert frame_ids(clips["y"]["frames"]) == list(range(9))
    manifest = json.loads((output / "manifest.json").read_text("utf-8"))
    assert [(v["video_id"], v["stride"], v["stored_frames"]) for v in manifest["strided"]] == [
        ("x", 3, 14)]
    assert "more than 16" in manifest["frames_stored"]


def test_cli_folder_lists_an_empty_class_so_training_names_every_class(tmp_path, make_video):
    """An empty class folder keeps its index: the manifest lists it (nothing written), so a
    run counting it (--num-classes 3) still finds a name for every class."""
    from keras_squeezetime.training.recipes import CUSTOM
    from keras_squeezetime.training.train import _class_names, count_records

    make_video("data/cats/x.mp4", num_frames=6)
    (tmp_path / "data" / "dogs").mkdir()  # no video
    make_video("data/owls/y.mp4", num_frames=6)
    output = tmp_path / "out"

    result = _run_cli("--folder", os.fspath(tmp_path / "data"), "--output", os.fspath(output))

    assert result.returncode == 0, result.stderr[-2000:]
    manifest = json.loads((output / "manifest.json").read_text("utf-8"))
    assert manifest["classes"] == [
        {"index": 0, "name": "cats", "videos": 1, "written": 1, "failed": 0},
        {"index": 1, "name": "dogs", "videos": 0, "written": 0, "failed": 0},
        {"index": 2, "name": "owls", "videos": 1, "written": 1, "failed": 0},
    ]
    num_records, names = count_records([os.fspath(output / shard_names(2, 100)[0])])
    assert num_records == 2
    recipe = dataclasses.replace(CUSTOM, num_classes=3, labels=None)
    assert _class_names(recipe, names) == ["cats", "dogs", "owls"]


def test_cli_unreachable_gs_output_is_one_line(tmp_path, make_video):
    video = make_video("videos/a.mp4", num_frames=6)
    (tmp_path / "list.txt").write_text(f"{video} 0\n", encoding="utf-8")
    result = _run_cli("--list", os.fspath(tmp_path / "list.txt"),
                      "--output", "gs://squeezetime-no-such-bucket/x")
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    assert result.stderr.strip().splitlines()[-1].startswith(
        "cannot reach/read gs://squeezetime-no-such-bucket/x"), result.stderr[-1000:]
