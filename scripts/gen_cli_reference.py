"""Write docs/reference/cli.md from the click commands (run: `make cli-reference`)."""

from pathlib import Path

from vsr_pipeline.cli import main
from vsr_pipeline.cli.help import markdown_reference

TARGET = Path(__file__).resolve().parents[1] / "docs" / "reference" / "cli.md"

if __name__ == "__main__":
    TARGET.parent.mkdir(parents=True, exist_ok=True)
    TARGET.write_text(markdown_reference(main))
    print(f"wrote {TARGET}")
