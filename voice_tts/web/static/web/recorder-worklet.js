// Copies the microphone's samples (channel 0) off the audio thread, in blocks, with each
// block's peak and RMS for the level meter. The page turns them into a 16-bit PCM WAV.
class PcmCapture extends AudioWorkletProcessor {
  constructor() {
    super();
    this.block = new Float32Array(2048);
    this.filled = 0;
    this.running = true;
    this.port.onmessage = (event) => {
      if (event.data === "stop") {
        this.flush();
        this.running = false;
        this.port.postMessage({ done: true });
      }
    };
  }

  flush() {
    if (this.filled === 0) return;
    const samples = this.block.slice(0, this.filled);
    let peak = 0;
    let sum = 0;
    for (let i = 0; i < samples.length; i++) {
      const v = Math.abs(samples[i]);
      if (v > peak) peak = v;
      sum += samples[i] * samples[i];
    }
    this.port.postMessage({ samples, peak, rms: Math.sqrt(sum / samples.length) }, [samples.buffer]);
    this.filled = 0;
  }

  process(inputs) {
    if (!this.running) return false;
    const input = inputs[0];
    // No channel: the source is silent for this quantum (it still counts as recorded time).
    const channel = input && input.length > 0 ? input[0] : null;
    const frames = channel ? channel.length : 128;
    for (let i = 0; i < frames; i++) {
      this.block[this.filled++] = channel ? channel[i] : 0;
      if (this.filled === this.block.length) this.flush();
    }
    return true;
  }
}

registerProcessor("pcm-capture", PcmCapture);
