"""What the pages say: the reading script, clip states and every refusal, in words.

Services refuse with a machine-readable code and an English message for the API; the pages say
the same refusal in the reader's language (gettext: Korean first, English).
"""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from voice_tts.errors import ServiceError
from voice_tts.models import Dose

# Read aloud while recording; stored as the voice's transcript (the cloning engine needs the words
# that were spoken). It opens with the speaker's consent, then sounds like the reminders it is for.
READING_SCRIPT = (
    "저는 제 목소리로 가족의 약 알림을 만드는 데 동의합니다. "
    "엄마, 아침 약 드실 시간이에요. 물과 함께 드세요."
)
# The fixed reminder that 미리 듣기 speaks in the enrolled voice (Korean whatever the page language:
# it is the voice's language).
PREVIEW_TEXT = "할머니, 약 드실 시간이에요. 물 한 잔과 같이 드세요."


def clip_state_words(state: str) -> str:
    """A reminder's clip, or a preview job, in words."""
    words = {
        "ready": _("Ready"),
        "succeeded": _("Ready"),
        "stale": _("Being made"),
        "pending": _("Being made"),
        "queued": _("Being made"),
        "running": _("Being made"),
        "failed": _("Failed"),
        "no_voice": _("Needs a voice"),
        "paused": _("Paused"),
    }
    return words.get(state, _("Being made"))


def adaptation_words(*, state: str, progress: float, outcome: str | None = None) -> str:
    """The voice's style tuning (services/voice_adaptation.py) in words, every state and outcome."""
    if state == "pending":
        return _("Your voice is in use. Tuning it closer to you will start soon.")
    if state == "running":
        return _("Tuning the voice to yours… %(percent)s%%") % {"percent": int(round(100 * progress))}
    if state == "done" and outcome == "unchanged":
        return _("Tuning done: the current voice was already the closest we could find, so reminders keep it.")
    if state == "done":
        return _("Tuning done: reminders now speak in a voice closer to yours.")
    if state == "failed":
        return _("The voice could not be tuned further. Reminders keep using the current voice.")
    return _("This speech engine needs no tuning for your voice.")


def refusal_words(exc: ServiceError) -> str:
    """A service's refusal, in plain words for the caregiver."""
    limits = {"min": f"{settings.VOICE_MIN_SECONDS:g}", "max": f"{settings.VOICE_MAX_SECONDS:g}"}
    not_audio = _("This is not a recording we can read. Please use a WAV, FLAC, OGG or MP3 file.")
    words = {
        "clip_too_short": _("The recording is too short. Please read the whole script: at least %(min)s seconds "
                            "of speech.") % limits,
        "clip_too_long": _("The recording is too long. Please keep it under %(max)s seconds of speech.") % limits,
        "silent_audio": _("We could not hear anything. Please check the microphone and read the script aloud."),
        "unsupported_audio": not_audio,
        "empty_file": not_audio,
        "empty_audio": not_audio,
        "invalid_audio": not_audio,
        "unsupported_sample_rate": not_audio,
        "unsupported_channels": not_audio,
        "file_too_large": _("The file is too large."),
        "audio_too_large": _("The file is too large."),
        "missing_file": _("Please choose a recording first."),
        "no_active_voice": _("Please record your voice first."),
        "text_empty": _("Please write the reminder's words."),
        "text_too_long": _("The reminder is too long."),
        "text_invalid_characters": _("The reminder has characters that cannot be read aloud."),
        "text_unspeakable": _("The reminder has no words to read aloud."),
        "invalid_time": _("Please give the time as hours and minutes."),
        "too_many_times": _("A reminder can have at most 24 times."),
        "invalid_day": _("Please choose days of the week."),
        "phrase_exists": _("You already have a reminder with these words."),
        "device_name_empty": _("Please give the Pi a name, for example “living room”."),
        "audio_missing": _("The recording is missing. Please record it again."),
        "not_found": _("Not found."),
        "throttled": _("Too many tries in a short time. Please wait a while and try again."),
        # Too many unfinished jobs: the caregiver's remedy is the same, waiting (the same words, translated).
        "too_many_pending_jobs": _("Too many tries in a short time. Please wait a while and try again."),
        "invalid_timezone": _("Please choose a time zone from the list, for example Asia/Seoul."),
        "quiet_hours_incomplete": _("Quiet hours need both a start and an end."),
        "quiet_hours_empty": _("Quiet hours must start and end at different times."),
        "no_alert_channel": _("Please set an email address for alerts first."),
        "webhook_url_invalid": _("The webhook address must start with https:// or http://."),
        "webhook_url_forbidden": _("The webhook address points inside a private network, which is not allowed."),
        "webhook_url_unresolvable": _("The webhook address could not be found."),
        "webhook_url_disabled": _("This webhook address answered that it is gone; use another."),
    }
    return words.get(exc.code, _("Something went wrong. Please try again."))


