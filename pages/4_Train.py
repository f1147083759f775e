"""Train: start a run on the chosen model, watch its live curves, stop it; results, downloads and past runs.

A run belongs to the browser, not to one script run: its job id is kept in the URL (?job=…), so a reload or a
second tab reattaches to it (curves, Stop and the settings it was started with), and every run training on
the server is listed with its run id, so anyone who opens the page can reattach to an orphan and stop it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import streamlit as st

from resnet_core import seeds
from resnet_core.config import AUGMENTS, DEFAULT_LR, OPTIMIZERS, PRECISIONS, SCHEDULES, TrainConfig, available_devices
from resnet_core.data import DATASETS, default_data_dir, load_dataset
from resnet_core.fence import DATA_ROOTS_ENV, check_run_data, data_roots, fenced_data_dir
from resnet_core.format import format_bytes, format_seconds
from resnet_core.jobs import Job, JobSnapshot, default_runner, memory_check
from resnet_core.launch import train_command
from resnet_core.records import Record, Status, TrainRecord, final_of, of_kind
from resnet_core.runstore import RunInfo, evaluate_run, metrics_csv, read_metrics, read_run, scan_runs, weights_file
from resnet_core.settings import RunSettings, precision_warning, resolve_settings
from resnet_core.train import Evaluation, warm_up
from ui.charts import show_chart
from ui.live import live_fragment
from ui.page import setup_page
from ui.quick_check import quick_check
from ui.seed_panels import repeat_seed_panel
from ui.train_figures import (
    DEFAULT_OVERLAY,
    OVERLAY_METRICS,
    confusion_figure,
    overlay_figure,
    prediction_grid,
    run_title,
    training_curves,
)
from ui.transfer_controls import (
    TRANSFER_WIDGETS,
    strategies_button,
    strategies_section,
    transfer_controls,
    transfer_fields,
    widgets_from_transfer,
)
from ui.widgets import ModelChoice, model_picker, or_error, remember_choice, session_owner, skipped_runs_note

setup_page("Train")

POLL_SECONDS = 0.5
GRID_IMAGES = 24
JOB_KEY, ERROR_KEY, TOASTED_KEY = "train_job", "train_error", "train_toasted"
JOB_PARAM = "job"  # the URL's query parameter holding the attached job's id
BATCH_SIZES = [16, 32, 64, 128, 256, 512]
DEFAULTS = TrainConfig()
WIDGETS: dict[str, Any] = dict(  # widget key -> default, from TrainConfig's defaults
    train_dataset=DEFAULTS.dataset, train_data_dir="", train_epochs=DEFAULTS.epochs, train_steps=0,
    train_batch=DEFAULTS.batch_size, train_optimizer=DEFAULTS.optimizer, train_schedule=DEFAULTS.schedule,
    train_warmup=DEFAULTS.warmup, train_wd=DEFAULTS.weight_decay, train_smoothing=DEFAULTS.label_smoothing,
    train_nesterov=DEFAULTS.nesterov, train_subset=0, train_augment=DEFAULTS.augment,
    train_precision=DEFAULTS.precision, train_seed=DEFAULTS.seed, train_probe_every=DEFAULTS.probe_every,
    train_channels_last=DEFAULTS.channels_last, train_device=DEFAULTS.device, train_threads=0, train_repeats=1,
    train_processes=2,  # for the torchrun command shown (the server itself trains in one process)
    **{f"train_lr_{name}": lr for name, lr in DEFAULT_LR.items()}, **TRANSFER_WIDGETS,
)


def init_state() -> None:
    for key, value in WIDGETS.items():
        st.session_state.setdefault(key, value)


def my_job() -> Job | None:
    """The job this page shows: one it started, or attached to by its id (from the URL, or Open below)."""
    job_id = st.session_state.get(JOB_KEY)
    return default_runner().get(job_id) if job_id else None


def attach(job_id: str) -> None:
    """Show the job in this session: its curves and Stop, with the widgets set as it was started.

    Called before the widgets are drawn (an on_click callback, or the top of the page run)."""
    job = default_runner().get(job_id)
    if job is None:
        return
    st.session_state[JOB_KEY] = job.id
    st.session_state.update(widgets_from_config(job.config))
    st.session_state["train_model"] = job.config.model
    remember_choice(ModelChoice(job.config.model, dict(job.config.overrides)))
    st.query_params[JOB_PARAM] = job.id


def reattach_from_url() -> None:
    """A reload or a second tab: the URL names a job this session does not show yet."""
    job_id = st.query_params.get(JOB_PARAM)
    if job_id and st.session_state.get(JOB_KEY) != job_id:
        if default_runner().get(job_id) is None:
            st.query_params.pop(JOB_PARAM)  # gone with a server restart; its run is under Past runs
        else:
            attach(job_id)


def widgets_from_config(config: TrainConfig) -> dict[str, Any]:
    """The inverse of `config_from_state`: widget values that give `config` again (threads are left alone: the
    runner fills them in)."""
    return dict(
        train_dataset=config.dataset, train_data_dir=config.data_dir or "", train_subset=config.train_subset or 0,
        train_epochs=config.epochs, train_steps=config.max_steps or 0, train_batch=config.batch_size,
        train_optimizer=config.optimizer, **{f"train_lr_{config.optimizer}": config.peak_lr},
        train_nesterov=config.nesterov, train_wd=config.weight_decay, train_schedule=config.schedule,
        train_warmup=config.warmup, train_smoothing=config.label_smoothing, train_augment=config.augment,
        train_precision=config.precision, train_seed=config.seed, train_probe_every=config.probe_every,
        train_channels_last=config.channels_last, train_device=config.device, **widgets_from_transfer(config),
    )


def config_from_state(choice: ModelChoice) -> TrainConfig:
    s = st.session_state
    return TrainConfig(
        model=choice.model, overrides=dict(choice.overrides), dataset=s.train_dataset,
        data_dir=fenced_data_dir(s.train_data_dir), train_subset=s.train_subset or None, epochs=s.train_epochs,
        max_steps=s.train_steps or None, batch_size=s.train_batch, optimizer=s.train_optimizer,
        lr=s[f"train_lr_{s.train_optimizer}"], nesterov=s.train_nesterov, weight_decay=s.train_wd,
        schedule=s.train_schedule, warmup=s.train_warmup, label_smoothing=s.train_smoothing,
        augment=s.train_augment, precision=s.train_precision, seed=s.train_seed, probe_every=s.train_probe_every,
        channels_last=s.train_channels_last, device=s.train_device, threads=s.train_threads or None,
        **transfer_fields(),
    )


def start(choice: ModelChoice) -> None:
    st.session_state.pop(ERROR_KEY, None)
    try:
        if st.session_state.train_repeats > 1:  # the first seed is shown live; the others wait in the queue
            job = seeds.start_repeats(config_from_state(choice), st.session_state.train_repeats, default_runner(),
                                      owner=session_owner())[1][0]
        else:
            job = default_runner().submit(config_from_state(choice), owner=session_owner())
    except ValueError as exc:  # bad settings or the memory guard's refusal, with its figures
        st.session_state[ERROR_KEY] = str(exc)
        return
    st.session_state[JOB_KEY] = job.id
    st.query_params[JOB_PARAM] = job.id


def stop() -> None:
    job = my_job()
    if job is not None:
        job.stop()


def controls() -> ModelChoice:
    choice = model_picker("Model", key="train_model", default="resnet20")
    st.selectbox("Data set", DATASETS, key="train_dataset",
                 help="synthetic: 10 classes of shapes, generated here (works offline)")
    if st.session_state.train_dataset != "synthetic":
        st.text_input("Data folder", key="train_data_dir", placeholder=str(default_data_dir()),
                      help="where the files are (or are downloaded to); for imagefolder: a folder of class folders, "
                           "or with train/ and test/ (or val/)")
        st.caption(f"This server reads data only inside {', '.join(f'`{r}`' for r in data_roots())} "
                   f"(its operator can add folders with `{DATA_ROOTS_ENV}`).")
    transfer_controls(choice)
    c = st.columns(2)
    c[0].number_input("Epochs", 1, 500, key="train_epochs")
    c[1].number_input("Step budget (0: use epochs)", 0, 10**7, key="train_steps")
    c = st.columns(2)
    c[0].selectbox("Batch size", BATCH_SIZES, key="train_batch")
    c[1].number_input("Train subset (0: all)", 0, 10**7, step=500, key="train_subset")
    c = st.columns(2)
    optimizer = c[0].selectbox("Optimizer", OPTIMIZERS, key="train_optimizer")
    c[1].number_input("Peak learning rate", 1e-6, 100.0, format="%.4g", key=f"train_lr_{optimizer}")
    with st.expander("More settings"):
        c = st.columns(2)
        c[0].selectbox("Schedule", SCHEDULES, key="train_schedule",
                       help="onecycle: rise for the first quarter (or the warmup), then cosine down")
        c[1].slider("Warmup (fraction of steps)", 0.0, 0.5, step=0.05, key="train_warmup")
        c = st.columns(2)
        c[0].number_input("Weight decay", 0.0, 1.0, step=1e-4, format="%.4g", key="train_wd")
        c[1].slider("Label smoothing", 0.0, 0.3, step=0.05, key="train_smoothing")
        c = st.columns(2)
        c[0].checkbox("Nesterov momentum (SGD)", key="train_nesterov")
        c[1].selectbox("Augmentation", AUGMENTS, key="train_augment",
                       help="auto: random crops, and horizontal flips only for data sets whose classes survive a "
                            "mirror (CIFAR-10, the synthetic shapes); a flipped digit is not a digit")
        c = st.columns(2)
        c[0].radio("Precision", PRECISIONS, key="train_precision", horizontal=True,
                   help="auto: bf16 autocast where the hardware has bf16 units (CPUs with AMX, GPUs with bf16), "
                        "fp32 elsewhere, where bf16 trains slower (measured: AVX512-BF16 alone is not enough)")
        c[1].number_input("Seed", 0, 2**31 - 1, key="train_seed")
        c = st.columns(2)
        c[0].number_input("Probe every (steps, 0: off)", 0, 10_000, key="train_probe_every",
                          help="per-block gradient norms and activation statistics, read by the Signal flow page")
        c[1].number_input("Threads (0: the server's share)", 0, os.cpu_count() or 1, key="train_threads",
                          help=f"this server gives each run {default_runner().threads_per_run} thread(s) by default; "
                               "at most its core count, as the server is shared")
        c = st.columns(2)
        c[0].checkbox("Channels-last memory format", key="train_channels_last",
                      help="NHWC tensors: usually faster convolutions on CPUs and recent GPUs")
        c[1].selectbox("Device", available_devices(), key="train_device")
        st.number_input("Repeat with N seeds", 1, seeds.MAX_SEEDS, key="train_repeats",
                        help="seed, seed + 1, …: the runs queue one after another; their mean ± std bands are "
                             "under “Repeated with several seeds”")
    return choice


def config_or_none(choice: ModelChoice) -> TrainConfig | None:
    try:
        return config_from_state(choice)
    except ValueError:
        return None  # the settings' error is shown when Start is pressed


def memory_caption(choice: ModelChoice) -> None:
    """The memory guard's estimate for the current settings (also warms the summary cache before Start)."""
    try:
        check = memory_check(config_from_state(choice))
    except ValueError:
        return  # the settings' error is shown when Start is pressed
    verdict = "within" if check.ok else "over"
    st.caption(f"Estimated training memory {format_bytes(check.needed_bytes)}, {verdict} the budget of "
               f"{format_bytes(check.budget_bytes)} ({check.budget_source}).")


