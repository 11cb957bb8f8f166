"""Help that reads well: options grouped in sections, and the Markdown CLI reference built from click.

A command made with ``cls=SectionedCommand`` and ``sections={"Input/output": ["start", ...], ...}``
lists its options under those headings in ``--help``; options not named in any section go
under "Other options". :func:`markdown_reference` renders every command of the group the
same way for docs/reference/cli.md (``make cli-reference`` writes it; a test fails when
the file and the code disagree).
"""

from __future__ import annotations

import inspect

import click


class SectionedCommand(click.Command):
    """A click command whose ``--help`` lists options in named sections."""

    def __init__(self, *args, sections: dict[str, list[str]] | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.sections = sections or {}

    def grouped_params(self, ctx: click.Context) -> list[tuple[str, list[click.Parameter]]]:
        """[(section title, its options)] in the declared order, then the options not placed."""
        help_option = self.get_help_option(ctx)
        options = [p for p in self.get_params(ctx) if isinstance(p, click.Option) and p is not help_option]
        by_name = {p.name: p for p in options}
        placed: set[str] = set()
        groups = []
        for title, names in self.sections.items():
            params = [by_name[n] for n in names if n in by_name]
            placed.update(p.name for p in params)
            if params:
                groups.append((title, params))
        if help_option is not None and groups:  # --help closes the last section
            groups[-1][1].append(help_option)
        rest = [p for p in options if p.name not in placed]
        if rest:
            groups.append(("Other options" if groups else "Options", rest))
        return groups

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        for title, params in self.grouped_params(ctx):
            rows = [r for r in (p.get_help_record(ctx) for p in params) if r is not None]
            if rows:
                with formatter.section(title):
                    formatter.write_dl(rows)


def _options_markdown(ctx: click.Context, command: click.Command) -> list[str]:
    groups = (
        command.grouped_params(ctx) if isinstance(command, SectionedCommand)
        else [("Options", [p for p in command.get_params(ctx) if isinstance(p, click.Option)])]
    )
    lines: list[str] = []
    for title, params in groups:
        lines += [f"**{title}**", ""]
        for p in params:
            record = p.get_help_record(ctx)
            if record is None:
                continue
            flags, text = record
            lines.append(f"- `{flags}`: {' '.join(text.split())}")
        lines.append("")
    return lines


def markdown_reference(group: click.Group, prog: str = "vsrpipe") -> str:
    """The Markdown reference of every command of ``group``: usage, description and options by section."""
    names = ["-h", "--help"]
    root = click.Context(group, info_name=prog, help_option_names=names)
    lines = [
        "# Command-line reference",
        "",
        "Generated from the code by `make cli-reference` (`scripts/gen_cli_reference.py`); a test",
        "fails when this page and `vsrpipe --help` disagree. Run `vsrpipe COMMAND --help` for the same text.",
        "",
        f"```\n{group.get_usage(root)}\n```",
        "",
        *_options_markdown(root, group),
    ]
    for name in group.list_commands(root):
        command = group.get_command(root, name)
        ctx = click.Context(command, info_name=name, parent=root, help_option_names=names)
        lines += [f"## `{prog} {name}`", "", f"```\n{command.get_usage(ctx)}\n```", ""]
        help_text = inspect.cleandoc(command.help or "").replace("\b\n", "")
        lines += [help_text, ""]
        lines += _options_markdown(ctx, command)
        if command.epilog:
            lines += [command.epilog.strip(), ""]
    return "\n".join(lines).rstrip() + "\n"
