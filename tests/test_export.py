"""Export: the one-file PyTorch network rebuilds every preset with our state_dict keys and computes the same."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest
import torch

from resnet_core import PRESETS, build_model, load_state_dict, resolve_spec
from resnet_core.cli import main
from resnet_core.models.export import python_source
from resnet_core.models.provenance import with_spec
from tests.conftest import call_within


def load(path: Path):
    spec = importlib.util.spec_from_file_location(f"exported_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file runs
    spec.loader.exec_module(module)
    return module


def one_block_per_stage(spec, second: bool = False):
    """`spec` with one block per stage (a pruned net keeps each stage's first block's widths); with `second`, two in
    stage 2, so that a block that keeps the shape runs too."""
    layers = tuple(2 if second and i == 1 else 1 for i in range(len(spec.layers)))
    widths = None if spec.block_widths is None else tuple(w for stage, n in zip(spec.stage_block_widths(), layers)
                                                          for w in stage[:n])
    return spec.replace(layers=layers, block_widths=widths)


def test_every_preset_rebuilds_with_our_keys_and_shapes(tmp_path):
    """One block per stage (the loop over blocks is run in full below); every other field as the preset."""
    for name, preset in PRESETS.items():
        spec = one_block_per_stage(preset.spec)
        path = tmp_path / f"{name}.py"
        path.write_text(python_source(spec, name))
        with torch.device("meta"):
            theirs = load(path).build()
        ours = build_model(spec, device="meta")
        assert [(k, v.shape) for k, v in theirs.state_dict().items()] == \
               [(k, v.shape) for k, v in ours.state_dict().items()], name


@pytest.mark.parametrize("name, side", [("resnet50d", 64), ("legacy_seresnet18", 64), ("resnet20", 32),
                                        ("preact_resnet110", 32), ("resnetrs50", 64), ("resnetblur18", 64),
                                        ("skresnet18", 64), ("res2net50_26w_4s", 64), ("resnest50d_4s2x40d", 64),
                                        ("resnetv2_50x1_bit", 64), ("resnetv2_50d_evos", 64), ("resnetv2_50d_frn", 64),
                                        ("senet154", 64), ("ecaresnet50d_pruned", 64), ("test_resnet", 64)])
def test_exported_file_computes_what_our_model_computes(tmp_path, name, side):
    spec = resolve_spec(name)
    if name in ("res2net50_26w_4s", "resnest50d_4s2x40d", "resnetv2_50x1_bit", "resnetv2_50d_evos",
                "resnetv2_50d_frn", "senet154"):  # the stage loop runs in full above and for the pruned net
        spec = one_block_per_stage(spec, second=True)
    source = python_source(spec, name)
    imports = {line.split()[1] for line in source.splitlines() if line.startswith(("import ", "from "))}
    assert imports <= {"__future__", "json", "math", "collections.abc", "dataclasses", "typing", "torch",
                       "torch.nn.functional"}
    (tmp_path / "net.py").write_text(source)
    torch.manual_seed(0)
    ours = build_model(spec).eval()
    theirs = load(tmp_path / "net.py").build().eval()
    theirs.load_state_dict(ours.state_dict(), strict=True)
    x = torch.randn(2, 3, side, side)
    with torch.no_grad():
        torch.testing.assert_close(theirs(x), ours(x), rtol=0, atol=0)


def test_cli_writes_the_file_and_explains_onnx(tmp_path, capsys):
    out = tmp_path / "r20.py"
    assert main(["export", "resnet20", "--width", "8", "-o", str(out)]) == 0
    assert capsys.readouterr().out.strip() == f"wrote {out}"
    assert load(out).build().fc.in_features == 32
    onnx_missing = importlib.util.find_spec("onnx") is None or importlib.util.find_spec("onnxscript") is None
    code = main(["export", "resnet20", "--format", "onnx", "-o", str(tmp_path / "r20.onnx")])
    err = capsys.readouterr().err
    if onnx_missing:
        assert code == 1 and err.startswith("error: --format onnx needs the ") and "pip install" in err
    else:
        assert code == 0 and (tmp_path / "r20.onnx").stat().st_size > 0


def test_export_never_replaces_a_file_unless_forced(tmp_path, capsys):
    mine = tmp_path / "mine.py"
    mine.write_text("my own work\n")
    assert main(["export", "resnet20", "-o", str(mine)]) == 2
    assert capsys.readouterr().err == (f"error: output (-o) must name a new file; {mine} is a file already "
                                       "(--force replaces it)\n")
    assert mine.read_text() == "my own work\n"
    assert main(["export", "resnet20", "--width", "8", "-o", str(mine), "--force"]) == 0
    assert capsys.readouterr().out == f"wrote {mine}\n"
    assert load(mine).build().fc.in_features == 32
    assert [p.name for p in tmp_path.iterdir()] == ["mine.py"]  # no temporary file left behind


def test_export_never_writes_through_a_symlink(tmp_path, capsys):
    theirs, link, dangling = tmp_path / "theirs.txt", tmp_path / "link.py", tmp_path / "dangling.py"
    theirs.write_text("another file\n")
    link.symlink_to(theirs)
    dangling.symlink_to(tmp_path / "nowhere.py")
    for path, target in ((link, theirs), (dangling, tmp_path / "nowhere.py")):
        assert main(["export", "resnet20", "-o", str(path)]) == 2
        assert capsys.readouterr().err == (f"error: output (-o) must name a new file; {path} is a symbolic link to "
                                           f"{target} (--force replaces the link, never what it points at)\n")
    assert theirs.read_text() == "another file\n" and not (tmp_path / "nowhere.py").exists()
    assert main(["export", "resnet20", "-o", str(link), "--force"]) == 0
    assert not link.is_symlink() and load(link).build().fc.in_features == 64
    assert theirs.read_text() == "another file\n"  # the link was replaced, not the file it pointed at


def test_export_errors_are_one_line_naming_the_option(tmp_path, capsys):
    os.mkfifo(tmp_path / "pipe.py")
    for argv, line in (
        (["-o", str(tmp_path / "no" / "net.py")],
         f"error: output (-o) must be in an existing folder; {tmp_path / 'no'} does not exist"),
        (["-o", str(tmp_path)], f"error: output (-o) must name a new file; {tmp_path} is a folder"),
        (["-o", str(tmp_path), "--force"], f"error: output (-o) must name a new file; {tmp_path} is a folder "
                                           "(--force replaces only a file or a symbolic link)"),
        (["-o", str(tmp_path / "pipe.py"), "--force"],
         f"error: output (-o) must name a new file; {tmp_path / 'pipe.py'} is a named pipe (FIFO) "
         "(--force replaces only a file or a symbolic link)"),
    ):
        assert call_within(main, ["export", "resnet20", *argv], fifos=(tmp_path / "pipe.py",)) == 2
        assert capsys.readouterr().err == line + "\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pipe.py"] and (tmp_path / "pipe.py").is_fifo()


def test_exported_file_carries_its_spec_and_refuses_another_networks_weights(tmp_path):
    """Weights saved by the file carry its spec (our loader reads it); weights of another network are refused."""
    (tmp_path / "net.py").write_text(python_source(resolve_spec("resnet20"), "resnet20"))
    exported = load(tmp_path / "net.py")
    torch.manual_seed(0)
    model = exported.build()
    exported.save_weights(model, str(tmp_path / "w.pt"))
    state = torch.load(tmp_path / "w.pt", weights_only=True)
    ours = load_state_dict(build_model("resnet20"), state)  # no warning: the spec went with the weights
    torch.testing.assert_close(ours.state_dict()["fc.weight"], model.state_dict()["fc.weight"], rtol=0, atol=0)
    assert list(state) == list(model.state_dict())  # the spec rides in the module list, not as a key
    with pytest.raises(ValueError, match=r"^state_dict: saved from another network: skip is true in the "
                                         r"checkpoint's network but false in this model$"):
        load_state_dict(build_model("plain20"), state)
    plain = with_spec(build_model("plain20").state_dict(), resolve_spec("plain20"))  # the same keys and shapes
    with pytest.raises(ValueError, match=r"^state_dict: saved from another network: skip is False there but True "
                                         r"in this file's network$"):
        exported.load_weights(exported.build(), plain)
