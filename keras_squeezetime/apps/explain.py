"""Which pixels of a clip drive SqueezeTime's decision: Saliency and GradCAM++ (tf-keras-vis).

* Saliency: |d score / d input| (max over RGB) for every input pixel, so one map per
  sampled frame; all frames share one normalisation, so they compare across time.
* GradCAM++ on the output of the last block, `stage4_block3`. SqueezeTime squeezes
  time into channels at its very first layer, so from then on every feature map is
  2-D: the clip has ONE class-activation map, not one per frame. It is drawn over
  every frame; which frame matters is what the saliency maps can show.

Both use the logits (the head's softmax is replaced by a linear activation) of the
explained class, by default the predicted one. Outputs: a PNG grid (rows: frames,
columns: frame, saliency, GradCAM++) and an animated GIF of the same three panels.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from typing import Any, Sequence

import numpy as np

from keras_squeezetime.apps.predictor import Predictor, load_predictor
from keras_squeezetime.architecture import LAST_BLOCK
from keras_squeezetime.output_activation import score_kind, to_probabilities
from keras_squeezetime.video.clips import video_clips

GRADCAM_LAYER = LAST_BLOCK
# Weight of the heat map when drawn over a frame.
_OVERLAY_ALPHA = 0.5


@dataclasses.dataclass
class Explanation:
    """Saliency and GradCAM++ maps of one clip.

    Attributes:
      frames: the model's input, uint8 `(T, S, S, 3)`.
      frame_indices: source frame of each input frame `(T,)`.
      saliency: `(T, S, S)` in [0, 1], one map per frame.
      gradcam: `(S, S)` in [0, 1], one map for the whole clip (time is squeezed).
      class_index, label: the explained class.
      probability: the model's probability of that class.
    """

    frames: np.ndarray
    frame_indices: np.ndarray
    saliency: np.ndarray
    gradcam: np.ndarray
    class_index: int
    label: str
    probability: float

    def panels(self) -> np.ndarray:
        """uint8 `(T, S, 3 * S, 3)`: each frame beside its saliency and GradCAM++ overlays."""
        saliency = overlay(self.frames, self.saliency)
        gradcam = overlay(self.frames, np.broadcast_to(self.gradcam, self.saliency.shape))
        return np.concatenate([self.frames, saliency, gradcam], axis=2)

    def save_gif(self, path: str | os.PathLike, frame_ms: int = 200) -> str:
        """Writes an animated GIF, one image per input frame: frame | saliency | GradCAM++."""
        from PIL import Image

        images = [Image.fromarray(panel) for panel in self.panels()]
        images[0].save(path, save_all=True, append_images=images[1:], duration=frame_ms, loop=0,
                       disposal=1)
        return os.fspath(path)

    def save_grid(self, path: str | os.PathLike, max_rows: int = 8) -> str:
        """Writes a PNG grid: rows are frames (at most `max_rows`, evenly chosen), columns are
        the frame, its saliency map and the clip's GradCAM++ map, each over the frame."""
        from matplotlib.figure import Figure  # No pyplot: no global state, any backend.

        rows = _evenly(len(self.frames), max_rows)
        panels = self.panels()
        size = self.frames.shape[1]
        figure = Figure(figsize=(3 * 2.2, len(rows) * 2.2 + 0.6), layout="constrained")
        axes = np.asarray(figure.subplots(len(rows), 3, squeeze=False))
        titles = ("frame", "saliency", "GradCAM++ (whole clip)")
        for row, t in enumerate(rows):
            for column in range(3):
                ax = axes[row, column]
                ax.imshow(panels[t][:, column * size:(column + 1) * size])
                ax.set_xticks([])
                ax.set_yticks([])
                if row == 0:
                    ax.set_title(titles[column], fontsize="small")
            axes[row, 0].set_ylabel(f"frame {int(self.frame_indices[t])}", fontsize="small")
        figure.suptitle(f"{self.label} ({self.probability:.1%})")
        figure.savefig(path, dpi=100)
        return os.fspath(path)


def overlay(frames: np.ndarray, maps: np.ndarray) -> np.ndarray:
    """Blends maps in [0, 1] `(..., H, W)` as a jet heat map over uint8 frames `(..., H, W, 3)`."""
    from matplotlib import colormaps

    heat = colormaps["jet"](np.clip(maps, 0.0, 1.0))[..., :3] * 255.0
    blended = (1 - _OVERLAY_ALPHA) * frames.astype(np.float32) + _OVERLAY_ALPHA * heat
    return np.clip(np.round(blended), 0, 255).astype(np.uint8)


