"""Chapter 8: the protocol (validation split, learning rate chosen on validation only, seeds, one test), its
statistics, the stored runs and their provenance, the CIFAR preset's code path on a fixture, figures, and the
checkers of chapters 8 and 9; plus chapter 9's helpers."""

from __future__ import annotations

import json
import math
import pickle
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import torch

import lowrank_utils.chapters.ch08_image_classification.experiment as ch8
from lowrank_utils.chapters.ch08_image_classification.checks import check_embedding_rho, check_welch_t
from lowrank_utils.chapters.ch08_image_classification.experiment import (
    RESULT_COLUMNS,
    STORED_FOLDER,
    ClassificationConfig,
    classification_facts,
    compare_to_baseline,
    composed_cost_ratio,
    detectable_difference,
    load_stored_protocol,
    prepare_data,
    run_protocol,
    run_stored_protocol,
    select_learning_rates,
    significance_statement,
    summarize,
    training_flops,
    validation_split,
)
from lowrank_utils.chapters.ch08_image_classification.figures import (
    plot_classification,
    plot_history,
    plot_lr_grid,
    plot_protocol,
)
from lowrank_utils.chapters.ch09_imagenet.checks import check_global_batch_and_lr, check_overparam_conv_params
from lowrank_utils.chapters.ch09_imagenet.figures import plot_epoch_curves
from lowrank_utils.data import DatasetUnavailable
from lowrank_utils.models import CifarResNet18, CompactCNN, SmallCNN, build_model, count_parameters
from lowrank_utils.rank import gram_effective_rank
from lowrank_utils.results import PROVENANCE_FIELDS, load_results

pytestmark = pytest.mark.usefixtures("one_thread", "checkers_print_only")

# A tiny protocol on scikit-learn's digits (bundled, 8x8 images): every stage runs in a couple of seconds.
TINY = dict(datasets=("digits",), train_subset=300, validation_size=100, test_subset=200, rank_samples=100, epochs=4,
            batch_size=25, lr_grid=(0.02, 0.1), depths=(1, 2), seeds=(0, 1), progress=False)


def _stored(folder: Path) -> tuple[dict[str, pd.DataFrame], pd.DataFrame]:
    """load_stored_protocol on a folder that holds runs."""
    loaded = load_stored_protocol(folder)
    assert loaded is not None, f"no stored runs in {folder}"
    return loaded


@pytest.fixture(scope="module")
def tiny_protocol() -> dict[str, pd.DataFrame]:
    return run_protocol(ClassificationConfig.quick(**TINY))


# ------------------------------------------------------------------------------------------------ the protocol


def test_validation_split_is_disjoint_balanced_and_seeded() -> None:
    labels = torch.arange(1000) % 10
    train, val = validation_split(labels, 200, seed=3)
    assert len(val) == 200 and len(train) == 800
    assert not set(train.tolist()) & set(val.tolist())  # a validation image is never a training image
    assert torch.bincount(labels[val]).tolist() == [20] * 10  # class-balanced
    again, val_again = validation_split(labels, 200, seed=3)
    assert torch.equal(val, val_again) and torch.equal(train, again)
    assert not torch.equal(val, validation_split(labels, 200, seed=4)[1])
    small, _ = validation_split(labels, 200, seed=3, train_subset=100)
    assert len(small) == 100 and set(small.tolist()) <= set(train.tolist())
    assert torch.bincount(labels[small]).tolist() == [10] * 10
    with pytest.raises(ValueError, match="no training images"):
        validation_split(labels, 1000)


def test_validation_images_come_from_the_training_split_never_the_test_split() -> None:
    config = ClassificationConfig.quick(**TINY)
    data = prepare_data(config, "digits")
    assert (len(data.x_train), len(data.x_val), len(data.x_test)) == (300, 100, 200)
    flat = lambda x: {tuple(row) for row in x.flatten(1).tolist()}  # noqa: E731 - images as hashable rows
    assert not flat(data.x_val) & flat(data.x_test)  # no validation image is a test image
    assert not flat(data.x_val) & flat(data.x_train)
    # the validation images are exactly the training-split images at val_index
    from lowrank_utils.data import load_dataset

    split = load_dataset("digits", "train")
    assert torch.equal(torch.stack([split[i][0] for i in data.val_index.tolist()]), data.x_val)


