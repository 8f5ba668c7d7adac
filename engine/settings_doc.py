"""docs/CONFIGURATION.md is generated from the settings table; a test keeps them in step.

    .venv/bin/python -m engine.settings_doc > docs/CONFIGURATION.md
"""

from __future__ import annotations

from engine.settings import SETTINGS


def render() -> str:
    lines = [
        "# Configuration",
        "",
        "Every setting is a command-line flag, an environment variable or its default, in that order.",
        "This page is generated from `engine/settings.py` (`python -m engine.settings_doc`).",
        "",
        "| setting | flag | environment | default | meaning |",
        "|---|---|---|---|---|",
    ]
    for s in SETTINGS:
        default = f"`{s.default}`" if s.default else "(empty)"
        lines.append(f"| {s.name} | `{s.flag}` | `{s.env}` | {default} | {s.help} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(render(), end="")
