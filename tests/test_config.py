"""Typed configs: every field refuses what its type does not allow, every cross-field rule holds, the presets
resolve as they always did, and every bad setting reaches the user as one line and exit status 2.

No test here trains: each command line is refused while the config is built, before torch is imported.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import json
import re
import shlex
import subprocess
import sys
import types
import typing
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_cli import assert_clean_error, run_cli

from mnistlab.cli import build_parser, parse_args
from mnistlab.config import (
    CNN_PRESETS,
    CONFIG_TYPES,
    DATASET_NAMES,
    GAN_PRESETS,
    PRESETS,
    SECTIONS,
    ClassifierConfig,
    CNNConfig,
    DCGANConfig,
    GANConfig,
    GANTrainConfig,
    RunConfig,
    TrainConfig,
    from_dict,
    load_toml,
    parse_assignment,
    preset,
    to_dict,
    with_overrides,
)
from mnistlab.errors import MnistlabError
from mnistlab.fields import Range, field_help

ROOT = Path(__file__).parent.parent
SECTION_TYPES = (CNNConfig, TrainConfig, DCGANConfig, GANTrainConfig, RunConfig)
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# (command line, fragments its one error line must hold): the cases, and one per kind of rule.
REFUSED = [
    (["gan", "--preset", "seed", "--set", "loss=bce"], ["train.loss", "'bce'", "seed-softmax"]),
    (["gan", "--preset", "default", "--set", "loss=seed-softmax"], ["train.loss", "'seed-softmax'", "'bce'"]),
    (["gan", "--preset", "seed", "--set", "arch=default"], ["model.arch = 'default'", "'bce'"]),
    (["gan", "--preset", "seed", "--set", "conditional=true"], ["conditional needs arch = default"]),
    (["gan", "--preset", "seed", "--d-dropout", "0.3"], ["model.d_dropout = 0.3", "arch = seed"]),
    (["cnn", "--set", "lr_schedule=cosine"], ["train.lr_schedule", "'cosine'", "'onecycle'"]),
    (["cnn", "--epochs", "2.7"], ["train.epochs", "2.7", "an integer >= 1"]),
    (["cnn", "--set", "epochs=2.7"], ["train.epochs", "2.7", "an integer >= 1"]),
    (["cnn", "--set", "epochs=true"], ["train.epochs", "an integer"]),
    (["cnn", "--batch-size", "0"], ["train.batch_size", "0", ">= 1"]),
    (["cnn", "--lr", "nan"], ["train.lr", "nan", "> 0"]),
    (["cnn", "--set", "dropout=1"], ["model.dropout", "1", "< 1"]),
    (["cnn", "--augment-erase", "1.5"], ["train.augment_erase", "1.5", "<= 1"]),
    (["cnn", "--lr", "0.001", "--lr-min", "0.002"], ["train.lr_min = 0.002", "train.lr = 0.001"]),
    (["cnn", "--dilations", "1,2"], ["one entry per conv layer", "3, 3, 3, 2"]),
    (["cnn", "--filters", "4,0,8"], ["model.filters", "[4, 0, 8]", "each an integer >= 1"]),
    (["cnn", "--val-size", "-5"], ["train.val_size", "-5", "or none"]),
    (["cnn", "--seed", "-1"], ["run.seed", "-1", ">= 0"]),
    (["cnn", "--device", "tpu"], ["run.device", "'tpu'", "'cuda'"]),
    (["cnn", "--dataset", "cifar"], ["run.dataset", "'cifar'", "mnist-sample", "idx:PATH"]),
    (["cnn", "--dataset", "idx:"], ["run.dataset", "'idx:'", "idx:PATH"]),
    (["gan", "--time-budget", "0"], ["train.time_budget", "0", "> 0 or none"]),
    (["gan", "--set", "ema=1.0"], ["train.ema", "< 1"]),
    (["gan", "--preset", "best"], ["unknown gan preset 'best'", "seed, default"]),
]


def refused(*args: str):
    """A train command line that must be refused. Should a case ever pass, it fails at once on a missing
    dataset instead of training (the guard's error then lacks the expected fragments)."""
    guard = [] if "--dataset" in args else ["--dataset", "idx:/nonexistent/guard"]
    return run_cli("train", *args, *guard)


@pytest.mark.parametrize(("args", "fragments"), REFUSED, ids=[" ".join(a) for a, _ in REFUSED])
def test_a_bad_setting_is_one_line_naming_it_and_exit_status_2(args, fragments):
    assert_clean_error(refused(*args), *fragments)


def test_a_bad_toml_config_is_one_line_too(tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text("[train]\nepochs = 2.7\n")
    assert_clean_error(refused("cnn", "--config", str(config)), "train.epochs", "2.7", "an integer")
    config.write_text('[model]\nnz = 16\n[train]\nloss = "bce"\n')
    assert_clean_error(refused("gan", "--preset", "seed", "--config", str(config)), "train.loss", "seed-softmax")
    config.write_text("[train\nepochs = 1\n")
    assert_clean_error(refused("cnn", "--config", str(config)), "cannot read config", str(config))


def test_every_refusal_comes_before_torch_is_imported():
    cases = json.dumps([[*args, "--dataset", "idx:/nonexistent/guard"] if "--dataset" not in args else args
                        for args, _ in REFUSED])
    probe = (f"import json, sys; from mnistlab.cli import main; "
             f"codes = [main(['train', *args]) for args in json.loads({cases!r})]; "
             f"print(set(codes), 'torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip().splitlines()[-1] == "{2} False", result.stdout + result.stderr


# ----------------------------------------------------------------------------------------------
# Field types, generically


def literal_fields():
    for cls in SECTION_TYPES:
        for name, hint in typing.get_type_hints(cls).items():
            if typing.get_origin(hint) is typing.Literal:
                yield cls, name, typing.get_args(hint)


def ranged_fields():
    for cls in SECTION_TYPES:
        for name, hint in typing.get_type_hints(cls, include_extras=True).items():
            if typing.get_origin(hint) in (typing.Union, types.UnionType):  # X | None → X
                hint = next(a for a in typing.get_args(hint) if a is not type(None))
            if typing.get_origin(hint) is typing.Annotated and isinstance(typing.get_args(hint)[1], Range):
                yield cls, name, typing.get_args(hint)[0], typing.get_args(hint)[1]


def test_every_literal_field_refuses_a_value_outside_its_choices_and_names_them():
    seen = []
    for cls, name, choices in literal_fields():
        with pytest.raises(MnistlabError) as e:
            cls(**{name: "nonsense"})
        assert str(e.value).startswith(f"bad value for {cls.section}.{name}: 'nonsense'; it must be one of ")
        assert all(repr(choice) in str(e.value) for choice in choices)
        seen.append(name)
    assert {"weight_init", "bias_init", "lr_schedule", "arch", "loss", "real_range", "device"} <= set(seen)


def test_every_ranged_field_refuses_the_first_value_past_each_bound_and_keeps_the_bound_it_includes():
    for cls, name, number, bounds in ranged_fields():
        step = 1 if number is int else 1e-9
        past = [bounds.ge - step if bounds.ge is not None else None, bounds.gt, bounds.lt,
                bounds.le + step if bounds.le is not None else None]
        for value in (number(v) for v in past if v is not None):
            with pytest.raises(MnistlabError, match=rf"^bad value for {cls.section}\.{name}: "):
                cls(**{name: value})
        base = {"arch": "default"} if cls is DCGANConfig else {}  # the seed arch keeps its knobs at the defaults
        for value in (number(v) for v in (bounds.ge, bounds.le) if v is not None):
            assert getattr(cls(**base, **{name: value}), name) == value


def test_integers_refuse_fractions_and_booleans_floats_take_integers_and_lists_become_tuples():
    with pytest.raises(MnistlabError, match=r"train\.epochs: 2\.7; it must be an integer >= 1"):
        TrainConfig(epochs=2.7)
    with pytest.raises(MnistlabError, match=r"train\.epochs: True"):
        TrainConfig(epochs=True)
    with pytest.raises(MnistlabError, match=r"model\.batch_norm: 1; it must be true or false"):
        CNNConfig(batch_norm=1)
    lr = TrainConfig(lr=1).lr
    assert lr == 1.0 and type(lr) is float
    assert CNNConfig(dilations=[1, 2, 1]).dilations == (1, 2, 1)
    assert GANTrainConfig(time_budget=None).time_budget is None and TrainConfig(val_size=None).val_size is None


def test_text_from_the_command_line_is_read_as_its_fields_type():
    settings_ = dict(parse_assignment(a) for a in ("filters=8,16,32", "kernels=[3,3,3]", "batch_norm=yes",
                                                    "val_size=none", "lr=2e-3", "out=2024", "dataset=idx:/d"))
    config = with_overrides(preset("cnn", "seed"), settings_)
    assert (config.model.filters, config.model.kernels, config.model.batch_norm) == ((8, 16, 32), (3, 3, 3), True)
    assert (config.train.val_size, config.train.lr) == (None, 2e-3)
    assert (config.run.out, config.run.dataset) == ("2024", "idx:/d")  # a directory name stays text


def test_the_dataset_accepts_the_registry_names_and_idx_paths():
    for name in DATASET_NAMES:
        assert RunConfig(dataset=name).dataset == name
    assert RunConfig(dataset="idx:/data/digits").dataset == "idx:/data/digits"


def test_the_dataset_names_are_the_loaders_own():
    from mnistlab.data import datasets

    assert tuple(datasets.DATASET_NAMES) == DATASET_NAMES


# ----------------------------------------------------------------------------------------------
# Cross-field rules and consistent defaults


def test_a_gan_loss_must_read_what_its_discriminator_gives():
    assert GANConfig("x", model=DCGANConfig(arch="seed"), train=GANTrainConfig(loss="seed-softmax"))
    assert GANConfig("x", model=DCGANConfig(arch="default"), train=GANTrainConfig(loss="bce"))
    for arch, loss in (("seed", "bce"), ("default", "seed-softmax")):
        with pytest.raises(MnistlabError, match=rf"train\.loss = '{loss}'.*model\.arch = '{arch}'"):
            GANConfig("x", model=DCGANConfig(arch=arch), train=GANTrainConfig(loss=loss))


def test_the_seed_architecture_refuses_the_default_architectures_knobs():
    for name, value in (("g_width", 128), ("d_width", 32), ("d_norm", "spectral"), ("d_hidden", 64),
                        ("conditional", True)):
        assert getattr(DCGANConfig(arch="default", **{name: value}), name) == value
        with pytest.raises(MnistlabError, match=rf"^{name} needs arch = default"):
            DCGANConfig(arch="seed", **{name: value})


def test_the_layer_lists_need_one_entry_per_layer_and_lr_min_stays_below_lr():
    with pytest.raises(MnistlabError, match="one entry per conv layer"):
        CNNConfig(filters=(), kernels=(), strides=(), dilations=())
    with pytest.raises(MnistlabError, match=r"train\.lr_min = 0\.01 must be below train\.lr = 0\.001"):
        TrainConfig(lr=0.001, lr_min=0.01)


def test_the_dataclass_defaults_are_the_seeds_and_form_valid_configs():
    assert ClassifierConfig("seed") == CNN_PRESETS["seed"]
    assert GANConfig("seed") == GAN_PRESETS["seed"]  # DCGANConfig() and GANTrainConfig() agree on the loss


# ----------------------------------------------------------------------------------------------
# Presets and saved configs

# sha256 of each preset's settings, as recorded before the fields were typed (commit 91ee6fc), over the fields
# that existed then: the golden figures depend on these named instances. A changed preset is a deliberate act.
PRESET_SHA256 = {
    ("cnn", "seed"): "b04e6de001d6c0d1", ("cnn", "gorner"): "d90d83680f37be43", ("cnn", "best"): "d961dcc574da446f",
    ("gan", "seed"): "5954acb66cc696fc", ("gan", "default"): "310d0fe5d3641467",
}
FIELDS_ADDED_SINCE = {  # with defaults that change nothing; only the classifier's train section has the augments
    "run": ("dry_run", "framing", "init_from", "test_dir"),
    "model": ("clusters",),
    "train": ("augment_shear", "augment_elastic", "augment_stroke", "augment_blur", "augment_noise"),
}
# time_budget: the GAN's train section had it from the start; pools, beta1, beta2: the CNN's alone
CNN_FIELDS_ADDED_SINCE = {"train": ("time_budget", "beta1", "beta2", "replay", "tune"), "model": ("pools",)}
PRESETS_ADDED_SINCE = {("cnn", "photo"), ("cnn", "speedrun"), ("gan", "unconditional")}


def test_every_preset_validates_and_resolves_to_the_values_it_always_had():
    assert {(kind, name) for kind, table in PRESETS.items() for name in table} == \
        set(PRESET_SHA256) | PRESETS_ADDED_SINCE
    for (kind, name), digest in PRESET_SHA256.items():
        saved = to_dict(preset(kind, name))
        assert saved.pop("kind") == kind
        for section, added in FIELDS_ADDED_SINCE.items():
            for field_name in added + (CNN_FIELDS_ADDED_SINCE.get(section, ()) if kind == "cnn" else ()):
                saved[section].pop(field_name, None)
        assert hashlib.sha256(json.dumps(saved, sort_keys=True).encode()).hexdigest()[:16] == digest, (kind, name)
        assert from_dict(kind, json.loads(json.dumps(to_dict(preset(kind, name))))) == preset(kind, name)


def test_saved_configs_carry_their_kind_old_ones_load_without_it_and_a_wrong_kind_is_refused():
    gan = with_overrides(preset("gan", "default"), {"epochs": 3, "conditional": False})
    saved = json.loads(json.dumps(to_dict(gan)))
    assert saved["kind"] == "gan" and to_dict(preset("cnn", "best"))["kind"] == "cnn"
    assert from_dict("gan", saved) == gan
    del saved["kind"]  # as runs saved before the kind was recorded
    assert from_dict("gan", saved) == gan
    with pytest.raises(MnistlabError, match="of a 'gan' run; a 'cnn' one is needed"):
        from_dict("cnn", to_dict(gan))


def test_an_unknown_run_kind_is_refused():
    with pytest.raises(MnistlabError, match="unknown run kind 'svm'; choose one of: cnn, gan"):
        preset("svm", "seed")


# ----------------------------------------------------------------------------------------------
# The command line is derived from the configs


def test_every_config_field_is_a_train_flag_with_its_comment_as_help(capsys):
    parser = build_parser()
    for kind, config_type in CONFIG_TYPES.items():
        assert not [key for key in vars(parser.parse_args(["train", kind])) if "." in key]  # none given, none set
        with pytest.raises(SystemExit):
            parser.parse_args(["train", kind, "-h"])
        help_text = "".join(capsys.readouterr().out.split())  # argparse wraps lines, at spaces and hyphens
        for section in SECTIONS:
            section_type = typing.get_type_hints(config_type)[section]
            comments = field_help(section_type)
            for f in dataclasses.fields(section_type):
                flag = "--" + f.name.replace("_", "-")
                assert flag in help_text and "".join(comments[f.name].split()) in help_text, flag
                is_bool = typing.get_type_hints(section_type)[f.name] is bool
                given_ = vars(parser.parse_args(["train", kind, flag if is_bool else f"{flag}=x"]))
                assert given_[f"{section}.{f.name}"] == (True if is_bool else "x"), flag


def test_flags_override_set_which_overrides_the_toml_config_and_dry_run_is_a_flag(tmp_path):
    from mnistlab.cli_options import train_overrides

    config = tmp_path / "my.toml"
    config.write_text("[train]\nepochs = 4\nlr = 0.002\n[model]\nfc = 64\n")
    args = build_parser().parse_args(["train", "cnn", "--config", str(config), "--set", "lr=0.003", "--set",
                                      "fc=32", "--fc", "16", "--dry-run", "--no-channels-last"])
    resolved = with_overrides(preset("cnn", args.preset or "seed"), train_overrides(args))
    assert (resolved.train.epochs, resolved.train.lr, resolved.model.fc) == (4, 0.003, 16)
    assert resolved.run.dry_run and not resolved.run.channels_last


def test_every_command_in_the_docs_still_parses():
    """Each `mnistlab ...` in the README's and the docs' code parses as `main` parses it: no doc keeps a command
    that lost a flag. `[--flag X]` is an optional part, parsed with it; a bare `mnistlab export` names a command."""
    parser = build_parser()
    commands = []
    for doc in ["README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = one_line_per_command((ROOT / doc).read_text())
        spans = re.findall(r"```[^\n]*\n(.*?)```", text, flags=re.S)
        spans += re.findall(r"`([^`\n]+)`", re.sub(r"```[^\n]*\n.*?```", "", text, flags=re.S))
        for line in (line for span in spans for line in span.splitlines()):
            found = re.match(r"\s*(?:\$\s*)?(?:\S*/)?mnistlab ([a-z][^#|;&]*)", line)
            if found and len(found[1].split()) > 1:
                commands.append((doc, re.sub(r"\[(--[^]]*)]", r"\1", found[1]).strip()))
    assert len(commands) >= 60
    for doc, command in commands:
        try:
            with contextlib.redirect_stderr(io.StringIO()):
                parse_args(parser, shlex.split(command))
        except SystemExit:
            pytest.fail(f"{doc}: mnistlab {command} does not parse")


def one_line_per_command(text: str) -> str:
    """Shell continuations joined, and inline `code` that prose wrapped onto the next line."""
    lines: list[str] = []
    for line in text.replace("\\\n", " ").split("\n"):
        if lines and lines[-1].count("`") % 2 and not lines[-1].lstrip().startswith("```"):
            lines[-1] += " " + line
        else:
            lines.append(line)
    return "\n".join(lines)


def test_every_train_command_in_the_docs_still_parses():
    commands = []
    for doc in ["README.md", "Makefile", "scripts/make_evaluator.sh", *sorted((ROOT / "docs").glob("*.md"))]:
        text = one_line_per_command((ROOT / doc).read_text())
        commands += re.findall(r"mnistlab (train (?:cnn|gan)[^`|#\n]*)", text)
    assert len(commands) >= 15
    parser = build_parser()
    for command in commands:
        args = parser.parse_args(shlex.split(command))  # an unknown flag exits here
        assert args.handler.__name__ == "cmd_train", command


# ----------------------------------------------------------------------------------------------
# Random input: a valid config or one MnistlabError, never another exception

KEYS = sorted({f"{s}.{f.name}" for table in PRESETS.values() for c in table.values() for s in SECTIONS
               for f in dataclasses.fields(getattr(c, s))})
WORDS = st.sampled_from(["none", "true", "no", "nan", "inf", "-1", "0", "1", "2.7", "1e999", "[]", "[1,2]",
                         "1,2,3", "seed", "bce", "auto", "idx:", "idx:/x", '"quoted"', "[1,", "1\nx = 2"])
HUGE = st.integers(min_value=-(10**400), max_value=10**400)  # past float's range, and every seeded generator's
VALUE_TEXT = WORDS | st.text(max_size=12) | (st.integers() | HUGE).map(str) | st.floats().map(str)
KEY_TEXT = st.sampled_from(KEYS) | st.sampled_from([k.split(".", 1)[1] for k in KEYS]) | st.text(max_size=10)
TOML_VALUE = st.recursive(
    st.booleans() | st.integers() | HUGE | st.floats() | st.text(max_size=8) | WORDS,
    lambda inner: st.lists(inner, max_size=4), max_leaves=8,
)


def toml_literal(value) -> str:
    if isinstance(value, float):
        return {"nan": "nan", "inf": "inf", "-inf": "-inf"}.get(str(value), repr(value))
    if isinstance(value, list):
        return "[" + ", ".join(map(toml_literal, value)) + "]"
    return json.dumps(value)  # booleans, integers and strings are written alike in JSON and TOML


def loads_or_refuses(load):
    try:
        config = load()
    except MnistlabError as e:
        assert "\n" not in str(e), str(e)
        return
    assert type(config).__name__ in ("ClassifierConfig", "GANConfig")


@FUZZ
@given(kind=st.sampled_from(sorted(PRESETS)), assignments=st.lists(st.tuples(KEY_TEXT, VALUE_TEXT), max_size=4))
def test_random_set_assignments_give_a_config_or_a_mnistlab_error(kind, assignments):
    for name in PRESETS[kind]:
        loads_or_refuses(lambda: with_overrides(preset(kind, name), dict(
            parse_assignment(f"{key}={value}") for key, value in assignments)))


@FUZZ
@given(kind=st.sampled_from(sorted(PRESETS)),
       tables=st.dictionaries(st.sampled_from([*SECTIONS, "misc"]),
                              st.dictionaries(KEY_TEXT.filter(lambda k: re.fullmatch(r"[\w.]+", k) is not None),
                                              TOML_VALUE, max_size=4), max_size=3),
       garbage=st.text(max_size=20))
def test_random_toml_files_give_a_config_or_a_mnistlab_error(kind, tables, garbage, tmp_path_factory):
    path = tmp_path_factory.mktemp("toml") / "config.toml"
    text = "".join(f"[{section}]\n" + "".join(f'"{k}" = {toml_literal(v)}\n' for k, v in body.items())
                   for section, body in tables.items())
    for content in (text, garbage + text):
        path.write_text(content)
        loads_or_refuses(lambda: with_overrides(preset(kind, next(iter(PRESETS[kind]))), load_toml(path)))
        loads_or_refuses(lambda: from_dict(kind, {"preset": next(iter(PRESETS[kind])), **tables}))
