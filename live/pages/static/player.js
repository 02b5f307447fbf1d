// Plays a live session over WHEP (docs/webrtc.md) in a <video>, and when WebRTC cannot
// connect says so in plain words and tries again with back-off. After a few failed
// tries (or at once, in a browser without WebRTC) it plays the session's LL-HLS
// playlist instead, where the browser plays HLS by itself (docs/hls.md); no script is
// fetched for that.

import { account, api, backoffMs } from "/assets/common.js";

const GATHER_MS = 5000;
const HLS_AFTER_FAILURES = 3;
const HLS_TYPE = "application/vnd.apple.mpegurl";
// Refusals HLS cannot help with: there is nothing to play yet.
const NOT_FOR_HLS = new Set(["stream-not-live"]);
const PLAIN_REASONS = {
  "stream-not-live": "The stream has not started yet, or has paused.",
  "viewer-limit": "This server is full right now.",
};

export class WhepPlayer {
  /** `say(text)` shows the player's state to people ("" when all is well). */
  constructor(video, liveSessionId, say) {
    this.video = video;
    this.whepPath = `/api/live-sessions/${encodeURIComponent(liveSessionId)}/whep`;
    this.hlsPath = `/hls/${encodeURIComponent(liveSessionId)}/index.m3u8`;
    this.hls = false;
    this.say = say;
    this.retries = 0;
    this.pc = null;
    this.location = null;
    this.timer = null;
  }

  /** Playing or connecting (over WebRTC or HLS), not waiting for a retry. */
  get playing() {
    return this.pc !== null || this.hls;
  }

  /** (Re)connect now, dropping any wait for a retry. */
  async play() {
    this.stop();
    if (!("RTCPeerConnection" in window)) {
      this.playHls("This browser has no WebRTC.");
      return;
    }
    this.say("Connecting to the video…");
    try {
      await this.connect();
    } catch (error) {
      this.failed(error.message, error.code);
    }
  }

  async connect() {
    const { ice_servers: iceServers } = await api("GET", "/api/webrtc/ice-servers");
    const pc = new RTCPeerConnection({ iceServers });
    this.pc = pc;
    pc.addTransceiver("video", { direction: "recvonly" });
    pc.addTransceiver("audio", { direction: "recvonly" });
    const stream = new MediaStream();
    pc.ontrack = ({ track }) => stream.addTrack(track);
    this.video.srcObject = stream;
    pc.onconnectionstatechange = () => {
      if (pc !== this.pc) return;
      if (pc.connectionState === "connected") {
        this.retries = 0;
        this.say("");
      } else if (pc.connectionState === "failed") {
        this.failed("The video connection was lost.");
      }
    };
    await pc.setLocalDescription(await pc.createOffer());
    await gathered(pc);
    const headers = { "Content-Type": "application/sdp" };
    const signedIn = account();
    if (signedIn) headers.Authorization = `Bearer ${signedIn.token}`;
    const response = await fetch(this.whepPath, {
      method: "POST", headers, body: pc.localDescription.sdp,
    });
    if (response.status !== 201) {
      const problem = await response.json().catch(() => ({}));
      const error = new Error(PLAIN_REASONS[problem.code] ?? "The video cannot connect.");
      error.code = problem.code;
      throw error;
    }
    this.location = response.headers.get("Location");
    await pc.setRemoteDescription({ type: "answer", sdp: await response.text() });
  }

  /** `code`: the server's refusal, if it refused. */
  failed(reason, code) {
    this.leave();
    if (++this.retries >= HLS_AFTER_FAILURES && !NOT_FOR_HLS.has(code)) {
      this.playHls(reason);
      return;
    }
    this.retry(reason);
  }

  retry(reason) {
    const delay = backoffMs(this.retries - 1);
    this.say(`${reason} Trying again in ${Math.ceil(delay / 1000)} s.`);
    this.timer = setTimeout(() => this.play(), delay);
  }

  /** The HLS stream in the same <video>, if the browser plays HLS natively. */
  playHls(reason) {
    if (!this.video.canPlayType(HLS_TYPE)) {
      this.say(`${reason} This browser cannot play the stream any other way: `
        + "try Safari, or a network that lets WebRTC through.");
      return;
    }
    this.hls = true;
    this.video.srcObject = null;
    this.video.onerror = () => {
      this.stopHls();
      this.retry("The video stream cannot be played.");
    };
    this.video.src = this.hlsPath;
    this.video.play().catch(() => {});
    this.say("");
  }

  stopHls() {
    if (!this.hls) return;
    this.hls = false;
    this.video.onerror = null;
    this.video.removeAttribute("src");
    this.video.load();
  }

  /** Stop playing and stop retrying. */
  stop() {
    clearTimeout(this.timer);
    this.stopHls();
    this.leave();
  }

  /** Close the peer and tell the server (the page may be going away: keepalive). */
  leave() {
    if (this.location) fetch(this.location, { method: "DELETE", keepalive: true }).catch(() => {});
    this.pc?.close();
    this.pc = null;
    this.location = null;
  }
}

function gathered(pc) {
  return new Promise((resolve) => {
    const done = () => pc.iceGatheringState === "complete" && resolve();
    pc.addEventListener("icegatheringstatechange", done);
    setTimeout(resolve, GATHER_MS);
    done();
  });
}
