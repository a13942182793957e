"""Config: YAML + overrides into frozen dataclasses, errors naming the key path."""

from __future__ import annotations

from pathlib import Path

import pytest

from posekit.config import DEMO_SYNTH, Config, config_to_dict, load_config, save_config
from posekit.errors import ConfigError


def test_defaults_yaml_and_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(
        "train: {epochs: 7, batch_size: 4}\n"
        "data: {schema: coco_person_neck, augment: {input_size: [256, 192], flip_prob: 0.0}}\n"
    )
    cfg = load_config(
        path,
        ["train.epochs=3", "schedule.milestones=[2, 5]", "optim.name=sgd", "model.pretrained=null"],
    )
    assert isinstance(cfg, Config)
    assert cfg.train.epochs == 3 and cfg.train.batch_size == 4
    assert cfg.data.augment.input_size == (256, 192) and cfg.data.augment.flip_prob == 0.0
    assert cfg.schedule.milestones == (2, 5) and cfg.optim.name == "sgd"
    assert cfg.model.pretrained is None
    assert load_config().train.epochs == Config().train.epochs


def test_round_trip_through_yaml(tmp_path):
    cfg = load_config(None, ["train.grad_clip=5", "codec.sigma=5.5", "model.options.width=32"])
    again = load_config(save_config(cfg, tmp_path / "resolved.yaml"))
    assert again == cfg
    assert config_to_dict(again)["train"]["grad_clip"] == 5.0


def test_exponent_without_a_dot_is_a_number():
    # YAML 1.1 reads "3e-3" as a string; a float field must still take it
    assert load_config(None, ["optim.lr=3e-3"]).optim.lr == pytest.approx(0.003)
    with pytest.raises(ConfigError, match=r"optim\.lr: expected a number"):
        load_config(None, ["optim.lr=fast"])


def test_nested_override_keeps_the_other_default_values(tmp_path):
    cfg = load_config(None, ["data.synth.num_images=8"])
    assert cfg.data.synth.num_images == 8
    # the default synthetic set, not SynthConfig's own defaults, for every other key
    assert cfg.data.synth.image_size == DEMO_SYNTH.image_size
    assert cfg.data.synth.part_colors is DEMO_SYNTH.part_colors
    path = tmp_path / "c.yaml"
    path.write_text("data: {synth: {max_instances: 3}}\n")
    cfg = load_config(path, ["data.synth.seed=4"])
    assert (cfg.data.synth.max_instances, cfg.data.synth.seed) == (3, 4)
    assert cfg.data.synth.scale_range == DEMO_SYNTH.scale_range


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        (["train.epoch=3"], r"train\.epoch: unknown key; did you mean 'train\.epochs'"),
        (["trian.epochs=3"], r"trian: unknown key; did you mean 'train'"),
        (["train.epochs=three"], r"train\.epochs: expected an integer, got 'three'"),
        (["train.amp=1"], r"train\.amp: expected true or false"),
        (["train.epochs=0"], r"train\.epochs: must be > 0"),
        (["optim.name=rmsprop"], r"optim\.name: must be one of"),
        (["schedule.kind=linear"], r"schedule\.kind: must be one of"),
        (["data.augment.flip_prob=2"], r"data\.augment\.flip_prob: expected a value in \[0, 1"),
        (["data.train_ann=a.json"], r"data\.train_ann: train_ann and train_images go together"),
        (["schedule.milestones=[5, 2]"], r"schedule\.milestones: must increase"),
        (["train.epochs"], r"expected section\.key=value"),
        (["data.synth.partcolors=true"], r"did you mean 'data\.synth\.part_colors'"),
        (["data.synth.max_instances=-1"], r"data\.synth\.max_instances"),
        (["train.fg_weights=[1, -2]"], r"fg_weights: must be two numbers >= 0"),
        (["train.fg_weights=[1, 2, 3]"], r"train\.fg_weights"),
    ],
)
def test_errors_name_the_key(overrides, match):
    with pytest.raises(ConfigError, match=match):
        load_config(None, overrides)


def test_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "none.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="expected a mapping of sections"):
        load_config(bad)


def test_shipped_config_files_load():
    configs = Path(__file__).resolve().parents[1] / "configs"
    # the defaults written out must stay the defaults
    assert load_config(configs / "paf_tiny_synthetic.yaml") == load_config()
    lwop = load_config(configs / "lwop_mobilenet.yaml")
    assert lwop.model.name == "lwop_mobilenet" and lwop.model.pretrained == "lwop_mobilenet_coco"
    assert lwop.data.augment.input_size == (368, 368)
    assert lwop.model.options == {"num_refinement_stages": 1} and lwop.codec["name"] == "paf"


def test_old_synthetic_data_keys_still_load():
    with pytest.warns(DeprecationWarning) as caught:
        cfg = load_config(None, ["data.synth_train_images=8", "data.synth_image_size=64"])
    assert sorted(str(w.message) for w in caught) == [
        "config key data.synth_image_size is now data.synth.image_size",
        "config key data.synth_train_images is now data.synth.num_images",
    ]
    assert cfg.data.synth.num_images == 8 and cfg.data.synth.image_size == (64, 64)
    assert cfg.data.synth.part_colors is DEMO_SYNTH.part_colors


def test_old_codec_and_model_keys_still_load(tmp_path):
    path = tmp_path / "old.yaml"
    path.write_text(
        "model: {name: lwop_mobilenet, num_refinement_stages: 2}\n"
        "data: {stride: 8, sigma: 5.0, paf_width: 1.5, workers: 0}\n"
    )
    with pytest.warns(DeprecationWarning) as caught:
        cfg = load_config(path, ["codec.sigma=6.0"])
    assert sorted(str(w.message) for w in caught) == [
        "config key data.paf_width is now codec.paf_width",
        "config key data.sigma is now codec.sigma",
        "config key data.stride is now codec.stride",
        "config key model.num_refinement_stages is now model.options.num_refinement_stages",
    ]
    assert cfg.codec == {"stride": 8, "sigma": 6.0, "paf_width": 1.5}  # the new key wins
    assert cfg.model.options == {"num_refinement_stages": 2} and cfg.data.workers == 0
