"""The original's constructor arguments (config.json / ckpt `hyper_parameters`) -> `DenseAVConfig`.

The original's `LitAVAligner` takes many options; the published checkpoints (and the test fixtures made like them)
use one value of most. Only those are implemented: any other value is refused here, naming the option, rather than
run through code no checkpoint has ever exercised. Backbone sizes of non-published checkpoints come from an optional
`backbones.json`; the published checkpoints have none and get the published sizes (DINO ViT-S/8, HuBERT-Large).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import CheckpointError
from ..modeling import AudioEncoderConfig, DenseAVConfig, ImageEncoderConfig

# av_align.yaml defaults plus hubconf's overrides, for keys a config does not carry (spec 8.4).
ORIGINAL_DEFAULTS: dict[str, Any] = {
    "code_dim": 384,
    "image_model_type": "dino8",
    "image_model_token_type": "token",
    "image_aligner_type": "image_linear",
    "image_pool_width": 2,
    "image_lora": True,
    "image_lora_rank": 8,
    "audio_model_type": "hubert",
    "audio_aligner_type": "audio_sa_3_3_pool_2",
    "audio_pool_width": 1,
    "audio_lora": False,
    "learn_audio_cls": True,
    "nonneg_sim": False,
    "norm_vectors": False,
    "sim_agg_type": "misa",
    "sim_agg_heads": 1,
    "sim_use_cls": False,
    "head_agg": "max_elementwise",
    "mask_silence": True,
}

# The one value of each option that the three published checkpoints (and the fixtures) use; see the spec, section 1,
# and fixtures/keys/*.json ("config_json"). Options that vary between them (sim_agg_heads, sim_use_cls, image_lora)
# or only shape a flag (learn_audio_cls, mask_silence, the demo pool widths) are not listed.
SUPPORTED: dict[str, Any] = {
    "image_model_type": "dino8",
    "image_model_token_type": "token",
    "image_aligner_type": "image_linear",
    "audio_model_type": "hubert",
    "audio_aligner_type": "audio_sa_3_3_pool_2",
    "audio_lora": False,
    "sim_agg_type": "misa",
    "head_agg": "max_elementwise",
    "nonneg_sim": False,
    "norm_vectors": False,
}
DINO8_PATCH = 8


def check_supported(hp: Mapping[str, Any]) -> None:
    for option, value in SUPPORTED.items():
        if hp[option] != value:
            raise CheckpointError(
                f"unsupported: {option}={hp[option]!r}. denseav implements the options of the published DenseAV "
                f"checkpoints ({option}={value!r}); no published checkpoint uses this one, so it was never "
                "implemented. Convert the checkpoint with the original DenseAV code instead."
            )


def _image_encoder_config(backbones: Mapping[str, Any]) -> ImageEncoderConfig:
    bb = backbones.get("image_backbone") or {}
    d = ImageEncoderConfig()
    grid = bb.get("pos_embed_grid") or d.pos_grid
    return ImageEncoderConfig(
        embed_dim=int(bb.get("embed_dim", d.embed_dim)),
        depth=int(bb.get("depth", d.depth)),
        num_heads=int(bb.get("num_heads", d.num_heads)),
        patch_size=int(bb.get("patch_size", DINO8_PATCH)),
        mlp_ratio=float(bb.get("mlp_ratio", d.mlp_ratio)),
        layer_norm_eps=float(bb.get("layer_norm_eps", d.layer_norm_eps)),
        pos_grid=(int(grid[0]), int(grid[1])),
    )


def _audio_encoder_config(backbones: Mapping[str, Any]) -> AudioEncoderConfig:
    bb = backbones.get("audio_backbone") or {}
    d = AudioEncoderConfig()
    return AudioEncoderConfig(
        hidden_size=int(bb.get("hidden_size", d.hidden_size)),
        num_layers=int(bb.get("num_hidden_layers", d.num_layers)),
        num_heads=int(bb.get("num_attention_heads", d.num_heads)),
        intermediate_size=int(bb.get("intermediate_size", d.intermediate_size)),
        conv_dim=tuple(int(x) for x in bb.get("conv_dim", d.conv_dim)),
        conv_kernel=tuple(int(x) for x in bb.get("conv_kernel", d.conv_kernel)),
        conv_stride=tuple(int(x) for x in bb.get("conv_stride", d.conv_stride)),
        pos_conv_kernel=int(bb.get("pos_conv_kernel", d.pos_conv_kernel)),
        pos_conv_groups=int(bb.get("pos_conv_groups", d.pos_conv_groups)),
        layer_norm_eps=float(bb.get("layer_norm_eps", d.layer_norm_eps)),
        conv_layer_norm_eps=float(bb.get("conv_layer_norm_eps", d.conv_layer_norm_eps)),
    )


def default_head_names(hp: Mapping[str, Any]) -> tuple[str, ...]:
    """Head names when neither the registry nor the checkpoint names them.

    Two heads: language (head 0), sound (head 1), as the original's disentanglement setup and its demo colours
    show. One head: "sound" for the sound recipe (cls term in the similarity), else "language".
    """
    k = int(hp["sim_agg_heads"])
    if k == 2:
        return ("language", "sound")
    if k == 1:
        return ("sound",) if hp["sim_use_cls"] else ("language",)
    return tuple(f"head{i}" for i in range(k))


def config_from_original(
    hparams: Mapping[str, Any],
    backbones: Mapping[str, Any] | None = None,
    head_names: tuple[str, ...] | None = None,
) -> DenseAVConfig:
    """The original's constructor arguments -> DenseAVConfig. Unknown keys are ignored, missing ones defaulted,
    options no published checkpoint uses refused (CheckpointError "unsupported: ...")."""
    hp = {**ORIGINAL_DEFAULTS, **{k: v for k, v in hparams.items() if v is not None or k not in ORIGINAL_DEFAULTS}}
    check_supported(hp)
    bb = backbones or {}
    names = head_names or tuple(bb.get("head_names") or ()) or default_head_names(hp)
    try:
        return DenseAVConfig(
            code_dim=int(hp["code_dim"]),
            num_heads=int(hp["sim_agg_heads"]),
            head_names=tuple(names),
            image_encoder=_image_encoder_config(bb),
            audio_encoder=_audio_encoder_config(bb),
            learn_audio_cls=bool(hp["learn_audio_cls"]),
            use_cls_similarity=bool(hp["sim_use_cls"]),
            mask_silence=bool(hp["mask_silence"]),
            image_pool_width=int(hp["image_pool_width"]),
            audio_pool_width=int(hp["audio_pool_width"]),
        )
    except (ValueError, TypeError, KeyError) as e:
        raise CheckpointError(f"the checkpoint's config does not describe a usable DenseAV model: {e}") from e
