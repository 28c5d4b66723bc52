"""The fake device's v4l2loopback rules, one per release family, as a plain write() producer meets them.

Each expectation was read in that release's v4l2loopback.c (vidioc_querycap, vidioc_s_fmt_out /
vidioc_s_fmt_vid, check_buffer_capability, v4l2_loopback_write / start_fileio, v4l2_loopback_close);
the writer tests in test_outputs_v4l2.py run against these rules.
"""

from __future__ import annotations

import errno
import os

import pytest

from capture_sink import v4l2_ioctl as ioctl

pytestmark = pytest.mark.fuse

W, H = 640, 360
YUYV, I420 = ioctl.PIXEL_FORMATS["YUYV"], ioctl.PIXEL_FORMATS["I420"]
FRAME = bytes(W * H * 2)
CAPTURE, OUTPUT = ioctl.V4L2_CAP_VIDEO_CAPTURE, ioctl.V4L2_CAP_VIDEO_OUTPUT


def caps(device) -> int:
    fd = os.open(device, os.O_RDWR)
    try:
        return ioctl.query_caps(fd).caps & (CAPTURE | OUTPUT)
    finally:
        os.close(fd)


def producer(device, width: int = W, pixelformat: int = YUYV) -> int:
    fd = os.open(device, os.O_WRONLY)
    ioctl.set_output_format(fd, width, H, pixelformat)
    return fd


@pytest.mark.parametrize("version, after_close", [("0.12.7", 0), ("0.13.2", OUTPUT), ("0.15.4", OUTPUT)])
def test_exclusive_caps_flip_at_the_first_write(fake_v4l2_with, version, after_close):
    fake = fake_v4l2_with("--version", version)
    fd = producer(fake.device)
    assert caps(fake.device) == OUTPUT, "before any frame: an output device (Chrome does not list it yet)"
    os.write(fd, FRAME)
    assert caps(fake.device) == CAPTURE, "once written: a camera"
    os.close(fd)
    assert fake.all_closed()
    # 0.12.5-0.12.7 never give OUTPUT back to a write() producer that left (OBS issue 7078); with
    # every opener gone the format is freed too, so the device then announces neither.
    assert caps(fake.device) == after_close


@pytest.mark.parametrize("version, code", [("0.13.2", errno.EINVAL), ("0.15.4", errno.EBUSY)])
def test_second_producer_cannot_write_while_the_first_does(fake_v4l2_with, version, code):
    fake = fake_v4l2_with("--version", version)
    first = producer(fake.device)
    os.write(first, FRAME)
    second = os.open(fake.device, os.O_WRONLY)
    try:
        with pytest.raises(OSError) as raised:
            os.write(second, FRAME)
        assert raised.value.errno == code
    finally:
        os.close(second)
        os.close(first)
    assert fake.record.stat().st_size == len(FRAME), "the refused frame was not stored"


def test_0_14_rules_other_openers_cannot_touch_the_output_queue_while_it_streams(fake_v4l2_with):
    fake = fake_v4l2_with("--version", "0.15.4")
    first = producer(fake.device)
    other = os.open(fake.device, os.O_WRONLY)
    try:
        with pytest.raises(OSError) as busy:
            ioctl.set_output_format(other, W, H, YUYV)
        assert busy.value.errno == errno.EBUSY, "the first producer holds the output format token"
        assert ioctl.get_output_format(other).width == W, "G_FMT is fine before anyone streams"
        os.write(first, FRAME)
        for call in (lambda: ioctl.get_output_format(other), lambda: ioctl.set_output_fps(other, 30),
                     lambda: ioctl.set_output_format(other, W, H, YUYV)):
            with pytest.raises(OSError) as refused:
                call()
            assert refused.value.errno == errno.EINVAL, "another opener streams output"
    finally:
        os.close(other)
        os.close(first)


def test_0_13_refuses_another_format_while_fixed_and_0_14_answers_the_held_one(fake_v4l2_with):
    for version, refused in (("0.13.2", True), ("0.15.4", False)):
        fake = fake_v4l2_with("--version", version, "--lock-format", "1280x720:YUYV")
        fd = os.open(fake.device, os.O_WRONLY)
        try:
            if refused:
                with pytest.raises(OSError) as raised:
                    ioctl.set_output_format(fd, W, H, YUYV)
                assert raised.value.errno == errno.EBUSY
                assert ioctl.set_output_format(fd, 1280, 720, YUYV).width == 1280, "the held format is fine"
            else:
                answer = ioctl.set_output_format(fd, W, H, I420)
                assert answer.describe() == "1280x720 YUYV", "answered with the held format, no error"
        finally:
            os.close(fd)


@pytest.mark.parametrize("version, sizeimage", [("0.13.2", 462848), ("0.15.4", W * H * 2)])
def test_sizeimage_is_page_aligned_before_0_14(fake_v4l2_with, version, sizeimage):
    fake = fake_v4l2_with("--version", version)
    fd = os.open(fake.device, os.O_WRONLY)
    try:
        answer = ioctl.set_output_format(fd, W, H, YUYV)
    finally:
        os.close(fd)
    assert (answer.bytesperline, answer.sizeimage, answer.colorspace) == (W * 2, sizeimage, ioctl.V4L2_COLORSPACE_SRGB)


@pytest.mark.parametrize("version, outcome", [("0.12.7", "BGR4"), ("0.13.2", errno.EINVAL), ("0.15.4", errno.EINVAL)])
def test_unknown_fourcc(fake_v4l2_with, version, outcome):
    fake = fake_v4l2_with("--version", version)
    fd = os.open(fake.device, os.O_WRONLY)
    try:
        if isinstance(outcome, str):
            assert ioctl.set_output_format(fd, W, H, ioctl.fourcc("XXXX")).fourcc == outcome
        else:
            with pytest.raises(OSError) as raised:
                ioctl.set_output_format(fd, W, H, ioctl.fourcc("XXXX"))
            assert raised.value.errno == outcome
    finally:
        os.close(fd)


def test_without_exclusive_caps_the_device_says_both(fake_v4l2_with):
    fake = fake_v4l2_with("--exclusive-caps", "0")
    assert caps(fake.device) == CAPTURE | OUTPUT   # what Chrome takes for a memory-to-memory device
