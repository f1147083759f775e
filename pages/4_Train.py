"""Train: start a run on the chosen model, watch its live curves, stop it; results, downloads and past runs.

A run belongs to the browser, not to one script run: its job id is kept in the URL (?job=…), so a reload or a
second tab reattaches to it (curves, Stop and the settings it was started with), and every run training on
the server is listed with its run id, so anyone who opens the page can reattach to an orphan and stop it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import streamlit as st

from resnet_core.data.fence import DATA_ROOTS_ENV, check_run_data, data_roots, fenced_data_dir
from resnet_core.data.location import default_data_dir
from resnet_core.data.sets import load_dataset
from resnet_core.experiments import seeds
from resnet_core.formatting import format_bytes, format_seconds
from resnet_core.runs.board import RunBoard, RunEntry, run_entry, waited
from resnet_core.runs.loading import evaluate_run
from resnet_core.runs.memory import memory_check
from resnet_core.runs.runner import CANCELLED, Job, JobSnapshot, default_runner
from resnet_core.runs.store import RunInfo, metrics_csv, read_metrics, read_run, weights_file
from resnet_core.training.budget import AUTO_MIN_EPOCHS, AUTO_MIN_STEPS
from resnet_core.training.config import TrainConfig
from resnet_core.training.engine import Evaluation, warm_up
from resnet_core.training.launch import train_command
from resnet_core.training.records import Record, Status, TrainRecord, final_of
from resnet_core.training.settings import RunSettings, precision_warning, preview_settings
from ui.charts import show_chart
from ui.live import current_board, follow_runs, live_fragment, server_runner, wait_for
from ui.options import TRAIN
from ui.page import setup_page
from ui.quick_check import quick_check
from ui.run_status import no_points_note, run_lines, stored_runs_note
from ui.seed_panels import repeat_seed_panel
from ui.train_figures import (
    DEFAULT_OVERLAY,
    OVERLAY_METRICS,
    confusion_figure,
    has_points,
    overlay_figure,
    prediction_grid,
    run_title,
    training_curves,
)
from ui.transfer_controls import strategies_button, strategies_section, transfer_controls
from ui.widgets import ModelChoice, model_picker, or_error, remember_choice, session_owner, skipped_runs_note

setup_page("Train")

POLL_SECONDS = 0.5
OVERLAY_POLL = 2.0  # the overlay of a live run: its own curves are drawn live above, every POLL_SECONDS
FIRST_POINT_WAIT, FIRST_POINT_WAIT_PAGE = 0.4, 1.1  # seconds a poll, and the page's run, wait for a first point
GRID_IMAGES = 24
JOB_KEY, ERROR_KEY, TOASTED_KEY = "train_job", "train_error", "train_toasted"
JOB_PARAM = "job"  # the URL's query parameter holding the attached job's id
AUTO_BUDGET = f"whole epochs, at least {AUTO_MIN_EPOCHS} of them and {AUTO_MIN_STEPS} steps,"
PAGE_WIDGETS = dict(train_repeats=1, train_processes=2)  # the page's own (the server itself trains in one process)
MAIN_OPTIONS = ("dataset", "data_dir", "init_from", "finetune", "backbone_lr_scale", "epochs", "max_steps",
                "batch_size", "train_subset", "optimizer", "lr")  # the rest are under "More settings"


def init_state() -> None:
    for key, value in {**TRAIN.defaults(), **PAGE_WIDGETS}.items():
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
    st.session_state.update(TRAIN.state(job.config))
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


def config_from_state(choice: ModelChoice) -> TrainConfig:
    """The widgets' config; the data folder must lie inside the server's fence."""
    return TRAIN.config(st.session_state, convert={"data_dir": fenced_data_dir}, model=choice.model,
                        overrides=dict(choice.overrides))


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
    TRAIN.draw("dataset")
    if st.session_state.train_dataset != "synthetic":
        TRAIN.draw("data_dir", placeholder=str(default_data_dir()))
        st.caption(f"This server reads data only inside {', '.join(f'`{r}`' for r in data_roots())} "
                   f"(its operator can add folders with `{DATA_ROOTS_ENV}`).")
    transfer_controls(choice)
    TRAIN.draw_in_rows(["epochs", "max_steps", "batch_size", "train_subset", "optimizer", "lr"])
    with st.expander("More settings"):
        threads = (f"{TRAIN.options['threads'].help}; this server gives each run {default_runner().threads_per_run} "
                   "by default")
        TRAIN.draw_in_rows([o.name for o in TRAIN.with_widgets if o.name not in MAIN_OPTIONS],
                           extra={"threads": {"help": threads}})
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
    """What "auto" will choose for the current settings, and why; a warning where bf16 measured slower here.

    Nothing is measured here: the page would stall for seconds at every change of model or batch. A verdict this
    machine remembers is shown; otherwise the caption says the run measures it after its step 1 (about 2 s,
    longer where bf16 is emulated; once), in the job, on the run's own thread share."""
    threads = default_runner().threads_per_run
    try:
        config = config_from_state(choice)
        settings = preview_settings(config, threads=threads)
    except ValueError:
        return  # the settings' error is shown when Start is pressed
    st.caption(settings_text(settings))
    warning = precision_warning(config, threads=threads)
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
    budget = f"{settings.budget_reason[0].upper()}{settings.budget_reason[1:]}. " if settings.budget_reason else ""
    images = f" {settings.images_reason[0].upper()}{settings.images_reason[1:]}." if settings.images_reason else ""
    threads = f" Threads **{settings.threads}** ({settings.threads_reason})." if settings.threads_reason else ""
    return (f"{budget}Augmentation **{settings.augment}** ({settings.augment_reason}); precision "
            f"**{settings.precision}** ({settings.precision_reason}).{images}{threads}")


