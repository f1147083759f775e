"""Honest loading: a load that succeeds means the same network.

Checked against timm's own models: a BiT checkpoint (weight-standardised convs) into resnetv2_50 with group norm,
whose keys and shapes all fit, is refused in one line, and converted on purpose it computes BiT's function; a file
named for a timm model is checked against that model; what a nameless checkpoint cannot tell is said; our own files
and run folders carry their spec.
"""

from __future__ import annotations

import json
import shutil
import warnings
from functools import partial

import pytest
import timm  # a pinned dev requirement
import torch
from torch import nn

from resnet_core import build_model, load_state_dict, resolve_spec, save_weights
from resnet_core.models.provenance import architecture_from_path, carried_spec, checkpoint_evidence, with_spec
from resnet_core.models.weights import CheckpointWarning, map_keys
from resnet_core.runs import store as runstore
from resnet_core.runs.contract import DataFacts, RunConfig
from resnet_core.runs.loading import load_model
from resnet_core.training.config import TrainConfig
from resnet_core.training.settings import resolve_settings
from tests.test_timm_oracle import BIG, ONE_PER_STAGE, SHALLOW, TIMM_NAMES, reduced, timm_model

X = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))


@pytest.fixture(scope="module")
def bit():
    """timm's resnetv2_50x1_bit with random weights (its group norms have no statistics to randomise)."""
    torch.manual_seed(0)
    model = timm.create_model("resnetv2_50x1_bit").eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return model


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm()).item()


def test_bit_into_group_norm_resnetv2_50_is_refused_in_one_line(bit):
    ours = build_model("resnetv2_50", norm="group").eval()
    before = {k: v.clone() for k, v in ours.state_dict().items()}
    for state in (bit.state_dict(), dict(bit.state_dict())):  # with and without torch's module list
        with pytest.raises(ValueError) as caught:
            load_state_dict(ours, state, source="timm")
        message = str(caught.value)
        assert "\n" not in message
        assert message.startswith("state_dict: this timm checkpoint's network has weight_standardization true (in "
                                  "timm 1.0.31's registry every ResNetV2 with group norms and a 7x7 stem is BiT ")
        assert "but this model has weight_standardization false" in message
    assert all(torch.equal(before[k], v) for k, v in ours.state_dict().items())  # nothing was loaded
    # what the refusal prevents: the same tensors in plain convs compute another function
    ours.load_state_dict(map_keys(bit.state_dict(), "timm", ours.spec), strict=True)
    with torch.no_grad():
        assert relative(ours(X), bit(X)) > 0.5


def test_bit_converted_on_purpose_computes_bits_function(bit):
    with pytest.raises(ValueError, match=r"^state_dict: this timm checkpoint's network has stem_pool zero_pad_max"):
        load_state_dict(build_model("resnetv2_50", norm="group").eval(), bit.state_dict(), convert="standardize")
    plain = build_model("resnetv2_50", norm="group", stem_pool="zero_pad_max").eval()
    load_state_dict(plain, bit.state_dict(), convert="standardize")
    with torch.no_grad():
        assert relative(plain(X), bit(X)) < 1e-6
    with pytest.raises(ValueError, match=r"^convert: standardize is for a weight-standardised checkpoint loaded "
                                         r"into plain convs"):
        load_state_dict(build_model("resnetv2_50x1_bit"), bit.state_dict(), convert="standardize")


def test_a_named_timm_checkpoint_is_checked_against_that_model(tmp_path):
    theirs = timm.create_model("resnetaa50", layers=ONE_PER_STAGE)
    with pytest.raises(ValueError, match=r"^state_dict: this timm checkpoint's network has anti_alias avg \(the "
                                         r"checkpoint names timm's resnetaa50\) but this model has anti_alias none"):
        load_state_dict(build_model("resnet50", layers=ONE_PER_STAGE), theirs.state_dict(), architecture="resnetaa50")
    (tmp_path / "hub").mkdir()
    (tmp_path / "hub" / "config.json").write_text(json.dumps({"architecture": "resnetaa50"}))  # timm's Hub files
    for path in (tmp_path / "resnetaa50.a1h_in1k.pth",
                 tmp_path / "models--timm--resnetaa50.a1h_in1k" / "snapshots" / "0f1e" / "pytorch_model.bin",
                 tmp_path / "hub" / "pytorch_model.bin"):
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(theirs.state_dict(), path)
        assert architecture_from_path(path) == "resnetaa50"
        with pytest.raises(ValueError, match=r"^state_dict: .* anti_alias avg .* but this model has anti_alias none"):
            build_model("resnet50", weights=str(path), layers=ONE_PER_STAGE)
        build_model("resnetaa50", weights=str(path), layers=ONE_PER_STAGE)
    assert architecture_from_path(tmp_path / "resnet50-11ad3fa6.pth") == "resnet50"  # torchvision's file names
    assert architecture_from_path(tmp_path / "runs" / "resnet50-x" / "weights.pt") is None


