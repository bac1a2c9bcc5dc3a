"""SqueezeTime as a backbone inside a larger functional Keras model.

Two heads on one clip encoder: a new classifier trained end to end, and a variant
with the backbone frozen (only the new layers train), the usual first step when
fine-tuning on little data. Run it as is (tiny settings, random data) or pass
`--weights kinetics400 --image-size 224 --frames 16 --width 1.0` for the real thing.
"""

from __future__ import annotations

import argparse

import keras
import numpy as np

import keras_squeezetime as kst


def build_classifier(frames: int, image_size: int, num_classes: int, width: float,
                     weights: str | None, freeze_backbone: bool) -> keras.Model:
    """A clip classifier: SqueezeTime features -> dropout -> a new softmax layer."""
    inputs = keras.Input((frames, image_size, image_size, 3), name="video")
    backbone = kst.SqueezeTime(
        include_top=False, pooling="avg", weights=weights, input_shape=inputs.shape[1:],
        width_multiplier=width, name="squeezetime_backbone",
    )
    backbone.trainable = not freeze_backbone
    # training=False keeps frozen BN statistics fixed while the head trains.
    features = backbone(inputs, training=False if freeze_backbone else None)
    x = keras.layers.Dropout(0.3)(features)
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="new_head")(x)
    model = keras.Model(inputs, outputs, name="clip_classifier")
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", type=int, default=4)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--classes", type=int, default=3)
    parser.add_argument("--weights", default=None, help="preset or checkpoint for the backbone")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    shape = (8, args.frames, args.image_size, args.image_size, 3)
    clips = rng.uniform(0, 255, shape).astype("float32")
    labels = rng.integers(0, args.classes, 8)
    for freeze in (False, True):
        model = build_classifier(args.frames, args.image_size, args.classes, args.width,
                                 args.weights, freeze_backbone=freeze)
        trainable = sum(int(np.prod(v.shape)) for v in model.trainable_weights)
        history = model.fit(clips, labels, batch_size=4, epochs=1, verbose=0)
        print(f"freeze_backbone={freeze}: {trainable:,} trainable parameters, "
              f"loss {history.history['loss'][-1]:.3f}")


if __name__ == "__main__":
    main()
