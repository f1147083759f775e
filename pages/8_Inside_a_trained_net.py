"""Inside a trained net: one image through a stored run — what the run was trained on, how far the image lies from
it, the prediction, feature maps, residual ratios and Grad-CAM, and the whole time the user waited for them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import streamlit as st

from resnet_core.analysis import familiarity
from resnet_core.analysis.familiarity import Familiarity, FamiliarityProfile
from resnet_core.analysis.gradcam import SELVARAJU2017
from resnet_core.analysis.inspect import Inspection, Waited, inspect_run, plain_twin
from resnet_core.data.fence import check_run_data
from resnet_core.data.image_data import ImageData
from resnet_core.data.images import (
    MAX_IMAGE_BYTES,
    MAX_IMAGE_PIXELS,
    decode_image,
    from_test_set,
    image_array,
    thumbnail,
)
from resnet_core.experiments.lesion import VEIT2016
from resnet_core.models.resnet import ResNet
from resnet_core.runs.contract import short_label
from resnet_core.runs.loading import load_model, load_run_data
from resnet_core.runs.pairing import differences_text, run_differences
from resnet_core.runs.store import RunInfo, scan_runs, weights_file
from resnet_core.training.records import Status
from ui.charts import show_chart
from ui.inspect_figures import (
    examples_figure,
    feature_maps_figure,
    gradcam_figure,
    normalized_figure,
    picture_figure,
    residual_ratio_figure,
    top_figure,
)
from ui.live import LISTED_WHEN, runs_strip
from ui.page import setup_page
from ui.widgets import skipped_runs_note

setup_page("Inside a trained net")

SAMPLES = Path(__file__).resolve().parent.parent / "assets" / "samples"
SOURCES = ("Test set", "Sample image", "Upload")
PREDICTED = "the predicted class only"
SHOWN_SIDE = 384  # the picked image is drawn at most this many pixels on a side (the model gets every pixel)
EXAMPLES_PER_CLASS = 3
MAX_EXAMPLE_CLASSES = 20
PROFILE_BUDGET = 200e9  # mult-adds a familiarity profile may take unasked (ResNet-20 at 32×32: 122 G, 5–22 s here)


@dataclass(frozen=True)
class Ask:
    """A familiarity profile too costly to measure unasked: its images and mult-adds."""

    images: int
    mult_adds: int


@st.cache_resource(max_entries=4, show_spinner="Loading the run's weights…")
def cached_model(run_dir: str, weights_mtime: float) -> ResNet:
    return load_model(run_dir)


@st.cache_resource(max_entries=2, show_spinner="Loading the run's images…")
def cached_run_data(run_dir: str) -> ImageData:
    return load_run_data(run_dir)


def run_data(info: RunInfo) -> ImageData | str:
    """The run's own images, or why they cannot be read here."""
    try:
        check_run_data(info.config.train.data_dir)  # a command-line run may name any folder
        return cached_run_data(str(info.path))
    except (ValueError, RuntimeError) as exc:
        return str(exc)


def model_of(info: RunInfo) -> ResNet:
    return cached_model(str(info.path), weights_file(info.path).stat().st_mtime)


def label(info: RunInfo) -> str:
    kind = "residual" if info.skip else "plain"
    acc = info.final.test_acc if info.final else None
    return (f"{short_label(info.run_id)} · {info.config.train.model} · {info.config.data.name} · {kind}"
            + (f" · test acc {acc:.1%}" if acc is not None else ""))


