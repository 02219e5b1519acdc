"""The caregiver's pages: plain Django views on the session, calling the API's own services.

Every view needs a signed-in user (LOGIN_URL) and finds objects by id *and* owner, so another
user's voice, reminder, job, clip or device is a 404 here as in the API. Forms and fetches carry
the CSRF token (CsrfViewMiddleware checks every POST). The few JSON endpoints (recording upload,
preview, states) serve the pages' scripts only; the API stays token-only.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse, reverse_lazy
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from voice_tts.errors import ServiceError
from voice_tts.http.audio import audio_file_response
from voice_tts.http.errors import error_status
from voice_tts.http.throttles import JobsThrottle, UploadsThrottle, UserRateThrottle, client_address
from voice_tts.models import Job, ReminderPhrase, Voice
from voice_tts.result_cache import ClipHit
from voice_tts.services.clips import clip_for_owner
from voice_tts.services.jobs import job_create, job_state_get
from voice_tts.services.logins import login_failed, login_succeeded, login_wait
from voice_tts.services.phrases import phrase_bundle, phrase_create, phrase_delete, phrase_update, phrases_failed
from voice_tts.services.tokens import device_create, device_revoke, devices_of
from voice_tts.services.voice_adaptation import (
    PREVIEW_SIDES,
    voice_adaptation_preview_get,
    voice_adaptation_previews,
)
from voice_tts.services.voices import voice_create
from voice_tts.web.care_views import care_home_context
from voice_tts.web.forms import WEEKDAYS, ReminderForm, VoiceUploadForm
from voice_tts.web.wording import (
    PREVIEW_TEXT,
    READING_SCRIPT,
    adaptation_words,
    clip_state_words,
    recorder_words,
    refusal_words,
)

# Multipart framing around the file; a body larger than the cap + this is refused unread (as the API does).
_MULTIPART_OVERHEAD = 64 * 1024


# --- Log in / out -----------------------------------------------------------------------------


class LoginView(auth_views.LoginView):
    """Django's login, behind the same failed-login counters as the API and the admin
    (services/logins.py): a locked (username, address) is refused before the password is checked."""

    template_name = "web/login.html"
    redirect_authenticated_user = True
    next_page = reverse_lazy("web:home")

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        attempt = {"username": request.POST.get("username", ""), "address": client_address(request)}
        wait = login_wait(**attempt)
        if wait is not None:
            # An unbound form: a bound one would check the password while the login is locked.
            form = self.get_form_class()(request=request, initial={"username": attempt["username"]})
            context = self.get_context_data(form=form, locked_seconds=wait)
            response = self.render_to_response(context, status=429)
            response["Retry-After"] = str(wait)
            return response
        response = super().post(request, *args, **kwargs)
        # A redirect is a signed-in user; the form shown again is a refused password.
        if response.status_code == 302 and request.user.is_authenticated:
            login_succeeded(**attempt)
        else:
            login_failed(**attempt)
        return response


class LogoutView(auth_views.LogoutView):
    http_method_names = ["post", "options"]
    next_page = reverse_lazy("web:login")


# --- Reminders' clip states ----------------------------------------------------------------


def _phrase_states(request: HttpRequest) -> dict[int, dict[str, Any]]:
    """Per active phrase: its clip state in words and, when there is a clip, a URL to play it."""
    bundle = phrase_bundle(owner_id=request.user.id)
    failed = phrases_failed(owner_id=request.user.id)
    states: dict[int, dict[str, Any]] = {}
    for entry in bundle.entries:
        state = entry.status  # ready | stale | pending
        if bundle.voice_id is None:
            state = "no_voice"
        elif state == "pending" and (entry.text, entry.language) in failed:
            state = "failed"
        audio_url = None
        if entry.cache_key:
            audio_url = reverse("web:clip-audio", kwargs={"cache_key": entry.cache_key})
        states[entry.id] = {"id": entry.id, "state": state, "words": clip_state_words(state),
                            "audio_url": audio_url}
    return states


def _phrase_rows(request: HttpRequest, phrases: list[ReminderPhrase]) -> list[dict[str, Any]]:
    states = _phrase_states(request)
    day_names = dict(WEEKDAYS)
    rows = []
    for phrase in phrases:
        state = states.get(phrase.id) or {"id": phrase.id, "state": "paused", "words": clip_state_words("paused"),
                                          "audio_url": None}
        rows.append({
            "phrase": phrase,
            "state": state,
            "days_words": " ".join(str(day_names[d]) for d in phrase.days) if phrase.days else _("Every day"),
        })
    return rows


# --- Home -------------------------------------------------------------------------------------


@login_required
@require_GET
def home(request: HttpRequest) -> HttpResponse:
    voice = Voice.objects.filter(owner=request.user, is_active=True).first()
    today = timezone.localdate().isoweekday()
    phrases = [
        p for p in ReminderPhrase.objects.filter(owner=request.user, is_active=True).order_by("id")
        if not p.days or today in p.days
    ]
    rows = sorted(_phrase_rows(request, phrases), key=lambda row: (row["phrase"].times or ["99:99"])[0])
    return render(request, "web/home.html", {"voice": voice, "rows": rows, "nav": "home",
                                             **care_home_context(owner_id=request.user.id)})


# --- Enrol ------------------------------------------------------------------------------------


def _rate_checked(request: HttpRequest, throttle: UserRateThrottle) -> None:
    """The API's own per-user limit (same Redis counter): the pages are no way around it."""
    if not throttle.allow_request(request, None):
        seconds = max(1, round(throttle.wait() or 1))
        raise ServiceError("throttled", f"Too many requests; try again in {seconds} s.")


