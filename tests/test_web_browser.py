"""The caregiver's pages in a real Chromium, with a fake microphone and the real worker behind them.

A new user logs in, records the reading script (espeak-ng speaking it into Chromium's fake
microphone), saves it, hears the preview (a real job), adds a reminder with a time, sees its clip
become ready after pre-generation, plays it, deletes it, and connects a Pi. Every page is
screenshotted (tests/browser.py: screenshot_dir).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.utils import timezone

from tests.audio_samples import wav_bytes
from tests.browser import PagesServer, chromium, screenshot_dir, speech_wav
from tests.test_care_pages import doses_today
from voice_tts.models import AccessToken, ReminderPhrase, Voice
from voice_tts.services.tokens import device_create
from voice_tts.services.voices import voice_create
from voice_tts.web.wording import READING_SCRIPT

pytestmark = pytest.mark.worker

VIEWPORT = {"width": 800, "height": 900}
ASYNC_UNSAFE = "DJANGO_ALLOW_ASYNC_UNSAFE"


@pytest.fixture(scope="module")
def microphones(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("microphone")
    script = folder / "script.wav"
    short = folder / "short.wav"
    return {
        # The reading script at a brisk pace (3-10 s of speech), then 8 s of silence (> the 12 s cap).
        "script": script, "script_seconds": speech_wav(script, text=READING_SCRIPT, speed=1.4, tail_silence=8.0),
        # One short sentence: under the 3 s minimum whatever is recorded after it.
        "short": short, "short_seconds": speech_wav(short, text="약 드세요.", tail_silence=6.0),
    }


@pytest.fixture(scope="module")
def playwright() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; the ORM calls the tests make between
    # browser steps are still plain synchronous code (Django's documented switch for this case),
    # for this module only: `check --deploy` refuses the variable (tests/test_https_settings.py).
    before = os.environ.get(ASYNC_UNSAFE)
    os.environ[ASYNC_UNSAFE] = "true"
    try:
        with sync_playwright() as driver:
            yield driver
    finally:
        if before is None:
            os.environ.pop(ASYNC_UNSAFE, None)
        else:
            os.environ[ASYNC_UNSAFE] = before


@pytest.fixture(scope="module")
def pages(django_db_setup: Any, django_db_blocker: Any) -> Iterator[PagesServer]:
    with django_db_blocker.unblock():
        server = PagesServer()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return screenshot_dir(tmp_path_factory)


# Every visible text's colour against the first opaque background behind it (WCAG 2 relative
# luminance): the texts whose contrast is under 4.5:1.
CONTRAST_BELOW_4_5 = """() => {
    const rgb = (css) => (css.match(/[\\d.]+/g) || []).map(Number);
    const lum = ([r, g, b]) => {
        const f = (c) => { c /= 255; return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4; };
        return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
    };
    const background = (el) => {
        for (; el; el = el.parentElement) {
            const c = rgb(getComputedStyle(el).backgroundColor);
            if (c.length === 3 || c[3] > 0) return c.slice(0, 3);
        }
        return [255, 255, 255];
    };
    const low = [];
    for (const el of document.querySelectorAll('body *')) {
        const own = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
        if (!own || el.offsetParent === null) continue;
        const a = lum(rgb(getComputedStyle(el).color)), b = lum(background(el));
        const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
        if (ratio < 4.5) low.push([el.tagName, el.textContent.trim().slice(0, 30), ratio.toFixed(2)]);
    }
    return low;
}"""


def new_page(browser: Any, **options: Any) -> tuple[Any, Any]:
    """A context and page whose console messages and script errors are printed (shown on failure)."""
    context = browser.new_context(**{"viewport": VIEWPORT, "locale": "ko-KR", **options})
    page = context.new_page()
    page.on("console", lambda message: print(f"console {message.type}: {message.text}"))
    page.on("pageerror", lambda error: print(f"page error: {error}"))
    return context, page


def shot(page: Any, shots: Path, name: str) -> None:
    """The page's first screen (800 x 900), as a reader first sees it."""
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=shots / f"{name}.png")


