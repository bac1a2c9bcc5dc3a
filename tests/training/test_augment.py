"""Crop boxes, fused decode and clip augmentations on small synthetic frames."""

import colorsys

import numpy as np
import pytest
import tensorflow as tf

from keras_squeezetime.training import augment


def _seed(i: int) -> tf.Tensor:
    return tf.constant([i, 11], tf.int64)


def _textured_clip(frames: int = 4, height: int = 24, width: int = 32) -> tf.Tensor:
    rng = np.random.default_rng(0)
    frame = rng.uniform(20, 235, (height, width, 3)).astype(np.float32)
    return tf.constant(np.stack([frame] * frames))


def test_multiscale_crop_sizes_and_offsets():
    # 256x340 at short side 256: sides int(256 * s) for s in (1, .875, .75, .66, .5).
    sides = [256, 224, 192, 168, 128]
    allowed = {(sides[i], sides[j]) for i in range(5) for j in range(5) if abs(i - j) <= 1}
    seen = set()
    for i in range(400):
        y, x, h, w = augment.multiscale_crop_box(256, 340, _seed(i), 256, 224).numpy().tolist()
        assert (h, w) in allowed
        assert 0 <= y <= 256 - h and 0 <= x <= 340 - w
        seen.add((h, w))
    assert seen == allowed  # all 13 aspect pairs are drawn


def test_multiscale_crop_snaps_near_output_size():
    # Short side 258: 258 * 0.875 = 225.75 -> 225, within 2 of 224, so it becomes 224.
    sides = set()
    for i in range(200):
        _, _, h, w = augment.multiscale_crop_box(258, 300, _seed(i), 258, 224).numpy().tolist()
        sides.update((h, w))
    assert 224 in sides and 225 not in sides
    assert sides <= {258, 224, 193, 170, 129}


def test_view_crop_boxes_centre_and_three():
    centre = augment.view_crop_boxes(256, 340, 256, 224).numpy()
    np.testing.assert_array_equal(centre, [[16, 58, 224, 224]])
    # Short side 224: 340 * 224 / 256 = 297.5 -> 298 wide, step (298 - 224) // 2 = 37.
    three = augment.view_crop_boxes(256, 340, 224, 224, num_crops=3).numpy()
    np.testing.assert_array_equal(three, [[0, 0, 224, 224], [0, 74, 224, 224], [0, 37, 224, 224]])
    portrait = augment.view_crop_boxes(340, 256, 224, 224, num_crops=3).numpy()
    np.testing.assert_array_equal(
        portrait, [[0, 0, 224, 224], [74, 0, 224, 224], [37, 0, 224, 224]]
    )
    with pytest.raises(ValueError, match=r"num_crops must be 1 \(centre\) or 3 .*got 5"):
        augment.view_crop_boxes(256, 340, 256, 224, num_crops=5)


def _gradient_jpeg(height: int, width: int) -> bytes:
    y, x = np.mgrid[0:height, 0:width]
    image = np.stack([4 * x, 4 * y, 128 + 0 * x], axis=-1).clip(0, 255).astype(np.uint8)
    return tf.io.encode_jpeg(image, quality=100, chroma_downsampling=False).numpy()


def test_decode_crop_at_stored_scale_is_the_plain_crop():
    jpeg = _gradient_jpeg(40, 60)
    full = tf.io.decode_jpeg(jpeg).numpy().astype(np.float32)
    clip = augment.decode_crop_resize(tf.constant([jpeg, jpeg]), [5, 12, 24, 24], 40, 24).numpy()
    assert clip.shape == (2, 24, 24, 3) and clip.dtype == np.float32
    np.testing.assert_allclose(clip[0], full[5:29, 12:36], atol=1)
    np.testing.assert_array_equal(clip[0], clip[1])


def test_decode_crop_maps_the_box_from_the_resized_frame():
    # Frame 40x60 resized to short side 20 is 20x30: box (2, 4, 10, 10) there covers stored
    # rows 4..24 and columns 8..28, which are shrunk to 10x10.
    jpeg = _gradient_jpeg(40, 60)
    clip = augment.decode_crop_resize(tf.constant([jpeg]), [2, 4, 10, 10], 20, 10).numpy()[0]
    stored = tf.io.decode_jpeg(jpeg)[4:24, 8:28]
    expected = tf.image.resize(tf.cast(stored, tf.float32), (10, 10)).numpy()
    np.testing.assert_allclose(clip, expected, atol=1)
    assert np.polyfit(np.arange(10), clip[5, :, 0], 1)[0] == pytest.approx(8, abs=0.5)


