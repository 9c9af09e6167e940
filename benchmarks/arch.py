"""The ModelScope T2V architecture (diffusers' UNet3DConditionModel, the SD AutoencoderKL and a CLIP
text encoder) with random weights, scaled to fit a CPU: memory and time do not depend on the values.

The full-size layout of ``damo-vilab/text-to-video-ms-1.7b``: UNet block_out_channels
(320, 640, 1280, 1280), 2 layers per block, attention head dim 64, cross-attention dim 1024; VAE
block_out_channels (128, 256, 512, 512), 2 layers per block, 8x spatial downsampling; OpenCLIP
ViT-H text tower (hidden 1024, 23 layers). ``width`` divides every channel count.
"""

from __future__ import annotations

from typing import Any

import torch


def sd_vae(width: int) -> Any:
    """The Stable Diffusion VAE (ModelScope's and VideoCrafter2's: 4 levels of (128, 256, 512, 512) channels, 2
    layers each, 8x spatial downsampling, scaling factor 0.18215) with its channels divided by ``width``."""
    from diffusers import AutoencoderKL

    vch = tuple(c // width for c in (128, 256, 512, 512))
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        layers_per_block=2,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=vch,
        norm_num_groups=min(32, vch[0] // 2),
        scaling_factor=0.18215,
    )


def modelscope_components(width: int = 8, text_layers: int = 2, seed: int = 0) -> dict[str, Any]:
    """Random ModelScope-architecture components with every channel count divided by ``width``."""
    from diffusers import DDIMScheduler, UNet3DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from vader_core.tokenizers import clip_tokenizer

    torch.manual_seed(seed)
    ch = [c // width for c in (320, 640, 1280, 1280)]
    groups = min(32, ch[0] // 2)
    cross = 1024 // width
    unet = UNet3DConditionModel(
        block_out_channels=tuple(ch),
        layers_per_block=2,
        cross_attention_dim=cross,
        attention_head_dim=max(8, 64 // width),
        norm_num_groups=groups,
    )
    vae = sd_vae(width)
    text = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=49408,
            hidden_size=cross,
            intermediate_size=4 * cross,
            num_attention_heads=max(1, cross // 64),
            num_hidden_layers=text_layers,
            max_position_embeddings=77,
            bos_token_id=49406,
            eos_token_id=49407,
            pad_token_id=49407,
        )
    )
    sched = DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )
    return {"unet": unet, "vae": vae, "text_encoder": text, "tokenizer": clip_tokenizer(), "scheduler": sched}


def register_random_modelscope(width: int = 8, text_layers: int = 2) -> type:
    """Register backbone ``modelscope-random`` (this architecture, random weights) in this process."""
    import types

    from vader_core import hookimpl, plugins
    from vader_core.unet_t2v import UNetT2VBackbone

    class RandomModelScope(UNetT2VBackbone):
        name = "modelscope-random"
        summary = "ModelScope T2V architecture with random weights, channels divided by a width factor."

        def load(self, device: Any, dtype: Any) -> None:
            self.load_tiny(device, dtype)

        def load_tiny(self, device: Any, dtype: Any, seed: int = 0) -> None:
            comps = modelscope_components(width, text_layers, seed)
            comps["scheduler"] = self.make_scheduler(dict(comps["scheduler"].config))
            self.setup(comps, device, dtype)

    mod = types.ModuleType("vader_bench_backbone")

    @hookimpl
    def register_backbones(register: Any) -> None:
        register(RandomModelScope)

    mod.register_backbones = register_backbones  # type: ignore[attr-defined]
    if _registered:  # another configuration earlier in this process (benchmarks.worker with a list)
        plugins.unregister_plugin(_registered.pop())
    plugins.register_plugin(mod, name="bench", package="benchmarks")
    _registered.append(mod)
    return RandomModelScope


#: The module ``register_random_modelscope`` registered last in this process.
_registered: list[Any] = []


def wan_components(width: int = 8, seed: int = 0) -> dict[str, Any]:
    """Random Wan 2.1 T2V 1.3B components with every channel count divided by ``width``: the transformer's 30
    blocks of 12 heads (head size 128 / width, feed-forward 8960 / width) and the causal VAE (base 96 / width,
    the released layout otherwise); the plugin's tiny UMT5 text encoder (encoding is not part of the chain)."""
    from diffusers import AutoencoderKLWan, WanTransformer3DModel
    from vader_wan.tiny import tiny_text_encoder, tiny_tokenizer

    torch.manual_seed(seed)
    tok = tiny_tokenizer()
    transformer = WanTransformer3DModel(
        patch_size=(1, 2, 2),
        num_attention_heads=12,
        attention_head_dim=128 // width,
        in_channels=16,
        out_channels=16,
        text_dim=32,
        freq_dim=256,
        ffn_dim=8960 // width,
        num_layers=30,
        cross_attn_norm=True,
        qk_norm="rms_norm_across_heads",
        eps=1e-6,
    )
    g = torch.Generator().manual_seed(1234)
    vae = AutoencoderKLWan(
        base_dim=96 // width,
        z_dim=16,
        latents_mean=(torch.randn(16, generator=g) * 0.3).tolist(),
        latents_std=(torch.rand(16, generator=g) + 0.5).tolist(),
    )
    return {"transformer": transformer, "vae": vae, "text_encoder": tiny_text_encoder(len(tok), 32), "tokenizer": tok}


def _register_random(
    base: type, name: str, summary: str, components: Any, scheduler_config: dict[str, Any] | None
) -> type:
    """Register backbone ``name``: ``base`` loading ``components(seed)`` (random weights) with the scheduler of
    ``scheduler_config`` (``None``: the backbone's own) unless the components bring a ``scheduler``, under a
    plugin of its own in this process; the class registered earlier if there is one (B8 builds the same model
    twice)."""
    import types

    from vader_core import hookimpl, plugins
    from vader_core.resolve import backbone_class

    if plugins.has("backbone", name):
        return backbone_class(name)

    class Random(base):  # type: ignore[misc, valid-type]
        def load(self, device: Any, dtype: Any) -> None:
            self.load_tiny(device, dtype)

        def load_tiny(self, device: Any, dtype: Any, seed: int = 0) -> None:
            comps = components(seed)
            if "scheduler" not in comps:  # else the components bring their own
                made = (
                    self.make_scheduler() if scheduler_config is None else self.make_scheduler(dict(scheduler_config))
                )
                comps["scheduler"] = made
            self.setup(comps, device, dtype)

    Random.name, Random.summary = name, summary
    Random.__name__ = Random.__qualname__ = f"Random{base.__name__}"
    mod = types.ModuleType(f"vader_bench_{name.replace('-', '_')}")

    @hookimpl
    def register_backbones(register: Any) -> None:
        register(Random)

    mod.register_backbones = register_backbones  # type: ignore[attr-defined]
    plugins.register_plugin(mod, name=f"bench-{name.removesuffix('-random')}", package="benchmarks")
    return Random


def register_random_wan(width: int = 8) -> type:
    """Register backbone ``wan-random`` (Wan 2.1 1.3B architecture / ``width``, random weights) in this process."""
    from vader_wan import WanBackbone
    from vader_wan.tiny import scheduler_config

    return _register_random(
        WanBackbone,
        "wan-random",
        "Wan 2.1 T2V 1.3B architecture with random weights, channels divided by a width factor.",
        lambda seed: wan_components(width, seed),
        scheduler_config(),
    )


def cogvideox_components(width: int = 8, size: tuple[int, int, int] = (256, 256, 17), seed: int = 0) -> dict[str, Any]:
    """Random CogVideoX1.5-5B components with every channel count divided by ``width``: the transformer's 42
    blocks of 48 / width heads of size 64 (the 3D rotary positions need the released head size; temporal
    patches of 2), the causal VAE
    (block channels (128, 256, 256, 512) / width, the released layout otherwise) and the plugin's tiny T5 of
    the transformer's text width (encoding is not part of the chain). ``size`` (height, width, frames) is the
    size the positions are laid out for."""
    from diffusers import AutoencoderKLCogVideoX, CogVideoXTransformer3DModel
    from vader_cogvideox.tiny import tiny_text_encoder

    from vader_core.tokenizers import tiny_t5_tokenizer

    torch.manual_seed(seed)
    tok = tiny_t5_tokenizer()
    text_dim = 4096 // width
    h, w, f = size
    transformer = CogVideoXTransformer3DModel(
        num_attention_heads=48 // width,
        attention_head_dim=64,
        in_channels=16,
        out_channels=16,
        time_embed_dim=512 // width,
        text_embed_dim=text_dim,
        num_layers=42,
        use_rotary_positional_embeddings=True,
        patch_size_t=2,
        patch_bias=False,
        sample_height=h // 8,
        sample_width=w // 8,
        sample_frames=f,
        max_text_seq_length=226,
    )
    vch = tuple(c // width for c in (128, 256, 256, 512))
    vae = AutoencoderKLCogVideoX(
        block_out_channels=vch,
        norm_num_groups=min(32, vch[0] // 2),
        scaling_factor=1.15258426,
    )
    return {
        "transformer": transformer,
        "vae": vae,
        "text_encoder": tiny_text_encoder(len(tok), text_dim),
        "tokenizer": tok,
    }


def register_random_cogvideox(width: int = 8, size: tuple[int, int, int] = (256, 256, 17)) -> type:
    """Register backbone ``cogvideox-random`` (CogVideoX1.5-5B architecture / ``width``, random weights, its DDIM
    sampler) in this process."""
    from vader_cogvideox import CogVideoXBackbone
    from vader_cogvideox.tiny import scheduler_config

    return _register_random(
        CogVideoXBackbone,
        "cogvideox-random",
        "CogVideoX1.5-5B architecture with random weights, channels divided by a width factor.",
        lambda seed: cogvideox_components(width, size, seed),
        scheduler_config("ddim"),
    )


def ltx_components(width: int = 8, seed: int = 0) -> dict[str, Any]:
    """Random LTX-Video 2B components (0.9.1 VAE) with every channel count divided by ``width``: the transformer's
    28 blocks of 32 / width heads of size 64 (128 latent channels), the decoder's blocks (256, 512, 1024) / width
    and the encoder's (128, 256, 512, 512) / width in the release's layout (32x spatial and 8x temporal
    compression, timestep conditioning, noise injection), and the plugin's tiny T5 of the caption width."""
    from diffusers import AutoencoderKLLTXVideo, LTXVideoTransformer3DModel
    from vader_ltx.tiny import tiny_text_encoder, tiny_tokenizer

    torch.manual_seed(seed)
    tok = tiny_tokenizer()
    heads, caption = 32 // width, 4096 // width
    transformer = LTXVideoTransformer3DModel(
        num_attention_heads=heads, cross_attention_dim=heads * 64, caption_channels=caption
    )
    vae = AutoencoderKLLTXVideo(
        block_out_channels=tuple(c // width for c in (128, 256, 512, 512)),
        decoder_block_out_channels=tuple(c // width for c in (256, 512, 1024)),
        decoder_layers_per_block=(5, 6, 7, 8),
        decoder_spatio_temporal_scaling=(True, True, True),
        decoder_inject_noise=(True, True, True, False),
        upsample_residual=(True, True, True),
        upsample_factor=(2, 2, 2),
        timestep_conditioning=True,
    )
    return {
        "transformer": transformer,
        "vae": vae,
        "text_encoder": tiny_text_encoder(len(tok), caption),
        "tokenizer": tok,
    }


def register_random_ltx(width: int = 8) -> type:
    """Register backbone ``ltx-random`` (LTX-Video 2B with the 0.9.1 VAE / ``width``, random weights, the 0.9.1
    sampler: dynamically shifted Euler) in this process."""
    from vader_ltx import LTXBackbone
    from vader_ltx.tiny import scheduler_config

    return _register_random(
        LTXBackbone,
        "ltx-random",
        "LTX-Video 2B architecture (0.9.1 VAE) with random weights, channels divided by a width factor.",
        lambda seed: ltx_components(width, seed),
        scheduler_config(),
    )


def videocrafter_components(width: int = 10, seed: int = 0) -> dict[str, Any]:
    """Random VideoCrafter2 components with every channel count divided by ``width``: the LVDM UNet's official
    layout (channel multipliers (1, 2, 4, 4), 2 residual blocks per level, spatial and temporal transformers at
    three levels, ``init_attn``, fps conditioning) from 320 / ``width`` channels (GroupNorm's 32 groups need a
    multiple of 32: ``width`` 10 gives 32) with heads of 8 channels (4, 8, 16 and 16 heads at width 10, the
    release 5, 10, 20 and 20 of 64), the SD VAE's (128, 256, 512, 512) / 8 and an OpenCLIP text tower of 2
    layers (encoding is not part of the chain)."""
    from vader_videocrafter.text_encoder import OpenCLIPTextEncoder, build_openclip_text_model, tokenizer
    from vader_videocrafter.unet import LVDMUNet3DModel

    torch.manual_seed(seed)
    ch = 320 // width
    context = 1024 // 8
    unet = LVDMUNet3DModel(model_channels=ch, num_head_channels=8, context_dim=context)
    with torch.no_grad():  # the official initialisation zeroes output layers: give the LoRA's gradient a path
        for n, p in unet.named_parameters():
            if p.abs().sum() == 0 and n.endswith("weight"):
                p.normal_(0, 0.02)
    vae = sd_vae(8)
    text_cfg = {"context_length": 77, "vocab_size": 49408, "width": context, "heads": context // 64, "layers": 2}
    clip = {
        "embed_dim": context,
        "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 16},
    }
    text = OpenCLIPTextEncoder(build_openclip_text_model({**clip, "text_cfg": text_cfg}))
    return {"unet": unet, "vae": vae, "text_encoder": text, "tokenizer": tokenizer()}


def register_random_videocrafter(width: int = 10) -> type:
    """Register backbone ``videocrafter-random`` (VideoCrafter2's architectures / ``width``, random weights, the
    official DDIM schedule) in this process."""
    from vader_videocrafter import VideoCrafterBackbone

    return _register_random(
        VideoCrafterBackbone,
        "videocrafter-random",
        "VideoCrafter2 architecture with random weights, channels divided by a width factor.",
        lambda seed: videocrafter_components(width, seed),
        None,
    )


def svd_components(width: int = 10, seed: int = 0) -> dict[str, Any]:
    """Random Stable Video Diffusion (img2vid) components, scaled down: the spatio-temporal UNet's released layout
    (4 levels, 2 layers each, spatial and temporal transformers in the first three) from (320, 640, 1280, 1280) /
    ``width`` channels (GroupNorm's 32 groups need multiples of 32: ``width`` 10) with heads of 8 channels, the
    temporal-decoder VAE's (128, 256, 512, 512) / 4, and a 2-layer CLIP vision tower of the UNet's
    cross-attention width (encoding is not part of the chain); the released EDM Euler scheduler."""
    from diffusers import AutoencoderKLTemporalDecoder, EulerDiscreteScheduler, UNetSpatioTemporalConditionModel
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection
    from vader_svd.tiny import scheduler_config

    torch.manual_seed(seed)
    ch = tuple(c // width for c in (320, 640, 1280, 1280))
    cross = 1024 // 8
    unet = UNetSpatioTemporalConditionModel(
        block_out_channels=ch, num_attention_heads=tuple(c // 8 for c in ch), cross_attention_dim=cross
    )
    vae = AutoencoderKLTemporalDecoder(
        block_out_channels=tuple(c // 4 for c in (128, 256, 512, 512)),
        down_block_types=("DownEncoderBlock2D",) * 4,
        layers_per_block=2,
        latent_channels=4,
    )
    encoder = CLIPVisionModelWithProjection(
        CLIPVisionConfig(
            hidden_size=cross,
            intermediate_size=4 * cross,
            projection_dim=cross,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=224,
            patch_size=14,
        )
    )
    return {
        "unet": unet,
        "vae": vae,
        "image_encoder": encoder,
        "feature_extractor": CLIPImageProcessor(crop_size=224, size=224),
        "scheduler": EulerDiscreteScheduler(**scheduler_config()),
    }


def register_random_svd(width: int = 10) -> type:
    """Register backbone ``svd-random`` (Stable Video Diffusion's architectures scaled down, random weights, the
    released EDM Euler sampler) in this process."""
    from vader_svd import SVDBackbone

    return _register_random(
        SVDBackbone,
        "svd-random",
        "Stable Video Diffusion architecture with random weights, channels divided by a width factor.",
        lambda seed: svd_components(width, seed),
        None,
    )


def opensora_components(width: int = 8, seed: int = 0) -> dict[str, Any]:
    """Random Open-Sora 1.2 components with every channel count divided by ``width``: STDiT3-XL/2's 28 blocks of
    width 1152 / ``width`` (heads of the released size 72, 16 / ``width`` of them) and its 4096 / ``width`` caption
    channels, the SDXL VAE's (128, 256, 512, 512) / ``width`` and the temporal VAE's 128 / ``width`` filters in the
    release's layout, and a 2-layer T5 of the caption width with the release's 300-token captions (encoding is
    not part of the chain)."""
    from transformers import T5Config, T5EncoderModel
    from vader_opensora.stdit3 import STDiT3, STDiT3Config
    from vader_opensora.vae import SDXL_VAE_CONFIG, TEMPORAL_CONFIG, OpenSoraVAE

    from vader_core.tokenizers import tiny_t5_tokenizer

    torch.manual_seed(seed)
    caption = 4096 // width
    model = STDiT3(STDiT3Config(hidden_size=1152 // width, num_heads=16 // width, caption_channels=caption))
    vch = tuple(c // width for c in SDXL_VAE_CONFIG["block_out_channels"])
    spatial = {**SDXL_VAE_CONFIG, "block_out_channels": vch, "norm_num_groups": min(32, vch[0] // 2)}
    temporal = {**TEMPORAL_CONFIG, "filters": TEMPORAL_CONFIG["filters"] // width, "num_groups": 32 // width}
    vae = OpenSoraVAE(spatial, temporal)
    tok = tiny_t5_tokenizer(300)
    text = T5EncoderModel(
        T5Config(
            vocab_size=len(tok),
            d_model=caption,
            d_kv=64,
            d_ff=2 * caption,
            num_layers=2,
            num_heads=caption // 64,
            feed_forward_proj="gated-gelu",
            tie_word_embeddings=False,
        )
    ).eval()
    return {"transformer": model, "vae": vae, "text_encoder": text, "tokenizer": tok}


def register_random_opensora(width: int = 8) -> type:
    """Register backbone ``opensora-random`` (Open-Sora 1.2's architectures / ``width``, random weights, the
    official rectified-flow sampler with its shift) in this process."""
    from vader_opensora import OpenSoraBackbone

    return _register_random(
        OpenSoraBackbone,
        "opensora-random",
        "Open-Sora 1.2 architecture with random weights, channels divided by a width factor.",
        lambda seed: opensora_components(width, seed),
        None,
    )


def hunyuanvideo_components(width: int = 8, seed: int = 0) -> dict[str, Any]:
    """Random HunyuanVideo 1.5 (text-to-video) components with every channel count divided by ``width``: the
    transformer's 54 blocks and 2 refiner blocks of 16 / ``width`` heads of the released size 128 (its rotary
    axes need it), text, glyph and image widths 3584, 1472 and 1152 / ``width``; the 16x/4x causal VAE's
    (128, 256, 512, 1024, 1024) / ``width``; the plugin's tiny Qwen2.5-VL text model (2 layers) and byT5 of those
    widths with the released token counts (1000 + 256, and 729 zero image tokens), Euler with shift 5 and
    guidance 6 (encoding is not part of the chain)."""
    from diffusers import AutoencoderKLHunyuanVideo15, ClassifierFreeGuidance, HunyuanVideo15Transformer3DModel
    from vader_hunyuanvideo.tiny import tiny_glyph_encoder, tiny_qwen_tokenizer, tiny_text_encoder

    torch.manual_seed(seed)
    tok = tiny_qwen_tokenizer()
    text_dim, glyph_dim = 3584 // width, 1472 // width
    glyph, glyph_tok = tiny_glyph_encoder(glyph_dim)
    transformer = HunyuanVideo15Transformer3DModel(
        num_attention_heads=16 // width,
        text_embed_dim=text_dim,
        text_embed_2_dim=glyph_dim,
        image_embed_dim=1152 // width,
        task_type="t2v",
    )
    vae = AutoencoderKLHunyuanVideo15(block_out_channels=tuple(c // width for c in (128, 256, 512, 1024, 1024)))
    return {
        "transformer": transformer,
        "vae": vae,
        "text_encoder": tiny_text_encoder(len(tok), text_dim, layers=2),
        "tokenizer": tok,
        "text_encoder_2": glyph,
        "tokenizer_2": glyph_tok,
        "guider": ClassifierFreeGuidance(guidance_scale=6.0),
    }


def register_random_hunyuanvideo(width: int = 8) -> type:
    """Register backbone ``hunyuanvideo-random`` (HunyuanVideo 1.5 T2V's architecture / ``width``, random weights,
    its flow-matching Euler sampler) in this process."""
    from diffusers import FlowMatchEulerDiscreteScheduler
    from vader_hunyuanvideo import HunyuanVideoBackbone
    from vader_hunyuanvideo.backbone import saved_config

    return _register_random(
        HunyuanVideoBackbone,
        "hunyuanvideo-random",
        "HunyuanVideo 1.5 T2V architecture with random weights, channels divided by a width factor.",
        lambda seed: hunyuanvideo_components(width, seed),
        saved_config(FlowMatchEulerDiscreteScheduler(shift=5.0)),
    )
