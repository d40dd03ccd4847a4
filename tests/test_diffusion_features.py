"""Diffusion features (DDIM inversion to t=301, up_blocks[1]), IP-Adapter, CLIP, weight loading.

No weights can be downloaded here, so the real code paths run on miniature models built in code
(diffusers' own testing approach) and on real images; weight *compatibility* is checked by
building the full-size SD 1.5 / SD 2.1 / CLIP modules on the ``meta`` device (instant, no
memory) and comparing parameter counts, state-dict keys and shapes with the released
checkpoints' layouts.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
diffusers = pytest.importorskip("diffusers")
transformers = pytest.importorskip("transformers")

from faceshot_core.errors import FaceshotUserError, MissingDependencyError  # noqa: E402
from faceshot_core.matching import FeatureExtractor, ImageEmbedder  # noqa: E402
from faceshot_core.matching.architectures import SD15_SCHEDULER, SD21_SCHEDULER  # noqa: E402
from faceshot_core.matching.architectures import build as build_architecture  # noqa: E402
from faceshot_core.matching.clip_embedder import ClipImageEmbedder, clip_preprocess  # noqa: E402
from faceshot_core.matching.diffusion import (  # noqa: E402
    DiffusionFeatureExtractor,
    FeatureCache,
    attach_ip_adapter,
    block_channels,
    check_ip_adapter_layout,
    cross_attention_layers,
    inverse_scheduler,
    inversion_timesteps,
    load_ip_adapter_state_dict,
)
from faceshot_core.matching.tiny_models import (  # noqa: E402
    TinySD,
    released_ip_adapter,
    tiny_sd,
    write_tiny_checkpoint,
    write_tiny_ip_adapter,
)
from faceshot_core.matching.weights import hf_hub_cache, locate_weights  # noqa: E402

REPO = Path(__file__).resolve().parents[1]

SIZE = 64  # tiny runs: 64x64 images, 8x8 latents, 4x4 up_blocks[1] maps (SD at 512: 64 and 32)


# --------------------------------------------------------------------------- tiny models


def make_extractor(parts: TinySD, **kwargs: Any) -> DiffusionFeatureExtractor:
    options: dict[str, Any] = {"model_id": "tiny-sd", "image_size": SIZE, "device": "cpu"}
    options.update(kwargs)
    return DiffusionFeatureExtractor(
        unet=parts.unet,
        vae=parts.vae,
        text_encoder=parts.text_encoder,
        tokenizer=parts.tokenizer,
        scheduler_config=parts.scheduler_config,
        **options,
    )


def ip_extractor(seed: int = 0, **kwargs: Any) -> DiffusionFeatureExtractor:
    parts = tiny_sd(seed)
    encoder = ClipImageEmbedder.tiny(seed=seed)
    attach_ip_adapter(parts.unet, released_ip_adapter(parts.unet, encoder.dim))
    return make_extractor(parts, image_encoder=encoder, **kwargs)


class UNetSpy:
    """Counts UNet forward passes and records their timesteps, independently of the extractor."""

    def __init__(self, unet: Any):
        self.timesteps: list[int] = []
        self.late_blocks = 0
        unet.register_forward_pre_hook(self._pre, with_kwargs=True)
        unet.up_blocks[2].register_forward_pre_hook(self._late)

    def _pre(self, module: Any, args: Any, kwargs: Any) -> None:
        t = args[1] if len(args) > 1 else kwargs["timestep"]
        self.timesteps.append(int(t))

    def _late(self, module: Any, args: Any) -> None:
        self.late_blocks += 1


@pytest.fixture
def flipped(astronaut: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(astronaut[:, ::-1])


# --------------------------------------------------------------------------- schedule


def test_inverse_schedule_is_leading_offset_one_and_301_is_the_16th() -> None:
    sched = inverse_scheduler(SD15_SCHEDULER, 50)
    assert [int(t) for t in sched.timesteps] == list(range(1, 1000, 20))
    steps = inversion_timesteps(sched, 301)
    assert steps == list(range(1, 302, 20)) and len(steps) == 16 and steps[15] == 301
    assert sched.config.timestep_spacing == "leading" and sched.config.steps_offset == 1
    assert sched.config.set_alpha_to_one is False and sched.config.clip_sample is False
    assert sched.config.prediction_type == "epsilon"
    assert inverse_scheduler(SD21_SCHEDULER).config.prediction_type == "v_prediction"
    # Imposed even on a config without them (DDIMInverseScheduler's default offset is 0).
    bare = {k: v for k, v in SD15_SCHEDULER.items() if k != "steps_offset"}
    assert inversion_timesteps(inverse_scheduler(bare), 301)[-1] == 301
    assert inversion_timesteps(sched, 1) == [1]
    with pytest.raises(ValueError, match="not on the 50-step"):
        inversion_timesteps(sched, 300)


def test_inverse_step_is_eq2_from_the_previous_grid_point() -> None:
    """The call at t feeds the latent at level t-20: z_t = sqrt(a_t) x0_hat + sqrt(1-a_t) eps."""
    sched = inverse_scheduler(SD15_SCHEDULER)
    a = sched.alphas_cumprod.double()
    g = torch.Generator().manual_seed(0)
    z, eps = (
        torch.randn(1, 4, 8, 8, generator=g).double(),
        torch.randn(1, 4, 8, 8, generator=g).double(),
    )
    for t, src in ((301, a[281]), (1, a[0])):  # t=1 starts from alphas_cumprod[0]: alpha_to_one off
        x0 = (z - (1 - src).sqrt() * eps) / src.sqrt()
        expected = a[t].sqrt() * x0 + (1 - a[t]).sqrt() * eps
        got = sched.step(eps.float(), t, z.float()).prev_sample.double()
        assert torch.allclose(got, expected, atol=1e-5)


def test_block_channels() -> None:
    parts = tiny_sd()
    assert block_channels(parts.unet.config, "up_blocks.1") == 32
    assert block_channels(parts.unet.config, "up_blocks.3") == 8
    assert block_channels(parts.unet.config, "mid_block") == 32
    with pytest.raises(ValueError, match="not a UNet block"):
        block_channels(parts.unet.config, "up_blocks.7")


# --------------------------------------------------------------------------- extraction


def test_feature_maps_shapes_calls_and_timesteps(
    astronaut: np.ndarray, chelsea: np.ndarray
) -> None:
    parts = tiny_sd()
    spy = UNetSpy(parts.unet)
    ex = make_extractor(parts)
    assert isinstance(ex, FeatureExtractor)
    feats = ex.feature_maps([astronaut, chelsea])
    assert ex.spec.channels == 32 and ex.spec.timestep == 301 and ex.spec.block == "up_blocks.1"
    assert ex.spec.image_prompt is None and ex.spec.model == "tiny-sd"
    for f in feats:
        assert f.shape == (32, SIZE // 16, SIZE // 16) and f.dtype == np.float32
        assert np.isfinite(f).all() and f.std() > 0
    assert not np.allclose(feats[0], feats[1])
    # One batch: 16 UNet calls, at 1, 21, ..., 301; the last one stops after up_blocks[1].
    assert spy.timesteps == list(range(1, 302, 20)) == ex.timesteps
    assert ex.last_unet_calls == 16
    assert spy.late_blocks == 15


def test_timestep_1_is_one_call(astronaut: np.ndarray) -> None:
    parts = tiny_sd()
    spy = UNetSpy(parts.unet)
    ex = make_extractor(parts, timestep=1)
    ex.feature_maps([astronaut])
    assert spy.timesteps == [1] and ex.last_unet_calls == 1


def test_feature_is_the_call_at_301_of_a_plain_inversion(astronaut: np.ndarray) -> None:
    """Independent re-derivation: the plain diffusers loop, full UNet calls, no early stop."""
    parts = tiny_sd()
    ex = make_extractor(parts)
    got = ex.feature_maps([astronaut])[0]

    with torch.inference_mode():
        from PIL import Image

        img = np.array(Image.fromarray(astronaut).resize((SIZE, SIZE), Image.Resampling.BICUBIC))
        x = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 127.5 - 1
        dist = parts.vae.encode(x).latent_dist
        noise = torch.randn(dist.mean.shape, generator=torch.Generator().manual_seed(42))
        z = (dist.mean + dist.std * noise) * parts.vae.config.scaling_factor
        ids = parts.tokenizer(
            ["a photo of a face"], padding="max_length", max_length=16, return_tensors="pt"
        ).input_ids
        text = parts.text_encoder(ids).last_hidden_state
        sched = diffusers.DDIMInverseScheduler.from_config(SD15_SCHEDULER)
        sched.set_timesteps(50)
        captured: list[Any] = []
        hook = parts.unet.up_blocks[1].register_forward_hook(lambda m, a, o: captured.append(o))
        for t in sched.timesteps:
            eps = parts.unet(z, t, encoder_hidden_states=text).sample
            if int(t) == 301:
                break
            z = sched.step(eps, t, z).prev_sample
        hook.remove()
    assert len(captured) == 16
    np.testing.assert_allclose(got, captured[-1][0].numpy(), rtol=1e-5, atol=1e-5)
    # stop_early=False (whole last call) gives the same map.
    full = make_extractor(parts, stop_early=False, model_id="tiny-full").feature_maps([astronaut])
    np.testing.assert_array_equal(full[0], got)


def test_latent_is_sampled_not_the_mean(astronaut: np.ndarray) -> None:
    parts = tiny_sd()
    ex = make_extractor(parts)
    with torch.inference_mode():
        pixels = ex._pixels([astronaut])
        sampled = ex._encode([astronaut])
        mean = parts.vae.encode(pixels).latent_dist.mean * parts.vae.config.scaling_factor
    assert not torch.allclose(sampled, mean, atol=1e-3)
    other = make_extractor(tiny_sd(), seed=7)
    with torch.inference_mode():
        assert not torch.allclose(other._encode([astronaut]), sampled)


def test_deterministic_and_seed_dependent(astronaut: np.ndarray) -> None:
    a = make_extractor(tiny_sd()).feature_maps([astronaut])[0]
    b = make_extractor(tiny_sd()).feature_maps([astronaut])[0]
    c = make_extractor(tiny_sd(), seed=43).feature_maps([astronaut])[0]
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).max() > 1e-4


def test_batching_equals_one_by_one(
    astronaut: np.ndarray, chelsea: np.ndarray, flipped: np.ndarray
) -> None:
    images = [astronaut, chelsea, flipped]
    batched = make_extractor(tiny_sd(), batch_size=4)
    single = make_extractor(tiny_sd(), batch_size=1)
    fb = batched.feature_maps(images)
    assert batched.last_unet_calls == 16
    fs = single.feature_maps(images)
    assert single.last_unet_calls == 48
    for x, y in zip(fb, fs, strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-4)
    # batch_size=2 over 3 images: two chunks of 16 calls.
    two = make_extractor(tiny_sd(), batch_size=2)
    two.feature_maps(images)
    assert two.last_unet_calls == 32


def test_cache_memory_disk_and_duplicates(tmp_path: Path, astronaut: np.ndarray) -> None:
    ex = make_extractor(tiny_sd(), cache_dir=tmp_path / "feats")
    first = ex.feature_maps([astronaut, astronaut.copy()])  # same pixels: computed once
    assert ex.last_unet_calls == 16 and len(ex.cache) == 1
    np.testing.assert_array_equal(first[0], first[1])
    first[0][:] = 0  # callers get copies: the cache is not corrupted
    again = ex.feature_maps([astronaut])
    assert ex.last_unet_calls == 0
    np.testing.assert_array_equal(again[0], first[1])
    assert len(list((tmp_path / "feats").glob("*.safetensors"))) == 1
    # A new process (new extractor, same model id and settings) reads the disk cache.
    fresh = make_extractor(tiny_sd(), cache_dir=tmp_path / "feats")
    from_disk = fresh.feature_maps([astronaut])
    assert fresh.last_unet_calls == 0
    np.testing.assert_array_equal(from_disk[0], again[0])
    # Anything in the key changes -> recomputed.
    for changed in (
        make_extractor(tiny_sd(), cache_dir=tmp_path / "feats", seed=1),
        make_extractor(tiny_sd(), cache_dir=tmp_path / "feats", timestep=281),
        make_extractor(tiny_sd(), cache_dir=tmp_path / "feats", model_id="other"),
    ):
        changed.feature_maps([astronaut])
        assert changed.last_unet_calls > 0


def test_cache_lru_and_corrupt_file(
    tmp_path: Path, astronaut: np.ndarray, chelsea: np.ndarray
) -> None:
    ex = make_extractor(tiny_sd(), cache_size=1)
    ex.feature_maps([astronaut])
    ex.feature_maps([chelsea])  # evicts the astronaut
    ex.feature_maps([astronaut])
    assert ex.last_unet_calls == 16
    cache = FeatureCache(4, tmp_path)
    ex2 = make_extractor(tiny_sd(), cache_dir=tmp_path)
    ex2.feature_maps([astronaut])
    (path,) = tmp_path.glob("*.safetensors")
    path.write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="unreadable feature cache"):
        assert cache.get(ex2._key(astronaut, None)) is None


def test_ip_adapter_prompt_changes_features(
    astronaut: np.ndarray, chelsea: np.ndarray, flipped: np.ndarray
) -> None:
    ex = ip_extractor()
    assert ex.spec.image_prompt == "ip-adapter_sd15" and ex.ip_adapter
    procs = {type(p).__name__ for n, p in ex.unet.attn_processors.items() if "attn2" in n}
    assert procs == {"IPAdapterAttnProcessor2_0"}
    with_cat, with_self, with_none, with_cat2 = ex.feature_maps(
        [astronaut, astronaut, astronaut, astronaut], [chelsea, astronaut, None, chelsea.copy()]
    )
    assert ex.last_unet_calls == 16  # 3 distinct (image, prompt) pairs, one batch
    assert np.abs(with_cat - with_self).max() > 1e-3
    assert np.abs(with_cat - with_none).max() > 1e-3
    np.testing.assert_array_equal(with_cat, with_cat2)
    # Eq. 3 pairing in one call: target with the reference as prompt and vice versa.
    ref_f, tar_f = ex.feature_maps([chelsea, flipped], [flipped, chelsea])
    assert ex.last_unet_calls == 16 and ref_f.shape == tar_f.shape
    # Prompt embeddings batch-invariant too: one-by-one equals batched.
    alone = ip_extractor(batch_size=1).feature_maps([astronaut], [chelsea])[0]
    np.testing.assert_allclose(alone, with_cat, rtol=1e-4, atol=1e-4)


def test_ip_adapter_zero_prompt_and_scale_zero(astronaut: np.ndarray) -> None:
    """No prompt in IP-Adapter mode = IP-Adapter's zero ("unconditional") image embedding."""
    plain = make_extractor(tiny_sd()).feature_maps([astronaut])[0]
    ex = ip_extractor()  # same base weights as tiny_sd(0), plus the adapter
    none = ex.feature_maps([astronaut])[0]
    assert np.abs(plain - none).max() > 1e-4  # the zero embedding still gives 4 tokens
    for proc in ex.unet.attn_processors.values():  # scale 0 switches the adapter branch off
        if hasattr(proc, "scale"):
            proc.scale = [0.0]
    off = DiffusionFeatureExtractor(
        unet=ex.unet,
        vae=ex.vae,
        text_encoder=ex.text_encoder,
        tokenizer=ex.tokenizer,
        scheduler_config=SD15_SCHEDULER,
        image_encoder=ex.image_encoder,
        model_id="off",
        image_size=SIZE,
        device="cpu",
    )
    np.testing.assert_allclose(off.feature_maps([astronaut])[0], plain, rtol=1e-5, atol=1e-5)


