"""docs/CONFIGURATION.md is generated from the settings table; a test keeps them in step.

.venv/bin/python -m engine.settings_doc > docs/CONFIGURATION.md
"""

from __future__ import annotations

from engine.settings import CONFIG_ENV, CONFIG_FLAG, SETTINGS


def render() -> str:
    sections = sorted({s.section for s in SETTINGS if s.section})
    lines = [
        "# Configuration",
        "",
        "Every setting is read from, in this order: a command-line flag, an environment variable, the",
        f"config file (`{CONFIG_FLAG} FILE` or `{CONFIG_ENV}=FILE`), its default. The first one that",
        "is set wins, so a flag overrides everything and the file only fills in what flags and the",
        "environment leave unset. This page is generated from `engine/settings.py`",
        "(`python -m engine.settings_doc`); a test checks that it is current.",
        "",
        "## The config file",
        "",
        "A TOML file whose keys are the settings' names. Each setting may be written at the top level",
        "or in its section (the *config file* column: `server.port` is `port` under `[server]`, or the",
        "dotted key itself); both spellings of one setting in one file are an error.",
        "",
        "```toml",
        'data_dir = "/var/lib/imagebuilder"',
        "",
        "[server]",
        'host = "0.0.0.0"',
        "port = 8080",
        "```",
        "",
        "Numbers are TOML integers (`port = 8080`), everything else a string. An unknown key or",
        "section, a key in the wrong section or a value of the wrong type stops the program with the",
        "file, the key and the reason (and the closest setting name for a misspelt one). Relative paths",
        "are relative to the working directory of the process, not to the file.",
        f"Sections: {', '.join(f'`[{s}]`' for s in sections)}. A commented example with every setting:",
        "[deploy/imagebuilder.toml.example](../deploy/imagebuilder.toml.example) (checked against this",
        "table by tests/test_deploy.py).",
        "",
        "`imagebuilder server` exports the settings it resolved to its uvicorn worker processes, and",
        "`imagebuilder up` to the processes it starts, as environment variables.",
        "",
        "## Settings",
        "",
        "| setting | flag | environment | config file | default | meaning |",
        "|---|---|---|---|---|---|",
    ]
    for s in SETTINGS:
        default = f"`{s.default}`" if s.default else "(empty)"
        lines.append(f"| {s.name} | `{s.flag}` | `{s.env}` | `{s.file_key}` | {default} | {s.help} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(render(), end="")