def settings_caption(choice: ModelChoice) -> None:
    """What "auto" will choose for the current settings, and why; a warning for emulated bf16."""
    try:
        config = config_from_state(choice)
        settings = resolve_settings(config)
    except ValueError:
        return  # the settings' error is shown when Start is pressed
    st.caption(settings_text(settings))
    warning = precision_warning(config)
    if warning:
        st.warning(warning[0].upper() + warning[1:], icon="⚠️")


def launch_help(choice: ModelChoice) -> None:
    """The exact command for the current settings, for a terminal or torchrun (st.code has a copy button)."""
    with st.expander("Run it from a terminal, on several processes"):
        processes = st.number_input("Processes (torchrun --nproc_per_node)", 1, 64, key="train_processes",
                                    help="data-parallel: each process takes an equal share of the batch size")
        try:
            command = train_command(config_from_state(choice), int(processes))
        except ValueError as exc:
            st.caption(f"No command for these settings: {exc}")
            return
        st.code(command, language="bash")
        st.caption("Run it where the runs folder of this server is shared (`RESNET_EXPLORER_RUNS`): the run appears "
                   "under Past runs with its status, and its curves grow there as it trains. Several machines: "
                   "see the README.")


def settings_text(settings: RunSettings) -> str:
    return (f"Augmentation **{settings.augment}** ({settings.augment_reason}); precision **{settings.precision}** "
            f"({settings.precision_reason}).")


