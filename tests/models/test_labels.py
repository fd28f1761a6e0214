import pytest

from models.labels import NIH_LABELS, NO_FINDING, match_label, suggest_label


def test_fourteen_names_in_seed_order_and_spelling() -> None:
    assert NIH_LABELS == (
        "Atelectasis", "Cardiomegaly", "Effusion", "Infiltration", "Mass", "Nodule", "Pneumonia",
        "Pneumothorax", "Consolidation", "Edema", "Emphysema", "Fibrosis", "Pleural_Thickening", "Hernia",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("mass", "Mass"),
        ("MASS", "Mass"),
        (" Mass ", "Mass"),
        ("Pleural Thickening", "Pleural_Thickening"),
        ("pleural_thickening", "Pleural_Thickening"),
        ("pleural  thickening", "Pleural_Thickening"),
        ("Pleural_Thickening", "Pleural_Thickening"),
        ("Masses", None),
        ("Pneumonnia", None),
        ("", None),
        ("all", None),
    ],
)
def test_match_label_ignores_case_spaces_and_underscores(typed: str, expected: str | None) -> None:
    assert match_label(typed) == expected


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("Pneumonnia", "Pneumonia"),
        ("Efusion", "Effusion"),
        ("pleural thickenin", "Pleural_Thickening"),
        ("mass", "Mass"),
        ("Fracture", None),
        ("Lung Opacity", None),
    ],
)
def test_suggest_label_takes_near_misses_only(typed: str, expected: str | None) -> None:
    assert suggest_label(typed) == expected


def test_suggest_label_searches_the_names_it_is_given() -> None:
    assert suggest_label("no finding", (*NIH_LABELS, NO_FINDING)) == NO_FINDING
    assert suggest_label("no finding") is None
