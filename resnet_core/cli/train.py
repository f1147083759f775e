"""`train`: one training run from the command line (filled in by the training issue)."""


def register(sub) -> None:
    pass
