"""The benchmark's pure parts and the main job's model, weights and data order. Nothing is
timed."""

import os
import re
import sys

import numpy as np
import pytest

import minidl
from minidl.bench import machine, main_job


def test_child_env_runs_this_minidl():
    env = machine.child_env({"A": "1", "B": None}, {"B": "2", "PYTHONPATH": "elsewhere"})
    root = os.path.dirname(os.path.dirname(minidl.__file__))
    assert env["A"] == "1" and "B" not in env
    assert env["PYTHONPATH"].split(os.pathsep) == [root, "elsewhere"]


def test_describe_caps_names_unset_variables():
    caps = {"MINIDL_MAX_ISA": "avx2", "ONEDNN_MAX_CPU_ISA": None, "ATEN_CPU_CAPABILITY": None}
    assert machine.describe_caps(caps) == (
        "MINIDL_MAX_ISA=avx2, ONEDNN_MAX_CPU_ISA and ATEN_CPU_CAPABILITY unset")


# ---- the main job --------------------------------------------------------------------------------
def test_loading_the_example_leaves_no_trace():
    path, modules = list(sys.path), set(sys.modules)
    example = main_job.load_example()
    assert sys.path == path and "digits_cnn" not in set(sys.modules) - modules
    assert example.parse_args([]).batch_size == 32


def test_torch_batches_follow_the_loaders_order():
    loader = minidl.data.DataLoader(np.arange(100), batch_size=32, shuffle=True, seed=7)
    orders = main_job.shuffled_batches(100, 32, seed=7)
    for _ in range(3):
        expected = [batch.numpy() for batch in loader]
        got = next(orders)
        assert [len(b) for b in got] == [32, 32, 32, 4]
        for e, g in zip(expected, got):
            np.testing.assert_array_equal(e, g)


def test_torch_model_is_the_same_model(torch):
    example = main_job.load_example()
    minidl.manual_seed(0)
    model = example.build_cnn("torch")
    translated = main_job.torch_model(model)
    images, _ = minidl.data.digits("test")
    model.eval()
    translated.eval()
    with minidl.no_grad():
        expected = model(minidl.tensor(images)).numpy()
    with torch.no_grad():
        got = translated(torch.from_numpy(images)).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def test_a_layer_without_translation_is_refused(torch):
    with pytest.raises(NotImplementedError, match="Tanh"):
        main_job.torch_module(minidl.nn.Tanh())


def test_the_minidl_epoch_is_the_examples_first_epoch(tmp_path, capsys, torch):
    pytest.importorskip("tqdm")
    job = main_job.setup()
    ours = job.epochs["minidl"]()
    main_job.load_example().main(["--epochs", "1", "--out", str(tmp_path)])
    line = next(line for line in capsys.readouterr().out.splitlines()
                if line.startswith("epoch  1"))
    printed = [float(v) for v in re.findall(r"\d+\.\d{4}", line)]
    assert printed == [round(v, 4) for v in ours]
    theirs = job.epochs["torch"]()
    assert theirs[3] > 0.8  # PyTorch learns the same task from the same start
