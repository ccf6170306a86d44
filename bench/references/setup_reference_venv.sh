#!/usr/bin/env bash
# Recreate the reference virtualenv for bench/train_throughput.py's `stylegan` row:
# lucidrains' stylegan2_pytorch (PyPI, 1.9.0) on the CPU-only torch 2.13.0 build, kept
# apart from the project's own venv so its dependencies (aim, kornia, an old
# torchvision) never touch ray_gan's.
#
#   bash bench/references/setup_reference_venv.sh [VENV]          # default /work/venv-sg2ref
#   TORCH_CPU_WHEEL=/path/torch-2.13.0+cpu-....whl bash bench/references/setup_reference_venv.sh
#
# Why torchvision 0.16.2 and not the 0.28 that pairs with torch 2.13: every Linux
# x86_64 torchvision wheel on PyPI is a CUDA build; its C++ ops (_C.so) link
# libtorch_cuda.so / libc10_cuda.so, which a CPU-only torch does not ship. torchvision
# 0.17 and later then fail at `import torchvision` (they register fake kernels for
# torchvision::nms unconditionally, and that op only exists when _C.so loaded).
# torchvision 0.16.2 guards those registrations, so with _C.so unloadable it imports
# and its pure-Python parts work. stylegan2_pytorch only uses those parts
# (transforms for its folder Dataset, utils.save_image/make_grid for sample grids), and
# the benchmark uses neither. The setup checks that explicitly at the end.
# `pip check` will report "torchvision 0.16.2 requires torch==2.1.2"; that is expected.
set -euo pipefail

VENV="${1:-/work/venv-sg2ref}"
PY="${PYTHON:-python3}"
WHEEL="${TORCH_CPU_WHEEL:-}"
if [[ -z "$WHEEL" ]]; then
  for d in /opt/wheels "$HOME/wheels" .; do
    WHEEL="$(ls "$d"/torch-2.13.0+cpu-*.whl 2>/dev/null | head -n1 || true)"
    [[ -n "$WHEEL" ]] && break
  done
fi
if [[ -z "$WHEEL" ]]; then
  # Elsewhere the CPU build comes from PyTorch's own index (PyPI's Linux torch is CUDA).
  TORCH_SPEC=(torch==2.13.0+cpu --index-url https://download.pytorch.org/whl/cpu)
else
  TORCH_SPEC=("$WHEEL")
fi

"$PY" -m venv --clear "$VENV"
PIP=("$VENV/bin/pip" install --disable-pip-version-check -q)
"${PIP[@]}" "${TORCH_SPEC[@]}"

# Pin the torch just installed so nothing below replaces it.
CONSTRAINTS="$(mktemp)"
trap 'rm -f "$CONSTRAINTS"' EXIT
"$VENV/bin/python" -c 'import torch; print(f"torch=={torch.__version__}")' > "$CONSTRAINTS"

# stylegan2-pytorch 1.9.0's requirements except torch and torchvision.
"${PIP[@]}" -c "$CONSTRAINTS" aim 'einops>=0.8.0' 'contrastive_learner>=0.1.0' fire 'kornia>=0.5.4' numpy \
  retry tqdm pillow 'vector-quantize-pytorch==0.1.0'
"${PIP[@]}" --no-deps torchvision==0.16.2 stylegan2-pytorch==1.9.0

"$VENV/bin/python" - <<'EOF'
import warnings
warnings.filterwarnings("ignore")
import torch, torchvision
from torchvision import transforms, utils
assert torch.__version__.endswith("+cpu"), torch.__version__
assert not torch.cuda.is_available()
x = torch.rand(4, 3, 32, 32)
assert utils.make_grid(x).shape[0] == 3
from PIL import Image
assert transforms.Compose([transforms.Resize(32), transforms.CenterCrop(32), transforms.ToTensor()])(
    Image.new("RGB", (64, 64))).shape == (3, 32, 32)
import importlib.metadata as md
print(f"reference venv ok: torch {torch.__version__}, torchvision {torchvision.__version__} "
      f"(C++ ops loaded: {torchvision.extension._has_ops()}), stylegan2-pytorch {md.version('stylegan2-pytorch')}, "
      f"kornia {md.version('kornia')}")
EOF
