"""NudeNet's detector on this server: the ``320n`` ONNX model shipped inside the ``nudenet`` wheel.

Nothing is downloaded: the model file is found inside the installed package (without importing
it, which would pull in OpenCV) and run with onnxruntime's CPU provider only. The session is
made once per process, on first use, and shared by every worker thread: onnxruntime's ``run``
is thread-safe, and one intra-op thread per call lets two workers use both cores at once
(bench/README.md has the measurements behind that choice).

Pre- and post-processing follow NudeNet 3.4's own (pad to a square at the bottom and right,
320×320, scores from 0.2, one non-maximum suppression over all classes at 0.25 / IoU 0.45), with
three differences: the image is decoded once by Pillow, at reduced scale when it is a JPEG and
turned upright by its EXIF orientation; the model gets RGB, as it was trained (NudeNet 3.4.2
passes BGR: notAI-tech/NudeNet issue #203); and the post-processing is vectorised.
"""

from __future__ import annotations

import io
import threading
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps

MODEL_FILE = "320n.onnx"
SIZE = 320  # the model's input: SIZE × SIZE
CANDIDATE_SCORE, KEEP_SCORE, OVERLAP = 0.2, 0.25, 0.45  # NudeNet 3.4's values
# The model's class order (nudenet/nudenet.py ``__labels``; a test keeps them equal).
CLASSES = (
    "FEMALE_GENITALIA_COVERED", "FACE_FEMALE", "BUTTOCKS_EXPOSED", "FEMALE_BREAST_EXPOSED",
    "FEMALE_GENITALIA_EXPOSED", "MALE_BREAST_EXPOSED", "ANUS_EXPOSED", "FEET_EXPOSED",
    "BELLY_COVERED", "FEET_COVERED", "ARMPITS_COVERED", "ARMPITS_EXPOSED", "FACE_MALE",
    "BELLY_EXPOSED", "MALE_GENITALIA_EXPOSED", "ANUS_COVERED", "FEMALE_BREAST_COVERED",
    "BUTTOCKS_COVERED",
)  # fmt: skip
INSTALL_HINT = "pip install -r requirements-nudenet.txt"

_session: Any = None
_loading = threading.Lock()


class NotInstalled(Exception):
    """The optional nudenet extra (the model and onnxruntime) is not installed here."""


def model_path() -> Path:
    """The model file inside the installed nudenet package; raises NotInstalled."""
    try:
        spec, runtime = find_spec("nudenet"), find_spec("onnxruntime")
    except ImportError:  # an import hook that hides the package says so by raising
        spec = runtime = None
    if spec is None or not spec.submodule_search_locations or runtime is None:
        raise NotInstalled(f"NudeNet is not installed on this server: {INSTALL_HINT}")
    path = Path(next(iter(spec.submodule_search_locations))) / MODEL_FILE
    if not path.is_file():
        raise NotInstalled(f"The NudeNet package has no {MODEL_FILE}: reinstall, {INSTALL_HINT}")
    return path


def new_session(threads: int = 1) -> Any:
    """A fresh onnxruntime session on the model, CPU only, ``threads`` per call."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    # Spinning idle threads would steal the CPU the web server and other workers need.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3  # errors only: onnxruntime's notices go to stderr
    return onnxruntime.InferenceSession(
        str(model_path()), options, providers=["CPUExecutionProvider"]
    )


def session() -> Any:
    """This process's shared session, loaded on first use."""
    global _session
    if _session is None:
        with _loading:  # two workers starting together load it once
            if _session is None:
                _session = new_session()
    return _session


def prepare(data: bytes) -> tuple[np.ndarray, float, tuple[int, int]]:
    """The model's input for ``data``: a 1×3×320×320 blob, the scale back, the upright size."""
    image = Image.open(io.BytesIO(data))
    width, height = image.size
    if image.getexif().get(0x0112) in (5, 6, 7, 8):  # rotated a quarter turn by its EXIF
        width, height = height, width
    image.draft("RGB", (SIZE, SIZE))  # JPEG: decode at 1/2, 1/4 … scale, never below SIZE
    image = ImageOps.exif_transpose(image).convert("RGB")
    scale = max(width, height) / SIZE
    target = (max(1, round(width / scale)), max(1, round(height / scale)))
    pixels = np.asarray(image.resize(target, Image.Resampling.BILINEAR))
    square = np.zeros((SIZE, SIZE, 3), np.uint8)  # black padding, bottom and right, as NudeNet
    square[: target[1], : target[0]] = pixels
    blob = square.transpose(2, 0, 1)[np.newaxis].astype(np.float32) / 255.0
    return blob, scale, (width, height)


def detect(data: bytes, model: Any = None) -> tuple[list[dict[str, Any]], tuple[int, int]]:
    """Every detection in the image: ``{"class", "score", "box": [x, y, w, h]}``, and its size."""
    model = model or session()
    blob, scale, size = prepare(data)
    output = model.run(None, {model.get_inputs()[0].name: blob})[0]
    return detections(output, scale, size), size


def detections(output: np.ndarray, scale: float, size: tuple[int, int]) -> list[dict[str, Any]]:
    """The model's raw output (1×22×N) as detections in the upright image's pixels."""
    rows = np.squeeze(output, 0).T  # N × (cx, cy, w, h, 18 class scores)
    scores = rows[:, 4:].max(axis=1)
    rows, scores = rows[scores >= CANDIDATE_SCORE], scores[scores >= CANDIDATE_SCORE]
    classes = rows[:, 4:].argmax(axis=1)
    width, height = size
    x = np.clip((rows[:, 0] - rows[:, 2] / 2) * scale, 0, width)
    y = np.clip((rows[:, 1] - rows[:, 3] / 2) * scale, 0, height)
    w = np.minimum(rows[:, 2] * scale, width - x)
    h = np.minimum(rows[:, 3] * scale, height - y)
    boxes = np.stack([x, y, w, h], axis=1)
    return [
        {
            "class": CLASSES[int(classes[i])],
            "score": float(scores[i]),
            "box": [int(v) for v in boxes[i]],
        }
        for i in _suppressed(boxes, scores)
    ]


def _suppressed(boxes: np.ndarray, scores: np.ndarray) -> list[int]:
    """Greedy non-maximum suppression over all classes, as OpenCV's ``NMSBoxes``."""
    order = [i for i in np.argsort(-scores, kind="stable") if scores[i] > KEEP_SCORE]
    right, bottom = boxes[:, 0] + boxes[:, 2], boxes[:, 1] + boxes[:, 3]
    areas = boxes[:, 2] * boxes[:, 3]
    kept: list[int] = []
    for i in order:
        if kept:
            k = np.array(kept)
            overlap_w = np.minimum(right[i], right[k]) - np.maximum(boxes[i, 0], boxes[k, 0])
            overlap_h = np.minimum(bottom[i], bottom[k]) - np.maximum(boxes[i, 1], boxes[k, 1])
            inter = np.clip(overlap_w, 0, None) * np.clip(overlap_h, 0, None)
            total = areas[i] + areas[k]
            # OpenCV counts two empty boxes as the same box (overlap 1), so do we.
            same = (total <= 0) | (inter > OVERLAP * np.where(total > 0, total - inter, 1))
            if np.any(same):
                continue
        kept.append(int(i))
    return kept