def status_line(snap: JobSnapshot) -> None:
    running, queued = default_runner().load()
    if snap.status == Status.QUEUED:
        st.info(f"Queued at position {snap.queue_position}: {running} run(s) training on this server, which trains "
                f"at most {default_runner().max_concurrent} at a time.")
        return
    if snap.status == Status.RUNNING:
        total = snap.total_steps or 0
        eta = f" · about {format_seconds(snap.eta_sec)} left" if snap.eta_sec is not None else ""
        speed = f" · {snap.images_per_sec:.0f} images/s" if snap.images_per_sec else ""
        st.progress(snap.progress, text=f"Step {snap.step} of {total or '…'}{eta}{speed} — {snap.message}")
        if queued:
            st.caption(f"{queued} run(s) waiting in the server's queue.")
        return
    note = {Status.FINISHED: st.success, Status.STOPPED: st.warning}.get(snap.status, st.error)
    text = snap.message if snap.message.startswith(snap.status) else f"{snap.status}: {snap.message}"
    note(text[0].upper() + text[1:])
    if snap.error:
        with st.expander("Traceback"):
            st.code(snap.error)


def live_panel(job: Job, live: bool) -> None:
    """`live`: the job was running when this page run began; then the panel polls until it sees the end."""

    def draw() -> bool:
        snap = job.snapshot()
        status_line(snap)
        live_curves(snap.records, run_title(snap.run_id, snap.config))
        return not snap.done

    live_fragment(draw, live, POLL_SECONDS)


