"""Damaged checkpoints, at random and by hand: every reader fails with one clear line or returns valid data.

The readers are `load_checkpoint` (torch), `read_checkpoint_header` and `read_run` (torch-free), and the
CLI on top of them. Each property test starts from a real checkpoint the `cnn_run` fixture trained.
"""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from safetensors.torch import load_file
from safetensors.torch import save as save_tensors
from test_cli import run_cli

from mnistlab.checkpoint import CHECKPOINT_NAME, load_checkpoint, read_checkpoint_header
from mnistlab.errors import CheckpointError, MnistlabError
from mnistlab.runs import read_run

FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@pytest.fixture(scope="module")
def pristine(cnn_run) -> dict[str, Any]:
    """The fixture run's checkpoint: its bytes, tensors and decoded mnistlab header."""
    path = cnn_run.dir / CHECKPOINT_NAME
    data = path.read_bytes()
    (header_len,) = struct.unpack("<Q", data[:8])
    metadata = json.loads(data[8:8 + header_len])["__metadata__"]
    return {"bytes": data, "header_len": header_len, "tensors": load_file(path),
            "header": json.loads(metadata["mnistlab"])}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A folder each example overwrites: a run directory holding only a checkpoint, so the run reader takes
    the kind, config and metrics from its header."""
    return tmp_path_factory.mktemp("fuzz") / "run"


def with_metadata(pristine: dict[str, Any], text: str) -> bytes:
    return save_tensors(pristine["tensors"], metadata={"mnistlab": text})


def assert_every_reader_is_clean(run_dir: Path, data: bytes) -> None:
    """Each reader on this file raises a one-line MnistlabError or returns data that is valid."""
    run_dir.mkdir(exist_ok=True)
    (run_dir / CHECKPOINT_NAME).write_bytes(data)
    state = _outcome(load_checkpoint, run_dir)
    if state is not None:
        assert state["kind"] in ("cnn", "gan") and isinstance(state["config"]["preset"], str)
        assert state["model"] and all(isinstance(t, torch.Tensor) for t in state["model"].values())
        assert isinstance(state["epoch"], int) and isinstance(state["dataset"]["name"], str)
        assert all(isinstance(m, dict) and isinstance(m["epoch"], int) for m in state["metrics"])
    header = _outcome(read_checkpoint_header, run_dir)
    assert (header is None) == (state is None)  # the torch-free reader accepts exactly what loads
    info = _outcome(read_run, run_dir)
    if info is not None:
        assert info.kind in ("cnn", "gan") and isinstance(info.preset, str) and isinstance(info.dataset, str)
        assert all(isinstance(m, dict) for m in info.metrics)
    listed = read_run(run_dir, strict=False)
    assert isinstance(listed.headline, str) and "\n" not in listed.headline


def _outcome(read, path: Path) -> Any:
    try:
        return read(path)
    except MnistlabError as e:
        assert "\n" not in str(e) and str(path) in str(e), str(e)
        return None


@FUZZ
@given(value=JSON)
def test_random_json_as_the_metadata(pristine, run_dir, value):
    assert_every_reader_is_clean(run_dir, with_metadata(pristine, json.dumps(value)))


@FUZZ
@given(value=JSON, data=st.data())
def test_random_json_anywhere_inside_the_real_metadata(pristine, run_dir, value, data):
    header = json.loads(json.dumps(pristine["header"]))  # a deep copy to damage
    node, key = header, "state"
    while isinstance(node[key], (dict, list)) and node[key] and data.draw(st.booleans(), label="deeper"):
        node = node[key]
        key = data.draw(st.sampled_from(sorted(node) if isinstance(node, dict) else range(len(node))), label="key")
    node[key] = value
    assert_every_reader_is_clean(run_dir, with_metadata(pristine, json.dumps(header)))


@FUZZ
@given(data=st.data(), junk=st.text(max_size=12))
def test_random_text_spliced_into_the_metadata_string(pristine, run_dir, data, junk):
    text = json.dumps(pristine["header"])
    start = data.draw(st.integers(0, len(text)), label="start")
    end = data.draw(st.integers(start, min(len(text), start + 12)), label="end")
    assert_every_reader_is_clean(run_dir, with_metadata(pristine, text[:start] + junk + text[end:]))


@FUZZ
@given(data=st.data())
def test_truncated_files(pristine, run_dir, data):
    length = data.draw(st.integers(0, len(pristine["bytes"]) - 1), label="length")
    assert_every_reader_is_clean(run_dir, pristine["bytes"][:length])


@FUZZ
@given(flips=st.lists(st.tuples(st.integers(0, 2**31), st.integers(1, 255)), min_size=1, max_size=3))
def test_flipped_bytes_in_the_header(pristine, run_dir, flips):
    data = bytearray(pristine["bytes"])
    for position, mask in flips:
        data[position % (8 + pristine["header_len"])] ^= mask
    assert_every_reader_is_clean(run_dir, bytes(data))


# ----------------------------------------------------------------------------------------------
# Known damage, each named in its message


def damaged(pristine: dict[str, Any], tmp_path: Path, change) -> Path:
    header = json.loads(json.dumps(pristine["header"]))
    tensors = dict(pristine["tensors"])
    change(header, tensors)
    path = tmp_path / "damaged.safetensors"
    path.write_bytes(save_tensors(tensors, metadata={"mnistlab": json.dumps(header)}))
    return path


def entry(node: dict[str, Any], key: str) -> list:
    """The [key, value] pair of a skeleton object."""
    return next(pair for pair in node["__dict__"] if pair[0] == key)


def test_a_tensor_the_metadata_names_but_the_file_lacks(pristine, tmp_path):
    path = damaged(pristine, tmp_path, lambda h, t: t.pop("model.features.0.weight"))
    for read in (load_checkpoint, read_checkpoint_header):
        with pytest.raises(CheckpointError, match=r"state\.model\.features\.0\.weight refers to tensor "
                                                  r"'model\.features\.0\.weight', which the file does not hold"):
            read(path)


@pytest.mark.parametrize("change, message", [
    (lambda h, t: entry(entry(h["state"], "config")[1], "preset").__setitem__(1, 7),
     r"state\.config\.preset should be a string, not an integer"),
    (lambda h, t: entry(h["state"], "metrics")[1].append("epoch 4"),
     r"state\.metrics\[3\] should be an object, not the string \"epoch 4\""),
    (lambda h, t: h["state"]["__dict__"].remove(entry(h["state"], "dataset")), r"state has no 'dataset'"),
    (lambda h, t: entry(h["state"], "model")[1].__setitem__("__dict__", []), r"state\.model is empty"),
    (lambda h, t: h.update(kind="vae"), r"metadata\.kind is the string \"vae\", not one of cnn, gan"),
    (lambda h, t: h.update(format_version=0), r"format_version 0 was never written by mnistlab"),
    (lambda h, t: entry(h["state"], "epoch").__setitem__(1, {"__pickle__": "x"}),
     r"state\.epoch is an object with keys \['__pickle__'\], neither"),
])
def test_each_kind_of_damage_names_where_it_is(pristine, tmp_path, change, message):
    path = damaged(pristine, tmp_path, change)
    with pytest.raises(CheckpointError, match=f"damaged checkpoint: {message}"):
        load_checkpoint(path)


# ----------------------------------------------------------------------------------------------
# The CLI: the issue's four damaged-metadata cases, each command, exit 2 and one line


ISSUE_CASES = {
    "not JSON": lambda h: "{not json",
    "no state": lambda h: json.dumps({k: v for k, v in h.items() if k != "state"}),
    "state of the wrong type": lambda h: json.dumps({**h, "state": "oops"}),
    "a list, not an object": lambda h: json.dumps([h]),
}


@pytest.mark.parametrize("case", ISSUE_CASES)
def test_damaged_metadata_through_the_cli_is_exit_2_and_one_line(pristine, cnn_run, tmp_path, case):
    run = tmp_path / "run"
    shutil.copytree(cnn_run.dir, run)
    (run / CHECKPOINT_NAME).write_bytes(with_metadata(pristine, ISSUE_CASES[case](pristine["header"])))
    digit = tmp_path / "digit.png"
    Image.new("L", (28, 28), 255).save(digit)
    for command in (["evaluate", "cnn", run], ["predict", run, digit], ["generate", run, "--out", tmp_path / "x.png"],
                    ["export", run, "--onnx", tmp_path / "x.onnx"]):
        done = run_cli(*command)
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 2 and len(lines) == 1, (command, done.stderr)
        assert lines[0].startswith(f"mnistlab: error: {run / CHECKPOINT_NAME}: damaged checkpoint: "), lines[0]
    assert {p.name for p in tmp_path.iterdir()} == {"run", "digit.png"}  # nothing written
    (line,) = read_run(run, strict=False).headline.splitlines()
    assert line.startswith("unreadable: ") and "damaged checkpoint" in line