def test_learning_rate_is_chosen_on_validation_even_when_test_disagrees() -> None:
    grid = pd.DataFrame({
        "dataset": "toy", "arch": "net", "depth": [1, 1, 1, 2, 2, 2], "lr": [0.01, 0.1, 1.0] * 2,
        "val_acc": [0.70, 0.80, 0.75, 0.60, np.nan, 0.65], "val_loss": [0.9, 0.5, 0.6, 1.0, np.nan, 0.9],
        "test_acc": [0.99, 0.10, 0.10, 0.10, 0.10, 0.99],  # a test split that disagrees must not matter
    })
    choice = select_learning_rates(grid).set_index("depth")
    assert choice.loc[1, "lr"] == 0.1 and not choice.loc[1, "at_edge"]
    assert choice.loc[2, "lr"] == 1.0 and choice.loc[2, "at_edge"] and choice.loc[2, "diverged"] == 1
    tie = grid.assign(val_acc=0.8, val_loss=[0.9, 0.4, 0.6, 1.0, 0.2, 0.9])  # equal accuracy: lower loss wins
    assert select_learning_rates(tie).set_index("depth").loc[1, "lr"] == 0.1
    with pytest.raises(ValueError, match="diverged"):
        select_learning_rates(grid.assign(val_acc=np.nan))


def test_grid_runs_never_read_the_test_images(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[str, bool]] = []
    real_evaluate, real_train_run = ch8.evaluate, ch8.train_run
    state = {"stage": None, "test_ptr": None}

    def spy_train_run(config, data, arch, depth, lr, seed, stage, device=None):
        state["stage"], state["test_ptr"] = stage, data.x_test.untyped_storage().data_ptr()
        return real_train_run(config, data, arch, depth, lr, seed, stage, device)

    def spy_evaluate(model, batches, **kw):
        batches = list(batches)
        reads_test = any(x.untyped_storage().data_ptr() == state["test_ptr"] for x, _ in batches)
        seen.append((state["stage"], reads_test))
        return real_evaluate(model, batches, **kw)

    real_predict = ch8.predict

    def spy_predict(model, images, *args, **kw):
        seen.append((state["stage"], images.untyped_storage().data_ptr() == state["test_ptr"]))
        return real_predict(model, images, *args, **kw)

    monkeypatch.setattr(ch8, "train_run", spy_train_run)
    monkeypatch.setattr(ch8, "evaluate", spy_evaluate)
    monkeypatch.setattr(ch8, "predict", spy_predict)
    out = run_protocol(ClassificationConfig.quick(**{**TINY, "seeds": (0,), "depths": (1,)}))
    assert {reads for stage, reads in seen if stage == "grid"} == {False}
    assert any(reads for stage, reads in seen if stage == "final")
    assert out["grid"]["test_acc"].isna().all() and out["results"]["test_acc"].notna().all()


def test_protocol_frames(tiny_protocol: dict[str, pd.DataFrame]) -> None:
    grid, choice, results, history = (tiny_protocol[k] for k in ("grid", "choice", "results", "history"))
    assert list(results.columns) == list(RESULT_COLUMNS)
    assert len(grid) == 4 and (grid["seed"] == 100).all() and set(grid["stage"]) == {"grid"}
    assert len(results) == 4 and set(results["seed"]) == {0, 1} and set(results["stage"]) == {"final"}
    for _, chosen in choice.iterrows():  # final runs train at the rate the grid chose for their model
        assert (results.loc[results["depth"] == chosen["depth"], "lr"] == chosen["lr"]).all()
    ok = results[~results["diverged"]]
    assert ok["test_acc"].between(0.3, 1.0).all()  # chance is 0.1
    assert np.allclose(ok["gap"], ok["train_acc"] - ok["test_acc"])
    base_params = results.loc[results["depth"] == 1, "params_train"].iloc[0]
    assert (ok["params_collapsed"] == base_params).all() and (ok["collapse_error"] < 1e-4).all()
    assert ((ok["rho"] > 0) & (ok["rho"] <= math.log(100) + 1e-9)).all()
    assert grid["diverged"].any()  # x2 at the larger rate: recorded with NaN metrics, never chosen
    assert set(history["epoch"]) == {1, 2, 3, 4} and (history["stage"] == "final").sum() == 4 * len(results)
    assert (results["cpu_time"] > 0).all() and (results["wall_time"] > 0).all()
    facts = classification_facts(results, grid, choice)
    assert facts["grid runs evaluated on the test split"] == 0 and facts["seeded runs at their model's chosen rate"]
    assert facts["collapsed models compute the trained function (rel. error < 1e-4)"]


