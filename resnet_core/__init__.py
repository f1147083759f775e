"""ResNet Explorer's core: specs and presets, builders, introspection, training, probes and experiments.

Plain Python + torch; never imports streamlit. `python -m resnet_core` is its command line.
"""

from .model import ResNet, build_model
from .presets import PRESETS, Preset, get_preset, matching_preset, resolve_spec
from .spec import ModelSpec
from .summary import Summary, natural_input_size, summarize

__all__ = [
    "ModelSpec", "PRESETS", "Preset", "ResNet", "Summary", "build_model", "get_preset", "matching_preset",
    "natural_input_size", "resolve_spec", "summarize",
]
