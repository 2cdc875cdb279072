"""NudeNet, on this server: finds exposed and covered body parts without sending the image anywhere.

An optional extra (``pip install -r requirements-nudenet.txt``: nudenet, which ships its model,
and onnxruntime). Without it the scanner is still listed on the admin page, says it is not
installed and how to install it, and a scan with it ends at once with an ``error`` verdict that
says so (no retries: installing is the fix). It is not ``fast``: the model runs in the worker,
never in a web request, so the synchronous upload check never waits for it.

NudeNet's licence: the wheel ships the AGPL-3.0 text (its metadata says MIT) and the model is
built on Ultralytics YOLOv8 (AGPL-3.0). docs/classifiers.md says what that means for operators.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib.metadata import PackageNotFoundError, version
from time import perf_counter
from typing import Any

from app.plugins import ConnectionResult, ScanContext, Scanner, hookimpl
from app.services import labels as vocabulary
from app.services.classifiers import (
    ClassifierScanner,
    Refusal,
    parse_thresholds,
    thresholds_setting,
)
from plugins.nudenet import detector

DEFAULT_THRESHOLDS = """\
FEMALE_BREAST_EXPOSED=0.6
FEMALE_GENITALIA_EXPOSED=0.5
MALE_GENITALIA_EXPOSED=0.5
BUTTOCKS_EXPOSED=0.6
ANUS_EXPOSED=0.5
"""


def installed_version(package: str) -> str | None:
    """The installed version of ``package``, or None."""
    try:
        return version(package)
    except PackageNotFoundError:
        return None


def _installed() -> bool:
    try:
        detector.model_path()
    except detector.NotInstalled:
        return False
    return True


INSTALLED = _installed()  # checked once at start-up, without importing onnxruntime


class NudeNetScanner(ClassifierScanner):
    """Labels each detected body part class with its best score; thresholds decide the flag."""

    name = "nudenet"
    service = "NudeNet"
    title = "NudeNet (on this server)"
    version = (installed_version("nudenet") if INSTALLED else None) or "not installed"
    description = (
        "Detects exposed and covered body parts with NudeNet's model, on this server: the image "
        "never leaves it. About 20 ms of CPU per image, in the worker."
        if INSTALLED
        else f"Not installed on this server: {detector.INSTALL_HINT}, then restart."
    )
    local = True  # no network: the round job runs it in the worker, after the hash banks
    fast = False  # never in a web request: not used by the synchronous upload check
    timeout = 30.0
    settings = (
        thresholds_setting(
            DEFAULT_THRESHOLDS,
            "Class names: FEMALE_BREAST_EXPOSED, FEMALE_GENITALIA_EXPOSED, "
            "MALE_GENITALIA_EXPOSED, BUTTOCKS_EXPOSED, ANUS_EXPOSED, the *_COVERED classes, "
            "FACE_FEMALE … (docs/classifiers.md). Covered classes do not flag by default.",
        ),
    )

    def classify(self, ctx: ScanContext) -> tuple[list[dict[str, Any]], Any]:
        """Run the model on the image: one label per class found, with its best score."""
        try:
            model = detector.session()  # before reading the image: nothing to do without it
        except detector.NotInstalled as missing:
            raise Refusal(str(missing), kind="not_installed") from None
        try:
            found, size = detector.detect(ctx.data(), model)
        except OSError as error:  # Pillow cannot read it: no retry will change that
            raise Refusal(f"NudeNet could not read this image: {error}") from None
        best: dict[str, float] = {}
        for detection in found:
            best[detection["class"]] = max(best.get(detection["class"], 0.0), detection["score"])
        labels = [vocabulary.make_label(self.name, cls, score) for cls, score in best.items()]
        raw = {"model": detector.MODEL_FILE, "image_size": list(size), "detections": found}
        return labels, raw

    def thresholds(self, settings: Mapping[str, Any]) -> dict[str, float]:
        """Thresholds by NudeNet class (any of the model's 18) or by category."""
        return parse_thresholds(settings.get("thresholds"), detector.CLASSES)

    def test_connection(self, settings: Mapping[str, Any]) -> ConnectionResult:
        """Say whether NudeNet is installed; it is not loaded here (that is the worker's job)."""
        try:
            self.thresholds(settings)
            path = detector.model_path()
        except (ValueError, detector.NotInstalled) as problem:
            return ConnectionResult(False, str(problem))
        started = perf_counter()
        path.read_bytes()  # readable by this user: the worker will load it the same way
        return ConnectionResult(
            True,
            f"NudeNet {installed_version('nudenet')} with onnxruntime "
            f"{installed_version('onnxruntime')} is installed; its model ({path.name}, "
            f"{path.stat().st_size / 1e6:.1f} MB, read in {(perf_counter() - started) * 1000:.0f} "
            "ms) loads in the worker on the first scan.",
        )


@hookimpl
def register_scanners() -> list[type[Scanner]]:
    """The NudeNet scanner (listed even when the extra is not installed)."""
    return [NudeNetScanner]