def explain_clip(
    keras_model: Any,
    clip: np.ndarray,
    class_index: int | None = None,
    smooth_samples: int = 0,
) -> tuple[np.ndarray, np.ndarray, int, float]:
    """Saliency and GradCAM++ maps of one float clip `(T, S, S, 3)` in [0, 255].

    Args:
      keras_model: a SqueezeTime classifier (a `head` output layer, a `stage4_block3` block).
      clip: the model input without the batch axis.
      class_index: the class to explain; None explains the predicted class.
      smooth_samples: SmoothGrad samples for the saliency (0: plain gradients).

    Returns:
      `(saliency (T, S, S), gradcam (S, S), class_index, probability)`; maps in [0, 1].
    """
    import tensorflow as tf
    from tf_keras_vis.gradcam_plus_plus import GradcamPlusPlus
    from tf_keras_vis.saliency import Saliency
    from tf_keras_vis.utils.model_modifiers import ReplaceToLinear
    from tf_keras_vis.utils.scores import CategoricalScore

    try:
        keras_model.get_layer(GRADCAM_LAYER)
    except ValueError as error:
        raise ValueError(f"Model {keras_model.name!r} has no layer {GRADCAM_LAYER!r}; explanations "
                         "need a SqueezeTime classifier.") from error
    batch = np.asarray(clip, dtype=np.float32)[None]
    # The explanation names the probability prediction shows: a logits head's via a softmax.
    probabilities = to_probabilities(keras_model(batch, training=False), score_kind(keras_model))[0]
    if class_index is None:
        class_index = int(np.argmax(probabilities))
    if not 0 <= class_index < len(probabilities):
        raise ValueError(f"class_index {class_index} is out of range: the model has "
                         f"{len(probabilities)} classes, [0, {len(probabilities)}).")
    score = CategoricalScore([class_index])
    # One clone with a linear head serves both methods (cloning copies every weight).
    linear = tf.keras.models.clone_model(keras_model)
    linear.set_weights(keras_model.get_weights())
    ReplaceToLinear()(linear)
    with warnings.catch_warnings():
        # tf-keras-vis feeds inputs as a list; Keras 3 warns about the structure, harmlessly.
        warnings.filterwarnings("ignore", message="The structure of `inputs`", category=UserWarning)
        saliency = Saliency(linear, clone=False)(score, batch, smooth_samples=smooth_samples)[0]
        cam = GradcamPlusPlus(linear, clone=False)(
            score, batch, penultimate_layer=GRADCAM_LAYER, seek_penultimate_conv_layer=False,
            expand_cam=False,
        )
    cam = _resize_map(np.asarray(cam)[0], batch.shape[2:4])
    return (np.asarray(saliency, dtype=np.float32), cam, class_index,
            float(probabilities[class_index]))


def explain_video(
    path: str | os.PathLike,
    model: "str | os.PathLike | Predictor | Any",
    class_index: int | None = None,
    *,
    labels: str | os.PathLike | Sequence[str] | None = None,
    frames: int | None = None,
    frame_interval: int | None = None,
    image_size: int | None = None,
    short_side: int | None = None,
    smooth_samples: int = 0,
) -> Explanation:
    """Explains the model's decision on the centre clip of a video (the `predict_video` clip).

    Args:
      path: the video.
      model: a Keras model, a `Predictor` holding one, or a `.keras`, `.pth` or preset
        (a `.tflite` has no gradients).
      class_index: class to explain; None explains the predicted class.
      labels, frames, frame_interval, image_size, short_side: see `predict_video`.
      smooth_samples: SmoothGrad samples for the saliency (0: plain gradients).

    Raises:
      VideoDecodeError: the video is missing or cannot be decoded.
      ValueError: a `.tflite` model, a class index out of range, or see `load_predictor`.
    """
    if isinstance(model, (str, os.PathLike)) and os.fspath(model).lower().endswith(".tflite"):
        raise ValueError(f"{os.fspath(model)} is a .tflite export, which has no gradients: pass "
                         "the .keras model (or the .pth / preset) it was exported from.")
    predictor = load_predictor(model, labels, frames, frame_interval, image_size, short_side)
    if predictor.keras_model is None:
        raise ValueError(f"{predictor.source} is a .tflite export, which has no gradients: "
                         "pass the Keras model it was exported from.")
    if class_index is not None and not 0 <= class_index < predictor.num_classes:
        raise ValueError(f"class_index {class_index} is out of range: the model has "
                         f"{predictor.num_classes} classes.")
    clips, indices = video_clips(path, predictor.settings, num_clips=1)
    # The model's own input: normalised here for a model built without its preprocessing.
    saliency, gradcam, index, probability = explain_clip(
        predictor.keras_model, predictor.model_inputs(clips)[0], class_index, smooth_samples)
    return Explanation(clips[0].astype(np.uint8), indices[0], saliency, gradcam, index,
                       predictor.label(index), probability)


def _resize_map(feature_map: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """Bilinear upsampling of a `(h, w)` map to the input size, renormalised to [0, 1]."""
    from PIL import Image

    resized = np.asarray(Image.fromarray(feature_map.astype(np.float32)).resize(
        (int(size[1]), int(size[0])), Image.BILINEAR))
    low, high = float(resized.min()), float(resized.max())
    return (resized - low) / (high - low) if high > low else np.zeros_like(resized)


def _evenly(count: int, limit: int) -> list[int]:
    """At most `limit` indices of `range(count)`, evenly spread, first and last included."""
    if count <= limit:
        return list(range(count))
    return sorted({int(round(i)) for i in np.linspace(0, count - 1, limit)})
