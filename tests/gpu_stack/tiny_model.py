"""Build a TINY random-weight GPT-SoVITS v2 (or v2Pro) model in the real release layout and format.

No weights can be downloaded here, so the tests exercise the real loading and inference code on
weights we make: the package's own module classes with small configs, saved exactly as the official
release files are (same names, same dict layout, the SoVITS version head). The audio it makes is
noise; tests check shape, rate, bounds and determinism, never quality.

Sizes that the inference code hard-wires and must be kept: HuBERT hidden_size 768, SoVITS
hidden_channels 192 and gin_channels 512 (v2Pro: 1024, its release config), BERT hidden_size 1024,
and v2Pro's speaker-verification ERes2NetV2 at its full size (`sv.SV` builds it with fixed
arguments; about 100 MB even in fp16, by far the largest file of the tiny v2Pro set).

Usable as a script too (for the api_v2 server test, the benchmark, a manual try):
    python -m tests.gpu_stack.tiny_model /tmp/tiny-gsv [--version v2Pro]
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import sys
from pathlib import Path
from typing import Any

# Official release names (see models/README.md); the tiny model uses the same ones so that the
# engine's layout check and the default paths are exercised as they are with real weights.
GPT_REL = "gsv-v2final-pretrained/s1bert25hz-5kh-longer-epoch=12-step=369668.ckpt"
SOVITS_REL = "gsv-v2final-pretrained/s2G2333k.pth"
HUBERT_REL = "chinese-hubert-base"
BERT_REL = "chinese-roberta-wwm-ext-large"
# v2Pro release names (lj1995/GPT-SoVITS): its own GPT and SoVITS, plus the speaker-verification model.
V2PRO_GPT_REL = "s1v3.ckpt"
V2PRO_SOVITS_REL = "v2Pro/s2Gv2Pro.pth"
V2PRO_SV_REL = "sv/pretrained_eres2netv2w24s4ep4.ckpt"
# SoVITS version heads (process_ckpt.py): b"01" = v2, b"05" = v2Pro.
SOVITS_HEADS = {"v2": b"01", "v2Pro": b"05"}


def _package_modules() -> dict[str, Any]:
    """Import the package's model classes (needs its GPT_SoVITS dir on sys.path)."""
    from workers.engines.gpt_sovits import prepare_import_path

    prepare_import_path()
    import sv  # noqa: F401  (puts GPT_SoVITS/eres2net on sys.path, as the engine's load does)
    from AR.models.t2s_lightning_module import Text2SemanticLightningModule
    from ERes2NetV2 import ERes2NetV2
    from feature_extractor.cnhubert import HubertInferenceModel
    from module.models import SynthesizerTrn
    from text import symbols2
    from text.chinese_bert import BertForMaskedLM

    return {
        "t2s": Text2SemanticLightningModule,
        "hubert": HubertInferenceModel,
        "sovits": SynthesizerTrn,
        "bert": BertForMaskedLM,
        "eres2netv2": ERes2NetV2,
        "n_phonemes": len(symbols2.symbols),
    }


def _package_pretrained_dir() -> Path:
    import gpt_sovits_cpufast

    return Path(gpt_sovits_cpufast.__file__).resolve().parent.parent / "GPT_SoVITS" / "pretrained_models"


def _half(state: dict[str, Any]) -> dict[str, Any]:
    """fp16 like the release files; the vocab-sized BERT embeddings dominate the tiny model's size."""
    return {k: v.half() if v.is_floating_point() else v for k, v in state.items()}


