"""One colour for residual and one for plain, used by every figure in the app."""

RESIDUAL = "#1f77b4"
PLAIN = "#d62728"
REFERENCE = "#7f7f7f"  # published figures (He et al., torchvision)
SEQUENCE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2"]


def path_colour(skip: bool) -> str:
    """Residual (with the identity shortcut) or plain."""
    return RESIDUAL if skip else PLAIN