def test_flip_moves_every_frame_or_none():
    clip = tf.constant(np.arange(3 * 2 * 5 * 1, dtype=np.float32).reshape(3, 2, 5, 1))
    outcomes = set()
    for i in range(40):
        out = augment.random_flip(clip, _seed(i)).numpy()
        flipped = np.array_equal(out, clip.numpy()[:, :, ::-1])
        assert flipped or np.array_equal(out, clip.numpy())
        outcomes.add(flipped)
    assert outcomes == {True, False}


def test_color_jitter_is_identical_across_frames_and_in_range():
    clip = _textured_clip()
    for i in range(10):
        out = augment.color_jitter(clip, _seed(i)).numpy()
        assert out.min() >= 0 and out.max() <= 255
        for frame in out[1:]:
            np.testing.assert_array_equal(frame, out[0])
        assert not np.allclose(out, clip.numpy())


def test_brightness_only_scales_pixels():
    clip = _textured_clip() * 0.5  # room to brighten without clipping
    out = augment.color_jitter(clip, _seed(3), 0.5, 0, 0, 0).numpy()
    ratio = out / clip.numpy()
    assert 0.5 <= ratio.mean() <= 1.5
    np.testing.assert_allclose(ratio, ratio.mean(), rtol=1e-4)


def test_contrast_only_blends_with_the_mean_grey():
    clip = _textured_clip() * 0.4 + 60
    x = clip.numpy()
    out = augment.color_jitter(clip, _seed(5), 0, 0.5, 0, 0).numpy()
    mean_gray = (x @ np.array([0.2989, 0.587, 0.114])).mean(axis=(1, 2))[:, None, None, None]
    factor = (out[0, 0, 0, 0] - mean_gray[0, 0, 0, 0]) / (x[0, 0, 0, 0] - mean_gray[0, 0, 0, 0])
    assert 0.5 <= factor <= 1.5
    np.testing.assert_allclose(out, factor * x + (1 - factor) * mean_gray, atol=1e-2)


def _mmaction_jitter(x: np.ndarray, factors, order) -> np.ndarray:
    """mmaction2 `ColorJitter.transform` without hue, one operation after another."""
    weights = np.array([0.2989, 0.587, 0.114])
    for op in order:
        if op == 0:
            x = x * factors[0]
        elif op == 1:
            mean = (x @ weights).mean(axis=(1, 2))[:, None, None, None]
            x = factors[1] * x + (1 - factors[1]) * mean
        elif op == 2:
            x = factors[2] * x + (1 - factors[2]) * (x @ weights)[..., None]
    return np.clip(x, 0, 255)


@pytest.mark.parametrize("order", [(0, 1, 2, 3), (2, 1, 3, 0), (1, 2, 0, 3)])
def test_fused_jitter_equals_the_operations_in_sequence(order):
    clip = _textured_clip()
    seed = _seed(9)
    # The factors are 1 + 0.5 * (2u - 1) with u the clip's four stateless draws.
    u = tf.random.stateless_uniform([4], seed).numpy()
    factors = 0.5 + u[:3]
    out = augment.color_jitter(clip, seed, hue=0.0, order=order).numpy()
    expected = _mmaction_jitter(clip.numpy().astype(np.float64), factors, order)
    np.testing.assert_allclose(out, expected, atol=1e-2)


def test_jitter_order_is_a_seeded_permutation():
    assert sorted(augment.jitter_order(3)) == [0, 1, 2, 3]
    assert augment.jitter_order(3) == augment.jitter_order(3)
    assert len({augment.jitter_order(seed) for seed in range(20)}) > 5
    with pytest.raises(ValueError, match=r"order must be a permutation of 0..3, got \(0, 1, 2\)"):
        augment.color_jitter(_textured_clip(), _seed(0), order=(0, 1, 2))


def test_hue_only_rotates_by_whole_opencv_units():
    clip = tf.constant([[[[200.0, 100.0, 50.0]]]])
    h0, s0, v0 = colorsys.rgb_to_hsv(200 / 255, 100 / 255, 50 / 255)
    shifts = set()
    for i in range(30):
        r, g, b = augment.color_jitter(clip, _seed(i), 0, 0, 0, 0.1).numpy().ravel() / 255
        h, s, v = colorsys.rgb_to_hsv(r, g, b)
        units = round(((h - h0 + 0.5) % 1 - 0.5) * 180, 3)  # signed shift in 1/180 turns
        assert units == round(units) and abs(units) <= 25  # int(0.1 * 255) = 25
        assert s == pytest.approx(s0, abs=1e-3) and v == pytest.approx(v0, abs=1e-3)
        shifts.add(units)
    assert len(shifts) > 5


