// The enrol page: record with an AudioWorklet (raw PCM, encoded here as a 16-bit WAV, so the
// server decodes it like any upload, in every browser), listen, save; and the preview.
(function () {
  "use strict";

  const root = document.getElementById("recorder");
  if (!root) return;
  const words = JSON.parse(document.getElementById("recorder-words").textContent);
  const $ = (id) => document.getElementById(id);
  const startButton = $("record-start");
  const stopButton = $("record-stop");
  const saveButton = $("record-save");
  const recordState = $("record-state");
  const elapsed = $("elapsed");
  const level = $("level");
  const levelWords = $("level-words");
  const take = $("take");
  const takeAudio = $("take-audio");
  const maxSeconds = Number(root.dataset.maxSeconds || 12);
  const csrf = document.querySelector("input[name=csrfmiddlewaretoken]").value;

  // Thresholds for the warnings (full scale = 1.0).
  const CLIP_PEAK = 0.99;
  const QUIET_RMS = 0.01; // about -40 dBFS
  const QUIET_WINDOW_SECONDS = 1.5;

  let session = null; // { stream, context, node, chunks, frames, rate, recentRms, clipped }
  let recording = null; // the last take as a Blob

  function say(element, text, state) {
    element.textContent = text;
    if (state) element.dataset.state = state;
    window.carepillSay(text, state === "error" ? "error" : "info");
  }

  if (!window.isSecureContext || !navigator.mediaDevices || !window.AudioWorkletNode) {
    $("insecure").hidden = false;
    startButton.disabled = true;
    recordState.dataset.state = "insecure";
  }

  function levelShow(peak, rms) {
    const db = 20 * Math.log10(Math.max(rms, 1e-5));
    const width = Math.max(0, Math.min(100, ((db + 60) / 60) * 100));
    level.style.width = width.toFixed(0) + "%";
    level.dataset.level = peak >= CLIP_PEAK ? "clip" : rms < QUIET_RMS ? "quiet" : "good";
  }

  function warn(kind) {
    if (levelWords.dataset.kind === kind) return;
    levelWords.dataset.kind = kind;
    levelWords.textContent = words[kind];
    if (kind !== "good") window.carepillSay(words[kind], "warning");
  }

  function onBlock(data) {
    if (!session || data.done) return;
    session.chunks.push(data.samples);
    session.frames += data.samples.length;
    const seconds = session.frames / session.rate;
    elapsed.textContent = seconds.toFixed(1);
    elapsed.dataset.seconds = seconds.toFixed(2);
    levelShow(data.peak, data.rms);
    session.recent.push({ rms: data.rms, frames: data.samples.length });
    let windowFrames = 0;
    let loudest = 0;
    for (let i = session.recent.length - 1; i >= 0; i--) {
      windowFrames += session.recent[i].frames;
      loudest = Math.max(loudest, session.recent[i].rms);
      if (windowFrames >= QUIET_WINDOW_SECONDS * session.rate) {
        session.recent = session.recent.slice(i);
        break;
      }
    }
    if (data.peak >= CLIP_PEAK) {
      session.clipped = true;
      warn("clipping");
    } else if (seconds >= QUIET_WINDOW_SECONDS && loudest < QUIET_RMS) {
      warn("quiet");
    } else if (!session.clipped || levelWords.dataset.kind !== "clipping") {
      warn("good");
    }
    if (seconds >= maxSeconds) stop(true);
  }

  async function start() {
    startButton.disabled = true;
    take.hidden = true;
    recording = null;
    let stream;
    try {
      // Cloning needs the raw voice: no echo cancellation, noise suppression or gain control.
      stream = await navigator.mediaDevices.getUserMedia({
        audio: { echoCancellation: false, noiseSuppression: false, autoGainControl: false, channelCount: 1 },
      });
    } catch (error) {
      say(recordState, words.denied, "error");
      startButton.disabled = false;
      return;
    }
    const context = new AudioContext();
    await context.audioWorklet.addModule(root.dataset.worklet);
    const source = context.createMediaStreamSource(stream);
    const node = new AudioWorkletNode(context, "pcm-capture", { numberOfInputs: 1, numberOfOutputs: 1, channelCount: 1 });
    // Pulled by the graph through a muted gain: nothing is played back.
    const mute = context.createGain();
    mute.gain.value = 0;
    source.connect(node);
    node.connect(mute);
    mute.connect(context.destination);
    session = { stream, context, node, chunks: [], frames: 0, rate: context.sampleRate, recent: [], clipped: false };
    node.port.onmessage = (event) => onBlock(event.data);
    levelWords.dataset.kind = "";
    elapsed.textContent = "0.0";
    elapsed.dataset.seconds = "0";
    await context.resume();
    stopButton.disabled = false;
    stopButton.focus();
    say(recordState, words.recording, "recording");
  }

  function stop(automatic) {
    if (!session) return;
    const { stream, context, node, chunks, frames, rate } = session;
    session = null;
    node.port.postMessage("stop");
    node.port.onmessage = null;
    stream.getTracks().forEach((track) => track.stop());
    context.close();
    stopButton.disabled = true;
    startButton.disabled = false;
    recording = wavEncode(chunks, frames, rate);
    takeAudio.src = URL.createObjectURL(recording);
    take.hidden = false;
    level.style.width = "0%";
    say(recordState, automatic ? words.autostopped : words.stopped, "recorded");
    saveButton.disabled = false;
    saveButton.focus();
  }

  // Mono 16-bit PCM WAV (RIFF) at the context's rate.
  function wavEncode(chunks, frames, rate) {
    const buffer = new ArrayBuffer(44 + frames * 2);
    const view = new DataView(buffer);
    const text = (offset, value) => { for (let i = 0; i < value.length; i++) view.setUint8(offset + i, value.charCodeAt(i)); };
    text(0, "RIFF");
    view.setUint32(4, 36 + frames * 2, true);
    text(8, "WAVE");
    text(12, "fmt ");
    view.setUint32(16, 16, true);
    view.setUint16(20, 1, true); // PCM
    view.setUint16(22, 1, true); // mono
    view.setUint32(24, rate, true);
    view.setUint32(28, rate * 2, true);
    view.setUint16(32, 2, true);
    view.setUint16(34, 16, true);
    text(36, "data");
    view.setUint32(40, frames * 2, true);
    let offset = 44;
    for (const chunk of chunks) {
      for (let i = 0; i < chunk.length; i++) {
        const v = Math.max(-1, Math.min(1, chunk[i]));
        view.setInt16(offset, v < 0 ? v * 0x8000 : v * 0x7fff, true);
        offset += 2;
      }
    }
    return new Blob([buffer], { type: "audio/wav" });
  }

  async function save() {
    if (!recording) return;
    saveButton.disabled = true;
    say(recordState, words.saving, "saving");
    const form = new FormData();
    form.append("voice_file", recording, "recording.wav");
    let response;
    let body = {};
    try {
      response = await fetch(root.dataset.uploadUrl, {
        method: "POST", body: form, credentials: "same-origin",
        headers: { "X-CSRFToken": csrf, Accept: "application/json" },
      });
      body = await response.json();
    } catch (error) {
      say(recordState, words.failed, "error");
      saveButton.disabled = false;
      return;
    }
    if (!response.ok) {
      say(recordState, body.message || words.failed, "error");
      saveButton.disabled = false;
      return;
    }
    const voice = body.voice;
    const info = $("voice-info");
    info.textContent = words.voiceInfo.replace("{date}", voice.created).replace("{seconds}", voice.duration_seconds.toFixed(1));
    info.dataset.duration = voice.duration_seconds.toFixed(1);
    const playBox = document.querySelector(".voice-play");
    playBox.querySelector("button.play").dataset.audioUrl = voice.audio_url;
    playBox.hidden = false;
    $("preview").disabled = false;
    say(recordState, body.message || words.saved, "saved");
  }

  // 미리 듣기: a real job in the enrolled voice; poll it, then play it.
  const previewButton = $("preview");
  const previewState = $("preview-state");

  async function preview() {
    previewButton.disabled = true;
    say(previewState, words.making, "making");
    try {
      const headers = { "X-CSRFToken": csrf, Accept: "application/json" };
      let response = await fetch(previewButton.dataset.url, { method: "POST", credentials: "same-origin", headers });
      let body = await response.json();
      if (!response.ok) throw new Error(body.message);
      while (body.status !== "succeeded" && body.status !== "failed") {
        await new Promise((resolve) => window.setTimeout(resolve, 1000));
        response = await fetch(body.poll_url || previewState.dataset.pollUrl, { credentials: "same-origin", headers });
        const next = await response.json();
        if (!response.ok) throw new Error(next.message);
        next.poll_url = body.poll_url;
        body = next;
      }
      if (body.status === "failed") throw new Error(body.message || words.previewFailed);
      const audio = new Audio(body.audio_url);
      audio.addEventListener("playing", () => say(previewState, words.playing, "playing"));
      audio.addEventListener("ended", () => {
        say(previewState, words.played, "played");
        previewButton.disabled = false;
      });
      audio.addEventListener("error", () => {
        say(previewState, words.previewFailed, "error");
        previewButton.disabled = false;
      });
      try {
        await audio.play();
      } catch (blocked) {
        // The browser wants a press of its own before it plays sound (Safari): offer a button.
        say(previewState, words.readyPress, "ready");
        const play = document.createElement("button");
        play.type = "button";
        play.className = "play primary";
        play.dataset.audioUrl = body.audio_url;
        play.dataset.labelPlay = words.play;
        play.dataset.labelStop = words.stop;
        play.textContent = words.play;
        previewState.after(play);
        play.focus();
        previewButton.disabled = false;
      }
    } catch (error) {
      say(previewState, error.message || words.previewFailed, "error");
      previewButton.disabled = false;
    }
  }

  startButton.addEventListener("click", start);
  stopButton.addEventListener("click", () => stop(false));
  saveButton.addEventListener("click", save);
  previewButton.addEventListener("click", preview);
})();

