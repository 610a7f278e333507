"""DINOv3 encoders: weights loading (both key layouts, both file formats), errors, roi and crop pooling.

Most tests use a tiny DINOv3 ViT (64-d, 2 blocks, patch 16) registered with timm below: the same
timm architecture class as the real ViT-S/16 with a smaller config, loaded through the same path
(:func:`~cs_features.encoders.dinov3.build_dinov3`: safetensors or ``.pth``, timm or release key
layout) as Meta's weights. The real ViT-S/16 and ViT-B/16 are built in a few tests of their own.
Nothing is downloaded.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
timm = pytest.importorskip("timm")

from timm.models import register_model  # noqa: E402
from timm.models.eva import vit_small_patch16_dinov3, vit_small_patch16_dinov3_qkvb  # noqa: E402

from cs_features.encoders import get_encoder  # noqa: E402
from cs_features.encoders.dinov3 import DINOv3Encoder, read_state_dict  # noqa: E402
from cs_features.errors import ConfigError, WeightsError  # noqa: E402

ARCH_S = "vit_small_patch16_dinov3"
TINY = {"embed_dim": 64, "depth": 2, "num_heads": 2}
TINY_WIDE = {"embed_dim": 96, "depth": 1, "num_heads": 2}


@register_model
def vit_tiny_test_patch16_dinov3(pretrained: bool = False, **kwargs):
    """The ViT-S/16 DINOv3 architecture at 64-d and 2 blocks (4 register tokens, RoPE, layer scale)."""
    return vit_small_patch16_dinov3(pretrained=pretrained, **dict(TINY, **kwargs))


@register_model
def vit_tiny_test_patch16_dinov3_qkvb(pretrained: bool = False, **kwargs):
    """The tiny architecture with q/v biases (what a checkpoint with non-zero biases is built as)."""
    return vit_small_patch16_dinov3_qkvb(pretrained=pretrained, **dict(TINY, **kwargs))


@register_model
def vit_tiny_wide_test_patch16_dinov3(pretrained: bool = False, **kwargs):
    """Another tiny architecture (96-d), for weights that do not fit."""
    return vit_small_patch16_dinov3(pretrained=pretrained, **dict(TINY_WIDE, **kwargs))


class TinyDINOv3(DINOv3Encoder):
    """A DINOv3 encoder on the tiny architecture (not in the encoder registry)."""

    name = "dinov3-tiny-test"
    arch = "vit_tiny_test_patch16_dinov3"
    dim = 64


class TinyWideDINOv3(DINOv3Encoder):
    name = "dinov3-tiny-wide-test"
    arch = "vit_tiny_wide_test_patch16_dinov3"
    dim = 96


def frame(seed: int = 0, shape: tuple[int, int] = (96, 128)) -> np.ndarray:
    """A seeded (H, W) float32 frame in [0, 1] with some structure for the model to see."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]]
    image = 0.5 + 0.2 * np.sin(xx / 7.0) * np.cos(yy / 11.0) + 0.05 * rng.standard_normal(shape)
    return np.clip(image, 0, 1).astype(np.float32)


BOXES = np.array([[0, 0, 128, 96], [10, 20, 40, 60], [64, 16, 80, 32], [100, 50, 127, 95]], np.int32)


def timm_state_dict(arch: str = TinyDINOv3.arch, seed: int = 1, qkv_bias: bool = False) -> dict:
    """Random timm-layout weights whose blocks matter: timm's 1e-5 layer-scale init would hide them."""
    torch.manual_seed(seed)
    model = timm.create_model(arch + ("_qkvb" if qkv_bias else ""), pretrained=False, num_classes=0)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    for key in state:
        if key.endswith(("gamma_1", "gamma_2")):
            state[key] = 0.3 + 0.2 * torch.rand_like(state[key])
        if key.endswith(("q_bias", "v_bias")):
            state[key] = 0.1 * torch.randn_like(state[key])
    return state


