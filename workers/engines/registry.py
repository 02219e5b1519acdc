"""Engine names -> classes, by import path so that naming an engine never imports it.

The web process validates `TTS_ENGINE` against these names; only a worker process
calls `engine_build()`, which imports the engine module (and torch, onnxruntime...).
"""

from __future__ import annotations

from importlib import import_module

from workers.engines.base import Engine

ENGINE_PATHS: dict[str, str] = {
    "espeak": "workers.engines.espeak.EspeakEngine",
    "gpt_sovits": "workers.engines.gpt_sovits.GptSovitsEngine",
    "gpt_sovits_http": "workers.engines.gpt_sovits_http.GptSovitsHttpEngine",
    "neural_cpu": "workers.engines.neural_cpu.NeuralCpuEngine",
    "tone": "workers.engines.tone.ToneEngine",
}


def engine_names() -> list[str]:
    return sorted(ENGINE_PATHS)


def engine_build(name: str) -> Engine:
    try:
        path = ENGINE_PATHS[name]
    except KeyError:
        raise ValueError(f"unknown engine {name!r}; known: {', '.join(engine_names())}") from None
    module_name, class_name = path.rsplit(".", 1)
    engine_class = getattr(import_module(module_name), class_name)
    return engine_class()
