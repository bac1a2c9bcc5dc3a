"""PyAV decoding on real encoded files written by the tests."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest

from keras_squeezetime.video import (
    VideoDecodeError,
    dense_indices,
    probe_video,
    read_frames,
)


@pytest.mark.parametrize(
    "name, codec",
    [("h264.mp4", "h264"), ("vp9.webm", "vp9"), ("mjpeg.avi", "mjpeg"), ("mpeg4.mkv", "mpeg4")],
)
def test_probe_and_read_every_codec(make_video, palette, name, codec, frame_ids):
    path = make_video(name, num_frames=24, height=48, width=64, fps=12, codec=codec)

    info = probe_video(path)
    frames = read_frames(path)

    assert (info.num_frames, info.width, info.height, info.rotation) == (24, 64, 48, 0)
    assert info.fps == pytest.approx(12.0)
    assert info.duration == pytest.approx(2.0, abs=0.1)
    assert frames.shape == (24, 48, 64, 3) and frames.dtype == np.uint8
    assert frame_ids(frames) == [i % len(palette) for i in range(24)]


def test_short_side_resize_keeps_aspect(make_video):
    path = make_video("wide.avi", num_frames=4, height=48, width=80)

    frames = read_frames(path, short_side=30)

    # 80 * 30 / 48 = 50 exactly; the short side is exact.
    assert frames.shape == (4, 30, 50, 3)


def test_odd_size_is_padded_by_writer_and_resized_with_rounding(make_video, frame_ids):
    # Odd 47x33 is padded to 48x34 by the encoder; 48 * 20 / 34 = 28.2 -> 28.
    path = make_video("odd size.mp4", num_frames=6, height=33, width=47)

    info = probe_video(path)
    frames = read_frames(path, short_side=20)

    assert (info.width, info.height) == (48, 34)
    assert frames.shape == (6, 20, 28, 3)
    assert frame_ids(frames) == list(range(6))


@pytest.mark.parametrize(
    "rotation, corner",
    # Where the stored top-left marker lands when turned clockwise for display.
    [(90, "top_right"), (180, "bottom_right"), (270, "bottom_left")],
)
def test_rotation_is_applied(make_video, rotation, corner):
    frames = np.zeros((5, 48, 64, 3), np.uint8)
    frames[:, :12, :12] = 255  # white marker, stored top-left
    path = make_video("phone.mp4", frames=frames, rotation=rotation)

    info = probe_video(path)
    decoded = read_frames(path)

    portrait = rotation in (90, 270)
    assert info.rotation == rotation
    assert (info.height, info.width) == ((64, 48) if portrait else (48, 64))
    assert decoded.shape[1:3] == (info.height, info.width)
    height, width = decoded.shape[1:3]
    corners = {
        "top_left": decoded[:, :8, :8],
        "top_right": decoded[:, :8, width - 8:],
        "bottom_left": decoded[:, height - 8:, :8],
        "bottom_right": decoded[:, height - 8:, width - 8:],
    }
    for name, patch in corners.items():
        if name == corner:
            assert patch.mean() > 200, name
        else:
            assert patch.mean() < 50, name


def test_portrait_resize_uses_display_short_side(make_video):
    path = make_video("portrait.mov", num_frames=3, height=48, width=64, rotation=90)

    frames = read_frames(path, short_side=24)

    assert frames.shape == (3, 32, 24, 3)  # H > W: portrait, short side is the width


def test_fps_resampling_picks_frames_by_timestamp(make_video, frame_ids):
    times = np.array([0.0, 0.1, 0.15, 0.5, 0.55, 0.93, 1.0])
    path = make_video("vfr.mkv", num_frames=len(times), timestamps=times, fps=10)

    frames = read_frames(path, fps=10)

    # Target k is at k/10 s; the frame on screen then is the last one with time <= k/10.
    # The last frame lasts 0.1 s (its nominal duration), so targets run to 1.0 inclusive.
    targets = np.arange(11) / 10
    expected = np.searchsorted(times, targets + 1e-9, side="right") - 1
    assert frame_ids(frames) == expected.tolist()


def test_fps_downsampling_constant_rate(make_video, palette, frame_ids):
    path = make_video("30fps.mp4", num_frames=24, fps=30)

    frames = read_frames(path, fps=15)

    assert frame_ids(frames) == [i % len(palette) for i in range(0, 24, 2)]


def test_indices_order_repeats_and_max_frames(make_video, frame_ids):
    path = make_video("clip.webm", num_frames=12)

    picked = read_frames(path, indices=[5, 1, 1, 11, 0])
    capped = read_frames(path, max_frames=4, short_side=24)

    assert frame_ids(picked) == [5, 1, 1, 11, 0]
    assert frame_ids(capped) == [0, 1, 2, 3]
    assert capped.shape == (4, 24, 32, 3)


def test_clip_shorter_than_window_loops(make_video, frame_ids):
    path = make_video("short.mp4", num_frames=5)
    indices = dense_indices(probe_video(path).num_frames, clip_len=16, interval=4, mode="center")

    frames = read_frames(path, indices=indices)

    assert frames.shape[0] == 16
    assert frame_ids(frames) == [(4 * k) % 5 for k in range(16)]


def test_index_past_end_names_path_and_count(make_video):
    path = make_video("ten.mp4", num_frames=10)

    message = r"index 10 requested but the video decodes to 10 frames"
    with pytest.raises(VideoDecodeError, match=message) as info:
        read_frames(path, indices=[0, 10])
    assert info.value.path == os.fspath(path)


@pytest.mark.parametrize(
    "kind, reason",
    [
        ("truncated", "not a readable container"),
        ("empty", "empty"),
        ("text", "not a readable container"),
    ],
)
def test_broken_files_raise_with_path_and_cause(make_broken_file, kind, reason):
    path = make_broken_file(kind)

    for call in (probe_video, read_frames):
        with pytest.raises(VideoDecodeError) as info:
            call(path)
        assert os.fspath(path) in str(info.value)
        assert reason in info.value.reason


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(VideoDecodeError, match="no such file"):
        read_frames(tmp_path / "absent.mp4")
    with pytest.raises(VideoDecodeError, match="is a directory"):
        probe_video(tmp_path)


def test_path_with_spaces_brackets_and_non_ascii(make_video, frame_ids):
    path = make_video("dossier été/vidéo à [tester] (1) 東京.mp4", num_frames=6)

    assert probe_video(path).num_frames == 6
    assert frame_ids(read_frames(path)) == list(range(6))


def test_error_survives_pickling_across_processes():
    error = pickle.loads(pickle.dumps(VideoDecodeError("/data/a.mp4", "no such file")))

    assert (error.path, error.reason) == ("/data/a.mp4", "no such file")
    assert str(error) == "Cannot decode video '/data/a.mp4': no such file"


def test_damaged_packets_are_skipped_with_one_warning(make_video, frame_ids, palette):
    path = make_video("damaged.avi", num_frames=30, height=48, width=64, codec="mjpeg")
    data = bytearray(path.read_bytes())
    # Overwrite the middle of the file: the JPEG packets there no longer decode.
    middle = len(data) // 2
    data[middle:middle + len(data) // 10] = bytes(len(data) // 10)
    path.write_bytes(bytes(data))

    with pytest.warns(UserWarning, match=r"damaged\.avi: \d+ damaged packet\(s\) could not be "
                                         r"decoded \(the first at \d+\.\d\d s\)"):
        frames = read_frames(path)

    ids = frame_ids(frames)
    assert 15 <= len(ids) < 30
    # The frames before and after the damage, in order: the damage only left a gap.
    every = [i % len(palette) for i in range(30)]
    before = next(k for k, (got, want) in enumerate(zip(ids, every)) if got != want)
    assert ids == every[:before] + every[30 - (len(ids) - before):]


def test_cover_art_is_not_a_video_and_a_thumbnail_track_is_passed_over(tmp_path, make_video):
    import io
    from fractions import Fraction

    import av
    from PIL import Image

    picture = io.BytesIO()
    Image.new("RGB", (32, 32), "gray").save(picture, "PNG")
    song = tmp_path / "song.mp3"
    with av.open(str(song), "w") as container:
        audio = container.add_stream("libmp3lame", rate=8000)
        cover = container.add_stream("png", rate=1)
        cover.width = cover.height = 32
        cover.pix_fmt = "rgb24"
        cover.disposition = av.stream.Disposition.attached_pic
        packet = av.Packet(picture.getvalue())
        packet.stream, packet.pts, packet.dts, packet.time_base = cover, 0, 0, Fraction(1, 1)
        container.mux(packet)
        silence = av.AudioFrame.from_ndarray(np.zeros((1, 1152), np.float32), format="fltp",
                                             layout="mono")
        silence.sample_rate, silence.pts = 8000, 0
        for out in audio.encode(silence):
            container.mux(out)
        for out in audio.encode():
            container.mux(out)
    with pytest.raises(VideoDecodeError, match="only an attached picture"):
        probe_video(song)

    # A one-frame MJPEG track ahead of the real video, in one file.
    thumb = make_video("thumb.avi", num_frames=1, codec="mjpeg")
    movie = make_video("movie.mp4", num_frames=12)
    both = tmp_path / "both.mkv"
    with av.open(str(both), "w") as out, av.open(str(thumb)) as first, \
            av.open(str(movie)) as second:
        streams = [out.add_stream_from_template(source.streams.video[0])
                   for source in (first, second)]
        for source, stream in zip((first, second), streams):
            for packet in source.demux(source.streams.video[0]):
                if packet.size:
                    packet.stream = stream
                    out.mux(packet)
    assert probe_video(both).num_frames == 12
    assert read_frames(both).shape[0] == 12


def test_a_resolution_change_is_resized_to_the_first_size(tmp_path, make_video):
    import av

    joined = tmp_path / "joined.h264"
    with open(joined, "wb") as out:  # Annex B streams concatenate: 64x48, then 80x40
        for name, (height, width) in (("a.mp4", (48, 64)), ("b.mp4", (40, 80))):
            path = make_video(name, num_frames=8, height=height, width=width)
            with av.open(str(path)) as source:
                stream = source.streams.video[0]
                annex_b = av.BitStreamFilterContext("h264_mp4toannexb", stream)
                for packet in source.demux(stream):
                    for filtered in annex_b.filter(packet):
                        out.write(bytes(filtered))

    assert read_frames(joined).shape == (16, 48, 64, 3)
    assert read_frames(joined, short_side=24).shape == (16, 24, 32, 3)


def test_dv_frame_rate_is_the_frame_rate_not_the_time_base(tmp_path):
    import av

    path = tmp_path / "tape.dv"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("dvvideo", rate=25)
        stream.width, stream.height, stream.pix_fmt = 720, 576, "yuv420p"
        for i in range(10):
            image = np.full((576, 720, 3), 20 * i, np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)

    info = probe_video(path)
    assert info.fps == pytest.approx(25.0)  # the stream's average rate says 60000
    assert info.num_frames == 10


def test_timestamps_going_backwards_keep_every_frame_in_order(tmp_path, frame_ids, palette):
    from fractions import Fraction

    import av

    from tests.conftest import solid_frames

    path = tmp_path / "backwards.mkv"
    images = solid_frames(10, 48, 64)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mjpeg", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuvj420p"
        stream.time_base = Fraction(1, 10)
        for i, image in enumerate(images):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                # Broken muxing: every 5th frame stamped 1 s late, the next ones go back.
                packet.dts, packet.pts = i, i + (10 if i % 5 == 0 else 0)
                container.mux(packet)

    assert frame_ids(read_frames(path, fps=10)) == list(range(10))


def test_a_header_counting_more_frames_than_the_file_holds_is_warned(make_overcounted_video):
    path = make_overcounted_video("cut.avi", num_frames=40, keep=20)

    with pytest.warns(UserWarning, match=r"cut\.avi: its header counts 40 frames but the file "
                                         r"holds 2\d"):
        info = probe_video(path)
    assert 20 <= info.num_frames < 40


def test_a_text_file_is_not_a_video(tmp_path):
    # FFmpeg's tty demuxer opens text named .txt as ANSI art: a "video" of its characters.
    listing = tmp_path / "val_list.txt"
    listing.write_text("".join(f"videos/class_{i % 4}/clip_{i:03d}.mp4 {i % 4}\n"
                               for i in range(40)))
    for call in (probe_video, read_frames):
        with pytest.raises(VideoDecodeError, match="a text file, not a video"):
            call(listing)