def build_tiny_model(dest: Path, seed: int = 0, version: str = "v2") -> Path:
    """Write a tiny `version` ("v2" or "v2Pro") model under `dest` (created) and return `dest`.

    v2Pro = the same tiny GPT, a SoVITS built as v2Pro (speaker-embedding projection, gin 1024 as
    in the release's s2v2Pro.json, head b"05") and a random-weight speaker-verification
    ERes2NetV2 under sv/. Its names are v2Pro's release names, so the engine picks v2Pro there.
    """
    from types import SimpleNamespace

    import torch

    if version not in SOVITS_HEADS:
        raise ValueError(f"tiny model version must be one of {sorted(SOVITS_HEADS)}, got {version!r}")
    pro = version == "v2Pro"
    gpt_rel, sovits_rel = (V2PRO_GPT_REL, V2PRO_SOVITS_REL) if pro else (GPT_REL, SOVITS_REL)
    mods = _package_modules()
    torch.manual_seed(seed)
    dest = Path(dest)
    for rel in (gpt_rel, sovits_rel):
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)

    # --- GPT (s1): {"config", "weight"} with Lightning-style "model.*" keys ---------------------
    s1_config = {
        "data": {"max_sec": 8, "pad_val": 1024},  # caps a random GPT that never says EOS
        "model": {
            "vocab_size": 1025,
            "phoneme_vocab_size": mods["n_phonemes"],
            "embedding_dim": 64,
            "hidden_dim": 64,
            "head": 2,
            "linear_units": 128,
            "n_layer": 1,
            "dropout": 0,
            "EOS": 1024,
            "random_bert": 0,
        },
        "inference": {"top_k": 15},
    }
    # The full training-shaped module (with the `h` transformer the release checkpoints carry)
    # builds a torchmetrics accuracy metric that inference never uses and the package does not
    # install: skip just that metric while building.
    import AR.models.t2s_model as t2s_model_module

    build_metric = t2s_model_module._build_multiclass_accuracy_for_training
    t2s_model_module._build_multiclass_accuracy_for_training = lambda *args, **kwargs: None
    try:
        t2s = mods["t2s"](s1_config, "****", is_train=False)
    finally:
        t2s_model_module._build_multiclass_accuracy_for_training = build_metric
    torch.save({"config": s1_config, "weight": t2s.state_dict()}, dest / gpt_rel)

    # --- SoVITS (s2): {"weight", "config", "info"}, first two bytes replaced by the version head --
    s2_config = {
        "train": {"segment_size": 20480},
        "data": {
            "max_wav_value": 32768.0,
            "sampling_rate": 32000,
            "filter_length": 2048,
            "hop_length": 640,
            "win_length": 2048,
            "n_mel_channels": 128,
            "n_speakers": 300,
        },
        "model": {
            "inter_channels": 192,
            "hidden_channels": 192,
            "filter_channels": 192,
            "n_heads": 2,
            "n_layers": 1,
            "kernel_size": 3,
            "p_dropout": 0.1,
            "resblock": "1",
            "resblock_kernel_sizes": [3],
            "resblock_dilation_sizes": [[1, 3, 5]],
            "upsample_rates": [10, 8, 2, 2, 2],
            "upsample_initial_channel": 64,
            "upsample_kernel_sizes": [16, 16, 8, 2, 2],
            "n_layers_q": 1,
            "use_spectral_norm": False,
            "gin_channels": 1024 if pro else 512,  # the release configs: s2v2Pro.json / s2.json
            "semantic_frame_rate": "25hz",
            "freeze_quantizer": True,
        },
    }
    sovits = mods["sovits"](
        s2_config["data"]["filter_length"] // 2 + 1,
        s2_config["train"]["segment_size"] // s2_config["data"]["hop_length"],
        n_speakers=s2_config["data"]["n_speakers"],
        version=version,
        **s2_config["model"],
    )
    # The release drops the training-only posterior encoder and stores fp16 (half the disk).
    weight = {k: v.half() for k, v in sovits.state_dict().items() if "enc_q" not in k}
    for key in list(weight):
        # A codebook that is not marked trained makes the quantizer run k-means on first use,
        # which needs torch.distributed; the release's codebook is trained.
        if key.endswith("_codebook.inited"):
            weight[key] = torch.ones_like(weight[key])
        elif key.endswith("_codebook.embed") or key.endswith("_codebook.embed_avg"):
            weight[key] = torch.randn_like(weight[key])
        elif key.endswith("_codebook.cluster_size"):
            weight[key] = torch.ones_like(weight[key])
    buf = io.BytesIO()
    torch.save({"weight": weight, "config": s2_config, "info": "tiny-random"}, buf)
    (dest / sovits_rel).write_bytes(SOVITS_HEADS[version] + buf.getvalue()[2:])

    if pro:
        # --- speaker verification: a bare ERes2NetV2 state dict, as sv.SV loads it (strict) ------
        # sv.SV hard-wires ERes2NetV2(baseWidth=24, scale=4, expansion=4) with the class defaults
        # (m_channels 64, num_blocks [3, 4, 6, 3], 80 mel bins), and SoVITS's sv_emb projection
        # expects its 20480-wide output: it cannot be made smaller, only random.
        sv_net = mods["eres2netv2"](baseWidth=24, scale=4, expansion=4)
        (dest / V2PRO_SV_REL).parent.mkdir(parents=True, exist_ok=True)
        torch.save(_half(sv_net.state_dict()), dest / V2PRO_SV_REL)  # fp16: half the disk; loads as fp32

    # --- HuBERT: config.json + preprocessor_config.json + pytorch_model.bin ----------------------
    pretrained = _package_pretrained_dir()
    hubert_dir = dest / HUBERT_REL
    hubert_dir.mkdir(exist_ok=True)
    hubert_cfg = json.loads((pretrained / HUBERT_REL / "config.json").read_text())
    hubert_cfg.update(
        {
            "conv_dim": [32] * 7,  # kernels/strides kept: they set the 50 Hz frame rate
            "hidden_size": 768,
            "intermediate_size": 64,
            "num_attention_heads": 2,
            "num_hidden_layers": 1,
            "num_conv_pos_embeddings": 16,
            "num_conv_pos_embedding_groups": 16,
        }
    )
    (hubert_dir / "config.json").write_text(json.dumps(hubert_cfg, indent=2))
    shutil.copy(pretrained / HUBERT_REL / "preprocessor_config.json", hubert_dir / "preprocessor_config.json")
    ns = SimpleNamespace(**hubert_cfg)
    ns.conv_pos_batch_norm = False
    torch.save(_half(mods["hubert"](ns).state_dict()), hubert_dir / "pytorch_model.bin")

    # --- BERT: config.json + tokenizer.json (the real tokenizer, shipped by the package) + .bin ---
    bert_dir = dest / BERT_REL
    bert_dir.mkdir(exist_ok=True)
    bert_cfg = json.loads((pretrained / BERT_REL / "config.json").read_text())
    bert_cfg.update(
        {"hidden_size": 1024, "intermediate_size": 64, "num_attention_heads": 2, "num_hidden_layers": 1}
    )
    (bert_dir / "config.json").write_text(json.dumps(bert_cfg, indent=2))
    shutil.copy(pretrained / BERT_REL / "tokenizer.json", bert_dir / "tokenizer.json")
    torch.save(_half(mods["bert"](SimpleNamespace(**bert_cfg)).state_dict()), bert_dir / "pytorch_model.bin")
    return dest


