"""How long the first training step waits (tracing), by what is built before `fit`.

Each variant runs in its own fresh process (tracing caches are per process), in turn, for
--cycles cycles; the time is that of the first `train_on_batch` of the custom recipe's
compiled model on random clips:

  keras        `model.compile` only, with Keras' own `AdamW`: Keras creates the
               optimizer's variables inside the first traced step, so TensorFlow traces
               it twice, and its weight decay evaluates the learning-rate schedule once
               per variable
  built_keras  compiled and built as `compile_for_training` does, with Keras' `AdamW`
  built        `training.model_setup.compile_for_training` (what `squeezetime-train`
               does: compile, then `optimizer.build`; the metrics are objects whose
               variables exist already; the project's `AdamW` evaluates the schedule once
               a step): one trace

Prints each variant's median and its ratio to `keras` (JSON last).

    python benchmarks/first_step.py                              # width 0.25, 8x64x64
    python benchmarks/first_step.py --width 1 --frames 16 --size 224
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

VARIANTS = ("keras", "built_keras", "built")


def first_step(variant: str, width: float, frames: int, size: int, batch: int) -> float:
    """Seconds of the first step of one variant (run in this process)."""
    import dataclasses

    import keras
    import numpy as np

    from keras_squeezetime.training.model_setup import (build_model, compile_for_training,
                                                        make_schedule, training_metrics)
    from keras_squeezetime.training.recipes import get_recipe

    recipe = dataclasses.replace(get_recipe("custom"), num_classes=8, frames=frames,
                                 image_size=size, short_side=size, init_weights=None)
    model = build_model(recipe, width)
    if variant == "built":
        compile_for_training(model, recipe, batch, steps_per_epoch=100)
    else:
        model.compile(optimizer=keras.optimizers.AdamW(make_schedule(recipe, batch, 100),
                                                       weight_decay=recipe.weight_decay),
                      loss=keras.losses.SparseCategoricalCrossentropy(),
                      metrics=training_metrics(recipe.num_classes))
        if variant == "built_keras":
            model.optimizer.build(model.trainable_variables)
    rng = np.random.default_rng(0)
    clips = rng.uniform(0, 255, (batch, frames, size, size, 3)).astype("float32")
    labels = np.arange(batch) % recipe.num_classes
    started = time.perf_counter()
    model.train_on_batch(clips, labels)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--cycles", type=int, default=2)
    parser.add_argument("--variant", choices=VARIANTS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    shape = [f"--width={args.width}", f"--frames={args.frames}", f"--size={args.size}",
             f"--batch={args.batch}"]
    if args.variant:
        print(json.dumps({"seconds": first_step(args.variant, args.width, args.frames,
                                                args.size, args.batch)}))
        return

    times: dict[str, list[float]] = {variant: [] for variant in VARIANTS}
    for cycle in range(args.cycles):
        for variant in VARIANTS:
            output = subprocess.run([sys.executable, __file__, f"--variant={variant}", *shape],
                                    capture_output=True, text=True, check=True).stdout
            seconds = json.loads(output.strip().splitlines()[-1])["seconds"]
            times[variant].append(seconds)
            print(f"cycle {cycle + 1}/{args.cycles} {variant:11s} {seconds:6.1f} s", flush=True)
    medians = {variant: statistics.median(values) for variant, values in times.items()}
    for variant in VARIANTS:
        print(f"{variant:11s} median {medians[variant]:6.1f} s  "
              f"x{medians[variant] / medians['keras']:.2f} of keras")
    print(json.dumps({"shape": shape, "seconds": times, "median": medians}))


if __name__ == "__main__":
    main()