def pick_pixels(info: RunInfo, waited: Waited):
    """(uint8 pixels, caption, notes, where the wait starts) of the chosen image, or None after showing why there is
    none; `waited` gets the time of reading and decoding it."""
    source = st.radio("Image", SOURCES, horizontal=True, key="inside_source")
    if source == "Test set":
        data = run_data(info)
        if isinstance(data, str):
            st.warning(f"This run's test images cannot be read here: {data}. Pick a sample image or upload one.")
            return None
        images = data.test_images
        if st.session_state.get("inside_index", 0) >= len(images):  # another run, with fewer test images
            st.session_state["inside_index"] = 0
        index = st.number_input(f"Test image (0 to {len(images) - 1})", 0, len(images) - 1, key="inside_index")
        with waited.phase("take the test image from memory"):
            pixels = from_test_set(images, int(index))
        return pixels, f"test image {index}", (), "the test image in memory"
    if source == "Sample image":
        files = sorted(p.name for p in SAMPLES.iterdir() if p.suffix in (".png", ".jpg"))
        name = st.selectbox("Sample", files, key="inside_sample")
        with waited.phase("read the file"):
            data = (SAMPLES / name).read_bytes()
        with waited.phase("decode"):
            loaded = decode_image(data, name)
        return loaded.pixels, f"sample {name}", loaded.notes, "the sample file's bytes"
    return pick_upload(waited)


def pick_upload(waited: Waited):
    upload = st.file_uploader(f"PNG or JPEG, at most {MAX_IMAGE_BYTES // 2**20} MB and "
                              f"{MAX_IMAGE_PIXELS / 1e6:.1f} megapixels", type=["png", "jpg", "jpeg"],
                              key="inside_upload")
    if upload is None:
        st.caption("Upload an image; it is decoded in memory and never stored.")
        return None
    try:
        with waited.phase("read the upload"):
            data = upload.getvalue()
        with waited.phase("decode"):
            loaded = decode_image(data, upload.name)
    except ValueError as exc:
        st.error(str(exc), icon="⚠️")
        return None
    return loaded.pixels, f"upload {upload.name}", loaded.notes, "the upload's bytes on the server"


def show_knowledge(info: RunInfo, data: ImageData | str) -> None:
    """The classes the run was trained on, and a few of its own training images per class."""
    facts = info.config.data
    names = ", ".join(facts.classes)
    st.subheader("What this model knows")
    st.markdown(f"Trained on **{facts.name}** ({facts.train_size:,} training images at {facts.image_size}×"
                f"{facts.image_size}): it knows only these **{len(facts.classes)} classes** — {names}. Whatever the "
                f"image, its prediction is one of these names.")
    if isinstance(data, str):
        st.caption(f"Its training images cannot be read here ({data}), so none are shown.")
        return
    examples = familiarity.class_examples(data, EXAMPLES_PER_CLASS)
    shown = dict(list(examples.items())[:MAX_EXAMPLE_CLASSES])
    show_chart(examples_figure({name: np.stack([image_array(thumbnail(p, 64)) for p in images])
                                for name, images in shown.items()}),
               key="inside_examples", name=f"{short_label(info.run_id)} training examples", width="stretch",
               title=f"The first {EXAMPLES_PER_CLASS} training images of "
                     + ("each class" if len(shown) == len(examples) else f"{len(shown)} of {len(examples)} classes"))


def show(result: Inspection, twin: tuple[RunInfo, Inspection] | None, info: RunInfo, chosen: int | None,
         judged: tuple[Familiarity, FamiliarityProfile] | Ask | str, waited: tuple[Waited, str]) -> None:
    run = f"{short_label(info.run_id)} ({info.config.train.model} on {info.config.train.dataset})"
    show_metrics(result, waited[0])
    show_familiarity(result, judged, info.run_id)
    show_wait(*waited)
    seen = show_prediction(result, info, run)
    show_gradcam(result, seen, run, chosen)
    show_ratios(result, twin, info, run)
    show_feature_maps(result, run)


def show_metrics(result: Inspection, waited: Waited) -> None:
    st.subheader("Prediction")
    c = st.columns(3)
    c[0].metric("Prediction", result.classes[result.predicted])
    c[1].metric("Probability", f"{result.probabilities[result.predicted]:.1%}")
    c[2].metric("Waited", f"{waited.total * 1000:.0f} ms" if waited.total < 1 else f"{waited.total:.2f} s")


