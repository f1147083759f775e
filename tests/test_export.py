"""Export: the one-file PyTorch network rebuilds every preset with our state_dict keys and computes the same."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

from resnet_core import PRESETS, build_model, resolve_spec
from resnet_core.cli import main
from resnet_core.export import python_source


def load(path: Path):
    spec = importlib.util.spec_from_file_location(f"exported_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file runs
    spec.loader.exec_module(module)
    return module


def test_every_preset_rebuilds_with_our_keys_and_shapes(tmp_path):
    """One block per stage (the loop over blocks is run in full below); every other field as the preset."""
    for name, preset in PRESETS.items():
        spec = preset.spec.replace(layers=(1,) * len(preset.spec.layers))
        path = tmp_path / f"{name}.py"
        path.write_text(python_source(spec, name))
        with torch.device("meta"):
            theirs = load(path).build()
        ours = build_model(spec, device="meta")
        assert [(k, v.shape) for k, v in theirs.state_dict().items()] == \
               [(k, v.shape) for k, v in ours.state_dict().items()], name


@pytest.mark.parametrize("name, side", [("resnet50d", 64), ("legacy_seresnet18", 64), ("resnet20", 32),
                                        ("preact_resnet110", 32), ("resnetrs50", 64), ("resnetblur18", 64),
                                        ("skresnet18", 64)])
def test_exported_file_computes_what_our_model_computes(tmp_path, name, side):
    source = python_source(resolve_spec(name), name)
    imports = {line.split()[1] for line in source.splitlines() if line.startswith(("import ", "from "))}
    assert imports <= {"__future__", "math", "collections.abc", "dataclasses", "typing", "torch", "torch.nn.functional"}
    (tmp_path / "net.py").write_text(source)
    torch.manual_seed(0)
    ours = build_model(name).eval()
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