def test_sd21_mode_ignores_prompts(astronaut: np.ndarray, chelsea: np.ndarray) -> None:
    ex = make_extractor(tiny_sd(sd21=True), model_id="tiny-sd21")
    assert ex.scheduler.config.prediction_type == "v_prediction"
    assert ex.spec.image_prompt is None
    a = ex.feature_maps([astronaut], [chelsea])[0]
    assert ex.last_unet_calls == 16
    b = ex.feature_maps([astronaut], [None])[0]
    assert ex.last_unet_calls == 0  # same key: the prompt is not part of it without IP-Adapter
    np.testing.assert_array_equal(a, b)


def test_ip_adapter_layout_is_checked() -> None:
    parts = tiny_sd()
    state = released_ip_adapter(parts.unet, 8)
    check_ip_adapter_layout(parts.unet, state)
    sd21 = tiny_sd(sd21=True).unet
    with pytest.raises(FaceshotUserError, match="cross-attention dim is 24"):
        check_ip_adapter_layout(sd21, state)
    broken = {"image_proj": state["image_proj"], "ip_adapter": dict(state["ip_adapter"])}
    del broken["ip_adapter"]["3.to_v_ip.weight"]
    with pytest.raises(FaceshotUserError, match=r"keys 1, 3, \.\.\., 19"):
        check_ip_adapter_layout(parts.unet, broken)
    plus = {"image_proj": {"latents": torch.zeros(1, 16, 16)}, "ip_adapter": state["ip_adapter"]}
    with pytest.raises(FaceshotUserError, match="not supported"):
        check_ip_adapter_layout(parts.unet, plus)
    attach_ip_adapter(parts.unet, state)
    with pytest.raises(ValueError, match="pass its image_encoder"):
        make_extractor(parts)


