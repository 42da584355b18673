"""gateway/README.md's settings table is generated from the settings classes and cannot go stale."""

from gateway.settings_doc import README, SETTINGS_CLASSES, render, table


def test_the_readme_table_is_what_the_classes_generate():
    text = README.read_text()
    assert render(text) == text, "run `python -m gateway.settings_doc` and commit gateway/README.md"


def test_every_setting_has_a_row_and_a_description():
    rows = table().splitlines()[2:]
    assert len(rows) == sum(len(cls.model_fields) for cls in SETTINGS_CLASSES)
    missing = [name for cls in SETTINGS_CLASSES for name, info in cls.model_fields.items() if not info.description]
    assert not missing, f"settings without a description: {missing}"
    assert any("`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`" in row for row in rows), "aliases are listed"
