#!/usr/bin/env bash
# Create (or bring up to date) the Python reference venv at <repo>/.venv-ref.
# Idempotent: re-running only installs what is missing or at the wrong version.
#
#   bash tools/reference/setup_venv.sh            # uses python3.11 if present, else python3
#   PYTHON=/path/to/python3.11 bash tools/reference/setup_venv.sh
#
# Needs PyPI only (about 3.8 GB of wheels the first time; the venv is about 4.9 GB).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
venv="${VENV:-$repo/.venv-ref}"   # VENV=... to build elsewhere (e.g. to test a fresh install)
req="$here/requirements.txt"

if [[ -z "${PYTHON:-}" ]]; then
    if command -v python3.11 >/dev/null 2>&1; then PYTHON=python3.11; else PYTHON=python3; fi
fi
ver="$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
if [[ "$ver" != "3.11" ]]; then
    echo "warning: requirements.txt was pinned with Python 3.11; $PYTHON is $ver" >&2
fi

if [[ ! -x "$venv/bin/python" ]]; then
    echo "creating $venv"
    "$PYTHON" -m venv "$venv"
fi

export PIP_DISABLE_PIP_VERSION_CHECK=1
# --no-deps: requirements.txt is the complete pinned closure; SAT's declared extras
# (deepspeed, datasets, ...) are deliberately not installed.
"$venv/bin/python" -m pip install --quiet --no-deps -r "$req"

# Smoke test: torch on CPU and the SAT pieces the fixture/bench scripts use.
PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION=python "$venv/bin/python" - <<'PY'
import torch, numpy
from sat.model import BaseModel
from sat.model.cached_autoregressive_model import CachedAutoregressiveMixin
from sat.training.model_io import save_checkpoint
from sat.generation.autoregressive_sampling import filling_sequence
import sat
# icetk pieces used by make_icetk_fixtures.py / vq_torch_bench.py (importing icetk builds a lazy
# IceTokenizer; nothing is downloaded until a model file is requested)
import icetk, sentencepiece, torchvision, PIL
from icetk.text_tokenizer import TextTokenizer
from icetk.image_tokenizer import ImageTokenizer
from icetk.vqvae import HVQVAE, Encoder, Decoder, ResidualDownSample, VectorQuantizeEMA
x = torch.randn(4, 4)
assert torch.allclose(x @ torch.eye(4), x)
print(f"ok: torch {torch.__version__} (cuda available: {torch.cuda.is_available()}), "
      f"numpy {numpy.__version__}, SwissArmyTransformer {sat.__version__}, "
      f"torchvision {torchvision.__version__}, sentencepiece {sentencepiece.__version__}, "
      f"pillow {PIL.__version__}, icetk (no __version__; pinned 0.0.7)")
PY