def test_bad_inputs() -> None:
    with pytest.raises(ValueError, match="multiple of 8"):
        make_extractor(tiny_sd(), image_size=60)
    with pytest.raises(ValueError, match="not on the 50-step"):
        make_extractor(tiny_sd(), timestep=300)
    ex = make_extractor(tiny_sd())
    with pytest.raises(ValueError, match="uint8"):
        ex.feature_maps([np.zeros((8, 8, 3), np.float32)])
    with pytest.raises(ValueError, match="2 prompts"):
        ex.feature_maps([np.zeros((8, 8, 3), np.uint8)], [None, None])


def test_half_precision_is_not_used_on_cpu() -> None:
    ex = make_extractor(tiny_sd(), dtype="float16")
    assert ex.dtype == torch.float32 and ex.unet.dtype == torch.float32


# --------------------------------------------------------------------------- CLIP


def test_clip_embedder(astronaut: np.ndarray, chelsea: np.ndarray) -> None:
    emb = ClipImageEmbedder.tiny()
    assert isinstance(emb, ImageEmbedder)
    out = emb.embed([astronaut, chelsea, astronaut])
    assert out.shape == (3, 8) and out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(out[0], out[2], rtol=1e-6, atol=1e-6)
    assert float(out[0] @ out[1]) < 0.9999
    raw = emb.image_embeds([astronaut])
    assert raw.shape == (1, 8) and not torch.allclose(raw.norm(), torch.tensor(1.0))
    assert emb.embed([]).shape == (0, 8)