def live_curves(records: Sequence[Record], chart_title: str | None = None) -> None:
    """The curves; before the first record, a note in their place (so the browser has plotly loaded before Start)."""
    with st.container(key="train_live"):
        show_chart(training_curves(records), key="train_live_curves", name=chart_title or "training curves",
                   title=chart_title, width="stretch")


def results(title: str, run_dir: str | None, records: Sequence[Record], settings: RunSettings,
            evaluation: Evaluation | None, test_images=None, chart_title: str = "") -> None:
    final = final_of(records)
    st.subheader(title)
    if final is None:
        st.caption("No final record: the run did not end normally, so its curves are all there is.")
        return
    c = st.columns(5)
    c[0].metric("Test accuracy", f"{final.test_acc:.1%}" if final.test_acc is not None else "—")
    c[1].metric("Test loss", f"{final.test_loss:.3f}" if final.test_loss is not None else "—")
    c[2].metric("Steps", f"{final.steps:,}")
    c[3].metric("Train images/s", f"{final.images_per_sec:.0f}")
    c[4].metric("Wall clock", format_seconds(final.seconds))
    st.caption(settings_text(settings))
    downloads(title, run_dir, records)
    if final.confusion is None:
        return
    left, right = st.columns([2, 3])
    with left:
        show_chart(confusion_figure(final.confusion, final.classes), key=f"confusion_{title}", title=chart_title,
                   name=f"{chart_title} confusion", width="stretch")
    if evaluation is not None and test_images is not None:
        mistakes_only = right.toggle("Mistakes only", key=f"mistakes_{title}")
        index = [i for i in range(len(evaluation.labels))
                 if not mistakes_only or int(evaluation.predictions[i]) != int(evaluation.labels[i])][:GRID_IMAGES]
        if index:
            grid = prediction_grid(test_images[index].numpy(), evaluation.labels[index].tolist(),
                                   evaluation.predictions[index].tolist(), final.classes)
            with right:
                show_chart(grid, key=f"grid_{title}", title=chart_title, name=f"{chart_title} predictions",
                           width="stretch")
        else:
            right.success("No mistakes on the test images.")