def log_in(page: Any, base_url: str, user: Any) -> None:
    page.goto(base_url + "/voice/")
    assert page.url.startswith(base_url + "/voice/login/")  # signed out: the login page
    page.get_by_label("아이디").fill(user.username)
    page.get_by_label("비밀번호").fill(f"{user.username}-pass-1234")
    page.get_by_role("button", name="로그인").click()
    page.wait_for_url(base_url + "/voice/")


def record(page: Any, *, stop_after_seconds: float | None = None) -> None:
    """Press 녹음 시작; stop by hand once `stop_after_seconds` are recorded, else let the page stop by itself."""
    page.get_by_role("button", name="녹음 시작").click()
    page.wait_for_selector('#record-state[data-state="recording"]')
    if stop_after_seconds is None:
        page.wait_for_selector('#record-state[data-state="recorded"]', timeout=30_000)
        return
    page.wait_for_function(f"Number(document.getElementById('elapsed').dataset.seconds) >= {stop_after_seconds}")
    page.get_by_role("button", name="녹음 끝").click()
    page.wait_for_selector('#record-state[data-state="recorded"]')


def test_a_new_user_enrols_previews_and_sets_a_reminder(
    worker: Any, pages: PagesServer, make_user: Any, playwright: Any, microphones: dict[str, Any], shots: Path
) -> None:
    carer = make_user("daughter")
    base = pages.url
    with chromium(playwright, microphone_wav=microphones["script"]) as browser:
        context, page = new_page(browser)
        page.goto(base + "/voice/")
        page.wait_for_url("**/voice/login/?next=/voice/")
        shot(page, shots, "login")
        log_in(page, base, carer)
        assert "아직 목소리가 없습니다" in page.inner_text("#voice-info")

        # Enrol: record until the page stops by itself at 12 s, listen, save.
        page.get_by_role("link", name="내 목소리 녹음").click()
        page.wait_for_url(base + "/voice/enrol/")
        assert page.inner_text("#script") == READING_SCRIPT
        assert page.is_hidden("#insecure")  # localhost is a secure context
        record(page)
        assert page.inner_text("#record-state").startswith("12초가 지나 녹음이 저절로 멈췄습니다")
        recorded = float(page.get_attribute("#elapsed", "data-seconds"))
        assert 12.0 <= recorded < 12.5  # stopped at the cap, not by the end of the microphone's file
        assert page.is_visible("#take-audio")
        duration = page.evaluate("""() => new Promise((resolve) => {
            const audio = document.getElementById('take-audio');
            if (audio.readyState >= 1) resolve(audio.duration);
            else audio.addEventListener('loadedmetadata', () => resolve(audio.duration));
        })""")
        assert abs(duration - recorded) < 0.2  # the take plays back in the page, as long as it was recorded
        page.get_by_role("button", name="저장").click()
        page.wait_for_selector('#record-state[data-state="saved"]', timeout=30_000)
        assert page.inner_text("#record-state") == "목소리를 저장했습니다."

        voice = Voice.objects.get(owner=carer, is_active=True)
        assert voice.transcript == READING_SCRIPT
        # Plausible: the speech the microphone played, give or take the trimmer's padding.
        assert abs(voice.duration_seconds - microphones["script_seconds"]) < 1.0
        assert 3.0 <= voice.duration_seconds <= 10.0
        shown = float(page.get_attribute("#voice-info", "data-duration"))
        assert shown == round(voice.duration_seconds, 1)

        # 미리 듣기: a real job in the new voice, polled, then played to its end.
        page.get_by_role("button", name="미리 듣기").click()
        page.wait_for_selector('#preview-state[data-state="played"]', timeout=90_000)
        assert page.inner_text("#preview-state") == "재생이 끝났습니다."
        shot(page, shots, "enrol")

        # Home shows the voice, its length and date, and plays it.
        page.get_by_role("link", name="홈").click()
        info = page.inner_text("#voice-info")
        assert f"{voice.duration_seconds:.1f}초" in info
        assert timezone.localtime(voice.created_at).strftime("%Y-%m-%d") in info
        page.get_by_role("button", name="내 목소리 듣기").click()
        page.wait_for_selector('button.play[data-play-state="ended"]', timeout=30_000)

        # A reminder with a time, on today and tomorrow: made by pre-generation, then ready.
        page.get_by_role("link", name="알림", exact=True).click()
        page.wait_for_url(base + "/voice/reminders/")
        text = "엄마, 저녁 약 드실 시간이에요."
        page.get_by_label("Pi가 할 말").fill(text)
        page.get_by_label("시간 1").fill("20:30")
        today = timezone.localdate().isoweekday()
        tomorrow = today % 7 + 1
        for day in (today, tomorrow):
            page.check(f'input[name="days"][value="{day}"]')
        page.get_by_role("button", name="알림 추가").click()
        page.wait_for_url(base + "/voice/reminders/")
        assert f"알림을 추가했습니다: {text}" in page.inner_text("#status")
        phrase = ReminderPhrase.objects.get(owner=carer)
        assert phrase.times == ["20:30"] and phrase.days == sorted({today, tomorrow})
        row = f"#phrase-{phrase.id}"
        page.wait_for_selector(f'{row}[data-state="ready"]', timeout=90_000)
        assert page.inner_text(f"{row} .state-words") == "준비됨"
        page.click(f"{row} button.play")
        page.wait_for_selector(f'{row} button.play[data-play-state="ended"]', timeout=30_000)
        shot(page, shots, "reminders")

        # Today's reminders on the home page, with the same state.
        page.get_by_role("link", name="홈").click()
        assert page.inner_text(f"{row} .state-words") == "준비됨"
        assert "20:30" in page.inner_text(row)
        shot(page, shots, "home")

        # Pause, then delete (with its confirmation page).
        page.get_by_role("link", name="알림", exact=True).click()
        page.click(f"{row} button:has-text('잠시 멈춤')")
        assert page.inner_text(f"{row} .state-words") == "일시 중지"
        assert not ReminderPhrase.objects.get(id=phrase.id).is_active
        page.click(f"{row} a:has-text('삭제')")
        page.get_by_role("button", name="삭제").click()
        page.wait_for_url(base + "/voice/reminders/")
        assert f"알림을 삭제했습니다: {text}" in page.inner_text("#status")
        assert page.query_selector(row) is None
        assert not ReminderPhrase.objects.filter(id=phrase.id).exists()

        # The Pi: a device token and the configuration to copy; it works on the API until revoked.
        page.get_by_role("link", name="Pi 연결").click()
        page.get_by_label("Pi 이름").fill("거실 Pi")
        page.get_by_role("button", name="토큰 만들기").click()
        config = page.inner_text("#pi-config")
        lines = dict(line.split(" = ", 1) for line in config.splitlines() if " = " in line)
        assert config.startswith("[carepill]") and lines["server_url"] == base
        # The screenshot (docs/screenshots) shows no key, not even a dead test one.
        page.evaluate("(key) => { const pre = document.getElementById('pi-config');"
                      " pre.textContent = pre.textContent.replace(key, 'cpv_…'); }", lines["token"])
        shot(page, shots, "device")
        bundle = requests.get(base + "/api/tts/phrases/bundle/", timeout=10,
                              headers={"Authorization": f"Token {lines['token']}"})
        assert bundle.status_code == 200 and bundle.json()["voice_id"] == str(voice.id)
        page.goto(base + "/voice/device/")  # shown once: the page shows no token again
        assert lines["token"] not in page.content()
        assert page.query_selector("#pi-config") is None
        page.get_by_role("button", name="토큰 취소").click()
        assert "토큰을 취소했습니다" in page.inner_text("#status")
        revoked = requests.get(base + "/api/tts/phrases/bundle/", timeout=10,
                               headers={"Authorization": f"Token {lines['token']}"})
        assert revoked.status_code == 401

        # Log out: the pages are closed again.
        page.get_by_role("button", name="로그아웃").click()
        page.wait_for_url("**/voice/login/")
        page.goto(base + "/voice/reminders/")
        assert "/voice/login/" in page.url
        context.close()


