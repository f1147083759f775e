"""ResNet Explorer's core: specs and presets, builders, introspection, training, probes and experiments.

Plain Python + torch; never imports streamlit. `python -m resnet_core` is its command line.

Importing the package sets OMP_WAIT_POLICY=PASSIVE (unless already set) before torch loads its OpenMP
runtime, which reads it once: idle OpenMP threads then sleep instead of spinning, so training keeps its
pace when another process (the browser drawing the live chart, say) takes a core. Measured on 2 cores,
ResNet-20 fp32 (`benchmarks/bench_train.py`): one core busy, 310 images/s against 574 quiet (54%); spinning,
226 against 680 (33%). Set OMP_WAIT_POLICY=ACTIVE to spin, which is 16% faster on a quiet machine.
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from .introspect.summary import Summary, summarize
from .models.presets import PRESETS, Preset, get_preset, matching_preset, resolve_spec
from .models.resnet import ResNet, build_model
from .models.spec import ModelSpec, natural_input_size
from .models.weights import load_state_dict, save_weights

__all__ = [
    "ModelSpec", "PRESETS", "Preset", "ResNet", "Summary", "build_model", "get_preset", "load_state_dict",
    "matching_preset", "natural_input_size", "resolve_spec", "save_weights", "summarize",
]