def downloads(title: str, run_dir: str | None, records: Sequence[Record]) -> None:
    """Keyed by `title`: the current run can also be shown as a stored run, with the same folder name."""
    name = Path(run_dir).name if run_dir else "run"
    c = st.columns(2)
    c[0].download_button("Metrics (CSV)", metrics_csv(records), file_name=f"{name}-metrics.csv",
                         mime="text/csv", key=f"csv_{title}", on_click="ignore")
    weights = weights_file(run_dir) if run_dir else None
    if weights is not None:
        c[1].download_button("Weights (.pt state_dict)", weights.read_bytes(), file_name=f"{name}.pt",
                             mime="application/octet-stream", key=f"pt_{title}", on_click="ignore",
                             help="load with torch.load(path, weights_only=True)")


@st.cache_resource(max_entries=4, show_spinner="Evaluating the stored weights on the test set…")
def stored_evaluation(run_dir: str, weights_mtime: float):
    evaluation, data = evaluate_run(run_dir)
    return evaluation, data.test_images


def run_label(info: RunInfo) -> str:
    acc = info.final.test_acc if info.final else None
    score = f" · test acc {acc:.1%}" if acc is not None else ""
    processes = info.config.distributed.world_size
    where = f" · {processes} processes" if processes > 1 else ""
    return f"{info.run_id} · {info.config.train.dataset} · {info.status}{where}{score}"


def past_runs(current_run: str | None) -> None:
    stored, skipped = scan_runs()
    runs = {info.run_id: info for info in stored}
    st.subheader("Past runs")
    skipped_runs_note(skipped)
    if not runs:
        st.caption("No runs stored yet: they are kept in the runs folder and listed here after a restart.")
        return
    interrupted = sum(info.status is Status.INTERRUPTED for info in runs.values())
    st.caption(f"{len(runs)} run(s) stored on this server, from every session."
               + (f" {interrupted} interrupted: the process training it ended before the run finished; its curves "
                  "are kept." if interrupted else ""))
    ours = {job.snapshot().run_id for job in default_runner().jobs()}
    elsewhere = [r for r, info in runs.items() if info.status.live and r not in ours]
    if elsewhere:
        st.caption(f"Training now in other processes (the command line, torchrun, another machine): "
                   f"{', '.join(f'`{r}`' for r in elsewhere)}; inspect one below to watch its curves grow.")
    c = st.columns([3, 1])
    default = [current_run] if current_run in runs else list(runs)[:1]
    picked = c[0].multiselect("Overlay runs", list(runs), default=default, format_func=lambda r: run_label(runs[r]),
                              key="train_overlay_runs")
    metric = c[1].selectbox("Metric", list(OVERLAY_METRICS), index=list(OVERLAY_METRICS).index(DEFAULT_OVERLAY),
                            key="train_overlay_metric")
    if picked:
        overlay = [dict(label=r, records=read_metrics(runs[r].path), skip=runs[r].skip) for r in picked]
        show_chart(overlay_figure(overlay, metric), key="train_overlay", name=f"{metric} of {len(picked)} runs",
                   title=f"{metric}: {', '.join(picked)}", width="stretch")
    inspect = st.selectbox("Inspect a stored run", ["—", *runs], format_func=lambda r: r if r == "—" else
                           run_label(runs[r]), key="train_inspect")
    if inspect != "—":
        info = runs[inspect]
        if info.status.live:
            stored_live_panel(info)  # written by another process (a CLI or torchrun run, another server)
            return
        records = read_metrics(info.path)
        show_chart(training_curves(records), key="train_inspect_curves", name=run_title(info.run_id, info.config.train),
                   title=run_title(info.run_id, info.config.train), width="stretch")
        weights = weights_file(info.path)
        evaluation = images = None
        if weights is not None and info.final and info.final.confusion is not None:
            try:
                check_run_data(info.config.train.data_dir)  # a command-line run may name any folder
                evaluation, images = stored_evaluation(str(info.path), weights.stat().st_mtime)
            except (ValueError, RuntimeError) as exc:
                st.warning(f"Cannot re-evaluate this run: {exc}")
        results(f"Stored run {info.run_id}", str(info.path), records, info.config.settings, evaluation, images,
                run_title(info.run_id, info.config.train))


