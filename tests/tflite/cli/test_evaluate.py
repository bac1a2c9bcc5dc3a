"""`squeezetime-eval-tflite` as a user runs it: report files, and a clear error."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest


def _cli(*args):
    code = "from keras_squeezetime.tflite.cli.evaluate import run; run()"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          timeout=900)


@pytest.mark.slow
def test_report_files(tiny, run_dir, class_videos, tmp_path):
    from keras_squeezetime.tflite.export import export_tflite
    from keras_squeezetime.tflite.interpreter import LiteRTModel
    from tests.helpers import decode_native

    listing = class_videos(8, seed=31)
    labels = tiny.clips(8, seed=31)[1]
    videos = [listing.parent / f"{i}.mp4" for i in range(8)]
    path = export_tflite(tiny.folded, tmp_path / "m.tflite", input_layout="stacked",
                         sampling={"frame_interval": 2, "short_side": tiny.SIZE}).path
    report = tmp_path / "report.json"
    done = _cli("--model", path, "--data", str(listing),
                "--reference", str(run_dir / "model.keras"), "--threads", "1", "--runs", "3",
                "--warmup", "1", "--nomemory", "--output", str(report))
    assert done.returncode == 0, done.stderr[-3000:]
    values = json.loads(report.read_text())
    # One --model: the report in "variants", as for several, and its keys at the top level.
    assert [variant["variant"] for variant in values.pop("variants")] == ["m"]
    assert values["clips"] == 8 and values["input_layout"] == "stacked"
    assert values["agreement_top1"] == 1.0 and values["logit_max_rel_error"] <= 1e-4
    assert values["compiled_model"] == {"max_abs_diff": 0.0, "clips": 8}
    assert values["size_bytes"] == os.path.getsize(path)
    # Accuracy recomputed here: each video decoded straight with PyAV, its centre clip
    # (mmaction's test sampling: start (N - span) // 2, span (4 - 1) * 2 + 1), the file run
    # on those clips, each score row beside its own video's label.
    span = (tiny.FRAMES - 1) * 2 + 1
    decoded = [decode_native(video) for video in videos]
    clips = np.stack([frames[(len(frames) - span) // 2::2][:tiny.FRAMES] for frames in decoded])
    scores = LiteRTModel(path, threads=1).scores(clips.astype(np.float32))
    ranking = np.argsort(-scores, axis=1)
    top1 = np.mean(ranking[:, 0] == labels)
    # Guard: the file classifies the clips (label order matters) by their content.
    assert top1 >= 0.75 and tiny.discriminates(scores), (ranking[:, 0], labels)
    assert values["top1"] == top1
    # 5 classes: every label is in the top 5 (the 5-class model cannot test more).
    assert values["top5"] == np.mean([label in row[:5] for row, label in zip(ranking, labels)])
    table = (tmp_path / "report.md").read_text()
    assert table.startswith("| variant |") and "CompiledModel max diff" in table
    assert (tmp_path / "report.png").read_bytes()[:4] == b"\x89PNG"


@pytest.fixture(scope="module")
def float_file(tiny, tmp_path_factory):
    """The discriminating model as a float32 file, with the sampling of `video_dataset`."""
    from keras_squeezetime.tflite.export import export_tflite

    folder = tmp_path_factory.mktemp("eval_cli")
    return export_tflite(tiny.folded, folder / "m.tflite",
                         sampling={"frame_interval": 2, "short_side": tiny.SIZE}).path


def test_data_list_not_named_txt_is_named(float_file, video_dataset, tmp_path):
    """A video list under another extension: one line naming it and saying lists end in
    .txt, exit 2, no traceback, no report."""
    listing = tmp_path / "list.lst"
    listing.write_text("".join(
        f"{video_dataset / line.rsplit(' ', 1)[0]} {line.rsplit(' ', 1)[1]}\n"
        for line in (video_dataset / "val_list.txt").read_text().splitlines()))
    failed = _cli("--model", float_file, "--data", str(listing), "--nomemory",
                  "--output", str(tmp_path / "report.json"))
    assert failed.returncode == 2, failed.stderr[-3000:]
    assert "Traceback" not in failed.stderr
    message = failed.stderr.strip().splitlines()[-1]
    assert message.startswith(f"squeezetime-eval-tflite: error: {listing} is a text file, not "
                              "a TFRecord file; a video list must be named *.txt")
    assert not (tmp_path / "report.json").exists()


def test_reference_with_other_classes_is_named(tiny, float_file, video_dataset, tmp_path):
    """A reference of 3 classes for a file of 5: both counts named, before evaluation."""
    from tests import helpers

    reference = tmp_path / "other.keras"
    helpers.tiny_squeezetime(input_shape=(tiny.FRAMES, tiny.SIZE, tiny.SIZE, 3),
                             num_classes=3).save(reference)
    failed = _cli("--model", float_file, "--data", str(video_dataset / "val_list.txt"),
                  "--reference", str(reference), "--nomemory",
                  "--output", str(tmp_path / "report.json"))
    assert failed.returncode == 2, failed.stderr[-3000:]
    assert "Traceback" not in failed.stderr
    assert failed.stderr.strip().splitlines()[-1] == (
        f"squeezetime-eval-tflite: error: The reference {reference} has 3 classes but "
        f"{float_file} has 5; compare a file with the Keras model it was exported from.")
    assert not (tmp_path / "report.json").exists()


@pytest.fixture(scope="module")
def named_file(tiny, tmp_path_factory):
    """The float32 file with its class names (`tiny.NAMES`) embedded, as squeezetime-export
    writes a trained model's."""
    from keras_squeezetime.tflite.export import export_tflite

    folder = tmp_path_factory.mktemp("eval_cli_named")
    return export_tflite(tiny.folded, folder / "named.tflite", class_names=tiny.NAMES,
                         sampling={"frame_interval": 2, "short_side": tiny.SIZE}).path


