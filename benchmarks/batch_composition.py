"""Distinct classes per training batch for a class-sorted, Kinetics-like annotation list.

Annotation lists come sorted by class (Kinetics CSVs, HMDB51 split files, class folders).
This simulates one at full scale (default 400 classes x ~600 videos, sorted by class),
lays it out in shards exactly as `squeezetime-prepare` does (`prepare.storage_order` and
`shard_size` videos per shard: list order before, the seeded shuffle now), writes the
shards as real TFRecords of one tiny JPEG frame per video (their size does not change the
order; decoding real videos would only take longer) and reads them back through
`pipeline.train_dataset(pattern, batch_size, PipelineConfig(...))`, counting the distinct
labels in each batch, for the pipeline settings given.

    python benchmarks/batch_composition.py --workdir /tmp/batch_composition
    python benchmarks/batch_composition.py --classes 40 --per-class 60   # quick look

Prints mean / min / max distinct classes per batch over a whole epoch (or `--batches`),
against what independent uniform draws give (`classes * (1 - (1 - 1 / classes) ** batch)`),
for: before (list order, the old pipeline: 8 files interleaved, a 64-record buffer), after
(prepare's seeded order, the pipeline's defaults), and the new pipeline alone on a
class-sorted store; `--grid` adds other pipeline settings.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np


def simulated_list(classes: int, per_class: int, seed: int = 0) -> list[int]:
    """Labels of a class-sorted list; class sizes vary +-10% around `per_class`."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(int(per_class * 0.9), int(per_class * 1.1) + 1, classes)
    return [label for label, size in enumerate(sizes) for _ in range(size)]


def write_shards(labels: list[int], order: list[int], shard_size: int, folder: str) -> str:
    """One TFRecord shard per `shard_size` positions of `order`; returns the glob pattern."""
    import tensorflow as tf

    from keras_squeezetime.training.prepare import shard_names
    from keras_squeezetime.training.records import make_sequence_example

    os.makedirs(folder, exist_ok=True)
    names = shard_names(len(order), shard_size)
    if all(os.path.exists(os.path.join(folder, name)) for name in names):
        return os.path.join(folder, "*.tfrecord")
    jpeg = tf.io.encode_jpeg(np.full((8, 8, 3), 128, np.uint8)).numpy()
    for shard, name in enumerate(names):
        with tf.io.TFRecordWriter(os.path.join(folder, name)) as writer:
            for index in order[shard * shard_size:(shard + 1) * shard_size]:
                writer.write(
                    make_sequence_example([jpeg], labels[index], media_id=str(index))
                    .SerializeToString()
                )
    return os.path.join(folder, "*.tfrecord")


def distinct_per_batch(pattern: str, batch: int, batches: int, seed: int,
                       cycle_length: int | None = None,
                       shuffle_buffer: int | None = None) -> np.ndarray:
    """Distinct labels in each of the first `batches` batches of `train_dataset` (all the
    epoch's batches for `batches=0`); None keeps `PipelineConfig`'s default."""
    from keras_squeezetime.training import pipeline

    tf_data = {k: v for k, v in (("cycle_length", cycle_length),
                                 ("shuffle_buffer", shuffle_buffer)) if v is not None}
    config = pipeline.PipelineConfig(
        frames=1, frame_interval=1, image_size=8, short_side=8, multiscale_crop=False,
        hflip=False, color_jitter=False, random_erasing=0.0, seed=seed, **tf_data,
    )
    dataset = pipeline.train_dataset(pattern, batch, config)
    if batches:
        dataset = dataset.take(batches)
    return np.asarray([len(np.unique(labels.numpy())) for _, labels in dataset])


# The pipeline before batch composition was measured: 8 files interleaved, 64 records buffered.
OLD_PIPELINE = {"cycle_length": 8, "shuffle_buffer": 64}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", default="/tmp/batch_composition")
    parser.add_argument("--classes", type=int, default=400)
    parser.add_argument("--per-class", type=int, default=600)
    parser.add_argument("--shard-size", type=int, default=100)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--batches", type=int, default=0,
                        help="batches read per row (0: the whole epoch)")
    parser.add_argument("--grid", default="",
                        help="more rows: comma-separated CYCLExBUFFER pipeline settings, "
                             "each read from both storage orders (e.g. 8x256,64x64)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    from keras_squeezetime.training.pipeline import PipelineConfig
    from keras_squeezetime.training.prepare import DEFAULT_SHUFFLE_SEED, storage_order

    labels = simulated_list(args.classes, args.per_class)
    iid = args.classes * (1 - (1 - 1 / args.classes) ** args.batch)
    print(f"{len(labels)} videos, {args.classes} classes, sorted by class; shards of "
          f"{args.shard_size}; batches of {args.batch}; independent draws give {iid:.1f} "
          "distinct classes per batch")
    orders = {"list order": storage_order(len(labels), None),
              f"seeded shuffle {DEFAULT_SHUFFLE_SEED}": storage_order(len(labels),
                                                                      DEFAULT_SHUFFLE_SEED)}
    patterns = {}
    for name, order in orders.items():
        started = time.monotonic()
        folder = os.path.join(args.workdir, f"{args.classes}x{args.per_class}",
                              "sorted" if name == "list order" else "shuffled")
        patterns[name] = write_shards(labels, order, args.shard_size, folder)
        print(f"{name}: shards in {folder} ({time.monotonic() - started:.0f} s)", flush=True)
    new = {"cycle_length": PipelineConfig.cycle_length,
           "shuffle_buffer": PipelineConfig.shuffle_buffer}
    shuffled = f"seeded shuffle {DEFAULT_SHUFFLE_SEED}"
    runs = [("before", "list order", OLD_PIPELINE), ("after", shuffled, new),
            ("new pipeline alone", "list order", new)]
    for item in filter(None, args.grid.split(",")):
        cycle, buffer = (int(v) for v in item.lower().split("x"))
        setting = {"cycle_length": cycle, "shuffle_buffer": buffer}
        runs += [("grid", "list order", setting), ("grid", shuffled, setting)]
    print("| run | storage order | files interleaved | shuffle buffer | batches | mean | min | "
          "max |\n|---|---|---|---|---|---|---|---|")
    rows = []
    for run, storage, setting in runs:
        counts = distinct_per_batch(patterns[storage], args.batch, args.batches, args.seed,
                                    **setting)
        row = {"run": run, "storage": storage, **setting, "batches": int(len(counts)),
               "mean": round(float(counts.mean()), 1), "min": int(counts.min()),
               "max": int(counts.max())}
        rows.append(row)
        print(f"| {run} | {storage} | {setting['cycle_length']} | {setting['shuffle_buffer']} | "
              f"{row['batches']} | {row['mean']} | {row['min']} | {row['max']} |", flush=True)
    with open(os.path.join(args.workdir, "results.json"), "w") as handle:
        json.dump({"iid_expected": iid, "videos": len(labels), "rows": rows}, handle, indent=2)


if __name__ == "__main__":
    main()
