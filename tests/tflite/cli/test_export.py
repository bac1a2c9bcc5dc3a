"""`squeezetime-export` as a user runs it: several variants in one command, and its errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import types

import numpy as np
import pytest

from tests.helpers.cli_runs import cli_runs


def _cli(*args, env=None):
    code = "from keras_squeezetime.tflite.cli.export import run; run()"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          env=None if env is None else {**os.environ, **env}, timeout=900)


@pytest.fixture(scope="module")
def early_failures(run_dir, video_dataset, tmp_path_factory):
    """The failing runs the tests below check, each with its own empty folder `folders[name]`
    for its output; `results[name]` its result. Tests only read them."""
    folders = {name: tmp_path_factory.mktemp(name) for name in (
        "bad_variants", "existing_folder", "single_variant", "list_not_txt", "clip_flags")}
    model = str(run_dir / "model.keras")
    variants = str(folders["bad_variants"] / "variants")
    (folders["existing_folder"] / "q").mkdir()
    listing = folders["list_not_txt"] / "list.lst"
    listing.write_text("".join(
        f"{video_dataset / line.rsplit(' ', 1)[0]} {line.rsplit(' ', 1)[1]}\n"
        for line in (video_dataset / "val_list.txt").read_text().splitlines()))
    single = folders["single_variant"]
    runs = {
        "int4": ["--model", str(run_dir), "--quantization", "float32,int4", "--output", variants],
        "int8_no_data": ["--model", str(run_dir), "--quantization", "float32,int8",
                         "--output", variants],
        "layout": ["--model", str(run_dir), "--input-layout", "nchw", "--output", variants],
        "target": ["--model", str(run_dir), "--quantization", "float32", "--target-agreement",
                   "0.98", "--output", variants],
        "existing_folder": ["--model", model, "--quantization", "float32",
                            "--output", str(folders["existing_folder"] / "q")],
        "output_folder": ["--model", model, "--quantization", "float32",
                          "--output", f"{single / 'outdir'}{os.sep}"],
        "output_not_tflite": ["--model", model, "--quantization", "float32",
                              "--output", str(single / "k400")],
        "list_not_txt": ["--model", model, "--quantization", "int8", "--representative-data",
                         str(listing), "--output",
                         str(folders["list_not_txt"] / "out" / "model_int8.tflite")],
        "frames_0": ["--model", "any.keras", "--frames", "0",
                     "--output", str(folders["clip_flags"] / "m.tflite")],
    }
    return types.SimpleNamespace(results=cli_runs("keras_squeezetime.tflite.cli.export", runs),
                                 folders=folders)


@pytest.mark.slow
def test_several_variants_stacked_uint8(tiny, run_dir, video_dataset, tmp_path):
    """One command, two variants, each converted in its own subprocess into a new folder."""
    from ai_edge_litert.interpreter import Interpreter

    from keras_squeezetime.tflite.interpreter import LiteRTModel

    out = tmp_path / "variants"
    done = _cli("--model", str(run_dir / "model.keras"), "--quantization", "float32,int8",
                "--input-type", "uint8", "--input-layout", "stacked",
                "--representative-data", str(video_dataset / "val_list.txt"),
                "--representative-clips", "8", "--min-representative-clips", "8",
                "--output", str(out))
    assert done.returncode == 0, done.stderr[-3000:]
    summaries = json.loads(done.stdout)
    assert [s["quantization"] for s in summaries] == ["float32", "int8"]
    assert all(set(s) == {"output", "size_bytes", "quantization", "input_type", "input_layout",
                          "input_shape", "labels", "float_ops", "ops"} for s in summaries)
    names = {q: f"model_{q}_uint8in_stacked" for q in ("float32", "int8")}
    for quantization, stem in names.items():
        assert f"{quantization}: {out / (stem + '.tflite')} (" in done.stderr
    assert sorted(os.listdir(out)) == sorted(
        f"{stem}.{ext}" for stem in names.values() for ext in ("labels.txt", "tflite"))
    for summary in summaries:
        # Raw uint8 pixels, stacked, as quantised values of scale 1: a DEQUANTIZE turns them
        # into float inside XNNPACK (no CAST or uint8->int8 QUANTIZE left outside it).
        model = LiteRTModel(summary["output"])
        assert not {"CAST", "QUANTIZE"} & set(model.delegation()["ops_outside"])
        detail = Interpreter(model_path=summary["output"]).get_input_details()[0]
        assert detail["dtype"] == np.uint8
        assert tuple(detail["shape"]) == (1, tiny.SIZE, tiny.SIZE, 3 * tiny.FRAMES)
        assert tuple(detail["quantization"]) == (1.0, 0)
        assert model.config["input_layout"] == "stacked"


@pytest.mark.slow
def test_too_few_calibration_clips_fails_and_leaves_nothing(run_dir, video_dataset, tmp_path):
    failed = _cli("--model", str(run_dir / "model.keras"), "--quantization", "int8",
                  "--representative-data", str(video_dataset / "val_list.txt"),
                  "--output", str(tmp_path / "int8.tflite"))
    assert failed.returncode == 2, failed.stderr[-2000:]
    assert "int8 calibration needs at least 32" in failed.stderr
    assert os.listdir(tmp_path) == []


@pytest.mark.slow
def test_missing_and_broken_listed_videos_are_skipped_or_named(run_dir, video_dataset,
                                                               make_broken_file, tmp_path):
    """A representative list naming a path that does not exist and a truncated mp4 (its
    index lost), between real H.264 videos: skipped with a warning while enough clips
    remain, else a message naming them; never a traceback."""
    broken = make_broken_file("truncated", "clips/broken.mp4")
    missing = tmp_path / "clips" / "missing.mp4"
    good = (video_dataset / "val_list.txt").read_text().splitlines()
    assert len(good) == 8
    listing = tmp_path / "list.txt"
    # Good videos by absolute path; the bad ones in the middle of the list.
    lines = [f"{video_dataset / line.rsplit(' ', 1)[0]} {line.rsplit(' ', 1)[1]}" for line in good]
    listing.write_text("\n".join(lines[:3] + [f"{missing} 0", f"{broken} 1"] + lines[3:]) + "\n")

    def export(out, min_clips):
        return _cli("--model", str(run_dir / "model.keras"), "--quantization", "int8",
                    "--input-type", "uint8", "--representative-data", str(listing),
                    "--min-representative-clips", str(min_clips), "--output", str(out))

    # Enough readable clips remain: both bad ones are skipped with a warning naming them.
    out = tmp_path / "out" / "model_int8.tflite"
    done = export(out, min_clips=8)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    assert f"Skipping {missing}" in done.stderr and f"Skipping {broken}" in done.stderr
    assert json.loads(done.stdout)["output"] == str(out) and out.is_file()

    # Too few remain: a clear failure naming them, no traceback, nothing written.
    out = tmp_path / "out2" / "model_int8.tflite"
    failed = export(out, min_clips=9)
    assert failed.returncode == 2, failed.stderr[-3000:]
    assert "Traceback" not in failed.stderr
    message = failed.stderr.strip().splitlines()[-1]
    assert message.startswith("squeezetime-export: error: ")
    assert "gives 8 clips; int8 calibration needs at least 9" in message
    assert f"{missing}: no such file" in message and str(broken) in message
    assert not os.path.exists(out)


def test_bad_variant_lists_write_nothing(early_failures):
    """A bad item, or int8 without calibration data, fails before any conversion."""
    runs = early_failures.results
    bad = runs["int4"]
    assert bad.returncode != 0
    assert "unknown quantization 'int4'" in bad.stderr
    assert "float32, float16, float16-compute, dynamic, int8 or all" in bad.stderr
    no_data = runs["int8_no_data"]
    assert no_data.returncode != 0 and "int8 needs --representative-data" in no_data.stderr
    layout = runs["layout"]
    assert layout.returncode != 0 and "frames" in layout.stderr and "stacked" in layout.stderr
    target = runs["target"]
    assert target.returncode != 0 and "--target-agreement applies to int8" in target.stderr
    assert os.listdir(early_failures.folders["bad_variants"]) == []


def test_existing_folder_as_output_is_a_usage_error(early_failures):
    """One quantization into an existing folder: exit 2 before any work, the folder named,
    no traceback, nothing written (neither a model nor a stray labels file)."""
    tmp_path = early_failures.folders["existing_folder"]
    folder = tmp_path / "q"
    failed = early_failures.results["existing_folder"]
    assert failed.returncode == 2, failed.stderr[-3000:]
    assert "Traceback" not in failed.stderr
    assert (f"Output {folder} is an existing folder; name the .tflite file to write"
            in failed.stderr)
    assert os.listdir(tmp_path) == ["q"] and os.listdir(folder) == []


def test_single_variant_output_must_name_a_tflite_file(early_failures):
    """One quantization into `outdir/` (not yet a folder) or a name without .tflite: exit 2
    before any work, saying what to pass; no file `outdir` (nor `outdir.labels.txt`)."""
    tmp_path = early_failures.folders["single_variant"]
    for run, message in [
            ("output_folder",
             f"Output {tmp_path / 'outdir'}{os.sep} names a folder, but one quantization "
             f"writes one .tflite file: name it, e.g. {tmp_path / 'outdir' / 'model.tflite'}."),
            ("output_not_tflite",
             f"Output {tmp_path / 'k400'} does not end in .tflite: one quantization writes the "
             f".tflite file --output names (e.g. {tmp_path / 'k400'}.tflite); several write "
             "into the folder it names.")]:
        failed = early_failures.results[run]
        assert failed.returncode == 2, failed.stderr[-3000:]
        assert "Traceback" not in failed.stderr
        assert failed.stderr.strip().splitlines()[-1] == message
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("quantization", ["float32", "float32,dynamic"])
def test_preset_not_downloadable_is_one_line(quantization, tmp_path):
    """`--model kinetics400` offline (the --help example): the download failure in one line
    naming the preset, exit 2, no traceback (in this process or a variant's), nothing
    written. An empty file:// mirror and an empty cache stand for the offline machine."""
    (tmp_path / "mirror").mkdir()
    env = {"KERAS_HOME": str(tmp_path / "cache"),
           "KERAS_SQUEEZETIME_WEIGHTS_URL_PREFIX": (tmp_path / "mirror").as_uri()}
    several = "," in quantization
    out = tmp_path / ("out" if several else "k400.tflite")
    failed = _cli("--model", "kinetics400", "--quantization", quantization, "--output",
                  str(out), env=env)
    assert failed.returncode == 2, failed.stderr[-3000:]
    assert "Traceback" not in failed.stderr
    lines = failed.stderr.strip().splitlines()
    errors = [line for line in lines if "Cannot download preset 'kinetics400'" in line]
    assert len(errors) == (2 if several else 1), failed.stderr[-3000:]
    assert all(line.startswith("squeezetime-export: error: Cannot download preset "
                               f"'kinetics400' from {(tmp_path / 'mirror').as_uri()}/")
               for line in errors)
    if several:
        assert lines[-1] == "squeezetime-export: error: 2 of 2 variants failed: float32, dynamic."
        assert os.listdir(out) == []
    else:
        assert lines[-1] == errors[0] and not out.exists()


def test_representative_list_not_named_txt_is_named(early_failures):
    """A video list under another extension is not read as a broken TFRecord: a one-line
    error naming it and saying lists end in .txt, exit 2, nothing written."""
    tmp_path = early_failures.folders["list_not_txt"]
    listing = tmp_path / "list.lst"
    failed = early_failures.results["list_not_txt"]
    assert failed.returncode == 2, failed.stderr[-3000:]
    assert "Traceback" not in failed.stderr
    message = failed.stderr.strip().splitlines()[-1]
    assert message == (f"squeezetime-export: error: {listing} is a text file, not a TFRecord "
                       "file; a video list must be named *.txt to be read as one (rename it), "
                       "and TFRecords must be valid files written by squeezetime-prepare.")
    assert os.listdir(tmp_path) == ["list.lst"]


def test_clip_flags_are_bounded_as_in_the_other_tools(early_failures):
    failed = early_failures.results["frames_0"]
    assert failed.returncode != 0 and "Traceback" not in failed.stderr
    assert "flag --frames=0: 0 is not a positive integer" in failed.stderr
    assert os.listdir(early_failures.folders["clip_flags"]) == []
