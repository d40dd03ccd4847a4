#!/usr/bin/env bash
# AniPortrait numerical parity: upstream's code vs faceshot_aniportrait on the same random weights.
#
# Skips (exit 0, with a message) when the upstream checkout or its environment is absent; see
# tools/aniportrait_parity/README.md for setting them up.  Upstream code is never part of this
# repository: it is imported from the external checkout at run time.
#
# Environment (defaults in brackets):
#   ANIPORTRAIT_UPSTREAM      upstream's repository export     [/work/upstream/AniPortrait]
#   ANIPORTRAIT_UPSTREAM_PY   python of the upstream venv      [/work/upstream/venv/bin/python]
#   ANIPORTRAIT_PARITY_DIR    exchange folder (about 9.4 GB)   [/work/upstream/aniportrait_exchange]
#   ANIPORTRAIT_UPSTREAM_GIT  git dir to read the commit from  [/work/.mirror/Zejun-Yang+AniPortrait/repo]
#   PYTHON                    faceshot's python                 [<repo>/.venv/bin/python]
#   ANIPORTRAIT_PARITY_REUSE=1  skip the upstream half if its results exist already
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
upstream="${ANIPORTRAIT_UPSTREAM:-/work/upstream/AniPortrait}"
upstream_py="${ANIPORTRAIT_UPSTREAM_PY:-/work/upstream/venv/bin/python}"
exchange="${ANIPORTRAIT_PARITY_DIR:-/work/upstream/aniportrait_exchange}"
upstream_git="${ANIPORTRAIT_UPSTREAM_GIT:-/work/.mirror/Zejun-Yang+AniPortrait/repo}"
python="${PYTHON:-$repo/.venv/bin/python}"

if [[ ! -f "$upstream/src/pipelines/pipeline_pose2vid_long.py" ]]; then
    echo "aniportrait parity: SKIPPED - no upstream checkout at $upstream (set ANIPORTRAIT_UPSTREAM; see $here/README.md)"
    exit 0
fi
if [[ ! -x "$upstream_py" ]]; then
    echo "aniportrait parity: SKIPPED - no upstream environment at $upstream_py (set ANIPORTRAIT_UPSTREAM_PY; see $here/README.md)"
    exit 0
fi
if ! "$upstream_py" -c "import torch, diffusers, einops, yaml, cv2, PIL, safetensors" 2>/dev/null; then
    echo "aniportrait parity: SKIPPED - $upstream_py lacks torch/diffusers/einops/pyyaml/opencv/pillow/safetensors (see $here/README.md)"
    exit 0
fi
if ! "$python" -c "import faceshot_aniportrait.checkpoints, faceshot_aniportrait.reference_attention" 2>/dev/null; then
    echo "aniportrait parity: SKIPPED - $python cannot import faceshot_aniportrait (pip install -e plugins/aniportrait)"
    exit 0
fi

commit=""
if [[ -f "$upstream/COMMIT" ]]; then
    commit="$(cat "$upstream/COMMIT")"
elif git -C "$upstream_git" rev-parse HEAD >/dev/null 2>&1; then
    commit="$(git -C "$upstream_git" rev-parse HEAD)"
fi

mkdir -p "$exchange"
start=$(date +%s)
if [[ "${ANIPORTRAIT_PARITY_REUSE:-0}" == "1" && -f "$exchange/outputs.safetensors" ]]; then
    echo "== upstream side: reusing $exchange"
else
    echo "== upstream side ($("$upstream_py" -c 'import torch, diffusers; print("torch", torch.__version__, "diffusers", diffusers.__version__)'))"
    "$upstream_py" "$here/upstream_side.py" --upstream "$upstream" --exchange "$exchange" --commit "$commit"
fi
mid=$(date +%s)
echo "== our side"
status=0
"$python" "$here/our_side.py" --exchange "$exchange" --json "$exchange/parity.json" "$@" || status=$?
end=$(date +%s)
echo "== upstream side $((mid - start)) s, our side $((end - mid)) s"
exit "$status"