def test_stored_protocol_matches_the_live_one_resumes_and_keeps_provenance(
        tmp_path: Path, tiny_protocol: dict[str, pd.DataFrame]) -> None:
    config = ClassificationConfig.quick(**TINY)
    (tmp_path / "grid_digits_compact_cnn_x1_lr0.02_seed100.lock").write_text("another worker")  # held elsewhere
    with pytest.MonkeyPatch.context() as mp:  # the held run never finishes here: stop after one pass
        mp.setattr(ch8.time, "sleep", lambda s: (_ for _ in ()).throw(TimeoutError()))
        with pytest.raises(TimeoutError):
            run_stored_protocol(config, tmp_path, command="test")
    assert not (tmp_path / "grid_digits_compact_cnn_x1_lr0.02_seed100.json").exists()
    assert not list(tmp_path.glob("final_*"))  # the held grid run blocks that model's final runs
    partial, _ = _stored(tmp_path)  # an incomplete grid chooses nothing
    assert partial["status"][["grid_runs", "seeded_runs"]].values.tolist() == [["3/4", "0/4"]]
    assert partial["choice"].empty and partial["results"].empty
    (tmp_path / "grid_digits_compact_cnn_x1_lr0.02_seed100.lock").unlink()
    run_stored_protocol(config, tmp_path, command="test")
    files = sorted(tmp_path.glob("*.json"))
    assert len(files) == 8 and not list(tmp_path.glob("*.lock"))
    stamps = {p: p.stat().st_mtime_ns for p in files}
    run_stored_protocol(config, tmp_path, command="test")  # resumed: nothing left to do
    assert {p: p.stat().st_mtime_ns for p in files} == stamps
    frames, provenance = _stored(tmp_path)
    assert frames["status"][["grid_runs", "seeded_runs"]].values.tolist() == [["4/4", "4/4"]]
    live = tiny_protocol["results"].sort_values(["depth", "seed"]).reset_index(drop=True)
    stored = frames["results"].sort_values(["depth", "seed"]).reset_index(drop=True)
    assert np.allclose(live["test_acc"], stored["test_acc"]) and np.allclose(live["rho"], stored["rho"])
    assert len(provenance) == 8 and (provenance["seeds"].map(len) == 1).all()
    payload = json.loads(files[0].read_text())
    del payload["torch"]
    files[0].write_text(json.dumps(payload))
    with pytest.raises(ValueError, match="torch"):
        load_stored_protocol(tmp_path)
    assert load_stored_protocol(tmp_path / "empty") is None


def test_every_stored_run_file_has_its_provenance() -> None:
    files = sorted(STORED_FOLDER.glob("*.json"))
    assert files, f"no stored runs in {STORED_FOLDER}; run scripts/run_ch08_fashion_mnist.sh"
    for path in files:
        loaded = load_results(path)
        assert loaded is not None
        frames, provenance = loaded
        assert all(provenance[field] not in (None, "", []) for field in PROVENANCE_FIELDS), path.name
        run = frames["run"].iloc[0]
        assert provenance["seeds"] == [int(run["seed"])] and provenance["config"]["seed"] == run["seed"]
        assert provenance["config"]["stage"] == run["stage"] and path.name.startswith(run["stage"])
        assert "lowrank_utils.chapters.ch08_image_classification.experiment" in provenance["command"]
        assert provenance["config"]["protocol"]["datasets"] == ["fashion_mnist"]
        assert provenance["config"]["protocol"]["train_subset"] is None  # the full training split
        assert run["stage"] == "grid" or run["test_acc"] > 0.5


# ------------------------------------------------------------------------------------------------ statistics


def _fake_results() -> pd.DataFrame:
    rows = []
    accs = {1: [0.80, 0.81, 0.82], 2: [0.90, 0.91, 0.92], 4: [0.805, 0.815, 0.81]}
    for depth, values in accs.items():
        for seed, acc in enumerate(values):
            rows.append(dict(dataset="toy", arch="net", model="baseline" if depth == 1 else f"overparam x{depth}",
                             depth=depth, seed=seed, lr=0.1, test_acc=acc, train_acc=acc + 0.05, gap=0.05,
                             rho=3.0 - 0.1 * depth, wall_time=1.0))
    return pd.DataFrame(rows)