def status_line(snap: JobSnapshot) -> None:
    running, queued = default_runner().load()
    if snap.status == Status.QUEUED:
        wait = format_seconds(waited(snap.submitted, snap.started, snap.ended))
        st.info(f"Queued at position {snap.queue_position} of {queued}, waiting {wait} so far: {running} run(s) "
                f"training on this server, which trains at most {default_runner().max_concurrent} at a time."
                + (f" It starts in about {format_seconds(snap.wait_sec)}, from the pace measured on the runs here."
                   if snap.wait_sec is not None else ""))
        st.button("Cancel", key="train_cancel", on_click=stop, help="take this run off the queue before it starts")
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
    text = snap.message if snap.message.startswith((snap.status, CANCELLED)) else f"{snap.status}: {snap.message}"
    note(text[0].upper() + text[1:])
    if snap.error:
        with st.expander("Traceback"):
            st.code(snap.error)


def live_panel(job: Job, live: bool) -> None:
    """`live`: the job was running when this page run began; then the panel polls until it sees the end."""

    def draw() -> bool:
        await_first_point(job, FIRST_POINT_WAIT)
        snap = job.snapshot()
        status_line(snap)
        live_curves(snap.records, run_title(snap.run_id, snap.config))
        return not snap.done

    if live:
        await_first_point(job, FIRST_POINT_WAIT_PAGE)
    live_fragment(draw, live, POLL_SECONDS)


def await_first_point(job: Job, seconds: float) -> None:
    """While a running job has no point yet, wait up to `seconds` for it, so that the page's run after Start, then
    each poll, draws it the moment it comes (and leaves the cores to the run's step 1 meanwhile)."""
    snap = job.snapshot()
    if snap.status == Status.RUNNING and not snap.of_kind(TrainRecord):
        wait_for(lambda: job.done or bool(job.snapshot().of_kind(TrainRecord)), seconds)


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


def past_runs(current_run: str | None, board: RunBoard) -> None:
    """Overlay and inspect stored runs. Their selectors hold run ids with labels that never change; where each run
    stands is drawn apart, above them, by `runs_now`."""
    runs = board.runs
    if not runs:
        return
    c = st.columns([3, 1])
    default = [current_run] if current_run in runs else list(runs)[:1]
    picked = c[0].multiselect("Overlay runs", list(runs), default=default, format_func=lambda r: runs[r].choice_label,
                              key="train_overlay_runs")
    metric = c[1].selectbox("Metric", list(OVERLAY_METRICS), index=list(OVERLAY_METRICS).index(DEFAULT_OVERLAY),
                            key="train_overlay_metric")
    if picked:
        overlay_panel([runs[r] for r in picked], metric)
    inspect = st.selectbox("Inspect a stored run", ["—", *runs], format_func=lambda r: r if r == "—" else
                           runs[r].choice_label, key="train_inspect")
    if inspect != "—":
        inspect_panel(runs[inspect])


def overlay_panel(picked: list[RunEntry], metric: str) -> None:
    """The picked runs' `metric` on one chart, re-read while one of them is live; a run without points of it is
    named in a line instead (no empty chart: a run that has just started shows "no points yet")."""

    def draw() -> bool:
        entries = [fresh_entry(e) for e in picked]
        records = {e.key: read_metrics(e.path) for e in entries}
        drawn = [e for e in entries if has_points(records[e.key], metric)]
        if drawn:
            overlay = [dict(label=e.run_id, records=records[e.key], skip=e.skip) for e in drawn]
            show_chart(overlay_figure(overlay, metric), key="train_overlay", name=f"{metric} of {len(drawn)} runs",
                       title=f"{metric}: {', '.join(e.run_id for e in drawn)}", width="stretch")
        missing = [e for e in entries if e not in drawn]
        if missing:
            st.caption(no_points_note([(e.run_id, e.status_text, e.live) for e in missing], metric))
        return any(e.live for e in entries)

    live_fragment(draw, any(e.live for e in picked), OVERLAY_POLL)


def fresh_entry(entry: RunEntry) -> RunEntry:
    """The run as it stands now (from the board's one place: its job here, else its folder)."""
    try:
        return run_entry(server_runner(), read_run(entry.path))
    except ValueError:
        return entry  # spoilt since the page was drawn: listed as it was, and under Past runs as unreadable


