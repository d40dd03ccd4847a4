#!/usr/bin/env bash
# MOFA-Video numerical parity: upstream's code vs faceshot_mofa on the same random weights.
#
# Skips (exit 0, with a message) when the upstream checkout or its environment is absent; see
# tools/mofa_parity/README.md for setting them up.  Upstream code is never part of this
# repository: it is imported from the external checkout at run time.
#
# Environment (defaults in brackets):
#   MOFA_UPSTREAM       upstream's MOFA-Video-Keypoint folder [/work/upstream/MOFA-Video/MOFA-Video-Keypoint]
#   MOFA_UPSTREAM_PY    python of the upstream venv           [/work/upstream/venv/bin/python]
#   MOFA_PARITY_DIR     exchange folder (about 10 GB)         [/work/upstream/exchange]
#   MOFA_UPSTREAM_GIT   git dir to read the upstream commit   [/work/.mirror/MyNiuuu+MOFA-Video/repo]
#   PYTHON              faceshot's python                      [<repo>/.venv/bin/python]
#   MOFA_PARITY_REUSE=1 skip the upstream half if its results exist already
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
upstream="${MOFA_UPSTREAM:-/work/upstream/MOFA-Video/MOFA-Video-Keypoint}"
upstream_py="${MOFA_UPSTREAM_PY:-/work/upstream/venv/bin/python}"
exchange="${MOFA_PARITY_DIR:-/work/upstream/exchange}"
upstream_git="${MOFA_UPSTREAM_GIT:-/work/.mirror/MyNiuuu+MOFA-Video/repo}"
python="${PYTHON:-$repo/.venv/bin/python}"

if [[ ! -f "$upstream/models/ldmk_ctrlnet.py" ]]; then
    echo "mofa parity: SKIPPED - no upstream checkout at $upstream (set MOFA_UPSTREAM; see $here/README.md)"
    exit 0
fi
if [[ ! -x "$upstream_py" ]]; then
    echo "mofa parity: SKIPPED - no upstream environment at $upstream_py (set MOFA_UPSTREAM_PY; see $here/README.md)"
    exit 0
fi
if ! "$python" -c "import faceshot_mofa.landmark_adapter, faceshot_mofa.cmp" 2>/dev/null; then
    echo "mofa parity: SKIPPED - $python cannot import faceshot_mofa (pip install -e plugins/mofa)"
    exit 0
fi

commit=""
if [[ -f "$upstream/../COMMIT" ]]; then
    commit="$(cat "$upstream/../COMMIT")"
elif git -C "$upstream_git" rev-parse HEAD >/dev/null 2>&1; then
    commit="$(git -C "$upstream_git" rev-parse HEAD)"
fi

mkdir -p "$exchange"
start=$(date +%s)
if [[ "${MOFA_PARITY_REUSE:-0}" == "1" && -f "$exchange/outputs.safetensors" ]]; then
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
