// Plays a live session over WHEP (docs/webrtc.md) in a <video>, and when WebRTC cannot
// connect says so in plain words and tries again with back-off.

import { account, api, backoffMs } from "/assets/common.js";

const GATHER_MS = 5000;
const PLAIN_REASONS = {
  "stream-not-live": "The stream has not started yet, or has paused.",
  "viewer-limit": "This server is full right now.",
};

export class WhepPlayer {
  /** `say(text)` shows the player's state to people ("" when all is well). */
  constructor(video, liveSessionId, say) {
    this.video = video;
    this.whepPath = `/api/live-sessions/${encodeURIComponent(liveSessionId)}/whep`;
    this.say = say;
    this.retries = 0;
    this.pc = null;
    this.location = null;
    this.timer = null;
  }

  /** (Re)connect now, dropping any wait for a retry. */
  async play() {
    this.stop();
    this.say("Connecting to the video…");
    try {
      await this.connect();
    } catch (error) {
      this.failed(error.message);
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
      throw new Error(PLAIN_REASONS[problem.code] ?? "The video cannot connect.");
    }
    this.location = response.headers.get("Location");
    await pc.setRemoteDescription({ type: "answer", sdp: await response.text() });
  }

  failed(reason) {
    this.leave();
    const delay = backoffMs(this.retries++);
    this.say(`${reason} Trying again in ${Math.ceil(delay / 1000)} s.`);
    this.timer = setTimeout(() => this.play(), delay);
  }

  /** Stop playing and stop retrying. */
  stop() {
    clearTimeout(this.timer);
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
