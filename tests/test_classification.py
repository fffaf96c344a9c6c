"""Chapter 8: the classification experiment (quick preset on Fashion-MNIST, full preset's code path on a CIFAR-10
fixture), its statistics, stored-result provenance, figures and the chapters' checkers."""

from __future__ import annotations

import json
import math
import pickle
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from lowrank_utils.chapters.ch08_image_classification.checks import (
    check_embedding_rho,
    check_welch_t,
)
from lowrank_utils.chapters.ch08_image_classification.experiment import (
    RESULT_COLUMNS,
    ClassificationConfig,
    _Precision,
    compare_to_baseline,
    learning_rate,
    load_classification_results,
    random_crop_flip,
    run_classification,
    save_classification_results,
    significance_statement,
    summarize,
    train_step,
)
from lowrank_utils.chapters.ch08_image_classification.figures import plot_classification
from lowrank_utils.chapters.ch09_imagenet.checks import (
    check_global_batch_and_lr,
    check_overparam_conv_params,
)
from lowrank_utils.chapters.ch09_imagenet.figures import plot_epoch_curves  # noqa: E402
from lowrank_utils.data import DatasetUnavailable  # noqa: E402
from lowrank_utils.models import CifarResNet18, build_model, count_parameters
from lowrank_utils.overparam import OverparamConv2d, OverparamLinear, collapse  # noqa: E402
from lowrank_utils.rank import gram_effective_rank  # noqa: E402


@pytest.fixture(autouse=True)
def _checkers_print_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests read the checkers' verdicts; in grading mode (the default) a FAIL would raise instead."""
    monkeypatch.setenv("LOWRANK_GRADING", "0")


FASHION = Path("/usr/share/datasets/fashion-mnist")