def inspect_panel(entry: RunEntry) -> None:
    info = read_run(entry.path)
    if entry.live:
        stored_live_panel(info)  # still training, here or in another process (a CLI or torchrun run)
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
    """A live run: its status and curves, re-read while it is live (its job's state when it trains here)."""

    def draw() -> bool:
        try:
            entry = run_entry(server_runner(), read_run(info.path))
        except ValueError as exc:
            st.warning(str(exc))
            return False
        note = f" — {entry.state.message}" if entry.state.message and not entry.job_id else ""
        st.caption(f"Live: **{entry.status_text}**{note}")
        show_chart(training_curves(read_metrics(info.path)), key="train_inspect_curves",
                   name=run_title(info.run_id, info.config.train), title=run_title(info.run_id, info.config.train),
                   width="stretch")
        return entry.live

    live_fragment(draw, True, POLL_SECONDS)


def runs_now(board: RunBoard, shown: Job | None) -> None:
    """Where every run of the server stands, redrawn from the board while one is live: the jobs of other sessions
    (with Open), then the stored runs. The page reruns when a run appears or changes state (`follow_runs`)."""

    def draw(now: RunBoard) -> None:
        if st.session_state.get(JOB_KEY) != (shown.id if shown else None):
            st.rerun()  # Open was pressed: show that job, with the widgets set as it was started
        server_runs(now, shown)
        st.subheader("Past runs")
        skipped_runs_note(now.skipped)
        if not now.runs:
            st.caption("No runs stored yet: they are kept in the runs folder and listed here after a restart.")
            return
        st.caption(stored_runs_note(now))
        st.markdown(run_lines(now))

    follow_runs(board, draw)


def server_runs(board: RunBoard, shown: Job | None) -> None:
    """Every queued or running job of this server but the one shown, with an Open button: a run left behind by
    a closed tab can be reattached and stopped by whoever opens the page."""
    others = [e for e in board.live if e.job_id is not None and e.job_id != (shown.id if shown else None)]
    if not others:
        return
    st.subheader("Training on this server now")
    for entry in others:
        c = st.columns([5, 1])
        c[0].markdown(f"`{entry.name}` · {entry.model} on {entry.dataset} · {entry.status_text}")
        c[1].button("Open", key=f"train_open_{entry.job_id}", on_click=attach, args=(entry.job_id,),
                    disabled=live_here(shown), help="show this run here, with its curves and Stop"
                    if not live_here(shown) else "stop or leave the run shown above first")


def live_here(job: Job | None) -> bool:
    return job is not None and not job.done


def start_panel(live: bool) -> None:
    """The settings, Start and Stop, and what the settings will cost and choose."""
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


def run_panel(job: Job | None, live: bool) -> None:
    """The run shown: its bar and live curves, or their empty places before a Start."""
    with st.spinner("Preparing the training engine…"):
        warm_up()  # once per server process, so that Start goes straight to training
        if st.session_state.train_dataset == "synthetic":
            load_dataset("synthetic")
    if job is None:
        running, queued = default_runner().load()
        st.caption(f"Pick a model and press **Start training** (by default {AUTO_BUDGET} on the "
                   f"built-in synthetic set). This server: {running} run(s) training, {queued} queued.")
        st.progress(0.0, text="Not started")  # the live run's bar and chart, empty until its first step
        live_curves([])
    else:
        st.caption(f"{job.config.model} on {job.config.dataset} · seed {job.config.seed} · "
                   + settings_text(job.result.settings if job.result is not None else
                                   preview_settings(job.config, threads=default_runner().threads_per_run)))
        live_panel(job, live)


def toast_once(job: Job) -> None:
    if st.session_state.get(TOASTED_KEY) != job.id:
        st.session_state[TOASTED_KEY] = job.id  # once per run, on whichever rerun first sees it ended
        message = job.snapshot().message
        st.toast(message[0].upper() + message[1:])


def main() -> None:
    init_state()
    st.title("Train")
    st.markdown("Train the chosen model on a data set and watch the curves as they are measured. Every run is kept "
                "on disk with its config, metrics, status and final weights.")
    if or_error(default_runner) is None:  # e.g. a bad $RESNET_EXPLORER_MAX_RUNS: no training, stored runs still shown
        st.divider()
        board = current_board()
        runs_now(board, None)
        past_runs(None, board)
        return
    reattach_from_url()
    job = my_job()
    live = job is not None and not job.done  # read once: the job may end while this run draws the page
    board = current_board()  # every run's state for this page run; `runs_now` reruns the page when it changes
    if job is not None and not live:
        toast_once(job)
    left, right = st.columns([1, 2.3], gap="large")
    with left:
        start_panel(live)
    with right:
        run_panel(job, live)
    if job is not None and not live and job.result is not None:
        snap = job.snapshot()
        results("Results", snap.run_dir, snap.records, job.result.settings, job.result.evaluation,
                job.result.data.test_images, run_title(snap.run_id, snap.config))
    strategies_section()
    st.divider()
    runs_now(board, job)
    past_runs(job.snapshot().run_id if job is not None else None, board)
    repeat_seed_panel()


main()


quick_check("Train")
