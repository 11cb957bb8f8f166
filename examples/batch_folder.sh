#!/usr/bin/env bash
# Upscale every video in a folder with `vsrpipe batch`, then rerun it: the rerun skips
# the files that are done (the manifest in OUT_DIR/.vsrpipe remembers them).
#
# Run from the repository root:
#
#   bash examples/batch_folder.sh                       # quick: two copies of the sample clip, 0.4 s each, bicubic x2
#   bash examples/batch_folder.sh IN_DIR OUT_DIR        # your folder, the same quick settings
#   FULL=1 bash examples/batch_folder.sh IN_DIR OUT_DIR # the full version: whole files, vsrnet-x4, x4
#
# The quick run takes about 10 s on a 2-core CPU. Without IN_DIR it builds out/batch_in/
# holding two copies of examples/sample.mp4 (one in a sub-folder) and writes out/batch_out/.
# See docs/batch.md for segments, resuming after a crash, parallel jobs and Ray.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
VSRPIPE="${VSRPIPE:-$here/../.venv/bin/vsrpipe}"
[ -x "$VSRPIPE" ] || VSRPIPE=vsrpipe                     # else the one on PATH

in_dir="${1:-out/batch_in}"
out_dir="${2:-out/batch_out}"
if [ $# -eq 0 ]; then                                    # demo input: the sample clip twice
    mkdir -p "$in_dir/more"
    cp "$here/sample.mp4" "$in_dir/first.mp4"
    cp "$here/sample.mp4" "$in_dir/more/second.mp4"
fi

if [ "${FULL:-0}" = 1 ]; then
    settings=(--model vsrnet-x4 --scale 4)              # the defaults, whole files
else
    settings=(--model bicubic --scale 2 --duration 0.4)  # fast: the first 0.4 s, bicubic interpolation
fi

# --recursive: descend into sub-folders; the output tree mirrors the input tree.
# --report: the batch report (one row per file) as JSON.
mkdir -p "$out_dir"
"$VSRPIPE" batch "$in_dir" "$out_dir" --recursive "${settings[@]}" --report "$out_dir/batch.json"

# The same command again: every finished file is skipped ("unchanged since it was done").
"$VSRPIPE" batch "$in_dir" "$out_dir" --recursive "${settings[@]}" --quiet
echo "outputs in $out_dir; report: $out_dir/batch.json"
