"""Prompt template sets used by the papers, in one place.

A class name becomes text through every template of a set; the embeddings are L2-normalised,
averaged and re-normalised (``FrozenEncoder.embed_text``).

* ``fusioner`` - the 32 templates of Fusioner's official text encoder (``template_list`` in its
  ``model/text_encoder.py``; class names are fed raw).
* ``vild`` - the 14 ViLD templates (SimBaseline's ``--prompt vild``, FC-CLIP's ``VILD_PROMPT``).
* ``imagenet`` - CLIP's 80 ImageNet templates, as shipped by open_clip.
* ``photo`` - the single template ``"a photo of a {}."``.
* ``sculpture`` - zsseg's single predefined prompt ``"a sculpture of a {}."`` (the default of its
  configs: the one ImageNet template the paper's search kept, Sec. 4.2).
"""

from __future__ import annotations

FUSIONER = (
    "a bad photo of the {}.",
    "a photo of the large {}.",
    "a photo of the small {}.",
    "a cropped photo of a {}.",
    "This is a photo of a {}",
    "This is a photo of a small {}",
    "This is a photo of a medium {}",
    "This is a photo of a large {}",
    "This is a masked photo of a {}",
    "This is a masked photo of a small {}",
    "This is a masked photo of a medium {}",
    "This is a masked photo of a large {}",
    "This is a cropped photo of a {}",
    "This is a cropped photo of a small {}",
    "This is a cropped photo of a medium {}",
    "This is a cropped photo of a large {}",
    "A photo of a {} in the scene",
    "a bad photo of the {} in the scene",
    "a photo of the large {} in the scene",
    "a photo of the small {} in the scene",
    "a cropped photo of a {} in the scene",
    "a photo of a masked {} in the scene",
    "There is a {} in the scene",
    "There is the {} in the scene",
    "This is a {} in the scene",
    "This is the {} in the scene",
    "This is one {} in the scene",
    "There is a masked {} in the scene",
    "There is the masked {} in the scene",
    "This is a masked {} in the scene",
    "This is the masked {} in the scene",
    "This is one masked {} in the scene",
)

VILD = (
    "a photo of a {}.",
    "This is a photo of a {}",
    "There is a {} in the scene",
    "There is the {} in the scene",
    "a photo of a {} in the scene",
    "a photo of a small {}.",
    "a photo of a medium {}.",
    "a photo of a large {}.",
    "This is a photo of a small {}.",
    "This is a photo of a medium {}.",
    "This is a photo of a large {}.",
    "There is a small {} in the scene.",
    "There is a medium {} in the scene.",
    "There is a large {} in the scene.",
)

PHOTO = ("a photo of a {}.",)
SCULPTURE = ("a sculpture of a {}.",)


def _imagenet() -> tuple[str, ...]:
    from open_clip.zero_shot_metadata import OPENAI_IMAGENET_TEMPLATES

    return tuple(t("{}") for t in OPENAI_IMAGENET_TEMPLATES)


def get(name_or_templates) -> tuple[str, ...]:
    """A template set by name (``fusioner``, ``vild``, ``imagenet``, ``photo``) or an explicit list."""
    if not isinstance(name_or_templates, str):
        templates = tuple(name_or_templates)
        bad = [t for t in templates if t.count("{}") != 1]
        if not templates or bad:
            raise ValueError(f"templates need exactly one '{{}}' each; bad: {bad or 'empty list'}")
        return templates
    sets = {"fusioner": FUSIONER, "vild": VILD, "photo": PHOTO, "sculpture": SCULPTURE}
    if name_or_templates == "imagenet":
        return _imagenet()
    if name_or_templates not in sets:
        raise ValueError(f"unknown template set {name_or_templates!r}; known: {', '.join(NAMES)}")
    return sets[name_or_templates]


NAMES = ("fusioner", "vild", "imagenet", "photo", "sculpture")
