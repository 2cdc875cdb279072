"""The label vocabulary and the thresholds that turn labels into a verdict."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from app.services import labels
from app.services.classifiers import flagging, parse_thresholds
from app.services.policy import DEFAULT_POLICY_CATEGORIES

DOCS = Path(__file__).resolve().parent.parent / "docs" / "classifiers.md"


@pytest.mark.parametrize(
    ("scanner", "raw", "category"),
    [
        ("nudenet", "FEMALE_BREAST_EXPOSED", "adult_nudity"),
        ("nudenet", "female_breast_covered", "suggestive"),  # names match in any case
        ("nudenet", "FACE_FEMALE", None),
        ("hive", "gun_in_hand", "weapons"),
        ("hive", "yes_terrorist", "terrorism"),
        ("hive", "yes_child_present", "minors_present"),
        ("hive", "culinary_knife_in_hand", None),
        ("aws_rekognition", "Exposed Female Genitalia", "adult_nudity"),
        ("aws_rekognition", "Extremist", "terrorism"),
        ("aws_rekognition", "Self-Harm", "self_harm"),
        ("google_vision", "racy", "suggestive"),
        ("google_vision", "spoof", None),
        ("azure_content_safety", "SelfHarm", "self_harm"),
        ("sightengine", "weapon.classes.firearm", "weapons"),
        ("sightengine", "offensive.nazi", "hate"),
        ("hashbank", "csam", "csam"),  # a bank label that is a category stays one
        ("hashbank", "my_own_label", None),
        ("unknown_scanner", "anything", None),
    ],
)
def test_each_services_classes_map_to_our_categories(
    scanner: str, raw: str, category: str | None
) -> None:
    assert labels.categorize(scanner, raw) == category


def test_the_categories_include_every_policy_category_moderators_decide_with() -> None:
    assert set(DEFAULT_POLICY_CATEGORIES) <= set(labels.CATEGORIES)
    for table in labels.VOCABULARY.values():
        assert set(table.values()) <= set(labels.CATEGORIES)


def test_no_raw_name_is_mapped_twice_for_one_scanner() -> None:
    for scanner in labels.VOCABULARY:
        names = [name.casefold() for name in labels.known_labels(scanner)]
        assert len(names) == len(set(names)), scanner


def test_a_label_keeps_the_raw_name_and_adds_the_category() -> None:
    assert labels.make_label("hive", "very_bloody", 0.912345) == {
        "name": "very_bloody",
        "score": 0.9123,
        "category": "violence_gore",
    }


def test_top_categories_take_each_categorys_best_score_highest_first() -> None:
    found = [
        {"name": "a_little_bloody", "score": 0.4, "category": "violence_gore"},
        {"name": "very_bloody", "score": 0.9, "category": "violence_gore"},
        {"name": "gun_in_hand", "score": 0.9, "category": "weapons"},
        {"name": "yes_drawing", "score": 0.99, "category": None},
        {"name": "kissing", "score": None, "category": "suggestive"},
    ]
    assert labels.top_categories(found) == [("violence_gore", 0.9), ("weapons", 0.9)]


def test_thresholds_parse_names_and_categories_and_say_which_line_is_wrong() -> None:
    text = "# our policy\nGun_In_Hand = 0.8\n\nviolence_gore=0.9\nHate Symbols=1\n"
    assert parse_thresholds(text) == {"gun_in_hand": 0.8, "violence_gore": 0.9, "hate symbols": 1}
    for bad, message in [
        ("gun_in_hand", "line 1 ('gun_in_hand'): write name=0.8"),
        ("ok=0.5\ngun_in_hand=1.5", "line 2: '1.5' is not a number from 0 to 1"),
        ("gun_in_hand=high", "line 1: 'high' is not a number"),
        ("gun_in_hnd=0.5", "line 1: 'gun_in_hnd' is neither a label of this scanner"),
    ]:
        with pytest.raises(ValueError, match=re.escape(message)):
            parse_thresholds(bad, [*labels.known_labels("hive"), "ok"])


def test_a_label_flags_at_its_own_threshold_else_at_its_categorys() -> None:
    found = [
        labels.make_label("hive", "gun_in_hand", 0.85),
        labels.make_label("hive", "very_bloody", 0.85),
        labels.make_label("hive", "yes_drawing", 1.0),
    ]
    thresholds = {"gun_in_hand": 0.9, "weapons": 0.5, "violence_gore": 0.85}
    assert flagging(found, thresholds) == ["very_bloody"]  # the class's own 0.9 wins for guns


def test_the_docs_table_lists_every_category_and_every_mapped_class() -> None:
    text = DOCS.read_text(encoding="utf-8")
    for category in labels.CATEGORIES:
        assert f"| `{category}` |" in text, category
    for scanner in labels.VOCABULARY:
        for raw in labels.known_labels(scanner):
            assert f"`{raw}`" in text, (scanner, raw)