def recorder_words() -> dict[str, str]:
    """What the recording and preview scripts say (enrol.js), in the page's language."""
    return {
        "insecure": _("This page cannot use the microphone because it was not opened over a secure connection "
                      "(HTTPS)."),
        "denied": _("The microphone could not be used. Please allow the microphone for this site and try again."),
        "recording": _("Recording. Please read the words aloud."),
        "stopped": _("Recording finished. Listen to it, then press “Save”."),
        "autostopped": _("Recording stopped by itself after 12 seconds. Listen to it, then press “Save”."),
        "saving": _("Saving…"),
        "saved": _("Your voice is saved."),
        "failed": _("Saving did not work. Please try again."),
        "clipping": _("Too loud: the sound is breaking up. Move a little away from the microphone."),
        "quiet": _("Too quiet. Please speak a little louder or come closer to the microphone."),
        "good": _("The sound level is good."),
        "making": _("Being made… please wait."),
        "playing": _("Playing."),
        "played": _("Finished playing."),
        "previewFailed": _("The voice could not be made. Please try again later."),
        "voiceInfo": _("Recorded on {date}, {seconds} seconds long."),
        "readyPress": _("Ready. Press “Play” to hear it."),
        "play": _("Play"),
        "stop": _("Stop"),
    }


def dose_words(dose: Dose, zone: dt.tzinfo) -> str:
    """A dose in words, times in household time: "08:00 재생됨 · 08:02 확인함", "확인 안 됨 (3번 재생)",
    "놓침: 재생되지 않았습니다", "예정"."""
    def clock(instant: dt.datetime | None) -> str:
        return instant.astimezone(zone).strftime("%H:%M") if instant else ""

    if dose.state == Dose.State.CONFIRMED:
        if dose.first_played_at:
            return _("%(played)s played · %(confirmed)s confirmed") % {
                "played": clock(dose.first_played_at), "confirmed": clock(dose.confirmed_at)}
        return _("%(confirmed)s confirmed") % {"confirmed": clock(dose.confirmed_at)}
    if dose.state == Dose.State.PLAYED:
        return _("%(played)s played · waiting for confirmation") % {"played": clock(dose.first_played_at)}
    if dose.state == Dose.State.UNCONFIRMED:
        return ngettext("Not confirmed (played %(count)d time)", "Not confirmed (played %(count)d times)",
                        dose.plays) % {"count": dose.plays}
    if dose.state == Dose.State.MISSED:
        return _("Missed: it was not played")
    return _("Upcoming")


def alert_kind_words(kind: str) -> str:
    return {
        "dose.unconfirmed": _("Reminder not confirmed"),
        "dose.missed": _("Reminder not played"),
        "device.silent": _("The Pi is silent"),
        "device.back": _("The Pi is back"),
        "test": _("Test alert"),
    }.get(kind, kind)


def alert_status_words(status: str) -> str:
    """What became of an alert, in words (services/care_alerts.py says why `unknown` is never resent)."""
    return {
        "pending": _("Waiting to be sent (quiet hours, or trying again soon)"),
        "sending": _("Being sent"),
        "sent": _("Sent"),
        "failed": _("Could not be sent: please check the address and the mail settings"),
        "unknown": _("Not known whether it was sent (the server stopped while sending)"),
    }.get(status, status)


# One mark per state for the week view, so that it reads without colour.
DOSE_MARKS = {
    Dose.State.CONFIRMED: "✓",
    Dose.State.UNCONFIRMED: "△",
    Dose.State.MISSED: "✗",
    Dose.State.PLAYED: "…",
    Dose.State.UPCOMING: "·",
}


def dose_state_name(state: str) -> str:
    return {
        Dose.State.CONFIRMED: _("Confirmed"),
        Dose.State.UNCONFIRMED: _("Not confirmed"),
        Dose.State.MISSED: _("Missed"),
        Dose.State.PLAYED: _("Played, waiting"),
        Dose.State.UPCOMING: _("Upcoming"),
    }.get(state, state)