def stored_live_panel(info: RunInfo) -> None:
    """A live stored run (another process may be writing it): its status and curves, re-read from its folder while
    it is live."""

    def draw() -> bool:
        try:
            state = read_run(info.path).state
        except ValueError as exc:
            st.warning(str(exc))
            return False
        records = read_metrics(info.path)
        steps = of_kind(records, TrainRecord)
        progress = f" · step {steps[-1].step} of {steps[-1].total_steps}" if steps else ""
        note = f" — {state.message}" if state.message else ""
        st.caption(f"Live from its run folder: **{state.label}**{progress}{note}")
        show_chart(training_curves(records), key="train_inspect_curves", name=run_title(info.run_id, info.config.train),
                   title=run_title(info.run_id, info.config.train), width="stretch")
        return state.live

    live_fragment(draw, True, POLL_SECONDS)


def server_runs(shown: Job | None) -> None:
    """Every queued or running job of this server but the one shown, with an Open button: a run left behind by
    a closed tab can be reattached and stopped by whoever opens the page."""
    others = [j for j in default_runner().jobs() if not j.done and j is not shown]
    if not others:
        return
    st.subheader("Training on this server now")
    for job in others:
        snap = job.snapshot()
        c = st.columns([5, 1])
        c[0].markdown(f"`{snap.run_id or 'not started yet'}` · {job.config.model} on {job.config.dataset} · "
                      f"{snap.state.label} · step {snap.step} of {snap.total_steps or '…'}")
        c[1].button("Open", key=f"train_open_{job.id}", on_click=attach, args=(job.id,), disabled=live_here(shown),
                    help="show this run here, with its curves and Stop" if not live_here(shown)
                    else "stop or leave the run shown above first")


def live_here(job: Job | None) -> bool:
    return job is not None and not job.done


def main() -> None:
    init_state()
    st.title("Train")
    st.markdown("Train the chosen model on a data set and watch the curves as they are measured. Every run is kept "
                "on disk with its config, metrics, status and final weights.")
    if or_error(default_runner) is None:  # e.g. a bad $RESNET_EXPLORER_MAX_RUNS: no training, stored runs still shown
        st.divider()
        past_runs(None)
        return
    reattach_from_url()
    job = my_job()
    live = job is not None and not job.done  # read once: the job may end while this run draws the page
    if job is not None and not live and st.session_state.get(TOASTED_KEY) != job.id:
        st.session_state[TOASTED_KEY] = job.id  # once per run, on whichever rerun first sees it ended
        message = job.snapshot().message
        st.toast(message[0].upper() + message[1:])
    left, right = st.columns([1, 2.3], gap="large")
    with left:
        choice = controls()
        c = st.columns(2)
        c[0].button("Start training", type="primary", on_click=start, args=(choice,), disabled=live,
                    key="train_start", width="stretch")
        c[1].button("Stop", on_click=stop, disabled=not live, key="train_stop", width="stretch")
        strategies_button(config_or_none(choice))
        memory_caption(choice)
        settings_caption(choice)
        launch_help(choice)
        if ERROR_KEY in st.session_state:
            st.error(st.session_state[ERROR_KEY], icon="⚠️")
    with right:
        with st.spinner("Preparing the training engine…"):
            warm_up()  # once per server process, so that Start goes straight to training
            if st.session_state.train_dataset == "synthetic":
                load_dataset("synthetic")
        if job is None:
            running, queued = default_runner().load()
            st.caption(f"Pick a model and press **Start training** (by default {DEFAULTS.epochs} epochs on the "
                       f"built-in synthetic set). This server: {running} run(s) training, {queued} queued.")
            st.progress(0.0, text="Not started")  # the live run's bar and chart, empty until its first step
            live_curves([])
        else:
            st.caption(f"{job.config.model} on {job.config.dataset} · seed {job.config.seed} · "
                       + settings_text(resolve_settings(job.config)))
            live_panel(job, live)
    if job is not None and not live and job.result is not None:
        snap = job.snapshot()
        results("Results", snap.run_dir, snap.records, job.result.settings, job.result.evaluation,
                job.result.data.test_images, run_title(snap.run_id, snap.config))
    strategies_section()
    st.divider()
    server_runs(job)
    past_runs(job.snapshot().run_id if job is not None else None)
    repeat_seed_panel()


main()


quick_check("Train")
