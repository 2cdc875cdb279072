"""The label vocabulary: our policy categories, and which of them each classifier's classes mean.

Every classifier names things its own way (Hive's ``yes_nazi``, Rekognition's ``Hate Symbols``,
Sightengine's ``offensive.nazi``). Each scan label keeps the vendor's raw name and adds our
``category``, so a rule can say "any scanner says violence_gore ≥ 0.8" without knowing which
vendor said it. A label is ``{"name": raw_name, "score": 0..1, "category": ours or None}``.

The categories are the review's policy categories (``app.services.policy``), so a label and a
moderator's decision speak the same words, plus four that only describe what a classifier saw
(``suggestive``, ``weapons``, ``drugs``, ``minors_present``). docs/classifiers.md has the table.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

CATEGORIES: dict[str, str] = {
    "csam": "Child sexual abuse material (hash banks and specialised services only)",
    "ncii": "Non-consensual intimate imagery (hash banks only)",
    "adult_nudity": "Exposed genitals, breasts, buttocks; explicit adult content, sex toys",
    "sexual_activity": "Sexual acts, real or drawn",
    "suggestive": "Underwear, swimwear, partial or covered nudity, kissing, sexual posing",
    "violence_gore": "Blood, injuries, corpses, fights, explosions, crashes",
    "weapons": "Guns and knives shown as weapons",
    "drugs": "Illegal drugs, pills, paraphernalia, tobacco and smoking",
    "hate": "Hate symbols: Nazi, KKK, white-supremacist and Confederate imagery",
    "self_harm": "Self-harm, hanging, nooses, emaciated bodies",
    "minors_present": "A child appears (descriptive: not a finding of abuse)",
    "terrorism": "Terrorist or violent extremist imagery",
    "spam": "QR codes, scams",
    "harassment": "Harassment (no classifier here maps to it; for banks and decisions)",
    "other": "Sensitive but policy-dependent: alcohol, gambling, rude gestures",
}

# Raw class → category, per scanner, written category-first so the table reads like the docs.
# Names are matched case-insensitively; anything not listed has no category (None).
_BY_CATEGORY: dict[str, dict[str, tuple[str, ...]]] = {
    "nudenet": {
        "adult_nudity": (
            "FEMALE_BREAST_EXPOSED", "FEMALE_GENITALIA_EXPOSED", "MALE_GENITALIA_EXPOSED",
            "BUTTOCKS_EXPOSED", "ANUS_EXPOSED",
        ),
        "suggestive": (
            "FEMALE_BREAST_COVERED", "FEMALE_GENITALIA_COVERED", "BUTTOCKS_COVERED",
            "ANUS_COVERED",
        ),
    },
    "hive": {
        "adult_nudity": (
            "general_nsfw", "yes_realistic_nsfw", "yes_female_nudity", "yes_male_nudity",
            "yes_genitals", "yes_breast", "yes_butt", "yes_sex_toy", "animal_genitalia_only",
            "animated_animal_genitalia",
        ),
        "sexual_activity": ("yes_sexual_activity", "animal_genitalia_and_human"),
        "suggestive": (
            "general_suggestive", "yes_sexual_intent", "yes_undressed", "yes_bulge", "kissing",
            "licking", "yes_female_underwear", "yes_male_underwear", "yes_bra", "yes_panties",
            "yes_negligee", "yes_cleavage", "yes_female_swimwear", "yes_male_shirtless",
            "yes_bodysuit", "yes_miniskirt", "yes_sports_bra", "yes_sportswear_bottoms",
        ),
        "weapons": (
            "gun_in_hand", "gun_not_in_hand", "animated_gun", "knife_in_hand", "knife_not_in_hand",
        ),
        "violence_gore": (
            "very_bloody", "a_little_bloody", "other_blood", "human_corpse", "animated_corpse",
            "yes_fight", "yes_animal_abuse",
        ),
        "self_harm": ("yes_self_harm", "hanging", "noose", "yes_emaciated_body"),
        "drugs": ("yes_pills", "illicit_injectables", "yes_smoking", "yes_marijuana"),
        "hate": ("yes_nazi", "yes_kkk", "yes_confederate"),
        "terrorism": ("yes_terrorist",),
        "minors_present": ("yes_child_present", "yes_child_safety"),
        "spam": ("yes_qr_code",),
        "other": (
            "yes_drinking_alcohol", "yes_alcohol", "animated_alcohol", "yes_gambling",
            "yes_middle_finger",
        ),
    },
    "aws_rekognition": {  # model 7 names, then model 6 names
        "adult_nudity": (
            "Explicit", "Explicit Nudity", "Exposed Male Genitalia", "Exposed Female Genitalia",
            "Exposed Buttocks or Anus", "Exposed Female Nipple", "Sex Toys", "Nudity",
            "Graphic Male Nudity", "Graphic Female Nudity", "Illustrated Explicit Nudity",
            "Adult Toys",
        ),
        "sexual_activity": ("Explicit Sexual Activity", "Sexual Activity"),
        "suggestive": (
            "Non-Explicit Nudity of Intimate parts and Kissing", "Non-Explicit Nudity",
            "Obstructed Intimate Parts", "Kissing on the Lips", "Bare Back", "Exposed Male Nipple",
            "Partially Exposed Buttocks", "Partially Exposed Female Breast", "Implied Nudity",
            "Obstructed Female Nipple", "Obstructed Male Genitalia", "Swimwear or Underwear",
            "Female Swimwear or Underwear", "Male Swimwear or Underwear", "Suggestive",
            "Partial Nudity", "Barechested Male", "Revealing Clothes", "Sexual Situations",
        ),
        "violence_gore": (
            "Violence", "Graphic Violence", "Weapon Violence", "Physical Violence",
            "Blood & Gore", "Explosions and Blasts", "Visually Disturbing",
            "Death and Emaciation", "Corpses", "Crashes", "Air Crash", "Graphic Violence Or Gore",
        ),
        "weapons": ("Weapons",),
        "self_harm": ("Self-Harm", "Self Injury", "Emaciated Bodies", "Hanging"),
        "drugs": (
            "Drugs & Tobacco", "Products", "Drugs & Tobacco Paraphernalia & Use", "Pills",
            "Drug Paraphernalia", "Smoking", "Drugs", "Drug Products", "Drug Use", "Tobacco",
            "Tobacco Products",
        ),
        "hate": ("Hate Symbols", "Nazi Party", "White Supremacy"),
        "terrorism": ("Extremist",),
        "other": (
            "Alcohol", "Alcohol Use", "Alcoholic Beverages", "Drinking", "Gambling",
            "Rude Gestures", "Middle Finger",
        ),
    },
    "google_vision": {
        "adult_nudity": ("adult",),
        "suggestive": ("racy",),
        "violence_gore": ("violence",),
    },
    "azure_content_safety": {
        "adult_nudity": ("Sexual",),
        "violence_gore": ("Violence",),
        "hate": ("Hate",),
        "self_harm": ("SelfHarm",),
    },
    "sightengine": {  # "model.path.to.score", as the plugin flattens the answer
        "sexual_activity": ("nudity.sexual_activity",),
        "adult_nudity": (
            "nudity.sexual_display", "nudity.erotica", "nudity.suggestive_classes.sextoy",
            "nudity.raw",
        ),
        "suggestive": (
            "nudity.very_suggestive", "nudity.suggestive", "nudity.mildly_suggestive",
            "nudity.partial", "nudity.suggestive_classes.bikini",
            "nudity.suggestive_classes.cleavage", "nudity.suggestive_classes.lingerie",
            "nudity.suggestive_classes.male_chest", "nudity.suggestive_classes.male_underwear",
            "nudity.suggestive_classes.miniskirt", "nudity.suggestive_classes.minishort",
            "nudity.suggestive_classes.suggestive_focus",
            "nudity.suggestive_classes.suggestive_pose",
            "nudity.suggestive_classes.swimwear_male",
            "nudity.suggestive_classes.swimwear_one_piece",
            "nudity.suggestive_classes.visibly_undressed",
        ),
        "weapons": ("weapon.classes.firearm", "weapon.classes.knife", "weapon"),
        "violence_gore": (
            "gore.prob", "gore.classes.very_bloody", "gore.classes.slightly_bloody",
            "gore.classes.body_organ", "gore.classes.serious_injury",
            "gore.classes.superficial_injury", "gore.classes.corpse", "gore.classes.skull",
            "gore.classes.unconscious", "violence.prob",
        ),
        "self_harm": ("self-harm.prob",),
        "drugs": ("recreational_drug.prob", "tobacco.prob", "drugs"),
        "hate": (
            "offensive.prob", "offensive.nazi", "offensive.asian_swastika",
            "offensive.confederate", "offensive.supremacist",
        ),
        "terrorism": ("offensive.terrorist",),
        "spam": ("scam.prob", "qr-content.prob"),
        "other": ("offensive.middle_finger", "alcohol.prob", "alcohol", "gambling.prob"),
    },
}  # fmt: skip

VOCABULARY: dict[str, dict[str, str]] = {
    scanner: {raw.casefold(): category for category, names in table.items() for raw in names}
    for scanner, table in _BY_CATEGORY.items()
}


def categorize(scanner_name: str, raw_label: str) -> str | None:
    """Our category for a scanner's raw label, or None when it means nothing to our policies.

    A raw label that already is a category name (a hash bank's ``csam``) is that category.
    """
    folded = raw_label.casefold()
    if folded in CATEGORIES:
        return folded
    return VOCABULARY.get(scanner_name, {}).get(folded)


def make_label(scanner_name: str, raw_label: str, score: float | None) -> dict[str, Any]:
    """A scan label: the raw name, the score (0..1, 4 decimals), and our category."""
    return {
        "name": raw_label,
        "score": None if score is None else round(float(score), 4),
        "category": categorize(scanner_name, raw_label),
    }


def known_labels(scanner_name: str) -> list[str]:
    """The raw labels the vocabulary maps for a scanner, in the table's order."""
    return [raw for names in _BY_CATEGORY.get(scanner_name, {}).values() for raw in names]


def top_categories(labels: Iterable[Mapping[str, Any]]) -> list[tuple[str, float]]:
    """Each category among ``labels`` with its highest score, highest first (ties by name)."""
    best: dict[str, float] = {}
    for label in labels:
        category, score = label.get("category"), label.get("score")
        if category and score is not None:
            best[category] = max(best.get(category, 0.0), float(score))
    return sorted(best.items(), key=lambda pair: (-pair[1], pair[0]))
