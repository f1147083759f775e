"""Training: one run of a TrainConfig, in one process or under torchrun.

`config` (TrainConfig, every option declared once with its flag, help and widget), `settings` (what "auto" becomes:
the augmentation, the image side and crop padding from `image_side`, the step budget from `budget`, and the
precision from `precision`, which measures bf16 against fp32 on the run's own model; `verdicts` remembers those
measurements in the user's cache and `hardware` names the machine they hold for), `records` (the metrics lines a run
emits and `Status`), `engine` (`fit` and `evaluate`), `probes`, `distributed` (DDP; torchrun's job and restarts),
`freeze` (fine-tuning), `checkpoint` (TrainState), `resume_check` (a TrainState against the run it continues),
`estimate`, `time_left` (a running run's time left, each part priced as it measured it) and `launch` (the command
line of a config). Imports `models`, `introspect`, `data` and the base modules; never reads or writes the run store.
"""
