from models.labels import PATHOLOGIES


def test_fourteen_names_in_seed_order_and_spelling() -> None:
    assert PATHOLOGIES == (
        "Atelectasis", "Cardiomegaly", "Effusion", "Infiltration", "Mass", "Nodule", "Pneumonia",
        "Pneumothorax", "Consolidation", "Edema", "Emphysema", "Fibrosis", "Pleural_Thickening", "Hernia",
    )  # fmt: skip
