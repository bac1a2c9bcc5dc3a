"""Parameters and multiply-adds of SqueezeTime, the figures of BENCHMARKS.md "Counts".

Builds each model (random weights, nothing downloaded) and prints, as a Markdown table,
its trainable parameters (with the 400-class head and for the backbone alone) and its
multiply-adds per clip from the traced graph (`keras_squeezetime.complexity`), with the
official figures beside them (REFERENCE.md and the paper's Table 5).

Usage:
  python benchmarks/model_counts.py [--widths 0.5,0.75,1.0,1.25] [--frames 16] [--size 224]
"""

from __future__ import annotations

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_list("widths", ["0.5", "0.75", "1.0", "1.25"], "Width multipliers to count.")
flags.DEFINE_integer("frames", 16, "Frames per clip.")
flags.DEFINE_integer("size", 224, "Input height and width.")

# Official figures at 16x224x224: REFERENCE.md (parameters, fvcore multiply-adds at width 1)
# and the paper's Table 5 (GFLOPs, which the paper counts as multiply-adds, per width).
OFFICIAL = {
    1.0: {"params": 29_706_688, "backbone": 28_887_088, "gmacs": "5.506 G (fvcore)"},
    0.5: {"gmacs": "1.9 G (Table 5)"},
    0.75: {"gmacs": "3.4 G (Table 5)"},
    1.25: {"gmacs": "8.1 G (Table 5)"},
}


def trainable(model) -> int:
    return sum(int(v.numpy().size) for v in model.trainable_weights)


def main(argv) -> None:
    del argv
    import keras

    from keras_squeezetime import SqueezeTime
    from keras_squeezetime.complexity import count_multiply_adds

    shape = (FLAGS.frames, FLAGS.size, FLAGS.size, 3)
    print(f"Input {'x'.join(map(str, shape[:3]))}, 400-class head, conv + linear multiply-adds.\n")
    print("| width | trainable params | backbone params | multiply-adds (G) | official |")
    print("| --- | --- | --- | --- | --- |")
    for width in (float(w) for w in FLAGS.widths):
        model = SqueezeTime(input_shape=shape, width_multiplier=width)
        backbone = SqueezeTime(include_top=False, input_shape=shape, width_multiplier=width)
        macs = count_multiply_adds(model)["total"] / 1e9
        official = OFFICIAL.get(width, {})
        reference = ", ".join(
            f"{key} {value:,}" if isinstance(value, int) else value
            for key, value in official.items()
        )
        print(f"| {width:g} | {trainable(model):,} | {trainable(backbone):,} | {macs:.3f} | "
              f"{reference or '-'} |")
        keras.backend.clear_session()


if __name__ == "__main__":
    app.run(main)
