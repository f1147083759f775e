"""`python -m resnet_core list|summary|train`: output, JSON, one-line errors with exit code 2, diverging runs."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from resnet_core.cli import join_negative_values, main
from resnet_core.introspect.depth import conv_layers
from resnet_core.models.presets import resolve_spec
from resnet_core.runs import store as runstore
from resnet_core.training.records import Status

TINY_TRAIN = ["resnet20", "--width", "4", "--layers", "1,1,1", "--train-subset", "256", "--batch-size", "128",
              "--no-augment", "--probe-every", "0", "--threads", "1"]
DIVERGING = ["--lr", "90", "--schedule", "constant", "--steps", "20"]  # diverges at step 4


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_list_prints_every_preset_with_its_count(capsys):
    code, out, _ = run(capsys, "list")
    assert code == 0
    rows = {line.split()[0]: line for line in out.splitlines()[1:]}
    assert "25,557,032" in rows["resnet50"] and "269,722" in rows["resnet20"] and "853,018" in rows["plain56"]
    code, out, _ = run(capsys, "list", "--json")
    counts = {r["model"]: r["params"] for r in json.loads(out)}
    assert counts["resnet152"] == 60_192_808 and counts["wide_resnet50_2"] == 68_883_240


def test_list_shows_the_published_depth_where_the_paper_counts_differently(capsys):
    code, out, _ = run(capsys, "list", "--json")
    rows = {r["model"]: r for r in json.loads(out)}
    # the number in every preset's name, recovered by counting layers of the built model the way its paper does
    for name in ("resnet50", "resnet56", "plain20", "wrn16_4", "wrn28_10"):
        assert rows[name]["published_depth"] == int(name.split("_")[0].removeprefix("plain").removeprefix("resnet")
                                                    .removeprefix("wrn"))
    # ours: stem + block convs + classifier, 6N + 2; Zagoruyko & Komodakis: every conv, 6N + 4 (N = 2 and 4)
    assert (rows["wrn16_4"]["depth"], rows["wrn28_10"]["depth"]) == (14, 26)
    assert conv_layers(resolve_spec("wrn28_10")) == 6 * 4 + 4 and conv_layers(resolve_spec("wrn16_4")) == 6 * 2 + 4
    code, out, _ = run(capsys, "list")
    lines = {line.split()[0]: line for line in out.splitlines()[1:]}
    assert lines["wrn28_10"].split()[3] == "26" and lines["wrn28_10"].endswith("(named 28*)")
    assert "(named" not in lines["resnet56"] and "1×1 shortcut convs" in out and "6N+4" in out


def test_summary_json_has_totals_and_stages(capsys):
    code, out, _ = run(capsys, "summary", "resnet50", "--json")
    data = json.loads(out)
    assert code == 0
    assert (data["total_params"], data["trainable_params"], data["mult_adds"]) == (25_557_032, 25_557_032,
                                                                                   4_089_238_376)
    assert [s["stage"] for s in data["stages"]] == ["stem", "layer1", "layer2", "layer3", "layer4", "head"]
    assert data["stages"][1]["output_shape"] == [1, 256, 56, 56]


def test_summary_overrides_reach_the_spec(capsys):
    code, out, _ = run(capsys, "summary", "resnet20", "--layers", "2,2,2", "--shortcut", "B", "--json")
    assert json.loads(out)["total_params"] == 175_258
    code, out, _ = run(capsys, "summary", "resnet18", "--block", "bottleneck", "--groups", "32",
                       "--width-per-group", "4", "--layers", "3,4,6,3", "--json", "--input", "3,224,224")
    assert json.loads(out)["total_params"] == 25_028_904
    code, out, _ = run(capsys, "summary", "resnet20", "--no-skip", "--se", "--in-channels", "1",
                       "--num-classes", "7", "--input", "1,28,28", "--batch", "16", "--json")
    data = json.loads(out)
    assert data["spec"]["skip"] is False and data["spec"]["attention"] == "se" and data["output_shape"] == [16, 7]


def test_summary_table_text(capsys):
    code, out, _ = run(capsys, "summary", "resnet20")
    assert code == 0 and "total params: 269,722" in out and "layer3" in out


@pytest.mark.parametrize("argv, message", [
    (["summary", "resnet99"], "model must be one of"),
    (["summary", "resnet20", "--layers", "3,0,3"], "argument --layers: layers: stage 2 has 0 blocks"),
    (["summary", "resnet20", "--layers", "3,x"], "argument --layers: layers must be comma-separated whole numbers"),
    (["summary", "resnet20", "--no-skip", "--width", "wide"], "argument --width: width must be a whole number"),
    (["summary", "resnet50", "--input", "3,224"], "input must be three positive integers C,H,W"),
    (["summary", "resnet50", "--input", "3,-5,224"], "input must be three positive integers C,H,W"),
    (["summary", "resnet50", "--batch", "0"], "batch must be an integer from 1 to 65536; got 0"),
    (["summary", "resnet50", "--groups", "0"], "groups must be an integer from 1 to 4096; got 0"),
    (["summary", "resnet50", "--width", "0"], "width must be an integer from 1 to 4096; got 0"),
    (["summary", "resnet50", "--num-classes", "0"], "num_classes must be an integer from 1 to 100000"),
    (["summary", "resnet50", "--block", "dense"], "block must be one of basic, bottleneck"),
    (["summary", "resnet50", "--shortcut", "E"], "shortcut must be one of A, B, C, D"),
    (["summary", "resnet50", "--attention", "cbam"], "attention must be one of none, se, eca"),
    (["summary", "resnet50", "--groups", "two"], "argument --groups: groups must be a whole number; got 'two'"),
    (["summary"], "the following arguments are required: model"),
    (["nonsense"], "invalid choice"),
])
def test_bad_input_is_one_error_line_and_exit_2(capsys, argv, message):
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


STAGE_RANGE = "each stage needs an integer from 1 to 1000"


@pytest.mark.parametrize("argv, line", [
    (["--layers", "1000000000000000000000000000000"],
     f"argument --layers: layers: stage 1 has {10**30} blocks; {STAGE_RANGE}"),
    (["--layers", "100000"], f"argument --layers: layers: stage 1 has 100000 blocks; {STAGE_RANGE}"),
    (["--layers", ",".join(["1"] * 40)], "argument --layers: layers: 40 stages; at most 8"),
    (["--layers", "1000,1000,1"], "argument --layers: layers: 2001 blocks in all; at most 2000"),
    (["--layers", "9" * 10_000],
     f"argument --layers: layers: stage 1 has a 10000-digit number of blocks; {STAGE_RANGE}"),
    # argparse alone reads "-3,3,3" as an option and says "expected one argument"
    (["--layers", "-3,3,3"], f"argument --layers: layers: stage 1 has -3 blocks; {STAGE_RANGE}"),
    (["--layers=-3,3,3"], f"argument --layers: layers: stage 1 has -3 blocks; {STAGE_RANGE}"),
    (["--width", "4096", "--layers", "1,1,1,1"], "width: stage 4 would have 32768 channels (width 4096 * 2**3); at "
                                                 "most 16384: lower width or the number of stages"),
    (["--input", ""], "input must be three positive integers C,H,W (e.g. 3,224,224); got ''"),
    (["--input", "-3,32,32"], "input must be three positive integers C,H,W (e.g. 3,224,224); got '-3,32,32'"),
    (["--input", "3,32,32,32"], "input must be three positive integers C,H,W (e.g. 3,224,224); got '3,32,32,32'"),
    (["--input", "3,100000,32"], "input must have 1 to 64 channels and H, W from 1 to 4096; got (3, 100000, 32)"),
    (["--batch", "9" * 5000], "batch must be an integer from 1 to 65536; got "
                              "'999999999999999999999999999...9999999999999999999999999999'"),
])
def test_hostile_summary_arguments_are_one_line_at_once(capsys, argv, line):
    start = time.perf_counter()
    code, out, err = run(capsys, "summary", "resnet20", *argv)
    assert time.perf_counter() - start < 0.5  # refused before any model is built or traced
    assert (code, out, err) == (2, "", f"error: {line}\n")


def test_a_value_that_starts_like_a_negative_number_stays_with_its_option():
    assert join_negative_values(["summary", "m", "--layers", "-3,3,3", "--input", "-1,2,3", "--lr", "-1e-3"]) == [
        "summary", "m", "--layers=-3,3,3", "--input=-1,2,3", "--lr=-1e-3"]
    unchanged = ["summary", "m", "--layers", "3,3", "--json", "--block", "-x", "-h", "--", "--a", "-3"]
    assert join_negative_values(unchanged) == unchanged


def test_a_stray_negative_value_after_a_flag_is_still_one_line(capsys):
    code, out, err = run(capsys, "summary", "resnet20", "--json", "-3")
    assert (code, out) == (2, "") and err == "error: argument --json: ignored explicit argument '-3'\n"


def test_worst_layers_as_a_real_process_exit_2_with_one_line():
    start = time.perf_counter()
    bad = subprocess.run([sys.executable, "-m", "resnet_core", "summary", "resnet20", "--layers", str(10**30)],
                         capture_output=True, text=True, timeout=120)
    elapsed = time.perf_counter() - start
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.splitlines() == [f"error: argument --layers: layers: stage 1 has {10**30} blocks; {STAGE_RANGE}"]
    assert elapsed < 30  # the interpreter and `import torch` (about 2 s on a busy 2-core machine); no model is built


def test_module_entry_point_as_a_real_process():
    ok = subprocess.run([sys.executable, "-m", "resnet_core", "summary", "resnet56", "--json"],
                        capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0 and json.loads(ok.stdout)["total_params"] == 853_018
    bad = subprocess.run([sys.executable, "-m", "resnet_core", "summary", "resnet50", "--batch", "0"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.strip().splitlines() == ["error: batch must be an integer from 1 to 65536; got 0"]


@pytest.mark.parametrize("argv, message", [
    (["--epochs", "0"], "epochs must be an integer from 1 to 10000; got 0"),
    (["--optimizer", "foo"], "optimizer must be one of sgd, adam, adamw; got 'foo'"),
    (["--precision", "fp16"], "precision must be one of auto, fp32, bf16; got 'fp16'"),
    (["--lr", "-1"], "lr must be a number in (0.0, 100.0]; got -1.0"),
    (["--steps", "ten"], "steps must be a whole number; got 'ten'"),
    (["--dataset", "imagefolder"], "data_dir is required for dataset imagefolder"),
    (["--lr", "-1e-3"], "lr must be a number in (0.0, 100.0]; got -0.001"),  # argparse alone: "expected one argument"
])
def test_train_bad_input_is_one_error_line_and_exit_2(capsys, tmp_path, monkeypatch, argv, message):
    monkeypatch.setenv(runstore.RUNS_ENV, str(tmp_path))
    code, out, err = run(capsys, "train", *TINY_TRAIN, *argv)
    assert code == 2 and out == ""
    assert err.startswith("error: ") and message in err and err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []  # refused before any run folder was written


def test_train_run_dir_that_is_a_file_is_refused(capsys, tmp_path):
    a_file = tmp_path / "notes.txt"
    a_file.write_text("not a run")
    code, out, err = run(capsys, "train", *TINY_TRAIN, "--run-dir", str(a_file))
    assert (code, out) == (2, "")
    assert err == f"error: run_dir must be a folder; {a_file} is a file\n"
    code, out, err = run(capsys, "train", *TINY_TRAIN, "--run-dir", str(a_file / "run"))
    assert (code, out) == (2, "")
    assert err == f"error: run_dir must be a folder; {a_file} is a file\n"
    assert a_file.read_text() == "not a run"


def test_train_json_on_a_diverging_run_ends_with_a_final_object(capsys, tmp_path):
    run_dir = tmp_path / "run"
    code, out, err = run(capsys, "train", *TINY_TRAIN, *DIVERGING, "--run-dir", str(run_dir), "--json")
    assert code == 1
    final = json.loads(out.splitlines()[-1])
    assert final["status"] == "diverged" and final["run_dir"] == str(run_dir)
    assert final["message"].startswith("diverged at step ") and "lower the learning rate" in final["message"]
    assert (final["test_acc"], final["test_loss"], final["images_per_sec"], final["seconds"]) == (None,) * 4
    assert err == f"error: {final['message']}; run stored in {run_dir}\n"
    info = runstore.read_run(run_dir)
    assert info.status == Status.DIVERGED and info.message == final["message"] and info.final is None
    assert info.config.train.channels_last is True  # the default, for the test below


def test_train_without_json_a_diverging_run_is_one_error_line(capsys, tmp_path):
    run_dir = tmp_path / "run"
    code, out, err = run(capsys, "train", *TINY_TRAIN, *DIVERGING, "--run-dir", str(run_dir))
    assert code == 1 and all(line.startswith(("epoch ", "progress: ")) for line in out.splitlines())
    assert err.startswith("error: diverged at step ") and err.count("\n") == 1
    assert runstore.read_run(run_dir).status == Status.DIVERGED


def test_train_no_channels_last_reaches_the_run_config(capsys, tmp_path):
    run_dir = tmp_path / "run"
    code, out, _ = run(capsys, "train", *TINY_TRAIN, "--steps", "2", "--no-channels-last", "--run-dir",
                       str(run_dir), "--json")
    assert code == 0 and json.loads(out.splitlines()[-1])["status"] == "finished"
    assert runstore.read_run(run_dir).config.train.channels_last is False