def test_records_naming_classes_otherwise_are_refused(tiny, named_file, prepared_records,
                                                      video_dataset, tmp_path):
    """Prepared records numbering the model's classes in another order, or of another
    dataset (the 8 synthetic classes against 5): one line naming the classes, exit 2,
    no report, as squeezetime-evaluate refuses them."""
    swapped = prepared_records([tiny.NAMES[1], tiny.NAMES[0], *tiny.NAMES[2:]])
    other = prepared_records((video_dataset / "classes.txt").read_text().split())
    for pattern, expected in [
            (swapped, f"the model {named_file} names 2 class(es) otherwise than the records of "
                      f"{swapped} do (0: 'class_0' there, 'class_1' in the records, 1: "
                      "'class_1' there, 'class_0' in the records)"),
            (other, f"the records of {other} use class index 7 ('blue_then_red') but the "
                    f"model {named_file} has 5 classes (0..4).")]:
        failed = _cli("--model", named_file, "--data", pattern, "--nomemory",
                      "--output", str(tmp_path / "report.json"))
        assert failed.returncode == 2, failed.stderr[-3000:]
        assert "Traceback" not in failed.stderr
        message = failed.stderr.strip().splitlines()[-1]
        assert message.startswith(f"squeezetime-eval-tflite: error: {expected}"), message
    assert os.listdir(tmp_path) == []


def test_folder_as_model_is_named(tmp_path):
    """An existing folder as --model is named as a folder, not as missing."""
    failed = _cli("--model", str(tmp_path), "--data", str(tmp_path / "none-*.tfrecord"),
                  "--nomemory", "--output", str(tmp_path / "report.json"))
    assert failed.returncode == 2, failed.stderr[-3000:]
    assert "Traceback" not in failed.stderr
    assert failed.stderr.strip().splitlines()[-1] == (
        f"squeezetime-eval-tflite: error: {tmp_path} is a folder, not a model file; --model "
        "takes .tflite files (repeat it for several).")
    assert os.listdir(tmp_path) == []


def test_missing_data_is_named(tmp_path):
    (tmp_path / "m.tflite").write_bytes(b"not a model")
    bad = _cli("--model", str(tmp_path / "m.tflite"), "--data", str(tmp_path / "none-*.tfrecord"),
               "--output", str(tmp_path / "bad.json"))
    assert bad.returncode == 2 and "not a LiteRT/TFLite model" in bad.stderr
    assert not (tmp_path / "bad.json").exists()
