"""experiments.rollout_flow: maps from a .npy file in, raw / rollout / flow out, clear errors."""

import pathlib
import subprocess
import sys

import numpy as np
import pytest

from attn_audit.audits import flow as flow_lib
from attn_audit.audits import rollout
from tests._fixtures import command_runner

REPO = pathlib.Path(__file__).resolve().parents[2]


def attention_batch(batch=3, layers=3, heads=2, n=5):
    rng = np.random.default_rng(0)
    return rng.dirichlet(np.full(n, 0.3), size=(batch, layers, heads, n)).astype(np.float32)


@pytest.fixture
def run_command():
    """Runs ``rollout_flow``'s main in this process with the given flags."""
    return command_runner("rollout_flow")[1]


def test_batch_with_lengths_gives_the_library_maps(tmp_path, run_command):
    attention, lengths = attention_batch(), np.array([5, 3, 4], np.int32)
    np.save(tmp_path / "a.npy", attention)
    np.save(tmp_path / "l.npy", lengths)
    run_command(f"--attention={tmp_path / 'a.npy'}", f"--lengths={tmp_path / 'l.npy'}",
                f"--out={tmp_path / 'maps.npz'}")  # fmt: skip
    maps = np.load(tmp_path / "maps.npz")
    assert sorted(maps) == ["flow", "raw", "rollout"]
    assert all(maps[name].shape == (3, 3, 5, 5) for name in maps)
    for instance, length, flow, rolled in zip(
        attention, lengths, maps["flow"], maps["rollout"], strict=True
    ):
        np.testing.assert_array_equal(flow, flow_lib.attention_flow(instance, int(length)))
        np.testing.assert_allclose(rolled, rollout.rollout(instance, int(length)), atol=1e-6)
    np.testing.assert_allclose(maps["raw"][0], attention[0].mean(1), atol=1e-7)


def test_one_instance_keeps_its_shape(tmp_path, run_command):
    attention = attention_batch(batch=1)[0]
    np.save(tmp_path / "a.npy", attention)
    run_command(f"--attention={tmp_path / 'a.npy'}", f"--out={tmp_path / 'maps'}")
    maps = np.load(tmp_path / "maps")  # the exact name given, no .npz added
    assert maps["flow"].shape == maps["rollout"].shape == maps["raw"].shape == (3, 5, 5)
    np.testing.assert_array_equal(maps["flow"], flow_lib.attention_flow(attention))


@pytest.mark.parametrize(
    "array, lengths, message",
    [
        (np.ones((3, 5, 5)), None, "Add a heads axis"),
        (np.ones((1, 1, 2, 5, 5)), np.array([1, 2]), "--lengths must hold 1 integers"),
        (np.ones((1, 1, 2, 5, 5)), np.array([1.5]), "--lengths must hold 1 integers"),
        (np.ones((1, 1, 2, 5, 5)), np.array([6]), r"--lengths must lie in \[1, 5\]"),
        (-np.ones((1, 1, 2, 5, 5)), None, "negative entries"),
    ],
)
def test_bad_inputs_exit_with_the_problem_and_the_fix(tmp_path, run_command, array, lengths,
                                                      message):  # fmt: skip
    np.save(tmp_path / "a.npy", array)
    arguments = [f"--attention={tmp_path / 'a.npy'}", f"--out={tmp_path / 'maps.npz'}"]
    if lengths is not None:
        np.save(tmp_path / "l.npy", lengths)
        arguments.append(f"--lengths={tmp_path / 'l.npy'}")
    with pytest.raises(SystemExit, match=message):
        run_command(*arguments)
    assert not (tmp_path / "maps.npz").exists()


def test_a_file_that_is_not_npy_is_named(tmp_path, run_command):
    (tmp_path / "a.npy").write_text("not an array")
    with pytest.raises(SystemExit, match=r"a.npy is not a .npy array.*numpy.save"):
        run_command(f"--attention={tmp_path / 'a.npy'}", f"--out={tmp_path / 'maps.npz'}")


def test_a_missing_file_is_a_clear_error_from_the_command_line(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "experiments.rollout_flow", f"--attention={tmp_path / 'none.npy'}",
         f"--out={tmp_path / 'maps.npz'}"],
        cwd=REPO, capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode != 0
    assert "none.npy does not exist; write the array with numpy.save" in result.stderr
    assert "Traceback" not in result.stderr
