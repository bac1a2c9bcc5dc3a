"""Trains the small SqueezeTime the LiteRT quality numbers of BENCHMARKS.md are measured on.

Synthetic temporal-order dataset (8 classes, 40 frames; `--train-per-class` train and 32 val
clips per class), width 0.25, 8 frames every 4th, `--size` px, Adam on centre clips. Writes
`model.keras` and the training `config.json` into the output folder. Training runs TF's
deterministic kernels from `--seed`: the same command gives the same model on one machine.

Usage (the two models of BENCHMARKS.md, "LiteRT / TFLite"):
  python benchmarks/tflite_quality_model.py /tmp/st_q/data /tmp/st_q/model          # generalises
  python benchmarks/tflite_quality_model.py /tmp/st_hard/data /tmp/st_hard/model \
      --train-per-class 48 --dropout 0.2 --schedule constant --seed 2                 # overfits
  (then squeezetime-export / squeezetime-eval-tflite as in BENCHMARKS.md)
"""

from __future__ import annotations

import argparse
import os

FRAMES, INTERVAL, WIDTH = 8, 4, 0.25


def main(data: str, out: str, size: int, train_per_class: int, epochs: int,
         dropout: float, schedule: str, seed: int) -> None:
    import keras
    import tensorflow as tf

    from keras_squeezetime import SqueezeTime
    from keras_squeezetime.datasets.synthetic import generate_synthetic_dataset
    from keras_squeezetime.model_config import ClipSettings, ModelConfig, write_model_config
    from keras_squeezetime.tflite.calibration import load_clips

    generate_synthetic_dataset(data, train_per_class, 32, num_frames=40, height=size,
                               width=size, seed=0)
    spec = ClipSettings(frames=FRAMES, frame_interval=INTERVAL, image_size=size, short_side=size)
    x_train, y_train = load_clips(os.path.join(data, "train_list.txt"), spec)
    x_val, y_val = load_clips(os.path.join(data, "val_list.txt"), spec)
    # Without deterministic kernels, runs of the same command drew different models (model B:
    # Keras val top-1 0.66 to 0.80); with them, two runs gave the same model, bit for bit.
    tf.config.experimental.enable_op_determinism()
    keras.utils.set_random_seed(seed)
    pos_sizes = tuple(size // 4 // 2**i for i in range(4))
    model = SqueezeTime(input_shape=(FRAMES, size, size, 3), num_classes=8,
                        width_multiplier=WIDTH, pos_embed_sizes=pos_sizes, dropout_rate=dropout)
    learning_rate = 2e-3 if schedule == "constant" else keras.optimizers.schedules.CosineDecay(
        2e-3, decay_steps=epochs * -(-len(x_train) // 16), alpha=0.01)
    model.compile(keras.optimizers.Adam(learning_rate), "sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(x_train, y_train, batch_size=16, epochs=epochs, validation_data=(x_val, y_val),
              verbose=2)
    os.makedirs(out, exist_ok=True)
    model.save(os.path.join(out, "model.keras"))
    with open(os.path.join(data, "classes.txt"), encoding="utf-8") as handle:
        classes = [line.strip() for line in handle if line.strip()]
    write_model_config(out, ModelConfig(
        frames=FRAMES, frame_interval=INTERVAL, image_size=size, short_side=size, num_classes=8,
        class_names=tuple(classes), width_multiplier=WIDTH, pos_embed_sizes=pos_sizes))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", help="Folder for the synthetic videos and lists.")
    parser.add_argument("out", help="Folder for model.keras and config.json.")
    parser.add_argument("--size", type=int, default=64, help="Frame and crop side in pixels.")
    parser.add_argument("--train-per-class", type=int, default=160)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--dropout", type=float, default=0.0)
    parser.add_argument("--schedule", choices=["cosine", "constant"], default="cosine",
                        help="Adam learning rate 2e-3: cosine decay to 1%% or constant.")
    parser.add_argument("--seed", type=int, default=0,
                        help="Seed of the weights and batch order (the clips are always seed 0).")
    args = parser.parse_args()
    main(args.data, args.out, args.size, args.train_per_class, args.epochs, args.dropout,
         args.schedule, args.seed)