def write_reference_wav(path: Path, seconds: float = 4.0, sample_rate: int = 32000) -> Path:
    """A synthetic voice-like reference clip: a harmonic tone with vibrato and a little noise.

    GPT-SoVITS accepts 3-10 s references only; 4 s sits safely inside that window.
    """
    import numpy as np
    import soundfile as sf

    rng = np.random.default_rng(1234)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    f0 = 140.0 + 10.0 * np.sin(2 * np.pi * 5.0 * t)
    phase = 2 * np.pi * np.cumsum(f0) / sample_rate
    wave = sum((0.3 / k) * np.sin(k * phase) for k in range(1, 6))
    wave = wave * (0.6 + 0.4 * np.sin(2 * np.pi * 2.0 * t) ** 2) + 0.01 * rng.standard_normal(t.size)
    sf.write(str(path), wave.astype(np.float32), sample_rate, subtype="PCM_16")
    return Path(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dest", type=Path, help="directory to write the model into")
    parser.add_argument("--version", choices=sorted(SOVITS_HEADS), default="v2")
    parser.add_argument("--reference", type=Path, help="also write a 4 s synthetic reference WAV here")
    args = parser.parse_args(argv)
    build_tiny_model(args.dest, version=args.version)
    if args.reference:
        write_reference_wav(args.reference)
    print(args.dest)
    return 0


if __name__ == "__main__":
    sys.exit(main())
