// Small helpers for every page: play buttons, the status line, copying, reminder states.
(function () {
  "use strict";

  const status = () => document.getElementById("status");

  // Say something in the page's aria-live region (screen readers announce it).
  window.carepillSay = function (text, kind) {
    const region = status();
    if (!region) return;
    region.textContent = "";
    const p = document.createElement("p");
    p.className = "message " + (kind || "info");
    p.textContent = text;
    region.appendChild(p);
  };

  let current = null;

  // A play button plays its audio URL, and says "playing" / "finished" on itself.
  window.carepillPlay = function (button, url) {
    if (current) {
      current.audio.pause();
      current.button.textContent = current.button.dataset.labelPlay;
      current.button.removeAttribute("aria-pressed");
      if (current.button === button) { current = null; return null; }
    }
    const audio = new Audio(url);
    current = { audio, button };
    button.dataset.playState = "loading";
    audio.addEventListener("playing", () => {
      button.dataset.playState = "playing";
      button.textContent = button.dataset.labelStop;
      button.setAttribute("aria-pressed", "true");
    });
    audio.addEventListener("ended", () => {
      button.dataset.playState = "ended";
      button.textContent = button.dataset.labelPlay;
      button.removeAttribute("aria-pressed");
      current = null;
    });
    audio.addEventListener("error", () => { button.dataset.playState = "error"; current = null; });
    audio.play().catch(() => { button.dataset.playState = "error"; });
    return audio;
  };

  document.addEventListener("click", (event) => {
    const play = event.target.closest("button.play");
    if (play && play.dataset.audioUrl) {
      window.carepillPlay(play, play.dataset.audioUrl);
      return;
    }
    const copy = event.target.closest("button.copy");
    if (copy) {
      const source = document.querySelector(copy.dataset.copy);
      if (source && navigator.clipboard) {
        navigator.clipboard.writeText(source.textContent).then(() => window.carepillSay(copy.dataset.done, "success"));
      } else if (source) {
        const range = document.createRange();
        range.selectNodeContents(source);
        const selection = window.getSelection();
        selection.removeAllRanges();
        selection.addRange(range);
      }
    }
  });

  // Reminder lists: while a clip is being made, ask the server every few seconds and update the words.
  function watchStates(list) {
    const url = list.dataset.statesUrl;
    const pending = () => list.querySelectorAll('li.phrase[data-state="pending"], li.phrase[data-state="stale"]').length;
    if (!url || pending() === 0) return;
    const tick = async () => {
      try {
        const response = await fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
        if (response.ok) {
          const body = await response.json();
          for (const phrase of body.phrases) {
            const item = document.getElementById("phrase-" + phrase.id);
            if (!item || item.dataset.state === phrase.state) continue;
            item.dataset.state = phrase.state;
            item.querySelector(".state-words").textContent = phrase.words;
            const play = item.querySelector(".phrase-play");
            if (phrase.audio_url) {
              play.querySelector("button.play").dataset.audioUrl = phrase.audio_url;
              play.hidden = false;
            }
            const text = item.querySelector(".phrase-text").textContent;
            window.carepillSay(text + " — " + phrase.words, phrase.state === "failed" ? "error" : "info");
          }
        }
      } catch (error) {
        // The next tick tries again.
      }
      if (pending() > 0) window.setTimeout(tick, 2000);
    };
    window.setTimeout(tick, 2000);
  }

  document.addEventListener("DOMContentLoaded", () => {
    document.querySelectorAll("ul.phrases[data-states-url]").forEach(watchStates);
    // The reminder form: one more time input on demand.
    const times = document.querySelector(".time-inputs");
    if (times && times.dataset.addLabel) {
      const add = document.createElement("button");
      add.type = "button";
      add.textContent = times.dataset.addLabel;
      add.addEventListener("click", () => {
        const labels = times.querySelectorAll("label");
        const clone = labels[labels.length - 1].cloneNode(true);
        const input = clone.querySelector("input");
        input.value = "";
        input.required = false;
        clone.firstChild.textContent = times.dataset.timeLabel.replace("{n}", labels.length + 1) + " ";
        times.appendChild(clone);
        input.focus();
      });
      times.after(add);
    }
  });
})();