// 목소리 맞춤: while the voice is being tuned (pending or running), ask the server every few
// seconds and show its words, so "목소리를 맞추는 중… 40%" moves without a reload. It stops at
// done, failed or not_applicable, and after a failed request (the words on the page stay true).
// Once done with a preview, the two play buttons ("맞추기 전", "맞춘 후") get their URLs and show.
(() => {
  const line = document.getElementById("voice-adaptation");
  if (!line || !line.dataset.url) return;
  const moving = (state) => state === "pending" || state === "running";
  const previewBox = document.getElementById("adaptation-preview");
  function showPreview(preview) {
    if (!previewBox || !preview) return;
    for (const side of ["before", "after"]) {
      const button = previewBox.querySelector(`[data-preview-side="${side}"] button.play`);
      if (button && preview[side]) button.dataset.audioUrl = preview[side];
    }
    previewBox.hidden = false;
  }
  async function poll() {
    if (!moving(line.dataset.state)) return;
    try {
      const response = await fetch(line.dataset.url, { credentials: "same-origin", headers: { Accept: "application/json" } });
      if (!response.ok) return;
      const body = await response.json();
      if (body.words !== line.textContent) line.textContent = body.words;
      line.dataset.state = body.state;
      line.dataset.progress = String(body.progress);
      if (body.state === "done") showPreview(body.preview);
    } catch (error) {
      return;
    }
    window.setTimeout(poll, 3000);
  }
  window.setTimeout(poll, 3000);
})();