def show_familiarity(result: Inspection, judged: tuple[Familiarity, FamiliarityProfile] | Ask | str,
                     run_id: str) -> None:
    """Whether the image lies far from the run's training images, with the threshold and its false-alarm rate."""
    if isinstance(judged, str):
        st.caption(f"How far this image lies from the training images cannot be measured here: {judged}.")
        return
    if isinstance(judged, Ask):
        st.info(f"Whether this image lies far from the run's training images is measured on {judged.images:,} of "
                f"its own images: {judged.mult_adds / 1e9:,.0f} G mult-adds through this model, once per run "
                f"(ResNet-20 at 32×32 takes 122 G, 5–22 s on this project's 2 cores). Until then the prediction "
                "says nothing about whether the image resembles what the model was trained on.")
        if st.button("Measure it for this run", key="inside_profile_go"):
            st.session_state[f"inside_profile_{run_id}"] = True
            st.rerun()
        return
    verdict, profile = judged
    name = familiarity.SCORE_NAMES[verdict.score]
    guess = f"“{result.classes[result.predicted]} {result.probabilities[result.predicted]:.1%}”"
    if verdict.flagged:
        among = (f"higher than every one of the {profile.calibration_images:,} held-out training images"
                 if verdict.beyond == 1 else f"{verdict.beyond:.1%} of the held-out training images score lower")
        st.warning(f"**Far from the training images.** {name.capitalize()}: {verdict.value:.4g}, {verdict.ratio:.1f}× "
                   f"the threshold {verdict.threshold.value:.4g}; {among}. The model still answers with one of its "
                   f"{len(result.classes)} classes: {guess} is the nearest name it has, not a recognition.", icon="⚠️")
    else:
        st.success(f"**Like the training images.** {name.capitalize()}: {verdict.value:.4g}, below the threshold "
                   f"{verdict.threshold.value:.4g} ({verdict.beyond:.1%} of the held-out training images score "
                   "lower).", icon="✅")
    t95, t99 = profile.thresholds
    st.caption(f"Measured on this run's own data ({profile.seconds:.1f} s, once per run): the penultimate features' "
               f"{name}, fitted on {profile.fit_images:,} training images (Mahalanobis: {familiarity.LEE2018}). "
               f"Threshold: the {t95.percentile:g}th percentile of {profile.calibration_images:,} other training "
               f"images, {t95.value:.4g}; on the run's first {profile.test_images:,} test images {t95.false_alarm:.1%} "
               f"score above it (the false-alarm rate). At the {t99.percentile:g}th percentile ({t99.value:.4g}) "
               f"the false-alarm rate is {t99.false_alarm:.1%}.")


def show_wait(waited: Waited, start: str) -> None:
    outside = ("Sending the upload from the browser comes before and drawing the charts after; neither is included."
               if "upload" in start else "Drawing the charts comes after and is not included.")
    st.caption(f"Waited {waited.total:.2f} s, from {start} to this result, every phase measured: {waited.text()}. "
               + outside)


def show_prediction(result: Inspection, info: RunInfo, run: str) -> np.ndarray:
    """The top 5 and the input as the model sees it; returns that picture, uint8 (H, W, 3)."""
    left, right = st.columns(2)
    show_chart(top_figure(result), key="inside_top", where=left, name=f"{run} top-5", title=f"{run}: top 5",
               width="stretch")
    seen = image_array(result.seen)
    side = result.seen.shape[-1]
    show_chart(picture_figure(seen, f"As the model sees it: {side}×{side}, "
                                    f"{'grey' if result.seen.shape[0] == 1 else 'RGB'}"),
               key="inside_seen", where=right, name=f"{run} input", width="stretch")
    show_chart(normalized_figure(result.normalized.numpy()), key="inside_normalized", name=f"{run} normalized input",
               title=f"{run}: the normalised input", width="stretch")
    st.caption(f"Normalised with the run's training statistics (mean {fmt(info.config.data.mean)}, std "
               f"{fmt(info.config.data.std)} on the 0–1 scale): this is the tensor the first convolution receives.")
    return seen