def test_a_too_short_recording_is_refused_in_korean(
    transactional_db: Any, pages: PagesServer, make_user: Any, playwright: Any, microphones: dict[str, Any],
    shots: Path,
) -> None:
    carer = make_user("son")
    assert microphones["short_seconds"] < 2.0
    with chromium(playwright, microphone_wav=microphones["short"]) as browser:
        context, page = new_page(browser)
        log_in(page, pages.url, carer)
        page.goto(pages.url + "/voice/enrol/")
        record(page, stop_after_seconds=4.0)  # one short sentence, then silence
        page.get_by_role("button", name="저장").click()
        page.wait_for_selector('#record-state[data-state="error"]')
        assert page.inner_text("#record-state").startswith("녹음이 너무 짧습니다.")
        assert page.inner_text("#status").startswith("녹음이 너무 짧습니다.")  # announced (aria-live)
        assert not Voice.objects.filter(owner=carer).exists()
        shot(page, shots, "enrol-too-short")
        context.close()


def test_the_enrol_page_follows_the_voice_tuning_without_a_reload(
    transactional_db: Any, pages: PagesServer, make_user: Any, playwright: Any, microphones: dict[str, Any],
    shots: Path,
) -> None:
    """The tuning's words move (40% -> 80% -> done) as the row changes, in the same page load; once
    done, the before/after preview's two play buttons appear and play."""
    carer = make_user("niece")
    voice = voice_create(owner_id=carer.id, data=wav_bytes(4.0), transcript="niece")
    Voice.objects.filter(id=voice.id).update(adaptation_state="running", adaptation_progress=0.4)
    with chromium(playwright, microphone_wav=microphones["short"]) as browser:
        context, page = new_page(browser)
        log_in(page, pages.url, carer)
        page.goto(pages.url + "/voice/enrol/")
        assert page.inner_text("#voice-adaptation") == "목소리를 맞추는 중… 40%"
        page.evaluate("window.loadedOnce = true")  # gone if the page were reloaded
        Voice.objects.filter(id=voice.id).update(adaptation_progress=0.8)
        page.wait_for_function("document.getElementById('voice-adaptation').textContent.includes('80%')",
                               timeout=20_000)
        assert page.locator("#adaptation-preview").is_hidden()
        # The search's last slice: the preview stored beside the reference, named in the UPDATE that marks it done.
        previews = {side: default_storage.save(f"{voice.audio.name}.preview-{side}.wav", ContentFile(wav_bytes(1.0)))
                    for side in ("before", "after")}
        Voice.objects.filter(id=voice.id).update(adaptation_state="done", adaptation_progress=1.0,
                                                 adaptation_style=f"{voice.audio.name}.style-0.npz",
                                                 adaptation_style_sha="0" * 64,
                                                 adaptation_preview_before=previews["before"],
                                                 adaptation_preview_after=previews["after"])
        page.wait_for_selector('#voice-adaptation[data-state="done"]', timeout=20_000)
        assert page.inner_text("#voice-adaptation") == "맞춤 완료: 이제 알림이 더 가까운 목소리로 나옵니다."
        page.wait_for_selector("#adaptation-preview", state="visible", timeout=5_000)
        for label in ("맞추기 전", "맞춘 후"):
            page.get_by_role("button", name=label).click()
            page.wait_for_selector(f'button.play[data-label-play="{label}"][data-play-state="ended"]', timeout=30_000)
        assert page.evaluate("window.loadedOnce") is True
        shot(page, shots, "enrol-tuned")
        context.close()


