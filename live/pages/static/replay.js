// The shoppable replay of an ended session: its recordings, and along each one the
// product the seller had pinned at that moment (docs/live.md, "Recording").

import { api, byId, el, minutesSeconds } from "/assets/common.js";

const KIND_WORDS = {
  pinned: "pinned",
  unpinned: "unpinned",
  flash_started: "flash sale started",
  flash_ended: "flash sale ended",
  auction_started: "auction started",
  auction_ended: "auction ended",
  giveaway_started: "giveaway started",
  giveaway_drawn: "giveaway drawn",
  voucher_dropped: "voucher dropped",
};
// A recording's timeline is written as its stream closes, which may finish just after
// the session's end is announced: until it has one, ask again after these waits.
const LATE_TIMELINE_MS = [1000, 2000, 4000];

/** The product on show at `ms` of a recording: the last pin before it, unless unpinned. */
function onShowAt(timeline, ms) {
  let productId = null;
  for (const mark of timeline) {
    if (mark.at_ms > ms) break;
    if (mark.kind === "pinned") productId = mark.data.product_id;
    if (mark.kind === "unpinned" && mark.data.product_id === productId) productId = null;
  }
  return productId;
}

function replayOf(liveSessionId) {
  return api("GET", `/api/live-sessions/${encodeURIComponent(liveSessionId)}/replay`);
}

class ReplayView {
  /** `onShow(productId | null)` follows the pinned product as the video plays or is
   * moved; `nameOf(productId)` names the products of the marks. */
  constructor(onShow, nameOf) {
    this.onShow = onShow;
    this.nameOf = nameOf;
    this.video = byId("replay-video");
    this.recording = null;
    this.showing = undefined;
    this.video.addEventListener("timeupdate", () => this.follow());
    this.video.addEventListener("seeked", () => this.follow());
  }

  follow() {
    const productId = onShowAt(this.recording?.timeline ?? [], this.video.currentTime * 1000);
    if (productId !== this.showing) this.onShow((this.showing = productId));
  }

  show(recordings) {
    byId("replay-parts").replaceChildren(...recordings.map((recording, index) => {
      const button = el("button", { type: "button", text: `Part ${index + 1}` });
      button.addEventListener("click", () => this.play(recording));
      return el("li", {}, [button]);
    }));
    byId("replay-parts").hidden = recordings.length < 2;
    const same = recordings.find((recording) => recording.video_url === this.recording?.video_url);
    return same ? this.mark(same) : this.play(recordings.at(-1));
  }

  play(recording) {
    this.video.src = recording.video_url;
    return this.mark(recording);
  }

  async mark(recording) {
    this.recording = recording;
    this.showing = undefined;
    this.follow();
    const marks = await Promise.all(recording.timeline.map((mark) => this.markView(mark)));
    byId("replay-marks").replaceChildren(...marks);
  }

  /** A moment of the timeline, as a button that takes the video there. */
  async markView(mark) {
    const name = mark.data.product_id ? await this.nameOf(mark.data.product_id) : "";
    const at = minutesSeconds(Math.floor(mark.at_ms / 1000));
    const button = el("button", {
      type: "button", text: `${at} · ${KIND_WORDS[mark.kind] ?? mark.kind} ${name}`,
    });
    button.addEventListener("click", () => {
      this.video.currentTime = mark.at_ms / 1000;
      this.follow();
    });
    return el("li", {}, [button]);
  }

  async untilTimed(liveSessionId) {
    for (const wait of LATE_TIMELINE_MS) {
      if (this.recording.timeline.length) return;
      await new Promise((resolve) => setTimeout(resolve, wait));
      await this.show((await replayOf(liveSessionId)).recordings);
    }
  }
}

/** Show the session's replay, if it has recordings (true), with the product on show
 * following the video (see ReplayView). */
export async function showReplay(liveSessionId, onShow, nameOf) {
  const { recordings } = await replayOf(liveSessionId);
  if (!recordings.length) return false;
  const view = new ReplayView(onShow, nameOf);
  await view.show(recordings);
  byId("replay").hidden = false;
  view.untilTimed(liveSessionId).catch(() => {});
  return true;
}
