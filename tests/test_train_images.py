"""The one image-classification loop (lowrank_utils.train.images): schedules, optimizers, one step, fit with its
callbacks and divergence check, evaluation sums, in-memory batches and augmentation."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lowrank_utils.models import CifarResNet18, build_model, count_parameters
from lowrank_utils.overparam import OverparamConv2d, OverparamLinear, collapse
from lowrank_utils.train.images import (
    EpochStats,
    Precision,
    TensorBatches,
    evaluate,
    fit,
    learning_rate,
    make_optimizer,
    predict,
    random_crop_flip,
    train_step,
)
from lowrank_utils.train.loop import TrainingDiverged

pytestmark = pytest.mark.usefixtures("one_thread")


def _toy(n: int = 64, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, 8, 8, generator=g)
    y = (x.mean(dim=(1, 2, 3)) > 0).long()  # learnable from the mean brightness
    return x, y


def test_learning_rate_schedules() -> None:
    assert learning_rate(0.1, 0.0, 10) == pytest.approx(0.1)
    assert learning_rate(0.1, 5.0, 10) == pytest.approx(0.05)  # cosine: half way, half the rate
    assert learning_rate(0.1, 10.0, 10) == pytest.approx(0.0, abs=1e-12)
    step: dict[str, Any] = dict(schedule="step", milestones=(1 / 3, 2 / 3))
    assert learning_rate(0.1, 29.9, 90, **step) == pytest.approx(0.1)
    assert learning_rate(0.1, 30.0, 90, **step) == pytest.approx(0.01)
    assert learning_rate(0.1, 61.0, 90, **step) == pytest.approx(0.001)
    assert learning_rate(0.1, 7.0, 10, schedule="constant") == 0.1
    assert learning_rate(0.1, 0.5, 10, warmup_epochs=1) == pytest.approx(0.05)  # linear warm-up from 0
    assert learning_rate(0.1, 1.0, 10, warmup_epochs=1) == pytest.approx(0.1)  # cosine starts after it
    with pytest.raises(ValueError, match="schedule"):
        learning_rate(0.1, 0.0, 10, schedule="linear")


def test_make_optimizer() -> None:
    params = [nn.Parameter(torch.zeros(3))]
    sgd = make_optimizer(params, "sgd", 0.1, momentum=0.9, weight_decay=1e-4)
    assert isinstance(sgd, torch.optim.SGD) and not sgd.defaults["nesterov"] and sgd.defaults["weight_decay"] == 1e-4
    assert make_optimizer(params, "nesterov", 0.1).defaults["nesterov"]
    assert isinstance(make_optimizer(params, "adamw", 1e-3), torch.optim.AdamW)
    with pytest.raises(ValueError, match="optimizer"):
        make_optimizer(params, "lion", 0.1)
    with pytest.raises(ValueError, match="lr"):
        make_optimizer(params, "sgd", -0.1)
    with pytest.raises(ValueError, match="momentum"):
        make_optimizer(params, "nesterov", 0.1, momentum=0.0)


def test_train_step_matches_a_hand_written_step() -> None:
    x, y = _toy()
    torch.manual_seed(0)
    a = nn.Sequential(nn.Flatten(), nn.Linear(64, 2))
    b = nn.Sequential(nn.Flatten(), nn.Linear(64, 2))
    b.load_state_dict(a.state_dict())
    opt_a, opt_b = (torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9) for m in (a, b))
    out = train_step(a, opt_a, x, y)
    loss = F.cross_entropy(b(x), y)
    opt_b.zero_grad()
    loss.backward()
    opt_b.step()
    assert out.loss.item() == pytest.approx(loss.item()) and out.logits.shape == (64, 2) and not out.loss.requires_grad
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    precision = Precision("cpu", amp=True)
    assert not precision.enabled  # autocast is for CUDA only; on the CPU a step runs in float32


def test_fit_callbacks_schedule_and_history() -> None:
    x, y = _toy(100)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 2))
    opt = make_optimizer(model.parameters(), "sgd", 0.5)
    batches = TensorBatches(x, y, 32, generator=torch.Generator().manual_seed(0))
    assert len(batches) == 3  # 100 // 32, the last incomplete batch dropped
    steps, lrs, reads = [], [], []

    def on_step(step, read):
        steps.append(step)
        lrs.append(opt.param_groups[0]["lr"])
        if step % 3 == 0:
            reads.append(read())

    epochs: list[EpochStats] = []
    history = fit(model, opt, lambda epoch: batches, epochs=4, lr=lambda e: 0.5 * (1 - e / 4), on_step=on_step,
                  on_epoch=epochs.append)
    assert steps == list(range(1, 13)) and [h.epoch for h in history] == [0, 1, 2, 3] and epochs == history
    assert lrs[:3] == pytest.approx([0.5, 0.5 * (1 - 1 / 12), 0.5 * (1 - 2 / 12)])  # fractional epochs
    assert all(h.images == 96 and h.steps == 3 for h in history)
    assert history[-1].train_loss < history[0].train_loss and history[-1].train_acc > 0.8
    assert all(n == 96 for _, _, n in reads)  # each read covers the batches since the previous read
    resumed = fit(model, opt, lambda epoch: batches, epochs=6, start_epoch=4, max_steps_per_epoch=2)
    assert [h.epoch for h in resumed] == [4, 5] and all(h.steps == 2 for h in resumed)


def test_fit_reports_divergence_with_the_package_exception() -> None:
    x, y = _toy()
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 2))
    opt = make_optimizer(model.parameters(), "sgd", 1e30)
    with pytest.raises(TrainingDiverged, match="lr=1e\\+30") as info:
        fit(model, opt, lambda epoch: TensorBatches(x * 1e20, y, 16), epochs=3, name="toy")
    assert "toy" in str(info.value) and isinstance(info.value, RuntimeError)


def test_evaluate_and_predict_agree_with_a_direct_computation() -> None:
    x, y = _toy(50)
    torch.manual_seed(0)
    model = build_model("compact_cnn", 1, 10, image_size=8).train()
    totals = evaluate(model, [(x[:30], y[:30]), (x[30:], y[30:])])
    assert model.training  # its mode is restored
    model.eval()
    with torch.no_grad():
        logits = model(x)
    metrics = totals.metrics()
    assert metrics["loss"] == pytest.approx(F.cross_entropy(logits, y).item(), rel=1e-5)
    assert metrics["acc"] == pytest.approx((logits.argmax(1) == y).float().mean().item())
    assert metrics["top5"] == pytest.approx((logits.topk(5).indices == y[:, None]).any(1).float().mean().item())
    assert torch.allclose(predict(model, x, batch_size=7), logits)
    assert predict(model, x, features=True).shape == (50, 64)


def test_tensor_batches_order_is_seeded_and_complete() -> None:
    x = torch.arange(10.0).view(10, 1)
    y = torch.arange(10)
    one = TensorBatches(x, y, 3, generator=torch.Generator().manual_seed(1), drop_last=False)
    two = TensorBatches(x, y, 3, generator=torch.Generator().manual_seed(1), drop_last=False)
    first = [b for b, _ in one]
    assert len(one) == 4 and [len(b) for b in first] == [3, 3, 3, 1]
    assert sorted(torch.cat(first).flatten().tolist()) == list(range(10))
    assert all(torch.equal(a, b) for a, (b, _) in zip(first, two, strict=True))
    assert not torch.equal(torch.cat(first), torch.cat([b for b, _ in one]))  # a new order each epoch
    doubled = TensorBatches(x, y, 5, shuffle=False, transform=lambda t: 2 * t)
    assert next(iter(doubled))[0].flatten().tolist() == [0, 2, 4, 6, 8]
    with pytest.raises(ValueError, match="length"):
        TensorBatches(x, y[:5], 3)


def test_resnet18_step_on_cifar_shaped_tensors_and_collapse() -> None:
    torch.manual_seed(0)
    model = build_model("resnet18", 3, 100, width=8, depth=2)
    features = model.features
    assert isinstance(features, nn.Sequential)
    assert isinstance(features[0], OverparamConv2d) and isinstance(model.classifier, OverparamLinear)
    optimizer = make_optimizer(model.parameters(), "sgd", 0.1, weight_decay=5e-4)
    x, y = torch.randn(8, 3, 32, 32), torch.randint(0, 100, (8,))
    before = [p.detach().clone() for p in model.parameters()]
    loss = float(train_step(model, optimizer, x, y, Precision("cpu", amp=True)).loss)
    assert math.isfinite(loss) and loss > 0
    assert all(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True) if b.grad is not None)
    model.eval()
    plain = collapse(model)
    assert count_parameters(plain) == count_parameters(CifarResNet18(3, 100, 8))
    with torch.no_grad():
        assert features(x).shape == (8, 64)  # penultimate embedding: 8 x width channels
        assert torch.allclose(model(x), plain(x), atol=1e-4, rtol=1e-4)


def test_random_crop_flip_shapes_and_content() -> None:
    x = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).reshape(2, 3, 4, 4)
    fill = torch.tensor([-1.0, -2.0, -3.0])
    out = random_crop_flip(x, 2, True, fill, torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    for c in range(3):  # every value is either an original pixel of that channel or the channel's fill
        allowed = set(x[:, c].flatten().tolist()) | {fill[c].item()}
        assert set(out[:, c].flatten().tolist()) <= allowed
    assert torch.equal(random_crop_flip(x, 0, False, fill), x)
