"""Documentation that is generated must match what generates it."""

from pathlib import Path

from engine.settings_doc import render

ROOT = Path(__file__).resolve().parent.parent


def test_configuration_reference_matches_the_settings_table() -> None:
    assert (ROOT / "docs" / "CONFIGURATION.md").read_text() == render(), (
        "docs/CONFIGURATION.md is stale: run .venv/bin/python -m engine.settings_doc > docs/CONFIGURATION.md"
    )


def test_readme_links_the_architecture() -> None:
    assert "docs/ARCHITECTURE.md" in (ROOT / "README.md").read_text()
