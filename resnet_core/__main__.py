"""`python -m resnet_core …`: the command line over the same functions the app calls."""

from .cli import main
from .training.distributed import end_torchrun_worker, is_torchrun_worker, watch_torchrun_worker

watch_torchrun_worker()
code = main()
if is_torchrun_worker():
    end_torchrun_worker(code)
raise SystemExit(code)
