"""The CLI reference page is the code's own help; enhance/batch help is grouped in sections."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from vsr_pipeline.cli import main
from vsr_pipeline.cli.help import SectionedCommand, markdown_reference

ROOT = Path(__file__).resolve().parents[2]


def test_reference_page_matches_the_code():
    page = (ROOT / "docs" / "reference" / "cli.md").read_text()
    assert page == markdown_reference(main), "docs/reference/cli.md is stale: run `make cli-reference`"


def test_reference_lists_every_command_and_option():
    text = markdown_reference(main)
    ctx = main.make_context("vsrpipe", ["--help"], resilient_parsing=True)
    for name in main.list_commands(ctx):
        command = main.get_command(ctx, name)
        assert f"## `vsrpipe {name}`" in text
        for param in command.params:
            for flag in getattr(param, "opts", []):
                if flag.startswith("--"):
                    assert flag in text, (name, flag)


@pytest.mark.parametrize("name", ["enhance", "batch"])
def test_every_option_has_a_section(name):
    command = main.get_command(None, name)
    assert isinstance(command, SectionedCommand)
    ctx = command.make_context(name, ["--help"], resilient_parsing=True)
    titles = [title for title, _ in command.grouped_params(ctx)]
    assert "Other options" not in titles, "an option was added without a section"
    out = CliRunner().invoke(main, [name, "--help"]).output
    positions = [out.index(f"\n{t}:") for t in titles]
    assert positions == sorted(positions) and "Adaptation:" in out and "Encoding:" in out
    assert out.index("--crf") > out.index("Encoding:") > out.index("--mc-passes") > out.index("Adaptation:")
