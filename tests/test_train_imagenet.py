"""The DDP ImageNet trainer, run for real: two gloo processes under torchrun on a generated ImageFolder."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torchvision

from lowrank_utils.models import count_parameters
from lowrank_utils.train.imagenet import parse_args, write_tiny_imagefolder

TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    return subprocess.run([*TORCHRUN, "-m", "lowrank_utils.train.imagenet", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def test_two_process_run_checkpoints_resumes_and_evaluates_collapsed(tmp_path: Path) -> None:
    data, out = tmp_path / "tiny", tmp_path / "run"
    write_tiny_imagefolder(data, classes=3, per_class=8, val_per_class=4, size=32)
    common = ["--data", str(data), "--image-size", "32", "--batch-size", "4", "--workers", "0",
              "--overparam-depth", "2", "--out", str(out)]

    first = _run([*common, "--epochs", "1"], tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    assert (out / "checkpoint.pt").exists()
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 1

    second = _run([*common, "--epochs", "2", "--resume"], tmp_path)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "resumed from" in second.stdout and "at epoch 1" in second.stdout
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in lines] == [0, 1]
    final = json.loads((out / "final.json").read_text())
    assert final["world_size"] == 2 and final["torch"] and final["date"]
    assert "lowrank_utils.train.imagenet" in final["command"]
    # evaluation ran on the collapsed model, which has exactly the plain architecture's parameter count
    plain = count_parameters(torchvision.models.resnet18(weights=None, num_classes=3))
    assert final["original_params"] == plain
    assert all(m["collapsed_params"] == plain for m in lines)
    assert all(0.0 <= m["val_top1"] <= 1.0 and m["val_loss"] == m["val_loss"] for m in lines)


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(SystemExit):
        parse_args(["--data", "x", "--overparam-depth", "0"])
    with pytest.raises(ValueError, match="classes"):
        write_tiny_imagefolder("/nonexistent-never-written", classes=1)


class _Payload:
    """Stands for an arbitrary object in a checkpoint: unpickling it would call os.system."""

    def __reduce__(self) -> tuple:
        return (os.system, ("echo this would run on resume",))


def test_a_checkpoint_with_arbitrary_pickled_objects_is_refused(tmp_path: Path) -> None:
    import torch

    from lowrank_utils.train.imagenet import load_checkpoint

    good = {"epoch": 0, "model": {"w": torch.ones(2)}, "optimizer": {"state": {}, "param_groups": [{"lr": 0.1}]},
            "scaler": {}, "history": [{"epoch": 0, "val_top1": 0.5}]}
    torch.save(good, tmp_path / "good.pt")
    assert load_checkpoint(tmp_path / "good.pt")["history"] == good["history"]

    torch.save({**good, "extra": _Payload()}, tmp_path / "evil.pt")
    with pytest.raises(ValueError, match=r"refusing to load .*arbitrary code"):
        load_checkpoint(tmp_path / "evil.pt")

    torch.save({"weights": torch.ones(1)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a checkpoint of this trainer"):
        load_checkpoint(tmp_path / "other.pt")
