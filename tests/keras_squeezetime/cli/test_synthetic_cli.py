"""End-to-end run of `squeezetime-synthetic` in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import av

from keras_squeezetime.datasets.synthetic import CLASS_NAMES, generate_synthetic_dataset


def test_cli_writes_the_same_dataset_as_the_api_with_two_workers(tmp_path):
    out = tmp_path / "cli"
    command = [
        sys.executable, "-m", "keras_squeezetime.cli.synthetic", f"--output={out}",
        "--train-per-class=1", "--val_per_class=1", "--frames=8", "--height=32", "--width=48",
        "--fps=10", "--seed=4", "--workers=2",
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout[result.stdout.index("{"):])
    assert (summary["num_train"], summary["num_val"]) == (8, 8)
    assert "written" in result.stderr  # progress log with rate and ETA
    with open(out / "val_list.txt", encoding="utf-8") as handle:
        entries = [line.split() for line in handle]
    assert sorted(int(label) for _, label in entries) == list(range(len(CLASS_NAMES)))
    with av.open(os.path.join(out, entries[0][0])) as container:
        stream = container.streams.video[0]
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
        assert float(stream.average_rate) == 10
    assert len(frames) == 8 and frames[0].shape == (32, 48, 3)
    # Two spawned workers produce exactly the clip list of an in-process run.
    api = generate_synthetic_dataset(tmp_path / "api", 1, 1, num_frames=8, height=32, width=48,
                                     fps=10, seed=4)
    for name in ("train_list.txt", "val_list.txt", "clips.jsonl"):
        assert (out / name).read_bytes() == open(os.path.join(api["output_dir"], name), "rb").read()


def test_cli_requires_output():
    result = subprocess.run(
        [sys.executable, "-m", "keras_squeezetime.cli.synthetic"], capture_output=True, text=True,
        timeout=120,
    )
    assert result.returncode != 0 and "output" in result.stderr


def test_cli_output_holding_other_data_is_one_line(tmp_path):
    out = tmp_path / "data"
    generate_synthetic_dataset(out, 0, 1, num_frames=4, height=16, width=16, seed=1)
    (tmp_path / "clip.mp4").write_bytes(b"not a folder")
    for output, fragment in ((out, "other settings"), (tmp_path / "clip.mp4", "clip.mp4")):
        result = subprocess.run(
            [sys.executable, "-m", "keras_squeezetime.cli.synthetic", f"--output={output}",
             "--train-per-class=0", "--val-per-class=1", "--frames=4", "--height=16",
             "--width=16", "--seed=2"], capture_output=True, text=True, timeout=120)
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-2000:]
        assert "squeezetime-synthetic: error: " in result.stderr and fragment in result.stderr
