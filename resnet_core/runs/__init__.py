"""Runs: run folders on disk and the jobs that write them.

`contract` (RunConfig, RunState: the typed run contract, with `training.records`), `store` (read and write run
folders), `loading` (a stored run's model and data), `transfer` (init_from: start from a run, torchvision or a
file), `resume`, `elastic` (the run a torchrun restart goes on with), `execute` (one run into the store),
`runner` (background jobs and their queue), `scheduler` (interactive runs first; a batch job in their way pauses),
`forecast` (how long a run takes, from paces measured here), `estimate_log` (each run's estimate against its actual
time), `memory` (the memory guard), `background` (process-wide objects and
background rows), `pairing` (whether two runs were trained alike, and how they differ). Imports every layer below,
never experiments, analysis or the CLI.
"""
