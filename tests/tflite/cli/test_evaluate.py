"""`squeezetime-eval-tflite` as a user runs it: report files, and a clear error (the
failing runs in one process: `cli_runs`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import types

import numpy as np
import pytest

from tests.helpers.cli_runs import cli_runs


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


@pytest.fixture(scope="module")
def named_file(tiny, tmp_path_factory):
    """The float32 file with its class names (`tiny.NAMES`) embedded, as squeezetime-export
    writes a trained model's."""
    from keras_squeezetime.tflite.export import export_tflite

    folder = tmp_path_factory.mktemp("eval_cli_named")
    return export_tflite(tiny.folded, folder / "named.tflite", class_names=tiny.NAMES,
                         sampling={"frame_interval": 2, "short_side": tiny.SIZE}).path


@pytest.fixture(scope="module")
def failures(tiny, float_file, named_file, video_dataset, prepared_records, tmp_path_factory):
    """squeezetime-eval-tflite's failing runs, in one process (`cli_runs`). Each run writes
    its report under a folder of its own (`out[case]`), which must stay empty."""
    from tests import helpers

    tmp = tmp_path_factory.mktemp("eval_failures")
    out = {case: tmp / "outputs" / case for case in ("list.lst", "reference", "swapped",
                                                     "other", "folder", "not a model")}
    for folder in out.values():
        folder.mkdir(parents=True)
    listing = tmp / "list.lst"
    listing.write_text("".join(
        f"{video_dataset / line.rsplit(' ', 1)[0]} {line.rsplit(' ', 1)[1]}\n"
        for line in (video_dataset / "val_list.txt").read_text().splitlines()))
    reference = tmp / "other.keras"
    helpers.tiny_squeezetime(input_shape=(tiny.FRAMES, tiny.SIZE, tiny.SIZE, 3),
                             num_classes=3).save(reference)
    swapped = prepared_records([tiny.NAMES[1], tiny.NAMES[0], *tiny.NAMES[2:]])
    other = prepared_records((video_dataset / "classes.txt").read_text().split())
    (tmp / "m.tflite").write_bytes(b"not a model")
    report = {case: ["--output", folder / "report.json"] for case, folder in out.items()}
    runs = {
        "list.lst": ["--model", float_file, "--data", listing, "--nomemory", *report["list.lst"]],
        "reference": ["--model", float_file, "--data", video_dataset / "val_list.txt",
                      "--reference", reference, "--nomemory", *report["reference"]],
        "swapped": ["--model", named_file, "--data", swapped, "--nomemory", *report["swapped"]],
        "other": ["--model", named_file, "--data", other, "--nomemory", *report["other"]],
        "folder": ["--model", out["folder"], "--data", tmp / "none-*.tfrecord", "--nomemory",
                   *report["folder"]],
        "not a model": ["--model", tmp / "m.tflite", "--data", tmp / "none-*.tfrecord",
                        *report["not a model"]],
    }
    results = cli_runs("keras_squeezetime.tflite.cli.evaluate", runs)
    return types.SimpleNamespace(results=results, out=out, listing=listing,
                                 reference=reference, swapped=swapped, other=other)


def _one_line_refusal(failures, case: str) -> str:
    """The run's last line, after checking it failed with status 2 and wrote nothing."""
    failed = failures.results[case]
    assert failed.returncode == 2, failed.stderr[-3000:]
    assert "Traceback" not in failed.stderr
    assert os.listdir(failures.out[case]) == []
    return failed.stderr.strip().splitlines()[-1]


def test_data_list_not_named_txt_is_named(failures):
    """A video list under another extension: one line naming it and saying lists end in
    .txt, exit 2, no traceback, no report."""
    message = _one_line_refusal(failures, "list.lst")
    assert message.startswith(f"squeezetime-eval-tflite: error: {failures.listing} is a text "
                              "file, not a TFRecord file; a video list must be named *.txt")


def test_reference_with_other_classes_is_named(float_file, failures):
    """A reference of 3 classes for a file of 5: both counts named, before evaluation."""
    assert _one_line_refusal(failures, "reference") == (
        f"squeezetime-eval-tflite: error: The reference {failures.reference} has 3 classes "
        f"but {float_file} has 5; compare a file with the Keras model it was exported from.")


def test_records_naming_classes_otherwise_are_refused(named_file, failures):
    """Prepared records numbering the model's classes in another order, or of another
    dataset (the 8 synthetic classes against 5): one line naming the classes, exit 2,
    no report, as squeezetime-evaluate refuses them."""
    swapped, other = failures.swapped, failures.other
    for case, expected in [
            ("swapped", f"the model {named_file} names 2 class(es) otherwise than the records "
                        f"of {swapped} do (0: 'class_0' there, 'class_1' in the records, 1: "
                        "'class_1' there, 'class_0' in the records)"),
            ("other", f"the records of {other} use class index 7 ('blue_then_red') but the "
                      f"model {named_file} has 5 classes (0..4).")]:
        message = _one_line_refusal(failures, case)
        assert message.startswith(f"squeezetime-eval-tflite: error: {expected}"), message


def test_folder_as_model_is_named(failures):
    """An existing folder as --model is named as a folder, not as missing."""
    assert _one_line_refusal(failures, "folder") == (
        f"squeezetime-eval-tflite: error: {failures.out['folder']} is a folder, not a model "
        "file; --model takes .tflite files (repeat it for several).")


def test_missing_data_is_named(failures):
    bad = failures.results["not a model"]
    assert bad.returncode == 2 and "not a LiteRT/TFLite model" in bad.stderr
    assert os.listdir(failures.out["not a model"]) == []