def test_what_a_nameless_checkpoint_cannot_tell_is_said():
    theirs = timm.create_model("resnetaa50", layers=ONE_PER_STAGE)
    ours = build_model("resnet50", layers=ONE_PER_STAGE)
    with pytest.warns(CheckpointWarning) as caught:
        load_state_dict(ours, theirs.state_dict())
    assert len(caught) == 1 and str(caught[0].message).startswith(
        "state_dict: anti_alias cannot be told from this timm checkpoint (no key or shape shows them); loaded as "
        "this model's anti_alias none")
    evidence = checkpoint_evidence(timm.create_model("resnetblur50", layers=ONE_PER_STAGE).state_dict())
    assert evidence.facts["anti_alias"][0] == "blur" and "anti_alias" not in evidence.cannot_tell  # module list
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # ResNet-RS's conv stem pool, its norm right after: nothing left unknown
        load_state_dict(build_model("resnetrs50", layers=ONE_PER_STAGE),
                        timm.create_model("resnetrs50", layers=ONE_PER_STAGE).state_dict())


def test_every_timm_net_is_recognised_as_itself():
    """The registry rules never refuse any of timm's 132 nets loaded into its own preset (its state_dict, no name
    given, on the meta device at the oracle's depths), and what they leave unknown is only what no timm key shows:
    anti-aliasing (avg or none) in resnet.py's nets and the average pool's place in ResNeSt's."""
    unknown = {}
    for name in TIMM_NAMES:
        layers = ONE_PER_STAGE if name in BIG else SHALLOW
        with torch.device("meta"):
            theirs, ours = timm_model(name, layers), build_model(name, **reduced(name, layers))
        ours.load_state_dict = partial(nn.Module.load_state_dict, ours, assign=True)  # meta tensors: no data to copy
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            load_state_dict(ours, theirs.state_dict())
        told = [str(w.message).split(" cannot be told")[0].removeprefix("state_dict: ") for w in caught]
        unknown.update({name: told[0]} if told else {})
    assert set(unknown.values()) <= {"anti_alias", "avg_downsample", "anti_alias, avg_downsample"}
    assert {n for n, fields in unknown.items() if "avg_downsample" in fields} == {
        n for n in TIMM_NAMES if n.startswith("resnest")}
    assert "resnetaa50" in unknown and "resnetblur50" not in unknown and "resnetv2_50x1_bit" not in unknown


def test_our_files_carry_their_spec(tmp_path):
    torch.manual_seed(0)
    model = build_model("resnet50", layers=ONE_PER_STAGE)
    path = save_weights(model, tmp_path / "w.pt")
    state = torch.load(path, weights_only=True)
    assert list(state) == list(model.state_dict()) and carried_spec(state) == model.spec
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the spec went with the weights: nothing to warn about
        build_model("resnet50", weights=str(path), layers=ONE_PER_STAGE)
    with pytest.raises(ValueError, match=r"^state_dict: saved from another network: anti_alias is none in the "
                                         r"checkpoint's network but avg in this model$"):
        build_model("resnetaa50", weights=str(path), layers=ONE_PER_STAGE)
    bad = with_spec(model.state_dict(), model.spec)
    bad._metadata[""]["resnet_explorer_spec"] = '{"block": "dense"}'
    with pytest.raises(ValueError, match=r"^state_dict: the spec it carries is not valid: block must be one of"):
        load_state_dict(build_model("resnet50", layers=ONE_PER_STAGE), bad)


def test_run_folders_weights_carry_the_runs_spec(tmp_path):
    data = DataFacts("synthetic", "generated", ["a", "b"], 3, 32, 10, 10, [0.5] * 3, [0.25] * 3)
    configs = {name: RunConfig(TrainConfig(model=name), resolve_spec(name, num_classes=2), data,
                               resolve_settings(TrainConfig())) for name in ("resnet20", "plain20")}
    for name, config in configs.items():
        writer = runstore.create_run(config, tmp_path / name)
        writer.save_weights(build_model(config.spec))
        writer.close()
    assert load_model(tmp_path / "resnet20").spec == configs["resnet20"].spec
    shutil.copy(tmp_path / "resnet20" / runstore.WEIGHTS, tmp_path / "plain20" / runstore.WEIGHTS)  # same keys
    with pytest.raises(ValueError, match=r"^run plain20: weights.pt was saved from another network than its "
                                         r"config.json's: skip is true in the checkpoint's network but false in this "
                                         r"model$"):
        load_model(tmp_path / "plain20")