def show_gradcam(result: Inspection, seen: np.ndarray, run: str, chosen: int | None) -> None:
    st.subheader("Grad-CAM")
    classes = result.classes
    targets = [result.predicted] + ([chosen] if chosen is not None and chosen != result.predicted else [])
    cols = st.columns(len(targets))
    for col, k in zip(cols, targets):
        what = "predicted" if k == result.predicted else "chosen"
        show_chart(gradcam_figure(seen, result.gradcam[k], f"{classes[k]} ({what}, p = "
                                  f"{result.probabilities[k]:.1%})"), key=f"inside_cam_{k}", where=col,
                   name=f"{run} grad-cam {classes[k]}", title=f"{run}: Grad-CAM", width="stretch")
    st.caption(f"Where the evidence for a class lies in the last feature map ({result.stages[-1].shape[1]}×"
               f"{result.stages[-1].shape[2]}, upsampled): each channel weighted by the mean gradient of the class's "
               f"logit, positive part, scaled to its maximum. Computed here with hooks, no library. "
               f"Source: {SELVARAJU2017}.")


def show_ratios(result: Inspection, twin: tuple[RunInfo, Inspection] | None, info: RunInfo, run: str) -> None:
    st.subheader("Residual ratio per block")
    series = [(f"{short_label(info.run_id)} ({'residual' if result.skip else 'plain'})", result)]
    if twin is not None:
        series.append((f"{short_label(twin[0].run_id)} ({'residual' if twin[1].skip else 'plain'} twin)", twin[1]))
    show_chart(residual_ratio_figure(series), key="inside_ratio", name=f"{run} residual ratio",
               title="Residual ratio per block: " + ", ".join(name for name, _ in series), width="stretch")
    ratios = sorted(b.residual_ratio for b in result.blocks if not b.changes_shape)
    median = f"; the median over blocks that keep the shape is {ratios[len(ratios) // 2]:.3f}" if ratios else ""
    st.caption(f"‖F(x)‖/‖x‖: the norm of the block's branch over the norm of its input, on this image{median}. A "
               "small ratio means the block only nudges what passes through, the reading behind Veit et al.'s "
               f"ensemble view ({VEIT2016}). In a plain net the branch is the whole block."
               + ("" if twin else " No stored plain twin of this net (same model without shortcuts, same data) has "
                  "weights: train one to see both side by side."))
    if twin and (unlike := run_differences(info, twin[0])):
        st.warning(f"The twin was not trained like this run ({differences_text(unlike)}): its ratios are shown, but "
                   "differences between the two are not down to the shortcuts alone.", icon="⚠️")


def show_feature_maps(result: Inspection, run: str) -> None:
    st.subheader("Feature maps per stage")
    st.caption("Per stage, the channels with the highest mean |activation| on this image, each on its own scale.")
    tabs = st.tabs([s.name for s in result.stages])
    for tab, stage in zip(tabs, result.stages):
        show_chart(feature_maps_figure(stage), key=f"inside_maps_{stage.name}", where=tab,
                   name=f"{run} feature maps {stage.name}", title=f"{run}: feature maps of {stage.name}",
                   width="stretch")


def fmt(values) -> str:
    return ", ".join(f"{v:.3f}" for v in values)


