"""The harness library on two variants of the discriminating model, with its Keras reference,
on real videos of its classes, and its check of prepared records' class names against the
file's."""

from __future__ import annotations

import pathlib

import numpy as np
import pytest

from tests.helpers import decode_native


@pytest.fixture(scope="module")
def class_list(class_videos) -> pathlib.Path:
    """8 real H.264 videos of the discriminating model's classes."""
    return class_videos(8, seed=31)


def _listed_clips(listing: pathlib.Path, frames: int, interval: int):
    """`(clips, labels)` of a video list, cut here: each video decoded straight with PyAV,
    its centre clip (mmaction's test sampling: start `(N - span) // 2`, span
    `(frames - 1) * interval + 1`); the videos are at the model's size, nothing to resize."""
    clips, labels = [], []
    for line in listing.read_text().splitlines():
        name, label = line.rsplit(" ", 1)
        decoded = decode_native(listing.parent / name)
        start = (len(decoded) - ((frames - 1) * interval + 1)) // 2
        clips.append(decoded[start + interval * np.arange(frames)])
        labels.append(int(label))
    return np.asarray(clips, np.float32), np.asarray(labels)


@pytest.fixture(scope="module")
def reports(tiny, run_dir, class_list, tmp_path_factory):
    from keras_squeezetime.tflite import harness
    from keras_squeezetime.tflite.export import export_tflite

    folder = tmp_path_factory.mktemp("harness")
    sampling = {"frame_interval": 2, "short_side": tiny.SIZE}
    paths = [
        export_tflite(tiny.folded, folder / "frames.tflite", sampling=sampling).path,
        export_tflite(tiny.folded, folder / "f16c.tflite", "float16-compute", "uint8",
                      sampling=sampling, input_layout="stacked").path,
    ]
    return harness.evaluate(paths, str(class_list), str(run_dir), threads=1,
                            runs=3, warmup=1, memory=False)


def test_reports_quality_parity_and_the_compiled_model_api(tiny, reports, class_list):
    from keras_squeezetime.tflite.interpreter import LiteRTModel

    frames, f16c = reports
    assert [r["variant"] for r in reports] == ["frames", "f16c"]
    assert (frames["input_layout"], f16c["input_layout"]) == ("frames", "stacked")
    assert (frames["quantization"], f16c["quantization"]) == ("float32", "float16-compute")
    assert frames["input_type"] == "float32" and f16c["input_type"] == "uint8"
    # Accuracy recomputed here: the clips decoded here, each file run on them, each score
    # row beside its own video's label.
    clips, labels = _listed_clips(class_list, tiny.FRAMES, 2)
    reference = tiny.logits(tiny.model, clips)
    assert tiny.discriminates(reference)
    for report in reports:
        scores = LiteRTModel(report["model"], threads=1).scores(clips)
        ranking = np.argsort(-scores, axis=1)
        top1 = np.mean(ranking[:, 0] == labels)
        # Guard: the file classifies the clips (label order matters) by their content.
        assert top1 >= 0.75 and tiny.discriminates(scores), (ranking[:, 0], labels)
        assert report["top1"] == top1
        # 5 classes: every label is in the top 5 (the 5-class model cannot test more).
        assert report["top5"] == np.mean([label in row[:5]
                                          for row, label in zip(ranking, labels)])
        assert report["reference_top1"] == np.mean(reference.argmax(axis=1) == labels)
        assert report["clips"] == 8
        assert report["compiled_model"] == {"max_abs_diff": 0.0, "clips": 8}
        assert report["xnnpack"] == {"partitions": 1, "ops_outside": {}}
        assert report["latency_ms"]["median"] > 0 and report["latency_ms"]["runs"] == 3
    assert frames["agreement_top1"] == 1.0 and frames["logit_max_rel_error"] <= 1e-4
    assert f16c["logit_max_rel_error"] <= 2e-2
    assert "fp16_arithmetic" in f16c and "fp16_arithmetic" not in frames


def test_fp16_arithmetic_differs_from_fp32_arithmetic(reports):
    """The forced-fp16 run is a different computation (else the metric would be vacuous)."""
    from keras_squeezetime.tflite.compiled_model import cpu_has_fp16_arithmetic

    _, f16c = reports
    fp16 = f16c["fp16_arithmetic"]
    assert fp16["fp16_accumulation"] == cpu_has_fp16_arithmetic()
    assert fp16["clips"] == 8 and fp16["logit_cosine"] >= 0.99
    assert fp16["logit_max_abs_error"] > f16c["logit_max_abs_error"]


def test_reference_logits_are_the_keras_model_logits(tiny, run_dir):
    from keras_squeezetime.tflite.harness import reference_logits

    clips, _ = tiny.clips(3, seed=30)
    np.testing.assert_allclose(reference_logits(str(run_dir), clips),
                               tiny.logits(tiny.model, clips), rtol=0, atol=1e-5)


def test_records_class_names_are_checked_as_squeezetime_evaluate_does(tiny, prepared_records,
                                                                      tmp_path):
    """Prepared records in the model's class order are evaluated; in another order they
    are refused; a model without class names, and records without a manifest, are not
    checked (squeezetime-evaluate's rule)."""
    import shutil

    from keras_squeezetime.tflite import harness
    from keras_squeezetime.tflite.export import export_tflite
    from keras_squeezetime.tflite.interpreter import LiteRTModel

    sampling = {"frame_interval": 2, "short_side": tiny.SIZE}
    named = export_tflite(tiny.folded, tmp_path / "named.tflite", class_names=tiny.NAMES,
                          sampling=sampling).path
    unnamed = LiteRTModel(export_tflite(tiny.folded, tmp_path / "unnamed.tflite").path)
    same = prepared_records(tiny.NAMES)
    swapped = prepared_records([tiny.NAMES[1], tiny.NAMES[0], *tiny.NAMES[2:]])

    (report,) = harness.evaluate([named], same, threads=1, runs=1, warmup=1, memory=False)
    assert report["clips"] == 5
    with pytest.raises(ValueError, match=r"^the model .*named.tflite names 2 class\(es\) "
                                         r"otherwise than the records of .* do \(0: 'class_0' "
                                         r"there, 'class_1' in the records"):
        harness.evaluate([named], swapped, threads=1, runs=1, warmup=1, memory=False)
    harness.check_data_class_names(unnamed, swapped)
    # The same shards without their manifest: nothing names their classes.
    bare = tmp_path / "bare"
    bare.mkdir()
    for path in pathlib.Path(swapped).parent.glob("*.tfrecord"):
        shutil.copy(path, bare)
    harness.check_data_class_names(LiteRTModel(named), str(bare / "*.tfrecord"))