def to_release_layout(state: dict, num_heads: int = TINY["num_heads"]) -> dict:
    """Invert timm's DINOv3 conversion: the key layout of Meta's ``dinov3_vits16_pretrain_*.pth``."""
    out: dict = {}
    dim = state["cls_token"].shape[-1]
    blocks = sorted({int(k.split(".")[1]) for k in state if k.startswith("blocks.")})
    for key, value in state.items():
        if key.endswith(("q_bias", "v_bias")):
            continue
        key = key.replace("reg_token", "storage_tokens")
        key = key.replace(".gamma_1", ".ls1.gamma").replace(".gamma_2", ".ls2.gamma")
        out[key] = value
    for n in blocks:
        q_bias = state.get(f"blocks.{n}.attn.q_bias", torch.zeros(dim))
        v_bias = state.get(f"blocks.{n}.attn.v_bias", torch.zeros(dim))
        # The release keeps a k bias that its bias_mask zeroes; timm drops it.
        out[f"blocks.{n}.attn.qkv.bias"] = torch.cat([q_bias, torch.full((dim,), 0.7), v_bias])
        out[f"blocks.{n}.attn.qkv.bias_mask"] = torch.cat([torch.ones(dim), torch.zeros(dim), torch.ones(dim)])
    out["mask_token"] = torch.zeros(1, dim)
    out["rope_embed.periods"] = torch.arange(1, dim // num_heads // 4 + 1, dtype=torch.float32)
    return out


def save(state: dict, path) -> str:
    if str(path).endswith(".safetensors"):
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    else:
        torch.save(state, path)
    return str(path)


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Small forwards run faster on one thread than on threads that contend with other processes."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def weights_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("weights")
    state = timm_state_dict()
    release = to_release_layout(state)
    files = {
        "timm.safetensors": save(state, folder / "timm.safetensors"),
        "timm.pth": save(state, folder / "timm.pth"),
        "release.pth": save(release, folder / "dinov3_vits16_pretrain_lvd1689m-test.pth"),
        "release.safetensors": save(release, folder / "release.safetensors"),
    }
    return state, files


@pytest.fixture(scope="module")
def roi_encoder():
    return TinyDINOv3(weights="random", roi_size=128)


@pytest.fixture(scope="module")
def reference_vectors(weights_files):
    _, files = weights_files
    encoder = TinyDINOv3(weights=files["timm.safetensors"], roi_size=128)
    return encoder.encode(frame(), BOXES)


# ------------------------------------------------------------------------------- missing weights


@pytest.mark.parametrize("name, file_hint", [("dinov3-vits16", "dinov3_vits16_pretrain"),
                                             ("dinov3-vitb16", "dinov3_vitb16_pretrain")])
def test_missing_weights_explain_the_licence_and_the_option(name, file_hint):
    with pytest.raises(WeightsError) as info:
        get_encoder(name)
    message = str(info.value)
    assert "--weights PATH" in message and "licence" in message and "--weights random" in message
    assert name in message and file_hint in message


def test_importing_the_encoders_leaves_hf_hub_offline_alone():
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_OFFLINE"}
    code = "import os, cs_features.encoders.dinov3; print(os.environ.get('HF_HUB_OFFLINE'))"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "None"


def test_building_an_encoder_opens_no_connection(monkeypatch, weights_files):
    _, files = weights_files

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    encoder = TinyDINOv3(weights=files["release.pth"], roi_size=64)
    assert encoder.encode(frame(), BOXES[:1]).shape == (1, 64)


@pytest.mark.parametrize("name", ["nope.pth", "nope.safetensors"])
def test_nonexistent_weights_file_is_named(tmp_path, name):
    path = tmp_path / name
    with pytest.raises(WeightsError, match="does not exist") as info:
        get_encoder("dinov3-vits16", weights=str(path))
    assert str(path) in str(info.value)


@pytest.mark.parametrize("name", ["corrupt.pth", "corrupt.safetensors", "corrupt.pt"])
def test_corrupt_weights_file_is_named(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(b"\x00\x01 not a checkpoint " * 20)
    with pytest.raises(WeightsError, match="cannot read weights file") as info:
        get_encoder("dinov3-vits16", weights=str(path))
    assert str(path) in str(info.value)


class NotATensor:
    pass


def test_pickled_objects_are_refused_not_unpickled(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"cls_token": torch.zeros(1), "payload": NotATensor()}, path)
    with pytest.raises(WeightsError, match="cannot read weights file") as info:
        read_state_dict(path)
    assert str(path) in str(info.value)


def test_wrong_suffix_and_directory_are_refused(tmp_path):
    other = tmp_path / "w.npz"
    other.write_bytes(b"x")
    with pytest.raises(WeightsError, match=r"suffix '\.npz'; accepted: \.safetensors"):
        read_state_dict(other)
    with pytest.raises(WeightsError, match="is not a file"):
        read_state_dict(tmp_path)


def test_weights_of_another_architecture_list_the_mismatch(weights_files):
    _, files = weights_files
    with pytest.raises(WeightsError) as info:
        TinyWideDINOv3(weights=files["timm.safetensors"])
    message = str(info.value)
    assert files["timm.safetensors"] in message and "shape mismatches" in message and "(64" in message
    assert "vit_tiny_wide_test_patch16_dinov3" in message


def test_missing_keys_are_listed(tmp_path, weights_files):
    state, _ = weights_files
    partial = {k: v for k, v in state.items() if not k.startswith("blocks.1.")}
    path = save(partial, tmp_path / "partial.safetensors")
    with pytest.raises(WeightsError, match=r"missing keys \['blocks\.1\.") as info:
        TinyDINOv3(weights=path)
    assert path in str(info.value)


def test_bad_settings_are_config_errors():
    with pytest.raises(ConfigError, match="pooling 'mean'"):
        get_encoder("dinov3-vits16", weights="random", pooling="mean")
    with pytest.raises(ConfigError, match="roi_size"):
        get_encoder("dinov3-vits16", weights="random", roi_size=8)
    with pytest.raises(ConfigError, match="device 'tpu'"):
        get_encoder("dinov3-vits16", weights="random", device="tpu")


# ------------------------------------------------------------------------------- loading layouts


@pytest.mark.parametrize("kind", ["timm.safetensors", "release.pth", "timm.pth", "release.safetensors"])
def test_both_layouts_and_formats_load_the_same_weights(weights_files, reference_vectors, kind):
    state, files = weights_files
    encoder = TinyDINOv3(weights=files[kind], roi_size=128)
    loaded = encoder.model.state_dict()
    assert set(loaded) == set(state)
    for key, value in state.items():
        assert torch.equal(loaded[key], value), key
    np.testing.assert_array_equal(encoder.encode(frame(), BOXES), reference_vectors)
    assert len(encoder.weights_hash) == 16 and encoder.weights_hash != "random"


def test_loaded_weights_change_the_vectors(roi_encoder, reference_vectors):
    assert np.abs(roi_encoder.encode(frame(), BOXES) - reference_vectors).max() > 1e-2


def test_release_checkpoint_with_qkv_bias_builds_the_qkvb_variant(tmp_path):
    state = timm_state_dict(qkv_bias=True)
    path = save(to_release_layout(state), tmp_path / "biased.pth")
    encoder = TinyDINOv3(weights=path, roi_size=64)
    loaded = encoder.model.state_dict()
    assert torch.equal(loaded["blocks.1.attn.q_bias"], state["blocks.1.attn.q_bias"])
    assert torch.equal(loaded["blocks.1.attn.v_bias"], state["blocks.1.attn.v_bias"])


def test_random_weights_are_seeded_and_marked(roi_encoder, caplog):
    with caplog.at_level("WARNING"):
        again = TinyDINOv3(weights="random", roi_size=128)
    assert again.weights_hash == "random" and "RANDOM weights" in caplog.text
    np.testing.assert_array_equal(again.encode(frame(), BOXES), roi_encoder.encode(frame(), BOXES))


# ------------------------------------------------------------------------------- pooling


def test_roi_shapes_dtype_determinism_and_info(roi_encoder):
    first = roi_encoder.encode(frame(), BOXES)
    assert first.shape == (4, 64) and first.dtype == np.float32 and np.isfinite(first).all()
    np.testing.assert_array_equal(first, roi_encoder.encode(frame(), BOXES))
    assert np.abs(first[1] - first[2]).max() > 1e-3
    info = roi_encoder.info()
    assert info["dim"] == 64 and info["pooling"] == "roi" and info["weights_hash"] == "random"
    assert info["settings"]["roi_size"] == 128 and info["settings"]["l2_normalised"] is False


def test_zero_boxes_give_an_empty_matrix(roi_encoder):
    out = roi_encoder.encode(frame(), np.zeros((0, 4), np.int32))
    assert out.shape == (0, 64) and out.dtype == np.float32


def test_roi_vectors_sample_the_feature_map_at_the_scaled_boxes(roi_encoder):
    from torchvision.ops import roi_align

    image = frame(seed=2, shape=(80, 120))  # long side 120 -> 128: h = round(80 * 128/120 / 16) * 16 = 80
    assert roi_encoder.dense_size(80, 120) == (80, 128)
    fmap = roi_encoder.feature_map(image)
    assert fmap.shape == (64, 5, 8)
    boxes = np.array([[8, 30, 40, 50], [90, 0, 120, 20]], np.int32)
    sx, sy = 128 / 120 / 16, 80 / 80 / 16  # frame px -> feature cells, x and y apart
    rois = torch.tensor(boxes, dtype=torch.float32) * torch.tensor([sx, sy, sx, sy])
    expected = roi_align(torch.from_numpy(fmap)[None], [rois], output_size=2, spatial_scale=1.0,
                         sampling_ratio=2, aligned=True).mean(dim=(2, 3)).numpy()
    np.testing.assert_allclose(roi_encoder.encode(image, boxes), expected, rtol=1e-4, atol=1e-5)


def test_encode_batch_matches_frame_by_frame(roi_encoder):
    items = [(frame(seed=3), BOXES[:2]), (frame(seed=4, shape=(64, 64)), BOXES[1:2]),
             (frame(seed=5), BOXES[1:]), (frame(seed=6), np.zeros((0, 4), np.int32))]
    batch = roi_encoder.encode_batch(items)
    assert [v.shape for v in batch] == [(2, 64), (1, 64), (3, 64), (0, 64)]
    for (image, boxes), vectors in zip(items, batch):
        np.testing.assert_allclose(vectors, roi_encoder.encode(image, boxes), rtol=1e-4, atol=1e-5)


def test_roi_pooling_is_one_dense_pass_and_one_roi_align_per_batch(roi_encoder, monkeypatch):
    """300 boxes cost one forward pass and one roi_align; each vector is its box pooled alone."""
    import torchvision.ops
    from torchvision.ops import roi_align

    calls = {"forward": 0, "roi_align": 0}
    forward = roi_encoder.model.forward_features

    def counted_forward(x):
        calls["forward"] += 1
        return forward(x)

    def counted_roi_align(*args, **kwargs):
        calls["roi_align"] += 1
        return roi_align(*args, **kwargs)

    rng = np.random.default_rng(9)
    w, h = rng.integers(1, 60, 300), rng.integers(1, 60, 300)
    x1, y1 = rng.integers(0, 128 - w + 1), rng.integers(0, 96 - h + 1)
    boxes = np.stack([x1, y1, x1 + w, y1 + h], axis=1).astype(np.int32)
    image = frame(seed=10)
    monkeypatch.setattr(roi_encoder.model, "forward_features", counted_forward)
    monkeypatch.setattr(torchvision.ops, "roi_align", counted_roi_align)
    vectors = roi_encoder.encode(image, boxes)
    assert calls == {"forward": 1, "roi_align": 1}
    batch = roi_encoder.encode_batch([(frame(seed=s), boxes[:100]) for s in (11, 12, 13)])
    assert calls == {"forward": 2, "roi_align": 2} and [len(v) for v in batch] == [100, 100, 100]
    monkeypatch.undo()

    fmap = torch.from_numpy(roi_encoder.feature_map(image))[None]
    scale = torch.tensor([128 / 128, 96 / 96, 128 / 128, 96 / 96], dtype=torch.float32)  # dense size = frame size
    assert roi_encoder.dense_size(96, 128) == (96, 128)
    for k in (0, 1, 150, 299):
        alone = roi_align(fmap, [torch.from_numpy(boxes[k:k + 1]).float() * scale], output_size=2,
                          spatial_scale=1 / 16, sampling_ratio=2, aligned=True).mean(dim=(2, 3))[0].numpy()
        np.testing.assert_allclose(vectors[k], alone, rtol=1e-4, atol=1e-5)
    for seed, vectors_of_frame in zip((11, 12, 13), batch):
        np.testing.assert_allclose(vectors_of_frame, roi_encoder.encode(frame(seed=seed), boxes[:100]),
                                   rtol=1e-4, atol=1e-5)


def test_crop_pooling_resizes_each_box_and_uses_the_cls_token():
    import torch.nn.functional as F

    encoder = TinyDINOv3(weights="random", pooling="crop", crop_size=64, batch_size=3)
    image = frame(seed=7)
    crops = encoder.box_crops(image, BOXES[1:3])
    assert crops.shape == (2, 64, 64)
    # Inside the crop (away from the border, where roi_align reads the frame beyond the box)
    # the crop is the bilinear resize of the box.
    x1, y1, x2, y2 = BOXES[1]
    resized = F.interpolate(torch.from_numpy(image[y1:y2, x1:x2])[None, None], size=(64, 64),
                            mode="bilinear", align_corners=False)[0, 0].numpy()
    np.testing.assert_allclose(crops[0, 4:-4, 4:-4], resized[4:-4, 4:-4], atol=1e-5)
    vectors = encoder.encode(image, BOXES)
    assert vectors.shape == (4, 64) and vectors.dtype == np.float32
    np.testing.assert_array_equal(vectors, encoder.encode(image, BOXES))
    normalised = (torch.from_numpy(crops)[:, None].expand(-1, 3, -1, -1)
                  - torch.tensor(encoder.mean).view(1, 3, 1, 1)) / torch.tensor(encoder.std).view(1, 3, 1, 1)
    with torch.inference_mode():
        cls = encoder.model.forward_features(normalised)[:, 0].numpy()
    np.testing.assert_allclose(vectors[1:3], cls, rtol=1e-4, atol=1e-5)
    assert encoder.info()["settings"]["token"] == "cls"


def test_vits16_builds_the_real_architecture():
    encoder = get_encoder("dinov3-vits16", weights="random", roi_size=64)
    assert encoder.model.embed_dim == 384 and len(encoder.model.blocks) == 12 and encoder.num_prefix_tokens == 5
    out = encoder.encode(frame(), BOXES[:2])
    assert out.shape == (2, 384) and out.dtype == np.float32 and np.isfinite(out).all()


@pytest.mark.slow
def test_vits16_loads_release_layout_weights_of_the_real_size(tmp_path):
    state = timm_state_dict(ARCH_S)
    path = save(to_release_layout(state, num_heads=6), tmp_path / "dinov3_vits16_pretrain_lvd1689m-test.pth")
    encoder = get_encoder("dinov3-vits16", weights=path, roi_size=64)
    loaded = encoder.model.state_dict()
    assert set(loaded) == set(state) and all(torch.equal(loaded[k], v) for k, v in state.items())
    assert encoder.encode(frame(), BOXES).shape == (4, 384)


@pytest.mark.slow
def test_vitb16_builds_and_encodes_at_224():
    encoder = get_encoder("dinov3-vitb16", weights="random", roi_size=224)
    out = encoder.encode(frame(shape=(224, 224)), BOXES[:2])
    assert encoder.dim == 768 and out.shape == (2, 768) and out.dtype == np.float32
    assert np.isfinite(out).all()


@pytest.mark.gpu
def test_cuda_roi_vectors_match_cpu(roi_encoder):
    gpu = TinyDINOv3(weights="random", roi_size=128, device="cuda")
    assert gpu.device.type == "cuda"
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    np.testing.assert_allclose(gpu.encode(frame(), BOXES), roi_encoder.encode(frame(), BOXES), rtol=1e-3, atol=1e-3)