def main() -> None:
    st.title("Inside a trained net")
    st.markdown("Send one image through a stored run's final weights: what the run was trained on, how far the "
                "image lies from its training images, its prediction, the input as the model sees it, Grad-CAM, how "
                "much each block changes what passes through it, and the feature maps of each stage. Everything is "
                "measured on this image, now.")
    runs_strip(LISTED_WHEN)
    stored, skipped = scan_runs()
    skipped_runs_note(skipped)
    runs = {r.run_id: r for r in stored if r.status in (Status.FINISHED, Status.STOPPED) and r.has_weights}
    if not runs:
        st.info("No trained run with weights yet: train one on the Train page.")
        st.page_link("pages/4_Train.py", label="Train a model", icon=":material/model_training:")
        return
    left, right = st.columns([1, 2], gap="large")
    waited = Waited()
    with left:
        run_id = st.selectbox("Trained run", list(runs), format_func=lambda r: label(runs[r]), key="inside_run")
        info = runs[run_id]
        picked = pick_pixels(info, waited)
        chosen = pick_class(info)
    with right:
        show_knowledge(info, run_data(info))
    if picked is None:
        return
    pixels, caption, notes, start = picked
    with left:
        shown = thumbnail(pixels, SHOWN_SIDE)
        show_chart(picture_figure(image_array(shown), f"{caption}: {pixels.shape[2]}×{pixels.shape[1]}"),
                   key="inside_original", name=f"{caption} image", width="stretch")
        if shown is not pixels:
            st.caption(f"Drawn here at {shown.shape[2]}×{shown.shape[1]}; the model's input is made from every pixel.")
        for note in notes:
            st.info(note[0].upper() + note[1:], icon="ℹ️")
    try:
        result, twin, judged = measure(info, runs, pixels, chosen, waited)
    except ValueError as exc:  # weights that do not fit, a spoilt folder
        st.error(str(exc), icon="⚠️")
        return
    with right:
        show(result, twin, info, chosen, judged, (waited, start))


def pick_class(info: RunInfo) -> int | None:
    classes = info.config.data.classes
    if st.session_state.get("inside_class", PREDICTED) not in (PREDICTED, *classes):  # another run's class
        st.session_state["inside_class"] = PREDICTED
    also = st.selectbox("Grad-CAM also for", [PREDICTED, *classes], key="inside_class")
    return None if also == PREDICTED else list(classes).index(also)


def measure(info: RunInfo, runs: dict[str, RunInfo], pixels, chosen: int | None, waited: Waited):
    """(inspection, the plain twin's (run, inspection) or None, (verdict, profile) or why there is none), each
    phase timed into `waited`."""
    with waited.phase("load the run's weights (cached after the first time)"):
        model = model_of(info)
    result = inspect_run(info, pixels, [chosen] if chosen is not None else [], model=model)
    waited.extend(result.phases)
    judged = judge(info, result, waited)
    twin_info = plain_twin(info, runs.values())
    twin = None
    if twin_info is not None:
        with waited.phase("the twin's pass"):
            twin = (twin_info, inspect_run(twin_info, pixels, model=model_of(twin_info)))
    return result, twin, judged


def judge(info: RunInfo, result: Inspection, waited: Waited) -> tuple[Familiarity, FamiliarityProfile] | Ask | str:
    """The image against the run's familiarity profile; an Ask when measuring the profile would cost more than
    PROFILE_BUDGET and nobody asked for it yet; a reason when it cannot be measured."""
    data = run_data(info)
    if isinstance(data, str):
        return f"the run's images cannot be read ({data})"
    try:
        profile = familiarity.cached_profile(info)
        if profile is None:
            images, cost = familiarity.profile_cost(info)
            if cost > PROFILE_BUDGET and not st.session_state.get(f"inside_profile_{info.run_id}"):
                return Ask(images, cost)
            with waited.phase("the run's familiarity profile (measured once per run)"):
                with st.spinner(f"Measuring how {images:,} of the run's own images score (once per run)…"):
                    profile = familiarity.profile_run(info)
    except ValueError as exc:  # e.g. fewer than 10 training images
        return str(exc)
    with waited.phase("this image's familiarity score"):
        verdict = profile.judge(result.features, result.logits)
    return verdict, profile


main()
