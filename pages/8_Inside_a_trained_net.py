"""Inside a trained net: one image through a stored run — prediction, feature maps, residual ratios, Grad-CAM."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from resnet_core.fence import check_run_data
from resnet_core.gradcam import SELVARAJU2017
from resnet_core.images import MAX_IMAGE_BYTES, MAX_IMAGE_PIXELS, decode_image, from_test_set, image_array
from resnet_core.inspect import Inspection, inspect_run, plain_twin
from resnet_core.lesion import VEIT2016
from resnet_core.model import ResNet
from resnet_core.records import Status, short_label
from resnet_core.runstore import RunInfo, load_model, load_run_data, scan_runs, weights_file
from ui.charts import show_chart
from ui.inspect_figures import (
    feature_maps_figure,
    gradcam_figure,
    normalized_figure,
    picture_figure,
    residual_ratio_figure,
    top_figure,
)
from ui.page import setup_page
from ui.widgets import skipped_runs_note

setup_page("Inside a trained net")

SAMPLES = Path(__file__).resolve().parent.parent / "assets" / "samples"
SOURCES = ("Test set", "Sample image", "Upload")
PREDICTED = "the predicted class only"


@st.cache_resource(max_entries=4, show_spinner="Loading the run's weights…")
def cached_model(run_dir: str, weights_mtime: float) -> ResNet:
    return load_model(run_dir)


@st.cache_resource(max_entries=2, show_spinner="Loading the run's test images…")
def cached_test_images(run_dir: str):
    return load_run_data(run_dir).test_images


def model_of(info: RunInfo) -> ResNet:
    return cached_model(str(info.path), weights_file(info.path).stat().st_mtime)


def label(info: RunInfo) -> str:
    kind = "residual" if info.skip else "plain"
    acc = info.final.test_acc if info.final else None
    return (f"{short_label(info.run_id)} · {info.config.train.model} · {info.config.data.name} · {kind}"
            + (f" · test acc {acc:.1%}" if acc is not None else ""))


def pick_pixels(info: RunInfo):
    """(uint8 pixels, caption, notes) of the chosen image, or None after showing why there is none."""
    source = st.radio("Image", SOURCES, horizontal=True, key="inside_source")
    if source == "Test set":
        try:
            check_run_data(info.config.train.data_dir)  # a command-line run may name any folder
            images = cached_test_images(str(info.path))
        except (ValueError, RuntimeError) as exc:
            st.warning(f"This run's test images cannot be read here: {exc}. Pick a sample image or upload one.")
            return None
        if st.session_state.get("inside_index", 0) >= len(images):  # another run, with fewer test images
            st.session_state["inside_index"] = 0
        index = st.number_input(f"Test image (0 to {len(images) - 1})", 0, len(images) - 1, key="inside_index")
        return from_test_set(images, int(index)), f"test image {index}", ()
    if source == "Sample image":
        files = sorted(p.name for p in SAMPLES.iterdir() if p.suffix in (".png", ".jpg"))
        name = st.selectbox("Sample", files, key="inside_sample")
        loaded = decode_image((SAMPLES / name).read_bytes(), name)
        return loaded.pixels, f"sample {name}", loaded.notes
    upload = st.file_uploader(f"PNG or JPEG, at most {MAX_IMAGE_BYTES // 2**20} MB and "
                              f"{MAX_IMAGE_PIXELS / 1e6:.1f} megapixels", type=["png", "jpg", "jpeg"],
                              key="inside_upload")
    if upload is None:
        st.caption("Upload an image; it is decoded in memory and never stored.")
        return None
    try:
        loaded = decode_image(upload.getvalue(), upload.name)
    except ValueError as exc:
        st.error(str(exc), icon="⚠️")
        return None
    return loaded.pixels, f"upload {upload.name}", loaded.notes


def show(result: Inspection, twin: tuple[RunInfo, Inspection] | None, info: RunInfo, chosen: int | None) -> None:
    classes = result.classes
    c = st.columns(3)
    c[0].metric("Prediction", classes[result.predicted])
    c[1].metric("Probability", f"{result.probabilities[result.predicted]:.1%}")
    c[2].metric("Measured in", f"{result.seconds * 1000:.0f} ms")
    left, right = st.columns(2)
    run = f"{short_label(info.run_id)} ({info.config.train.model} on {info.config.train.dataset})"
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

    st.subheader("Grad-CAM")
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
    st.markdown("Send one image through a stored run's final weights: its prediction, the input as the model sees "
                "it, Grad-CAM, how much each block changes what passes through it, and the feature maps of each "
                "stage. Everything is measured on this image, now.")
    stored, skipped = scan_runs()
    skipped_runs_note(skipped)
    runs = {r.run_id: r for r in stored if r.status in (Status.FINISHED, Status.STOPPED) and r.has_weights}
    if not runs:
        st.info("No trained run with weights yet: train one on the Train page.")
        st.page_link("pages/4_Train.py", label="Train a model", icon=":material/model_training:")
        return
    left, right = st.columns([1, 2], gap="large")
    with left:
        run_id = st.selectbox("Trained run", list(runs), format_func=lambda r: label(runs[r]), key="inside_run")
        info = runs[run_id]
        picked = pick_pixels(info)
        classes = info.config.data.classes
        if st.session_state.get("inside_class", PREDICTED) not in (PREDICTED, *classes):  # another run's class
            st.session_state["inside_class"] = PREDICTED
        also = st.selectbox("Grad-CAM also for", [PREDICTED, *classes], key="inside_class")
        chosen = None if also == PREDICTED else list(classes).index(also)
    if picked is None:
        return
    pixels, caption, notes = picked
    with left:
        show_chart(picture_figure(image_array(pixels), f"{caption}: {pixels.shape[2]}×{pixels.shape[1]}"),
                   key="inside_original", name=f"{caption} image", width="stretch")
        for note in notes:
            st.info(note[0].upper() + note[1:], icon="ℹ️")
    try:
        result = inspect_run(info, pixels, [chosen] if chosen is not None else [], model=model_of(info))
        twin_info = plain_twin(info, runs.values())
        twin = (twin_info, inspect_run(twin_info, pixels, model=model_of(twin_info))) if twin_info else None
    except ValueError as exc:  # weights that do not fit, a spoilt folder
        st.error(str(exc), icon="⚠️")
        return
    with right:
        show(result, twin, info, chosen)


main()