def test_clip_preprocess_matches_transformers(astronaut: np.ndarray, chelsea: np.ndarray) -> None:
    pil_processor = pytest.importorskip("transformers.models.clip.image_processing_pil_clip")
    proc = pil_processor.CLIPImageProcessorPil()
    for image in (astronaut, chelsea, np.ascontiguousarray(chelsea.transpose(1, 0, 2))):
        ours = clip_preprocess(image)
        theirs = proc(images=image, return_tensors="np")["pixel_values"][0]
        assert ours.shape == theirs.shape == (3, 224, 224)
        np.testing.assert_allclose(ours, theirs, atol=2e-2)  # PIL vs transformers' uint8 round trip
        assert np.abs(ours - theirs).mean() < 1e-3


# --------------------------------------------------------------------------- weights


def _fake_hub_snapshot(cache: Path, repo_id: str, content: Path | None = None) -> Path:
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    snap = repo / "snapshots" / commit
    if content is not None:
        shutil.copytree(content, snap)
    else:
        snap.mkdir(parents=True)
    return snap


def test_missing_files_one_error_listing_all(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    model = tmp_path / "sd"
    (model / "unet").mkdir(parents=True)
    (model / "unet" / "config.json").write_text("{}")
    (model / "vae").mkdir()
    (model / "vae" / "config.json").write_text("{}")
    (model / "vae" / "diffusion_pytorch_model.fp16.safetensors").write_bytes(b"x")
    with pytest.raises(MissingDependencyError) as info:
        locate_weights(model, ip_adapter="h94/IP-Adapter")
    msg = str(info.value)
    for needed in (
        "unet/diffusion_pytorch_model.safetensors (or unet/diffusion_pytorch_model.bin",
        "text_encoder/config.json",
        "text_encoder/model.safetensors",
        "tokenizer/vocab.json",
        "tokenizer/merges.txt",
        "scheduler/scheduler_config.json",
        "models/ip-adapter_sd15.bin",
        "models/image_encoder/config.json",
        "models/image_encoder/model.safetensors",
    ):
        assert needed in msg, needed
    assert "vae/config.json" not in msg and "vae/diffusion" not in msg  # fp16 variant is enough
    assert f"local folder {model.resolve()}" in msg
    assert f"Hugging Face cache {tmp_path / 'hub'} (no snapshot of h94/IP-Adapter)" in msg
    assert "hf download h94/IP-Adapter models/ip-adapter_sd15.bin" in msg
    assert "--model PATH" in msg and "--ip-adapter PATH" in msg


def test_missing_files_in_hf_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    assert hf_hub_cache() == tmp_path / "hf" / "hub"
    snap = _fake_hub_snapshot(
        tmp_path / "hf" / "hub", "stable-diffusion-v1-5/stable-diffusion-v1-5"
    )
    (snap / "unet").mkdir()
    (snap / "unet" / "config.json").write_text("{}")
    (snap / "unet" / "diffusion_pytorch_model.safetensors").symlink_to(snap / "gone.blob")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(MissingDependencyError) as info:
        locate_weights("stable-diffusion-v1-5/stable-diffusion-v1-5")
    msg = str(info.value)
    assert f"(snapshot {snap})" in msg
    assert "unet/diffusion_pytorch_model.safetensors" in msg  # a dangling blob link is missing
    assert "unet/config.json" not in msg.split("searched")[0]
    assert "vae/config.json" in msg and "hf download stable-diffusion-v1-5/" in msg


def test_from_pretrained_local_folders_and_hub_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, astronaut: np.ndarray, chelsea: np.ndarray
) -> None:
    parts = tiny_sd(seed=3)
    encoder = ClipImageEmbedder.tiny(seed=3)
    state = released_ip_adapter(parts.unet, encoder.dim, seed=5)
    write_tiny_checkpoint(tmp_path / "tiny-sd15", parts)
    write_tiny_ip_adapter(tmp_path / "ip", state, encoder)

    loaded = DiffusionFeatureExtractor.from_pretrained(
        tmp_path / "tiny-sd15", ip_adapter=tmp_path / "ip", device="cpu", image_size=SIZE
    )
    assert loaded.spec.model == "tiny-sd15" and loaded.spec.image_prompt == "ip-adapter_sd15"
    proj = loaded.unet.encoder_hid_proj.image_projection_layers[0]
    assert torch.equal(proj.image_embeds.weight, state["image_proj"]["proj.weight"])
    attach_ip_adapter(
        parts.unet, load_ip_adapter_state_dict(tmp_path / "ip/models/ip-adapter_sd15.bin")
    )
    reference = make_extractor(parts, image_encoder=encoder)
    got = loaded.feature_maps([astronaut], [chelsea])[0]
    np.testing.assert_allclose(got, reference.feature_maps([astronaut], [chelsea])[0], atol=1e-5)

    # The same checkpoint as a Hub id in a fake cache; without IP-Adapter (SD 2.1-style use).
    hub = tmp_path / "hub"
    _fake_hub_snapshot(hub, "acme/tiny-sd", tmp_path / "tiny-sd15")
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    monkeypatch.chdir(tmp_path)
    plain = DiffusionFeatureExtractor.from_pretrained(
        "acme/tiny-sd", ip_adapter=None, device="cpu", image_size=SIZE
    )
    assert plain.spec.model == "acme/tiny-sd" and plain.spec.image_prompt is None
    assert plain.feature_maps([astronaut])[0].shape == got.shape

    # The image encoder alone, from the IP-Adapter folder (for domain choice).
    emb = ClipImageEmbedder.from_pretrained(tmp_path / "ip", device="cpu")
    np.testing.assert_allclose(emb.embed([chelsea]), encoder.embed([chelsea]), atol=1e-6)


