"""NudeNet on this server: the real model from the nudenet wheel, on synthetic images only.

No real nudity ever enters the suite: blank and drawn pictures must load, run and give a
well-formed answer, and a blank picture must never flag. Fidelity to NudeNet's own pre- and
post-processing is checked against the package's functions on the same inputs.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image

from app.services.pipeline import latest_results
from plugins.nudenet import NudeNetScanner, detector
from tests.api_helpers import loopback_only, make_source
from tests.fakes import raw_record, send_item, switch_on
from tests.imagegen import encode, scene
from tests.pipeline_helpers import item_state, results, retry_until_settled

ROOT = Path(__file__).resolve().parent.parent


def blank(colour: str = "white", size: tuple[int, int] = (1024, 768)) -> bytes:
    return encode(Image.new("RGB", size, colour), "JPEG", quality=90)


def test_the_model_ships_in_the_wheel_and_runs_without_the_network() -> None:
    import nudenet

    path = detector.model_path()
    assert path.parent == Path(nudenet.__file__).parent and path.stat().st_size > 10_000_000
    with loopback_only() as escaped:
        fresh = detector.new_session()
        found, size = detector.detect(blank(), fresh)
    assert escaped == [] and found == [] and size == (1024, 768)
    assert [p for p in fresh.get_providers()] == ["CPUExecutionProvider"]


def test_the_model_loads_once_per_process_whatever_the_threads() -> None:
    sessions: list[Any] = []
    threads = [threading.Thread(target=lambda: sessions.append(detector.session())) for _ in "ab"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({id(s) for s in sessions}) == 1 and sessions[0] is detector.session()


def test_threads_sharing_the_model_get_the_same_answers_as_one_thread_alone() -> None:
    images = [encode(scene(640, 480, seed=seed), "JPEG") for seed in range(6)]
    alone = [detector.detect(image) for image in images]
    together: dict[int, Any] = {}

    def work(index: int) -> None:
        together[index] = detector.detect(images[index])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(images))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [together[i] for i in range(len(images))] == alone


@pytest.mark.parametrize("picture", ["white", "black", "grey-png", "scene", "tiny", "greyscale"])
def test_synthetic_pictures_give_a_well_formed_answer_and_blank_never_flags(picture: str) -> None:
    data = {
        "white": blank("white"),
        "black": blank("black", (640, 960)),
        "grey-png": encode(Image.new("RGBA", (300, 200), (128, 128, 128, 255)), "PNG"),
        "scene": encode(scene(800, 600, seed=11), "JPEG"),
        "tiny": encode(Image.new("RGB", (3, 2), "white"), "PNG"),
        "greyscale": encode(Image.new("L", (500, 400), 200), "JPEG"),
    }[picture]
    scanner = NudeNetScanner()
    ctx = scanner.test_context({"thresholds": scanner.settings[0].default})
    ctx._data = data
    outcome = scanner.scan(ctx)
    assert outcome.verdict in ("clear", "flag")
    width, height = outcome.raw["image_size"]
    for found in outcome.raw["detections"]:
        assert found["class"] in detector.CLASSES and 0.25 < found["score"] <= 1.0
        x, y, w, h = found["box"]
        assert 0 <= x <= width and 0 <= y <= height and x + w <= width and y + h <= height
    for label in outcome.labels:
        assert label["name"] in detector.CLASSES and 0.0 <= label["score"] <= 1.0
    if picture in ("white", "black", "grey-png", "tiny", "greyscale"):
        assert (outcome.verdict, outcome.labels, outcome.raw["detections"]) == ("clear", [], [])


def test_exif_orientation_is_respected() -> None:
    picture = Image.new("RGB", (400, 200), "black")
    picture.paste((255, 0, 0), (0, 0, 200, 200))  # red on the left as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to view": the red half ends up on top
    data = encode(picture, "JPEG", exif=exif.tobytes())
    blob, scale, size = detector.prepare(data)
    assert size == (200, 400) and scale == 400 / detector.SIZE
    top, bottom = blob[0, :, 40, 60], blob[0, :, 240, 60]  # the upright picture is 160×320
    assert top[0] > 0.9 and top[1] < 0.1 and bottom.max() < 0.1


def test_preparation_matches_nudenets_own_but_in_the_rgb_order_the_model_was_trained_on() -> None:
    from nudenet import nudenet as upstream

    picture = scene(320, 240, seed=5)  # no resizing: the two must agree pixel for pixel
    ours, scale, size = detector.prepare(encode(picture, "PNG"))
    bgr = np.ascontiguousarray(np.asarray(picture)[:, :, ::-1])  # as cv2.imdecode gives it
    theirs = upstream._read_image(bgr, 320)[0]
    assert (scale, size) == (1.0, (320, 240))
    assert np.abs(ours - theirs[:, ::-1]).max() < 1e-6  # NudeNet 3.4.2 passes BGR (issue #203)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_detections_match_nudenets_post_processing(seed: int) -> None:
    from nudenet import nudenet as upstream

    rng = np.random.RandomState(seed)
    output = np.zeros((1, 22, 2100), np.float32)
    output[0, 0:2] = rng.uniform(0, 320, (2, 2100))
    output[0, 2:4] = rng.uniform(5, 120, (2, 2100))
    output[0, 4:] = rng.uniform(0, 0.3, (18, 2100)) ** 2
    chosen = rng.choice(2100, 60, replace=False)
    output[0, 4 + rng.randint(0, 18, 60), chosen] = rng.uniform(0.2, 0.95, 60)
    ours = detector.detections(output, 1024 / 320, (1024, 768))
    theirs = upstream._postprocess([output], 0, 256, 1, 1, 1024, 768, 320, 320)
    assert len(ours) > 10
    assert [(d["class"], d["box"]) for d in ours] == [(d["class"], d["box"]) for d in theirs]
    assert getattr(upstream, "__labels") == list(detector.CLASSES)


def test_covered_classes_do_not_flag_by_default_and_thresholds_are_checked() -> None:
    scanner = NudeNetScanner()
    defaults = scanner.thresholds({"thresholds": scanner.settings[0].default})
    assert set(defaults) == {
        "female_breast_exposed", "female_genitalia_exposed", "male_genitalia_exposed",
        "buttocks_exposed", "anus_exposed",
    }  # fmt: skip
    refused = scanner.test_connection({"thresholds": "FEMALE_BREST_EXPOSED=0.5"})
    assert not refused.ok and "'FEMALE_BREST_EXPOSED' is neither a label" in refused.message
    works = scanner.test_connection({"thresholds": "adult_nudity=0.7"})
    assert works.ok and works.message.startswith("NudeNet 3.4.2 with onnxruntime")


def test_the_pipeline_runs_it_in_the_worker_and_a_blank_image_is_cleared(
    app: Flask, client: FlaskClient
) -> None:
    token = make_source(app)[1]
    switch_on(app, "nudenet", {"thresholds": "adult_nudity=0.01"})  # the most eager setting
    item_id = send_item(client, token, "n-1", blank())
    result = results(app, item_id)["nudenet"]
    assert (result["status"], result["verdict"], result["labels"]) == ("done", "clear", [])
    assert raw_record(app, item_id, "nudenet") == {
        "model": "320n.onnx",
        "image_size": [1024, 768],
        "detections": [],
    }
    assert item_state(app, item_id)[0] == "cleared"
    with app.app_context():
        from app.services.plugin_settings import enabled_scanners

        assert "nudenet" not in [s.name for s, _ in enabled_scanners(fast_only=True)]
        assert [r.scanner for r in latest_results(item_id)] == ["nudenet"]


def test_without_the_extra_scanning_says_how_to_install_it_and_is_not_retried(
    app: Flask, client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = make_source(app)[1]
    switch_on(app, "nudenet", {})
    monkeypatch.setattr(detector, "_session", None)  # as in a process that never loaded it
    monkeypatch.setattr(detector, "find_spec", lambda name: None)  # as if not installed
    item_id = send_item(client, token, "n-2", blank())

    result = results(app, item_id)["nudenet"]
    assert (result["status"], result["verdict"], result["attempts"]) == ("done", "error", 1)
    raw = raw_record(app, item_id, "nudenet")
    assert raw["error"] == (
        "NudeNet is not installed on this server: pip install -r requirements-nudenet.txt"
    )
    assert raw["error_kind"] == "not_installed"
    assert retry_until_settled(app) == 0
    assert item_state(app, item_id)[:2] == ("queued", "scanner failed: nudenet")


def test_without_the_extra_the_admin_list_and_connection_test_say_so() -> None:
    # A fresh interpreter where nudenet cannot be found, as on a server without the extra.
    code = """