def test_summary_statistics_significance_and_power() -> None:
    from scipy import stats

    df = _fake_results()
    table = summarize(df)
    assert list(table["model"]) == ["baseline", "overparam x2", "overparam x4"]
    assert table.loc[0, "test_acc"] == pytest.approx(0.81)
    assert table.loc[0, "test_acc_ci"] == pytest.approx(stats.t.ppf(0.975, 2) * 0.01 / math.sqrt(3))
    comparison = compare_to_baseline(df)
    big, small = comparison.iloc[0], comparison.iloc[1]
    assert big["difference"] == pytest.approx(0.10) and big["significant"]
    assert big["welch_p"] == pytest.approx(stats.ttest_ind([0.9, 0.91, 0.92], [0.8, 0.81, 0.82],
                                                           equal_var=False).pvalue)
    assert big["ci_low"] < 0.10 < big["ci_high"] and not small["significant"]
    assert big["detectable"] == pytest.approx(detectable_difference(0.01, 3, 0.01, 3))
    text = significance_statement(comparison)
    assert "+10.00 points" in text and "not significant" in text and "with 80% power" in text
    with pytest.raises(ValueError, match="metric"):
        compare_to_baseline(df, metric="nope")
    one_seed = compare_to_baseline(df[df["seed"] == 0])
    assert one_seed["welch_p"].isna().all() and "no test is possible" in significance_statement(one_seed)


def test_detectable_difference_matches_a_simulation() -> None:
    from scipy import stats

    sd, n = 1.0, 5
    delta = detectable_difference(sd, n, sd, n)
    rng = np.random.default_rng(0)
    a = rng.normal(0, sd, (4000, n))
    b = rng.normal(delta, sd, (4000, n))
    power = float((stats.ttest_ind(a, b, axis=1, equal_var=False).pvalue < 0.05).mean())
    assert 0.74 < power < 0.86  # about 80%, as asked (the t approximation is close at 5 per group)
    assert detectable_difference(sd, 20, sd, 20) < delta and math.isnan(detectable_difference(sd, 1, sd, 5))


# ------------------------------------------------------------------------------------------------ presets, CIFAR