def _voice_saved(request: HttpRequest, *, transcript: str) -> Voice:
    _rate_checked(request, UploadsThrottle())
    declared = int(request.META.get("CONTENT_LENGTH") or 0)
    if declared > settings.VOICE_MAX_UPLOAD_BYTES + _MULTIPART_OVERHEAD:
        raise ServiceError("file_too_large", "The upload is too large.")
    upload = request.FILES.get("voice_file")
    if upload is None:
        raise ServiceError("missing_file", "Attach the voice sample as 'voice_file'.")
    if upload.size > settings.VOICE_MAX_UPLOAD_BYTES:
        raise ServiceError("file_too_large", "The file is too large.")
    # The same service as POST /api/tts/voices/: decode, trim, check 3-10 s, normalise, store.
    return voice_create(owner_id=request.user.id, data=upload.read(), transcript=transcript, language="ko")


def _voice_json(voice: Voice) -> dict[str, Any]:
    return {
        "id": str(voice.id),
        "duration_seconds": round(voice.duration_seconds, 1),
        "created": timezone.localtime(voice.created_at).strftime("%Y-%m-%d"),
        "audio_url": reverse("web:voice-audio", kwargs={"voice_id": voice.id}),
    }


def _adaptation_preview_urls(voice: Voice) -> dict[str, str] | None:
    """The page's own (session) URLs of the voice's before/after preview, or None while it has none."""
    if voice_adaptation_previews(voice=voice) is None:
        return None
    return {side: reverse("web:voice-adaptation-preview", kwargs={"voice_id": voice.id, "side": side})
            for side in PREVIEW_SIDES}


def _enrol_page(request: HttpRequest, *, form: VoiceUploadForm, status: int = 200) -> HttpResponse:
    voice = Voice.objects.filter(owner=request.user, is_active=True).first()
    return render(request, "web/enrol.html", {
        "voice": voice, "script": READING_SCRIPT, "form": form, "nav": "enrol",
        "max_seconds": settings.VOICE_MAX_SECONDS, "min_seconds": settings.VOICE_MIN_SECONDS,
        "recorder_words": recorder_words(),
        "adaptation_words": adaptation_words(state=voice.adaptation_state, progress=voice.adaptation_progress,
                                            outcome=voice.adaptation_outcome)
        if voice else "",
        "adaptation_preview": _adaptation_preview_urls(voice) if voice else None,
    }, status=status)


@login_required
@require_GET
def enrol(request: HttpRequest) -> HttpResponse:
    return _enrol_page(request, form=VoiceUploadForm())


@login_required
@require_GET
def enrol_adaptation(request: HttpRequest) -> JsonResponse:
    """The enrol page polls this while the user's voice is being tuned (services/voice_adaptation.py):
    the state, the progress, the words it shows and, once done, the before/after preview's URLs
    (`preview`: {before, after} or null). Only the signed-in user's own active voice."""
    voice = Voice.objects.filter(owner=request.user, is_active=True).first()
    if voice is None:
        return JsonResponse({"code": "not_found", "message": _("No voice yet.")}, status=404)
    return JsonResponse({
        "voice": str(voice.id), "state": voice.adaptation_state, "progress": round(voice.adaptation_progress, 3),
        "words": adaptation_words(state=voice.adaptation_state, progress=voice.adaptation_progress,
                                  outcome=voice.adaptation_outcome),
        "outcome": voice.adaptation_outcome,
        "preview": _adaptation_preview_urls(voice),
    })


@login_required
@require_POST
def enrol_record(request: HttpRequest) -> JsonResponse:
    """The page's recording (a WAV the page encoded), with the reading script as its transcript."""
    try:
        voice = _voice_saved(request, transcript=READING_SCRIPT)
    except ServiceError as exc:
        return JsonResponse({"code": exc.code, "message": refusal_words(exc)}, status=error_status(exc.code))
    return JsonResponse({"voice": _voice_json(voice), "message": _("Your voice is saved.")}, status=201)