import importlib.abc, sys
class Hide(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("nudenet", "onnxruntime"):
            raise ModuleNotFoundError(name)
sys.meta_path.insert(0, Hide())
from plugins.nudenet import NudeNetScanner as S
print(S.version); print(S.description); print(S().test_connection({"thresholds": ""}))
"""
    shown = subprocess.run(
        [sys.executable, "-W", "error", "-c", code],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=True,
    ).stdout  # fmt: skip
    assert shown.splitlines()[:2] == [
        "not installed",
        "Not installed on this server: pip install -r requirements-nudenet.txt, then restart.",
    ]
    assert "ok=False" in shown and "pip install -r requirements-nudenet.txt" in shown


def test_starting_the_app_loads_neither_onnxruntime_nor_opencv() -> None:
    code = (
        "import sys; import plugins.nudenet as n; "
        "print(n.NudeNetScanner.version, 'onnxruntime' in sys.modules, 'cv2' in sys.modules)"
    )
    shown = subprocess.run(
        [sys.executable, "-W", "error", "-c", code],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=True,
    ).stdout  # fmt: skip
    assert shown.split() == ["3.4.2", "False", "False"]  # idle memory stays small


def test_an_image_pillow_cannot_read_is_an_error_verdict() -> None:
    scanner = NudeNetScanner()
    ctx = scanner.test_context({"thresholds": ""})
    ctx._data = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
    outcome = scanner.scan(ctx)
    assert outcome.verdict == "error"
    assert outcome.raw["error"].startswith("NudeNet could not read this image:")
