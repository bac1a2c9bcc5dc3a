"""Fine-tune SqueezeTime on a folder of videos (one sub-folder per class) and evaluate it.

    python examples/finetune_on_folder.py --train my_videos/train --val my_videos/val \
        --output runs/mine --init-weights kinetics400 --frames 16 --image-size 224

Folder per class -> TFRecords (`prepare_dataset`) -> `model.fit` (`train`) -> multi-view
evaluation (`evaluate_model`). Each step resumes if the script is run again.
"""

from __future__ import annotations

import argparse
import os

from keras_squeezetime.model_config import KERAS_MODEL_FILE
from keras_squeezetime.training.annotations import parse_class_folders
from keras_squeezetime.training.evaluate import evaluate_model
from keras_squeezetime.training.prepare import prepare_dataset
from keras_squeezetime.training.train import TrainConfig, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", required=True, help="folder with one sub-folder per class")
    parser.add_argument("--val", required=True, help="same classes, held-out videos")
    parser.add_argument("--output", required=True)
    parser.add_argument("--init-weights", default="none", help="preset, checkpoint or none")
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--frame-interval", type=int, default=2)
    parser.add_argument("--image-size", type=int, default=112)
    parser.add_argument("--short-side", type=int, default=128)
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args()

    train_entries = parse_class_folders(args.train)
    classes = sorted({entry.label_text for entry in train_entries})
    val_entries = parse_class_folders(args.val, labels=classes)
    os.makedirs(args.output, exist_ok=True)
    labels = os.path.join(args.output, "classes.txt")  # recorded in config.json by training
    with open(labels, "w", encoding="utf-8") as handle:
        handle.write("\n".join(classes) + "\n")
    records = {}
    for split, entries in (("train", train_entries), ("val", val_entries)):
        folder = os.path.join(args.output, "records", split)
        prepare_dataset(entries, folder, workers=2, short_side=args.short_side)
        records[split] = os.path.join(folder, "*.tfrecord")

    run = os.path.join(args.output, "run")
    model = os.path.join(run, KERAS_MODEL_FILE)
    if os.path.exists(model):  # a finished run: go on to the evaluation
        print(f"{run} is trained; evaluating it.")
    else:  # a new run, or one killed before its end, which resumes
        train(TrainConfig(
            train_data=records["train"], val_data=records["val"], output=run, config="custom",
            num_classes=len(classes), labels=labels, frames=args.frames,
            frame_interval=args.frame_interval, image_size=args.image_size,
            short_side=args.short_side, width_multiplier=args.width, epochs=args.epochs,
            batch_size=args.batch_size, init_weights=args.init_weights,
        ))
    metrics = evaluate_model(model, records["val"], views=(2, 3),
                             output=os.path.join(args.output, "evaluation"))
    print(f"classes: {classes}")
    print(f"validation top-1 {metrics['top1']:.1%}, top-5 {metrics['top5']:.1%} (2x3 views)")


if __name__ == "__main__":
    main()
