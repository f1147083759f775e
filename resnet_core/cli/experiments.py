"""`flow`, `degradation`, `lesion`: the signal-flow experiments (filled in by the signal-flow issue)."""


def register(sub) -> None:
    pass