def test_ip_adapter_safetensors_layout(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    parts = tiny_sd()
    state = released_ip_adapter(parts.unet, 8)
    flat = {f"{group}.{k}": v for group, d in state.items() for k, v in d.items()}
    save_file(flat, str(tmp_path / "ip-adapter_sd15.safetensors"))
    back = load_ip_adapter_state_dict(tmp_path / "ip-adapter_sd15.safetensors")
    assert back.keys() == state.keys()
    for group in state:
        assert back[group].keys() == state[group].keys()
        assert all(torch.equal(back[group][k], state[group][k]) for k in state[group])


def test_core_imports_without_torch() -> None:
    code = (
        "import sys\n"
        "for m in ('torch', 'diffusers', 'transformers'): sys.modules[m] = None\n"
        "import faceshot_core.matching.diffusion, faceshot_core.matching.weights\n"
        "from faceshot_core.matching.clip_embedder import ClipImageEmbedder\n"
        "from faceshot_core.errors import MissingDependencyError\n"
        "try:\n    ClipImageEmbedder.tiny()\nexcept MissingDependencyError as e:\n"
        "    print('OK', e)\n"
    )
    env = {"PYTHONPATH": str(REPO / "src"), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("OK") and "faceshot[match]" in out.stdout


# --------------------------------------------------------------------------- full size, meta

# Shapes in the released checkpoints (diffusers layout / transformers layout).
SD15_UNET_KEYS = {
    "conv_in.weight": (320, 4, 3, 3),
    "time_embedding.linear_1.weight": (1280, 320),
    "time_embedding.linear_2.weight": (1280, 1280),
    "down_blocks.0.attentions.0.proj_in.weight": (320, 320, 1, 1),
    "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.weight": (320, 320),
    "down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.weight": (320, 768),
    "down_blocks.0.attentions.0.transformer_blocks.0.ff.net.0.proj.weight": (2560, 320),
    "down_blocks.0.downsamplers.0.conv.weight": (320, 320, 3, 3),
    "down_blocks.3.resnets.1.conv2.weight": (1280, 1280, 3, 3),
    "mid_block.attentions.0.transformer_blocks.0.attn2.to_k.weight": (1280, 768),
    "up_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.weight": (1280, 768),
    "up_blocks.1.resnets.0.conv1.weight": (1280, 2560, 3, 3),
    "up_blocks.1.upsamplers.0.conv.weight": (1280, 1280, 3, 3),
    "up_blocks.3.attentions.2.proj_out.weight": (320, 320, 1, 1),
    "conv_norm_out.weight": (320,),
    "conv_out.weight": (4, 320, 3, 3),
}
SD21_UNET_KEYS = {
    "down_blocks.0.attentions.0.proj_in.weight": (320, 320),  # linear projection
    "down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.weight": (320, 1024),
    "up_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.weight": (1280, 1024),
    "up_blocks.1.attentions.0.proj_out.weight": (1280, 1280),
}
VAE_KEYS = {
    "encoder.conv_in.weight": (128, 3, 3, 3),
    "encoder.down_blocks.1.resnets.0.conv_shortcut.weight": (256, 128, 1, 1),
    "encoder.conv_out.weight": (8, 512, 3, 3),
    "quant_conv.weight": (8, 8, 1, 1),
    "post_quant_conv.weight": (4, 4, 1, 1),
    "decoder.conv_in.weight": (512, 4, 3, 3),
    "decoder.conv_out.weight": (3, 128, 3, 3),
}
TEXT_KEYS = {  # released layout: "text_model." prefix
    "text_model.embeddings.token_embedding.weight": (49408, 768),
    "text_model.embeddings.position_embedding.weight": (77, 768),
    "text_model.encoder.layers.0.self_attn.q_proj.weight": (768, 768),
    "text_model.encoder.layers.11.mlp.fc1.weight": (3072, 768),
    "text_model.final_layer_norm.weight": (768,),
}
IMAGE_ENCODER_KEYS = {
    "vision_model.embeddings.class_embedding": (1280,),
    "vision_model.embeddings.patch_embedding.weight": (1280, 3, 14, 14),
    "vision_model.embeddings.position_embedding.weight": (257, 1280),
    "vision_model.pre_layrnorm.weight": (1280,),
    "vision_model.encoder.layers.31.self_attn.q_proj.weight": (1280, 1280),
    "vision_model.encoder.layers.31.mlp.fc1.weight": (5120, 1280),
    "vision_model.post_layernorm.weight": (1280,),
    "visual_projection.weight": (1024, 1280),
}
# ip-adapter_sd15.bin: "ip_adapter" key k=1,3,...,31 -> hidden size of that attn2 (diffusers'
# attn_processors order: down 0,0,1,1,2,2; up 1,1,1,2,2,2,3,3,3; mid).
IP_HIDDEN = (320, 320, 640, 640, 1280, 1280, 1280, 1280, 1280, 640, 640, 640, 320, 320, 320, 1280)


def released_names(state: dict[str, Any], prefix: str) -> dict[str, tuple[int, ...]]:
    """Key -> shape, with the checkpoint prefix transformers >= 5 strips on load put back."""
    return {(k if k.startswith(prefix) else prefix + k): tuple(v.shape) for k, v in state.items()}


@pytest.fixture(scope="module")
def meta_models() -> dict[str, Any]:
    with torch.device("meta"):
        return {
            kind: build_architecture(kind) for kind in ("unet15", "unet21", "vae", "text", "image")
        }


def _count(module: Any) -> int:
    return sum(p.numel() for p in module.parameters())


def _shapes(module: Any) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


def test_full_size_parameter_counts(meta_models: dict[str, Any]) -> None:
    assert _count(meta_models["unet15"]) == 859_520_964  # SD 1.5 UNet, 859.5M
    assert _count(meta_models["unet21"]) == 865_910_724  # SD 2.1 UNet, 865.9M
    assert _count(meta_models["vae"]) == 83_653_863  # SD VAE, 83.7M
    assert _count(meta_models["text"]) == 123_060_480  # CLIP ViT-L/14 text, 123.1M
    assert _count(meta_models["image"]) == 632_076_800  # CLIP ViT-H-14 vision + projection


def test_full_size_keys_and_shapes(meta_models: dict[str, Any]) -> None:
    for model, expected in (
        ("unet15", SD15_UNET_KEYS),
        ("unet21", SD21_UNET_KEYS),
        ("vae", VAE_KEYS),
    ):
        shapes = _shapes(meta_models[model])
        for key, shape in expected.items():
            assert shapes.get(key) == shape, (model, key, shapes.get(key))
    assert len(_shapes(meta_models["unet15"])) == 686
    text = released_names(meta_models["text"].state_dict(), "text_model.")
    assert all(text.get(k) == s for k, s in TEXT_KEYS.items()), text.keys() & TEXT_KEYS.keys()
    assert len(text) == 196
    image = _shapes(meta_models["image"])
    assert all(image.get(k) == s for k, s in IMAGE_ENCODER_KEYS.items())


def test_full_size_feature_block(meta_models: dict[str, Any]) -> None:
    """up_blocks[1] gives 1280 x 32 x 32 for a 512 input (64 x 64 latent), both models."""
    for name, cross in (("unet15", 768), ("unet21", 1024)):
        unet = meta_models[name]
        assert block_channels(unet.config, "up_blocks.1") == 1280
        seen: list[tuple[int, ...]] = []

        def record(m: Any, a: Any, o: Any, seen: list[tuple[int, ...]] = seen) -> None:
            seen.append(tuple(o.shape))

        hook = unet.up_blocks[1].register_forward_hook(record)
        with torch.inference_mode():
            unet(
                torch.zeros(1, 4, 64, 64, device="meta"),
                301,
                torch.zeros(1, 77, cross, device="meta"),
            )
        hook.remove()
        assert seen == [(1, 1280, 32, 32)]
    with torch.inference_mode():
        out = meta_models["image"](pixel_values=torch.zeros(1, 3, 224, 224, device="meta"))
    assert tuple(out.image_embeds.shape) == (1, 1024)


def test_full_size_ip_adapter_attaches(meta_models: dict[str, Any]) -> None:
    """The released ip-adapter_sd15 layout fits every attn2 of the SD 1.5 UNet."""
    with torch.device("meta"):
        unet = build_architecture("unet15")
        state = {
            "image_proj": {
                "proj.weight": torch.empty(3072, 1024),
                "proj.bias": torch.empty(3072),
                "norm.weight": torch.empty(768),
                "norm.bias": torch.empty(768),
            },
            "ip_adapter": {
                f"{2 * i + 1}.{w}.weight": torch.empty(h, 768)
                for i, h in enumerate(IP_HIDDEN)
                for w in ("to_k_ip", "to_v_ip")
            },
        }
    assert len(state["ip_adapter"]) == 32 and "31.to_v_ip.weight" in state["ip_adapter"]
    layers = cross_attention_layers(unet)
    assert (
        len(layers) == 16 and layers[6].startswith("up_blocks.1.") and layers[15].startswith("mid")
    )
    attach_ip_adapter(unet, state)
    for i, name in enumerate(layers):
        proc = unet.attn_processors[name]
        assert type(proc).__name__ == "IPAdapterAttnProcessor2_0"
        assert proc.scale == [1.0] and proc.num_tokens == [4]
        assert tuple(proc.to_k_ip[0].weight.shape) == (IP_HIDDEN[i], 768)
    proj = unet.encoder_hid_proj.image_projection_layers[0]
    assert tuple(proj.image_embeds.weight.shape) == (3072, 1024) and proj.num_image_text_embeds == 4
    seen: list[tuple[int, ...]] = []
    unet.up_blocks[1].register_forward_hook(lambda m, a, o: seen.append(tuple(o.shape)))
    with torch.inference_mode():
        unet(
            torch.zeros(2, 4, 64, 64, device="meta"),
            301,
            torch.zeros(2, 77, 768, device="meta"),
            added_cond_kwargs={"image_embeds": [torch.zeros(2, 1, 1024, device="meta")]},
        )
    assert seen == [(2, 1280, 32, 32)]
    with pytest.raises(FaceshotUserError, match="cross-attention dim is 1024"):
        check_ip_adapter_layout(meta_models["unet21"], state)