def test_presets() -> None:
    quick, full, cifar = (ClassificationConfig.preset(n) for n in ("quick", "full", "cifar"))
    assert full.archs == ("compact_cnn", "small_cnn") and full.train_subset is None and full.test_subset is None
    assert full.validation_size == 5000 and len(full.seeds) >= 5 and full.grid_seed not in full.seeds
    assert len(quick.seeds) >= 5 and len(quick.lr_grid) >= 3 and quick.archs == full.archs[:1]
    assert cifar.datasets == ("cifar10",) and cifar.augment and cifar.amp and cifar.archs == ("resnet18",)
    assert ClassificationConfig.for_scale("full") == full
    work = training_flops(full)
    assert list(work["arch"]) == ["compact_cnn", "small_cnn"] and (work["train_images"] == 55000).all()
    with pytest.raises(ValueError, match="preset"):
        ClassificationConfig.preset("huge")


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(depths=(2, 4)), "include 1"),
        (dict(archs=("vgg",)), "arch"),
        (dict(datasets=("imagenet",)), "dataset"),
        (dict(schedule="step"), "milestones"),
        (dict(rank_samples=5000), "rank_samples"),
        (dict(lr_grid=(0.1, -1.0)), "lr_grid"),
        (dict(lr_grid=()), "lr_grid"),
        (dict(grid_seed=0), "grid_seed"),
        (dict(datasets="cifar10"), "string"),
    ],
)
def test_config_validation(overrides: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ClassificationConfig.quick(**overrides)


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


def test_cifar_preset_code_path_runs_on_a_fixture(tmp_path: Path) -> None:
    _write_cifar10(tmp_path)
    config = ClassificationConfig.cifar(data_root=str(tmp_path), download=False, width=4, epochs=2, depths=(1, 2),
                                        seeds=(0, 1), lr_grid=(0.05,), validation_size=10, rank_samples=8,
                                        batch_size=8, device="cpu", cpu_threads=1, progress=False)
    assert config.augment and config.amp and config.channels_last  # as on a GPU; both are CUDA-only in effect
    out = run_protocol(config)
    results = out["results"]
    assert list(results["model"]) == ["baseline"] * 2 + ["overparam x2"] * 2
    assert (results["params_collapsed"] == count_parameters(CifarResNet18(3, 10, 4))).all()
    assert results["test_acc"].between(0, 1).all() and np.isfinite(results["rho"]).all()
    with pytest.raises(DatasetUnavailable, match="CIFAR-100"):
        run_protocol(config.replace(datasets=("cifar100",)))


def test_compact_cnn_and_cost_ratio() -> None:
    model = build_model("compact_cnn", 1, 10)
    assert isinstance(model, CompactCNN) and 20_000 < count_parameters(model) < 30_000
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    assert model.features(torch.zeros(2, 1, 28, 28)).shape == (2, 64)
    with pytest.raises(ValueError, match="8 pixels"):
        CompactCNN(image_size=4)
    table = composed_cost_ratio("compact_cnn", depths=(1, 2), batch_size=8, steps=1)
    assert list(table["forward"]) == ["plain", "auto", "chained"] and (table["seconds_per_step"] > 0).all()
    assert table["ratio_to_baseline"].iloc[0] == 1.0


def test_figures(tiny_protocol: dict[str, pd.DataFrame]) -> None:
    for fig in (plot_classification(_fake_results(), title="toy"),
                plot_protocol({"live": tiny_protocol["results"], "fake": _fake_results()}, title="toy"),
                plot_lr_grid(tiny_protocol["grid"]), plot_history(tiny_protocol["history"]),
                plot_epoch_curves([{"epoch": 0, "train_loss": 1.0, "val_top1": 0.2},
                                   {"epoch": 1, "train_loss": 0.5, "val_top1": 0.4}])):
        assert fig.axes
        plt.close(fig)
    with pytest.raises(ValueError, match="columns"):
        plot_classification(pd.DataFrame({"model": ["a"]}))
    with pytest.raises(ValueError, match="at least one source"):
        plot_protocol({})


# ------------------------------------------------------------------------------------------------------------ checkers


def _welch(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    return (a.mean() - b.mean()) / math.sqrt(va + vb), (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))


def _stub(*args):
    raise NotImplementedError("exercise")


def _embeddings(model: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    """The penultimate embeddings of the small CNN that check_embedding_rho hands over."""
    assert isinstance(model, SmallCNN)
    return model.features(images)


def test_checkers_pass_right_answers_and_fail_wrong_ones(capsys: pytest.CaptureFixture) -> None:
    assert check_embedding_rho(lambda m, x: gram_effective_rank(_embeddings(m, x), center=True))
    assert not check_embedding_rho(lambda m, x: gram_effective_rank(_embeddings(m, x)))
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
    # A Path and an int on purpose: the helper str()s every argument, which this checks.
    cmd = torchrun_command(["--data", Path("x"), "--epochs", 1], nproc=2)  # type: ignore[list-item]
    assert cmd[1:6] == ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    assert cmd[6:] == ["-m", "lowrank_utils.train.imagenet", "--data", "x", "--epochs", "1"]
    with pytest.raises(ValueError):
        steps_per_epoch(10, 0, 1)
    with pytest.raises(ValueError, match="rdzv"):
        torchrun_command([], nnodes=2)


def test_read_run(tmp_path: Path) -> None:
    from lowrank_utils.chapters.ch09_imagenet.experiment import read_run

    with pytest.raises(FileNotFoundError, match=r"metrics\.jsonl"):
        read_run(tmp_path)
    (tmp_path / "metrics.jsonl").write_text('{"epoch": 0, "val_top1": 0.5}\n{"epoch": 1, "val_top1": 0.75}\n')
    metrics, final = read_run(tmp_path)
    assert metrics["epoch"].tolist() == [0, 1] and final == {}
    (tmp_path / "final.json").write_text('{"world_size": 2}')
    assert read_run(tmp_path)[1]["world_size"] == 2


def test_command_line_runs_a_preset_into_a_folder(tmp_path: Path) -> None:
    from lowrank_utils.chapters.ch08_image_classification.experiment import main

    out = tmp_path / "runs"
    with pytest.MonkeyPatch.context() as mp:  # the quick preset, shrunk to the tiny digits protocol
        mp.setattr(ClassificationConfig, "QUICK", {**TINY, "depths": (1,), "seeds": (0,), "lr_grid": (0.1,)})
        main(["--preset", "quick", "--out", str(out), "--epochs", "1"])
    frames, provenance = _stored(out)
    assert len(frames["results"]) == 1 and len(frames["grid"]) == 1 and len(provenance) == 2
    assert (provenance["command"].str.contains("--preset quick")).all()
    assert frames["results"]["epochs"].tolist() == [1]