@pytest.fixture(autouse=True)
def one_thread():
    """Small convolutions on a shared 2-core machine run several times faster on one thread than on two."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="module")
def quick_results() -> pd.DataFrame:
    if not FASHION.is_dir():
        pytest.skip("Fashion-MNIST is not installed at /usr/share/datasets/fashion-mnist (apt dataset-fashion-mnist)")
    config = ClassificationConfig.quick(train_subset=600, test_subset=300, rank_samples=100, epochs=1, seeds=(0, 1),
                                        depths=(1, 2), width=4, progress=False)
    return run_classification(config)


def test_quick_experiment_returns_tidy_rows(quick_results: pd.DataFrame) -> None:
    df = quick_results
    assert list(df.columns) == list(RESULT_COLUMNS)
    assert len(df) == 4 and set(df["model"]) == {"baseline", "overparam x2"} and set(df["seed"]) == {0, 1}
    assert df["test_acc"].between(0.3, 1.0).all()  # chance is 0.1: one epoch on 600 images already learns
    assert np.allclose(df["gap"], df["train_acc"] - df["test_acc"])
    # evaluated collapsed: same architecture and parameter count as the baseline, same function as trained
    assert (df["params_collapsed"] == df.loc[df["depth"] == 1, "params_train"].iloc[0]).all()
    assert (df.loc[df["depth"] == 2, "params_train"] > df.loc[df["depth"] == 2, "params_collapsed"]).all()
    assert (df["collapse_error"] < 1e-4).all()
    # ρ of a Gram matrix of 100 samples lies in (0, log 100]; centring removes the shared mean direction
    assert ((df["rho"] > 0) & (df["rho"] <= math.log(100) + 1e-9)).all()
    assert (df["rho"] > df["rho_uncentered"]).all()
    assert (df["wall_time"] > 0).all()


def test_quick_experiment_is_reproducible(quick_results: pd.DataFrame) -> None:
    config = ClassificationConfig.quick(train_subset=600, test_subset=300, rank_samples=100, epochs=1, seeds=(1,),
                                        depths=(1,), width=4, progress=False)
    again = run_classification(config).iloc[0]
    first = quick_results[(quick_results["depth"] == 1) & (quick_results["seed"] == 1)].iloc[0]
    assert again["test_acc"] == pytest.approx(first["test_acc"], abs=1e-6)
    assert again["rho"] == pytest.approx(first["rho"], rel=1e-6)


def _fake_results() -> pd.DataFrame:
    rows = []
    accs = {1: [0.80, 0.81, 0.82], 2: [0.90, 0.91, 0.92], 4: [0.805, 0.815, 0.81]}
    for depth, values in accs.items():
        for seed, acc in enumerate(values):
            rows.append(dict(dataset="toy", model="baseline" if depth == 1 else f"overparam x{depth}", depth=depth,
                             seed=seed, test_acc=acc, train_acc=acc + 0.05, gap=0.05, rho=3.0 - 0.1 * depth,
                             wall_time=1.0))
    return pd.DataFrame(rows)


def test_summary_statistics_and_significance() -> None:
    from scipy import stats

    df = _fake_results()
    table = summarize(df)
    assert list(table["model"]) == ["baseline", "overparam x2", "overparam x4"]
    assert table.loc[0, "test_acc_mean"] == pytest.approx(0.81)
    assert table.loc[0, "test_acc_std"] == pytest.approx(0.01)  # ddof=1
    comparison = compare_to_baseline(df)
    big, small = comparison.iloc[0], comparison.iloc[1]
    assert big["difference"] == pytest.approx(0.10) and big["significant"]
    welch = stats.ttest_ind([0.9, 0.91, 0.92], [0.8, 0.81, 0.82], equal_var=False)
    assert big["welch_p"] == pytest.approx(welch.pvalue)
    assert big["ci_low"] < 0.10 < big["ci_high"]
    assert not small["significant"] and small["welch_p"] > 0.05
    text = significance_statement(comparison)
    assert "+10.00 percentage points" in text and "significant at the 0.05 level" in text
    assert "not significant" in text and "little power" in text
    with pytest.raises(ValueError, match="metric"):
        compare_to_baseline(df, metric="nope")
    one_seed = compare_to_baseline(df[df["seed"] == 0])
    assert one_seed["welch_p"].isna().all() and not one_seed["significant"].any()
    assert "no test is possible" in significance_statement(one_seed)


def test_stored_results_need_provenance(tmp_path: Path) -> None:
    path = tmp_path / "classification_full.json"
    assert load_classification_results(path) is None  # nothing stored: the book says so instead of plotting
    df = _fake_results()
    command = "python -m lowrank_utils.chapters.ch08_image_classification.experiment"
    save_classification_results(df, ClassificationConfig.quick(), path, command)
    loaded, provenance = load_classification_results(path)
    assert loaded.equals(df[loaded.columns]) and provenance["seeds"] == [0, 1, 2] and provenance["torch"]
    payload = json.loads(path.read_text())
    del payload["hardware"]
    path.write_text(json.dumps(payload))
    with pytest.raises(ValueError, match="hardware"):
        load_classification_results(path)


def test_figures_from_tidy_results() -> None:
    fig = plot_classification(_fake_results(), title="toy")
    assert len(fig.axes) == 3
    plt.close(fig)
    fig = plot_epoch_curves([{"epoch": 0, "train_loss": 1.0, "val_top1": 0.2}, {"epoch": 1, "train_loss": 0.5,
                                                                                 "val_top1": 0.4}])
    assert len(fig.axes) == 2
    plt.close(fig)
    with pytest.raises(ValueError, match="columns"):
        plot_classification(pd.DataFrame({"model": ["a"]}))


# ----------------------------------------------------------------------------------------------------------- full path


def test_full_preset_settings() -> None:
    full = ClassificationConfig.full()
    assert full.datasets == ("cifar10", "cifar100") and full.arch == "resnet18" and full.epochs == 180
    assert full.schedule == "step" and full.milestones == (60, 120) and full.amp and full.channels_last
    assert learning_rate(full, 0) == pytest.approx(0.1)
    assert learning_rate(full, 61) == pytest.approx(0.01) and learning_rate(full, 150) == pytest.approx(0.001)
    quick = ClassificationConfig.quick()
    assert learning_rate(quick, 0) == pytest.approx(quick.lr) and learning_rate(quick, quick.epochs) < 1e-12
    assert ClassificationConfig.for_scale("full") == full and ClassificationConfig.for_scale("quick") == quick


def test_resnet18_forward_backward_on_cifar_shaped_tensors() -> None:
    torch.manual_seed(0)
    model = build_model("resnet18", 3, 100, width=8, depth=2)
    assert isinstance(model.features[0], OverparamConv2d) and isinstance(model.classifier, OverparamLinear)
    model = model.to(memory_format=torch.channels_last)
    precision = _Precision(torch.device("cpu"), amp=True)
    assert not precision.enabled  # autocast is for CUDA only; on the CPU the step runs in float32
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    x, y = torch.randn(8, 3, 32, 32), torch.randint(0, 100, (8,))
    before = [p.detach().clone() for p in model.parameters()]
    loss = float(train_step(model, optimizer, x, y, precision, channels_last=True))
    assert math.isfinite(loss) and loss > 0
    assert all(not torch.equal(a, b) for a, b in zip(before, model.parameters()) if b.grad is not None)
    model.eval()
    plain = collapse(model)
    assert count_parameters(plain) == count_parameters(CifarResNet18(3, 100, 8))
    with torch.no_grad():
        assert model.features(x).shape == (8, 64)  # penultimate embedding: 8 x width channels
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


def _write_cifar10(root: Path, per_batch: int = 8) -> None:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{b}" for b in range(1, 6)] + ["test_batch"]:
        labels = [i % 10 for i in range(per_batch)]
        data = rng.integers(0, 256, size=(per_batch, 3072), dtype=np.uint8)
        with open(folder / name, "wb") as fh:
            pickle.dump({"data": data, "labels": labels}, fh)
    with open(folder / "batches.meta", "wb") as fh:
        pickle.dump({"label_names": [f"class{i}" for i in range(10)]}, fh)


def test_full_code_path_runs_on_a_cifar10_fixture(tmp_path: Path) -> None:
    _write_cifar10(tmp_path)
    config = ClassificationConfig.full(datasets=("cifar10",), data_root=str(tmp_path), download=False, width=4,
                                       epochs=2, milestones=(1,), depths=(1, 4), seeds=(0,), rank_samples=8,
                                       batch_size=8, device="cpu", cpu_threads=1, progress=False)
    assert config.augment and config.amp and config.channels_last  # the full preset's settings, as on a GPU
    df = run_classification(config)
    assert list(df["model"]) == ["baseline", "overparam x4"]
    assert (df["params_collapsed"] == count_parameters(CifarResNet18(3, 10, 4))).all()
    assert df["test_acc"].between(0, 1).all() and np.isfinite(df["rho"]).all()
    with pytest.raises(DatasetUnavailable, match="CIFAR-100"):
        run_classification(config.replace(datasets=("cifar100",)))


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(depths=(2, 4)), "include 1"),
        (dict(arch="vgg"), "arch"),
        (dict(datasets=("imagenet",)), "train.imagenet"),
        (dict(schedule="step"), "milestones"),
        (dict(rank_samples=5000), "rank_samples"),
        (dict(lr=-1.0), "lr"),
        (dict(datasets="cifar10"), "tuple"),
    ],
)
def test_config_validation(overrides: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ClassificationConfig.quick(**overrides)


# ------------------------------------------------------------------------------------------------------------ checkers


def _welch(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    return (a.mean() - b.mean()) / math.sqrt(va + vb), (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))


def _stub(*args):
    raise NotImplementedError("exercise")


def test_checkers_pass_right_answers_and_fail_wrong_ones(capsys: pytest.CaptureFixture) -> None:
    assert check_embedding_rho(lambda m, x: gram_effective_rank(m.features(x), center=True))
    assert not check_embedding_rho(lambda m, x: gram_effective_rank(m.features(x)))
    assert not check_embedding_rho(lambda m, x: gram_effective_rank(m(x), center=True))
    assert check_welch_t(_welch)
    assert not check_welch_t(lambda a, b: (_welch(a, b)[0], len(a) + len(b) - 2))
    assert not check_welch_t(lambda a, b: (-_welch(a, b)[0], _welch(a, b)[1]))
    assert check_global_batch_and_lr(lambda b, g, n: (b * g * n, 0.1 * b * g * n / 256))
    assert not check_global_batch_and_lr(lambda b, g, n: (b * g, 0.1 * b * g / 256))

    def params(c_in, c_out, k, depth, bias):
        deployed = c_out * c_in * k * k + (c_out if bias else 0)
        return deployed + (depth - 1) * c_out * c_out + ((depth - 1) * c_out if bias else 0), deployed

    assert check_overparam_conv_params(params)
    assert not check_overparam_conv_params(lambda *a: (params(*a)[0], params(*a)[0]))
    out = capsys.readouterr().out
    assert out.count("PASS") == 4 and out.count("FAIL") == 6 and "hint" in out
    for checker in (check_embedding_rho, check_welch_t, check_global_batch_and_lr, check_overparam_conv_params):
        with pytest.raises(NotImplementedError):
            checker(_stub)


# ------------------------------------------------------------------------------------------- chapter 9 helpers


def test_imagenet_cost_helpers() -> None:
    import torchvision

    from lowrank_utils.chapters.ch09_imagenet.experiment import (
        IMAGENET_TRAIN_IMAGES,
        gpu_hours,
        imagenet_training_work,
        overparam_parameter_table,
        steps_per_epoch,
        torchrun_command,
    )

    work = imagenet_training_work(("resnet18",), epochs=90).iloc[0]
    published = torchvision.models.ResNet18_Weights.IMAGENET1K_V1.meta["_ops"]  # torchvision's GMACs per image
    assert work["gmacs_per_image"] == pytest.approx(published, rel=1e-3)
    assert work["training_flops"] == pytest.approx(6 * work["gmacs_per_image"] * 1e9 * IMAGENET_TRAIN_IMAGES * 90)
    table = overparam_parameter_table("resnet18", depths=(1, 2))
    plain = count_parameters(torchvision.models.resnet18(weights=None))
    assert (table["deployed_params"] == plain).all() and table["training_params"].iloc[1] > plain
    assert steps_per_epoch(IMAGENET_TRAIN_IMAGES, 32, 8) == 5004  # ⌈1,281,167 / 8⌉ // 32
    assert steps_per_epoch(64, 8, 2) == 4 and steps_per_epoch(10, 4, 2, drop_last=False) == 2
    assert gpu_hours(0.5, 3600, 2, 4) == pytest.approx(4.0)
    cmd = torchrun_command(["--data", Path("x"), "--epochs", 1], nproc=2)
    assert cmd[1:6] == ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    assert cmd[6:] == ["-m", "lowrank_utils.train.imagenet", "--data", "x", "--epochs", "1"]
    with pytest.raises(ValueError):
        steps_per_epoch(10, 0, 1)
    with pytest.raises(ValueError, match="rdzv"):
        torchrun_command([], nnodes=2)


def test_read_run(tmp_path: Path) -> None:
    from lowrank_utils.chapters.ch09_imagenet.experiment import read_run

    with pytest.raises(FileNotFoundError, match="metrics.jsonl"):
        read_run(tmp_path)
    (tmp_path / "metrics.jsonl").write_text('{"epoch": 0, "val_top1": 0.5}\n{"epoch": 1, "val_top1": 0.75}\n')
    metrics, final = read_run(tmp_path)
    assert metrics["epoch"].tolist() == [0, 1] and final == {}
    (tmp_path / "final.json").write_text('{"world_size": 2}')
    assert read_run(tmp_path)[1]["world_size"] == 2


def test_command_line_stores_results_with_provenance(tmp_path: Path) -> None:
    if not FASHION.is_dir():
        pytest.skip("Fashion-MNIST is not installed at /usr/share/datasets/fashion-mnist")
    from lowrank_utils.chapters.ch08_image_classification.experiment import main

    out = tmp_path / "quick.json"
    main(["--scale", "quick", "--out", str(out), "--seeds", "0", "1", "--epochs", "1", "--train-subset", "300",
          "--test-subset", "100"])
    results, provenance = load_classification_results(out)
    assert len(results) == 6 and provenance["seeds"] == [0, 1]
    assert provenance["config"]["epochs"] == 1 and provenance["config"]["rank_samples"] == 100
    assert "--scale quick" in provenance["command"] and provenance["hardware"] and provenance["date"]