def test_outside_a_secure_context_the_page_says_why_it_cannot_record(
    transactional_db: Any, pages: PagesServer, make_user: Any, playwright: Any, microphones: dict[str, Any],
    shots: Path,
) -> None:
    """A LAN address over plain HTTP is not a secure context: the page says so instead of failing."""
    carer = make_user("grandson")
    with chromium(playwright, microphone_wav=microphones["short"]) as browser:
        context, page = new_page(browser)
        log_in(page, pages.url, carer)
        lan = "http://carepill.lan"
        # The browser asks http://carepill.lan (not secure); the answers come from the live server.
        context.route(lan + "/**", lambda route: route.fulfill(
            response=route.fetch(url=route.request.url.replace(lan, pages.url))))
        page.goto(lan + "/voice/enrol/")
        assert page.evaluate("window.isSecureContext") is False
        assert page.is_visible("#insecure")
        assert "보안 연결(HTTPS)" in page.inner_text("#insecure")
        assert page.is_disabled("#record-start")
        shot(page, shots, "enrol-insecure")
        context.close()


def test_the_pages_meet_the_size_and_contrast_rules_at_200_percent_zoom(
    transactional_db: Any, pages: PagesServer, make_user: Any, playwright: Any, microphones: dict[str, Any],
) -> None:
    """Base font of at least 20 px, targets of at least 44 px, text contrast of at least 4.5:1, and no
    sideways scrolling at 200% zoom (an 800 px window at 200% lays out in 400 CSS px, drawn at scale 2)."""
    carer = make_user("niece")
    with chromium(playwright, microphone_wav=microphones["short"]) as browser:
        context, page = new_page(browser, viewport={"width": 400, "height": 800}, device_scale_factor=2)
        log_in(page, pages.url, carer)
        for path in ("/voice/", "/voice/enrol/", "/voice/reminders/", "/voice/device/", "/voice/week/",
                     "/voice/alerts/"):
            page.goto(pages.url + path)
            assert page.evaluate("parseFloat(getComputedStyle(document.body).fontSize)") >= 20
            assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), path
            small = page.evaluate("""() => [...document.querySelectorAll(
                    'button, a.button, input, select, textarea, nav a')]
                .filter((el) => el.offsetParent !== null && el.type !== 'hidden')
                .map((el) => [el.outerHTML.slice(0, 80), el.getBoundingClientRect()])
                .filter(([, r]) => r.height < 44 || (r.width < 44 && !(r.width === 0)))
                .map(([html]) => html)""")
            assert small == [], (path, small)
            low = page.evaluate(CONTRAST_BELOW_4_5)
            assert low == [], (path, low)
        context.close()



