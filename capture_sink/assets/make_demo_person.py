"""Write demo_person.jpg, the person photo of the built-in `demo` source.

Source: `skimage.data.astronaut()`, the NASA portrait of astronaut Eileen Collins (public domain,
a work of the U.S. federal government; see scikit-image's data/README). Written unchanged
(512x512, RGB to BGR for OpenCV) as JPEG quality 92 so the package ships no scikit-image need:

    python -m capture_sink.assets.make_demo_person
"""

from __future__ import annotations

from pathlib import Path

import cv2

DEMO_PERSON = Path(__file__).with_name("demo_person.jpg")


def write_demo_person(path: Path = DEMO_PERSON) -> Path:
    from skimage import data  # only this script needs scikit-image

    bgr = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    if not cv2.imwrite(str(path), bgr, [cv2.IMWRITE_JPEG_QUALITY, 92]):
        raise OSError(f"could not write {path}")
    return path


if __name__ == "__main__":
    print(write_demo_person())