def _erased_mask(clip: np.ndarray) -> np.ndarray:
    return (clip != 0).any(axis=-1)


def test_random_erasing_one_rectangle_at_the_same_place():
    clip = tf.zeros([3, 40, 50, 3])
    for i in range(20):
        out = augment.random_erasing(clip, _seed(i), probability=1.0).numpy()
        mask = _erased_mask(out)
        for frame_mask in mask[1:]:
            np.testing.assert_array_equal(frame_mask, mask[0])
        rows, cols = np.nonzero(mask[0])
        height, width = rows.max() - rows.min() + 1, cols.max() - cols.min() + 1
        assert mask[0].sum() == height * width  # a filled rectangle
        assert 0.02 * 2000 - 50 <= height * width <= 2000 / 3 + 50  # area ratio, with rounding
        assert set(np.unique(out)) <= set(range(256))
        assert not np.array_equal(out[0], out[1])  # fresh noise per frame, as mmaction


def test_random_erasing_probability():
    clip = tf.zeros([1, 8, 8, 3])
    assert np.array_equal(augment.random_erasing(clip, _seed(0), probability=0.0), clip)
    erased = sum(
        bool(_erased_mask(augment.random_erasing(clip, _seed(i), 0.25).numpy()).any())
        for i in range(400)
    )
    assert 60 <= erased <= 140


def test_frame_shape_reads_height_then_width():
    assert [int(v) for v in augment.frame_shape(_gradient_jpeg(40, 60))] == [40, 60]


def test_multiscale_crop_snaps_within_two_pixels_only():
    def sides(short_side):
        heights, widths = set(), set()
        for i in range(200):
            _, _, h, w = augment.multiscale_crop_box(
                short_side, 300, _seed(i), short_side, 224).numpy().tolist()
            heights.add(h)
            widths.add(w)
        return heights, widths

    # Short side 259: 259 * 0.875 = 226.6 -> 226, two from 224: snapped, in both directions.
    for seen in sides(259):
        assert 224 in seen and 226 not in seen
    # Short side 260: 260 * 0.875 = 227.5 -> 227, three from 224: kept.
    for seen in sides(260):
        assert 227 in seen and 224 not in seen


def test_multiscale_crop_offsets_reach_both_ends():
    # One scale, 1.0: a 256 x 256 crop of a 256 x 258 frame fits at x = 0, 1 or 2, y = 0.
    boxes = {tuple(augment.multiscale_crop_box(256, 258, _seed(i), 256, 256, scales=(1.0,))
                   .numpy().tolist()) for i in range(100)}
    assert boxes == {(0, x, 256, 256) for x in (0, 1, 2)}
    # Transposed: the offset moves along y.
    boxes = {tuple(augment.multiscale_crop_box(258, 256, _seed(i), 256, 256, scales=(1.0,))
                   .numpy().tolist()) for i in range(100)}
    assert boxes == {(y, 0, 256, 256) for y in (0, 1, 2)}


def test_decode_crop_resizes_unless_both_sides_already_match():
    # Width 24 = size but height 30: still resized, to 24 x 24.
    jpeg = _gradient_jpeg(40, 60)
    clip = augment.decode_crop_resize(tf.constant([jpeg]), [0, 0, 30, 24], 40, 24).numpy()
    stored = tf.cast(tf.io.decode_jpeg(jpeg)[0:30, 0:24], tf.float32)
    np.testing.assert_allclose(clip[0], tf.image.resize(stored, (24, 24)).numpy(), atol=1e-3)


def test_flip_probability_zero_and_one():
    clip = tf.constant(np.arange(2 * 1 * 4 * 1, dtype=np.float32).reshape(2, 1, 4, 1))
    for i in range(10):
        np.testing.assert_array_equal(augment.random_flip(clip, _seed(i), 0.0), clip)
        np.testing.assert_array_equal(
            augment.random_flip(clip, _seed(i), 1.0), clip.numpy()[:, :, ::-1])