@login_required
@require_POST
def enrol_upload(request: HttpRequest) -> HttpResponse:
    """A recording the caregiver already has, as a plain form (works without JavaScript)."""
    form = VoiceUploadForm(request.POST, request.FILES)
    if not form.is_valid():
        return _enrol_page(request, form=form, status=400)
    try:
        voice = _voice_saved(request, transcript=form.cleaned_data["transcript"])
    except ServiceError as exc:
        form.add_error("voice_file", refusal_words(exc))
        return _enrol_page(request, form=form, status=error_status(exc.code))
    messages.success(request, _("Your voice is saved (%(seconds)s seconds).") % {
        "seconds": f"{voice.duration_seconds:.1f}"})
    return redirect("web:home")


@login_required
@require_GET
def voice_audio(request: HttpRequest, voice_id: Any) -> HttpResponse:
    voice = get_object_or_404(Voice, id=voice_id, owner=request.user)
    return _audio(voice.audio.name, filename=f"voice-{voice.id}.wav")


@login_required
@require_GET
def voice_adaptation_preview(request: HttpRequest, voice_id: Any, side: str) -> HttpResponse:
    """One side ("before"/"after") of the voice's tuning preview: the signed-in owner's only (404 otherwise)."""
    try:
        preview = voice_adaptation_preview_get(owner_id=request.user.id, voice_id=voice_id, side=side)
    except ServiceError:
        raise Http404 from None
    return _audio(preview.name, filename=preview.filename)


def _audio(name: str, *, filename: str) -> HttpResponse:
    try:
        return audio_file_response(name, filename=filename)
    except ServiceError as exc:  # the file is gone from storage (410)
        return HttpResponse(refusal_words(exc), status=error_status(exc.code), content_type="text/plain; charset=utf-8")


# --- Preview: a real job, polled ------------------------------------------------------------


def _job_json(state: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"id": str(state.id), "status": state.status, "words": clip_state_words(state.status)}
    if state.has_audio:
        body["audio_url"] = reverse("web:job-audio", kwargs={"job_id": state.id})
    if state.status == Job.Status.FAILED:
        body["message"] = _("The voice could not be made. Please try again later.")
    return body


@login_required
@require_POST
def preview(request: HttpRequest) -> JsonResponse:
    """Speak a fixed reminder in the active voice: the clip cache answers, or a job is queued."""
    try:
        _rate_checked(request, JobsThrottle())
        result = job_create(owner_id=request.user.id, text=PREVIEW_TEXT, language="ko")
    except ServiceError as exc:
        refused = JsonResponse({"code": exc.code, "message": refusal_words(exc)}, status=error_status(exc.code))
        if "retry_after" in exc.details:  # too_many_pending_jobs
            refused["Retry-After"] = str(exc.details["retry_after"])
        return refused
    if isinstance(result, ClipHit):
        return JsonResponse({"status": "succeeded", "words": clip_state_words("succeeded"),
                             "audio_url": reverse("web:clip-audio", kwargs={"cache_key": result.clip.cache_key})})
    return JsonResponse({"id": str(result.id), "status": result.status, "words": clip_state_words(result.status),
                         "poll_url": reverse("web:job-state", kwargs={"job_id": result.id})}, status=202)


@login_required
@require_GET
def job_state(request: HttpRequest, job_id: Any) -> JsonResponse:
    state = job_state_get(owner_id=request.user.id, job_id=job_id)
    if state is None:
        raise Http404  # other users' jobs too
    return JsonResponse(_job_json(state))


@login_required
@require_GET
def job_audio(request: HttpRequest, job_id: Any) -> HttpResponse:
    job = get_object_or_404(Job.objects.select_related("clip"), id=job_id, owner=request.user)
    if job.status != Job.Status.SUCCEEDED or job.clip is None:
        raise Http404
    return _audio(job.clip.audio.name, filename=f"{job.id}.wav")


@login_required
@require_GET
def clip_audio(request: HttpRequest, cache_key: str) -> HttpResponse:
    try:
        clip = clip_for_owner(owner_id=request.user.id, cache_key=cache_key)
    except ServiceError:
        raise Http404 from None
    return _audio(clip.audio.name, filename=f"{cache_key}.wav")


# --- Reminders --------------------------------------------------------------------------------


def _reminders_page(request: HttpRequest, *, form: ReminderForm, status: int = 200) -> HttpResponse:
    phrases = list(ReminderPhrase.objects.filter(owner=request.user).order_by("id"))
    has_voice = Voice.objects.filter(owner=request.user, is_active=True).exists()
    return render(request, "web/reminders.html", {
        "rows": _phrase_rows(request, phrases), "form": form, "nav": "reminders", "has_voice": has_voice,
    }, status=status)


