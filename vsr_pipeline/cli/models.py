"""``vsrpipe models``: list the registered models (reads the entry points, never builds a model)."""

from __future__ import annotations

import click


@click.command()
def models() -> None:
    """List the registered models (name, native scale, frames, package)."""
    from vsr_pipeline.models.registry import available_models

    found = available_models()
    rows = [(name, f"x{r.entry.scale}" + (" (any)" if r.entry.any_scale else ""), str(r.entry.frames), r.package, r.entry.description) for name, r in found.items()]
    headers = ("name", "scale", "frames", "package", "description")
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    click.echo("  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip())
    for row in rows:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