@pytest.mark.parametrize("seed", [50, 235])
def test_contrast_then_hue_clips_and_truncates_before_the_hue_turn(seed):
    """Contrast pushes pixels past 0 and 255; mmaction stores uint8 there, then turns hue."""
    pixels = np.array([[[[250, 240, 10], [10, 20, 200], [128, 60, 30]]]], np.float32)
    u = tf.random.stateless_uniform([4], _seed(seed)).numpy()
    contrast, hue = 0.5 + u[1], -0.1 + 0.2 * u[3]  # 1 +- 0.5 and +-0.1 from the draws
    assert contrast > 1.2  # so the dark and bright channels leave [0, 255]
    mean_gray = (pixels @ np.array([0.2989, 0.587, 0.114])).mean()
    stored = np.floor(np.clip(contrast * pixels + (1 - contrast) * mean_gray, 0, 255))
    assert stored.min() == 0 and stored.max() == 255
    turn = int(hue * 255) / 180  # OpenCV hue units, 180 per turn
    expected = []
    for r, g, b in stored.reshape(-1, 3) / 255:
        h, s, v = colorsys.rgb_to_hsv(r, g, b)
        expected.append(colorsys.hsv_to_rgb((h + turn) % 1, s, v))
    expected = np.array(expected).reshape(pixels.shape) * 255
    out = augment.color_jitter(tf.constant(pixels), _seed(seed), 0, 0.5, 0, 0.1, order=(1, 3, 0, 2))
    np.testing.assert_allclose(out.numpy(), expected, atol=0.05)


def test_random_erasing_rectangle_from_the_draws_by_mmaction_formulas():
    """Where and how large the rectangle is, from the clip's stateless draws.

    mmaction's `RandomErasing`: area ratio uniform in [0.02, 1/3], aspect log-uniform in
    [0.3, 10/3], sides rounded and kept inside the frame, offsets uniform over the places
    that fit; applied when the clip's first draw is below the probability (default 0.25).
    """
    import math

    frames, height, width = 2, 40, 50
    clip = -tf.ones([frames, height, width, 3])  # noise lies in [0, 255], never -1
    applied = set()
    for i in range(16):
        apply_seed, shape_seed, place_seed, _ = tf.unstack(
            tf.random.experimental.stateless_split(_seed(i), 4))
        u_shape = tf.random.stateless_uniform([2], shape_seed, dtype=tf.float64).numpy()
        u_place = tf.random.stateless_uniform([2], place_seed).numpy()
        aspect = math.exp(math.log(0.3) + (math.log(10 / 3) - math.log(0.3)) * u_shape[0])
        area = height * width * (0.02 + (1 / 3 - 0.02) * u_shape[1])
        h = min(round(math.sqrt(area * aspect)), height)
        w = min(round(math.sqrt(area / aspect)), width)
        top = int(u_place[0] * np.float32(height - h))
        left = int(u_place[1] * np.float32(width - w))
        expected = np.zeros((frames, height, width), bool)
        expected[:, top:top + h, left:left + w] = True
        erased = (augment.random_erasing(clip, _seed(i), probability=1.0).numpy() != -1).all(-1)
        np.testing.assert_array_equal(erased, expected)
        by_default = augment.random_erasing(clip, _seed(i)).numpy()
        apply = float(tf.random.stateless_uniform([], apply_seed)) < 0.25
        assert (by_default != -1).any() == apply
        applied.add(apply)
    assert applied == {True, False}


def test_random_erasing_noise_spans_every_byte_value():
    # The whole frame erased (area ratio 1, square): 2 x 64 x 64 x 3 noise values.
    clip = tf.zeros([2, 64, 64, 3])
    out = augment.random_erasing(clip, _seed(1), 1.0, 1.0, 1.0, (1.0, 1.0)).numpy()
    assert np.array_equal(out, np.floor(out))
    assert out.min() == 0 and out.max() == 255
    assert len(np.unique(out)) == 256


def test_decode_crop_keeps_edge_boxes_of_an_upscaled_frame_inside_it():
    # A 20 x 30 frame at short side 40 is 40 x 60: a 1-pixel box maps to half a stored
    # pixel, and rounding (half to even) puts the bottom-right one at row 20, column 30,
    # past the frame: it is kept on the last row and column instead, and no crop is empty.
    # Boxes are int32 tensors, as the crop-box functions give them.
    jpeg = _gradient_jpeg(20, 30)
    full = tf.io.decode_jpeg(jpeg).numpy().astype(np.float32)
    for (y, x), stored in {(0, 0): (0, 0), (39, 59): (19, 29)}.items():
        clip = augment.decode_crop_resize(
            tf.constant([jpeg]), tf.constant([y, x, 1, 1], tf.int32), 40, 2).numpy()
        np.testing.assert_allclose(clip[0], np.broadcast_to(full[stored], (2, 2, 3)), atol=1e-3)
    # The pixels next to the corner differ: a crop one pixel off would fail.
    assert np.abs(full[19, 29] - full[18, 28]).max() >= 3