def _form_refused(form: ReminderForm, exc: ServiceError) -> None:
    field = {"invalid_time": "times", "too_many_times": "times", "invalid_day": "days"}.get(exc.code, "text")
    form.add_error(field, refusal_words(exc))


@login_required
@require_http_methods(["GET", "POST"])
def reminders(request: HttpRequest) -> HttpResponse:
    if request.method == "GET":
        return _reminders_page(request, form=ReminderForm())
    form = ReminderForm(request.POST)
    if not form.is_valid():
        return _reminders_page(request, form=form, status=400)
    try:
        phrase = phrase_create(owner_id=request.user.id, language="ko", **form.phrase_fields())
    except ServiceError as exc:
        _form_refused(form, exc)
        return _reminders_page(request, form=form, status=error_status(exc.code))
    messages.success(request, _("Reminder added: %(text)s") % {"text": phrase.text})
    return redirect("web:reminders")


def _owned_phrase(request: HttpRequest, phrase_id: int) -> ReminderPhrase:
    return get_object_or_404(ReminderPhrase, id=phrase_id, owner=request.user)


@login_required
@require_http_methods(["GET", "POST"])
def reminder_edit(request: HttpRequest, phrase_id: int) -> HttpResponse:
    phrase = _owned_phrase(request, phrase_id)
    if request.method == "GET":
        form = ReminderForm(initial=ReminderForm.initial_for(phrase))
        return render(request, "web/reminder_edit.html", {"form": form, "phrase": phrase, "nav": "reminders"})
    form = ReminderForm(request.POST)
    if form.is_valid():
        try:
            phrase_update(phrase=phrase, **form.phrase_fields())
        except ServiceError as exc:
            _form_refused(form, exc)
        else:
            messages.success(request, _("Reminder changed: %(text)s") % {"text": phrase.text})
            return redirect("web:reminders")
    return render(request, "web/reminder_edit.html", {"form": form, "phrase": phrase, "nav": "reminders"},
                  status=400)


@login_required
@require_POST
def reminder_pause(request: HttpRequest, phrase_id: int) -> HttpResponse:
    phrase = _owned_phrase(request, phrase_id)
    active = request.POST.get("active") == "1"
    phrase_update(phrase=phrase, is_active=active)
    text = _("Reminder resumed: %(text)s") if active else _("Reminder paused: %(text)s")
    messages.success(request, text % {"text": phrase.text})
    return redirect("web:reminders")


@login_required
@require_http_methods(["GET", "POST"])
def reminder_delete(request: HttpRequest, phrase_id: int) -> HttpResponse:
    phrase = _owned_phrase(request, phrase_id)
    if request.method == "GET":
        return render(request, "web/reminder_delete.html", {"phrase": phrase, "nav": "reminders"})
    text = phrase.text
    phrase_delete(phrase=phrase)
    messages.success(request, _("Reminder deleted: %(text)s") % {"text": text})
    return redirect("web:reminders")


@login_required
@require_GET
def reminder_states(request: HttpRequest) -> JsonResponse:
    """The pages poll this while a clip is being made."""
    return JsonResponse({"phrases": list(_phrase_states(request).values())})


# --- The Pi -----------------------------------------------------------------------------------


def _pi_config(request: HttpRequest, token: str) -> str:
    server_url = request.build_absolute_uri("/").rstrip("/")
    return f"[carepill]\nserver_url = {server_url}\ntoken = {token}\n"


def _device_page(request: HttpRequest, *, created: Any = None, config: str = "", error: str = "",
                 status: int = 200) -> HttpResponse:
    return render(request, "web/device.html", {
        "devices": devices_of(owner_id=request.user.id), "created": created, "config": config, "error": error,
        "nav": "device",
    }, status=status)


@login_required
@require_http_methods(["GET", "POST"])
def device(request: HttpRequest) -> HttpResponse:
    if request.method == "GET":
        return _device_page(request)
    try:
        created, key = device_create(owner_id=request.user.id, name=request.POST.get("name", ""))
    except ServiceError as exc:
        return _device_page(request, error=refusal_words(exc), status=error_status(exc.code))
    # Shown on this answer only (never stored in the session or in a redirect): only its digest is kept.
    response = _device_page(request, created=created, config=_pi_config(request, key))
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_POST
def device_delete(request: HttpRequest, device_id: int) -> HttpResponse:
    try:
        device_revoke(owner_id=request.user.id, device_id=device_id)
    except ServiceError:
        raise Http404 from None
    messages.success(request, _("The Pi's token is revoked. That Pi can no longer connect."))
    return redirect("web:device")