def test_the_home_page_says_the_day_s_doses_in_words(
    transactional_db: Any, pages: PagesServer, make_user: Any, playwright: Any, microphones: dict[str, Any],
    shots: Path,
) -> None:
    carer = make_user("grandson")
    doses_today(carer)
    device, _ = device_create(owner_id=carer.id, name="거실 Pi")
    AccessToken.objects.filter(id=device.id).update(last_seen_at=timezone.now() - timezone.timedelta(minutes=5))
    with chromium(playwright, microphone_wav=microphones["short"]) as browser:
        context, page = new_page(browser)
        log_in(page, pages.url, carer)
        doses = [line.strip() for line in page.inner_text("#doses ol").splitlines() if line.strip()]
        assert doses == [
            "08:00 아침 약 드실 시간입니다 — 08:00 재생됨 · 08:02 확인함",
            "12:00 아침 약 드실 시간입니다 — 확인 안 됨 (3번 재생)",
            "18:00 아침 약 드실 시간입니다 — 놓침: 재생되지 않았습니다",
            "23:59 아침 약 드실 시간입니다 — 예정",
        ]
        assert page.inner_text("#pi-contact").strip() == "Pi 연결: 5분 전"
        shot(page, shots, "home-doses")
        page.get_by_role("link", name="이번 주").first.click()
        page.wait_for_url(pages.url + "/voice/week/")
        assert "33% (3번 중 1번)" in page.inner_text("#week")
        shot(page, shots, "week")
        page.goto(pages.url + "/voice/alerts/")
        shot(page, shots, "alerts")
        context.close()
