"""Learning curves of `squeezetime-train --config custom` from scratch, with its defaults.

Generates the built-in synthetic temporal dataset (8 classes in 4 time-reversed pairs, the
classes of a pair differ only in frame order; `keras_squeezetime.datasets`), prepares its
TFRecords (both resumable, shared with `synthetic_temporal.py`), then runs the training CLI
in a subprocess with nothing but the data, the geometry and the run length given: optimizer,
learning rate, schedule, weight decay, dropout and augmentation are the recipe's defaults.
Prints the per-epoch table (train loss and accuracy, validation loss and accuracy, learning
rate) as Markdown and writes it to `<workdir>/<tag>.json`.

    python benchmarks/from_scratch_curves.py --workdir /tmp/from_scratch
    # the same with another setting, e.g. the official augmentation on the custom recipe:
    python benchmarks/from_scratch_curves.py --workdir /tmp/from_scratch --tag paper_aug \\
        -- --crop-scales=1,0.875,0.75,0.66,0.5 --random-erasing=0.25

Flags after `--` go to `squeezetime-train` unchanged. A finished run is not retrained, a
killed one resumes (the CLI's own resume).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from synthetic_temporal import prepare  # noqa: E402  (the dataset of the temporal benchmark)


def run_training(workdir: str, data: dict[str, str], args, extra: list[str]) -> str:
    """Runs `squeezetime-train` (skipped when finished); returns the run folder."""
    output = os.path.join(workdir, "runs", args.tag)
    if os.path.exists(os.path.join(output, "model.keras")):
        return output
    short_side = args.image_size * 8 // 7  # the recipes' 224/256 ratio
    command = [
        sys.executable, "-m", "keras_squeezetime.training.cli.train",
        "--config=custom", "--num-classes=8", f"--labels={data['classes']}",
        f"--train-data={data['train']}", f"--val-data={data['val']}", f"--output={output}",
        f"--frames={args.frames}", f"--frame-interval={args.frame_interval}",
        f"--image-size={args.image_size}", f"--short-side={short_side}",
        f"--width-multiplier={args.width_multiplier}", f"--epochs={args.epochs}",
        f"--batch-size={args.batch_size}", f"--seed={args.seed}", *extra,
    ]
    print(" ".join(command), flush=True)
    subprocess.run(command, check=True)
    return output


def read_history(output: str) -> list[dict[str, float]]:
    with open(os.path.join(output, "history.csv")) as handle:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(handle)]


def markdown_table(history: list[dict[str, float]]) -> str:
    lines = [
        "| epoch | train loss | train acc | val loss | val acc | learning rate |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for row in history:
        lines.append(
            f"| {int(row['epoch']) + 1} | {row['loss']:.3f} | {row['accuracy']:.3f} | "
            f"{row.get('val_loss', float('nan')):.3f} | {row.get('val_accuracy', float('nan')):.3f}"
            f" | {row['learning_rate']:.2e} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default="/tmp/from_scratch")
    parser.add_argument("--tag", default="defaults", help="run folder name under runs/")
    parser.add_argument("--train-per-class", type=int, default=160)
    parser.add_argument("--val-per-class", type=int, default=32)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--frame-interval", type=int, default=4)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--width-multiplier", type=float, default=0.25)
    parser.add_argument("--epochs", type=int, default=30, help="the custom recipe's 30")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    args, extra = parser.parse_known_args()
    extra = [flag for flag in extra if flag != "--"]

    data = prepare(args.workdir, args.train_per_class, args.val_per_class)
    started = time.monotonic()
    output = run_training(args.workdir, data, args, extra)
    wall = time.monotonic() - started
    history = read_history(output)
    with open(os.path.join(output, "config.json")) as handle:
        config = json.load(handle)
    resolved = {k: config.get(k) for k in (
        "optimizer", "learning_rate", "warmup_epochs", "weight_decay", "clip_norm",
        "dropout_rate", "hflip", "crop_scales", "color_jitter", "random_erasing", "augment",
    )}
    print(f"\n{args.tag}: extra flags {extra or 'none'}; resolved {json.dumps(resolved)}")
    print(f"wall {wall:.0f} s (0 when the run had finished before)\n")
    print(markdown_table(history))
    best = max(row.get("val_accuracy", 0.0) for row in history)
    print(f"\nfinal val acc {history[-1].get('val_accuracy', float('nan')):.3f}, best {best:.3f}")
    with open(os.path.join(args.workdir, f"{args.tag}.json"), "w") as handle:
        json.dump({"settings": vars(args), "extra_flags": extra, "resolved": resolved,
                   "wall_seconds": round(wall, 1), "history": history}, handle, indent=2)


if __name__ == "__main__":
    main()
