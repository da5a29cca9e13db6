// @ts-check
// One call at a time: the RTCPeerConnection to the server's SFU, negotiation as described
// in docs/socket-events.md, and which participant's tile (call-media.js) shows which track.
//
// For tests and debugging, the live call is exposed as `window.huddle.call` and its
// connection as `window.huddle.pc`.

import { $, clear, announce } from "./dom.js";
import { api } from "./api.js";
import { request } from "./request.js";
import { openMedia, createTile, showTracks, showFlags, createSelfTile } from "./call-media.js";

/** @typedef {import("socket.io-client").Socket} Socket */
/** @typedef {import("./views.js").CallType} CallType */
/** @typedef {import("./call-media.js").Tile} Tile */
/** @typedef {{ offerId: number, sdp: string }} SfuOffer An offer of the SFU's. */

export class Call {
  /**
   * @param {object} opts
   * @param {Socket} opts.socket
   * @param {string} opts.me my user id
   * @param {string} opts.chatId the chat the call is in
   * @param {(userId: string) => string} opts.nameOf display name of a user
   * @param {() => void} opts.onClosed called once the call is over for this window
   */
  constructor({ socket, me, chatId, nameOf, onClosed }) {
    this.socket = socket;
    this.me = me;
    this.chatId = chatId;
    this.nameOf = nameOf;
    this.onClosed = onClosed;
    /** @type {string | null} */
    this.callId = null;
    /** @type {CallType} */
    this.type = "video";
    /** @type {RTCPeerConnection | null} */
    this.pc = null;
    /** @type {MediaStream | null} */
    this.localStream = null;
    /** @type {MediaStream | null} */
    this.screenStream = null;
    /** @type {RTCRtpSender | null} */
    this.screenSender = null;
    /** @type {Map<string, { userId: string, kind: string, source: string, streamId: string }>} trackId → owner, from `track:published`. */
    this.published = new Map();
    /** @type {Map<string, { track: MediaStreamTrack, stream: MediaStream }>} trackId → track, from `ontrack`, waiting for its owner to be known. */
    this.received = new Map();
    /** @type {Map<string, Tile>} userId → tile. */
    this.tiles = new Map();
    /** @type {HTMLDivElement | null} */
    this.selfTile = null;
    this.makingOffer = false;
    /** The newest SFU offer id seen, and the highest one our own offer withdrew. */
    this.newestOfferId = 0;
    this.staleUpTo = 0;
    /** @type {SfuOffer | null} The newest SFU offer that arrived while our own offer awaited its ack. */
    this.offerDuringOurs = null;
    /** @type {Promise<void>} */
    this.chain = Promise.resolve();
    this.closed = false;
    this.micMuted = false;
    this.cameraOff = false;
    /** @type {[string, (data: any) => void][]} */
    this.handlers = [];
  }

  get grid() {
    return $("#call-grid");
  }

  /**
   * Enters the call: join, media, first offer. The initiator is in the call from
   * `call:start` on (`alreadyJoined`), so it only fetches its ICE servers.
   * @param {string} callId
   * @param {CallType} type
   * @param {{ alreadyJoined?: boolean }} [opts]
   */
  async join(callId, type, { alreadyJoined = false } = {}) {
    this.callId = callId;
    this.type = type;
    this.listen();
    // The camera and microphone open while the call is joined: neither waits for the other.
    const media = openMedia(type);
    /** @type {RTCIceServer[] | undefined} */
    let iceServers;
    if (!alreadyJoined) {
      try {
        iceServers = (await request(this.socket, "call:join", { callId })).iceServers;
      } catch (e) {
        if (e.code !== "already_joined") throw e;
      }
    }
    iceServers ??= (await api("GET", "/api/v1/calls/ice-servers")).iceServers;
    this.pc = new RTCPeerConnection({ iceServers: iceServers || [] });
    window.huddle.pc = this.pc;
    this.pc.ontrack = (ev) => this.onTrack(ev);
    this.pc.onicecandidate = (ev) => this.sendCandidate(ev.candidate);
    this.pc.onconnectionstatechange = () => this.showStatus();
    this.localStream = await media;
    for (const track of this.localStream.getTracks()) this.pc.addTrack(track, this.localStream);
    this.renderSelf();
    this.showStatus();
    await this.negotiate();
  }

  listen() {
    /**
     * @param {string} event
     * @param {(data: any) => void} fn
     */
    const on = (event, fn) => {
      /** @param {any} data */
      const wrapped = (data) => {
        // Call events name the call as `callId`; `call:ended` carries the CallView (`_id`).
        if ((data?.callId ?? data?._id) !== this.callId) return;
        fn(data);
      };
      this.socket.on(event, wrapped);
      this.handlers.push([event, wrapped]);
    };
    on("rtc:offer", (offer) => {
      this.noteOffer(offer);
      // Our own offer awaits its ack: whether the SFU withdrew this one (offers crossed) or
      // made it after answering ours, the ack says; decide then.
      if (this.makingOffer) {
        this.offerDuringOurs = offer;
        return;
      }
      this.enqueue(() => this.answerSfu(offer));
    });
    on("track:published", (t) => {
      this.published.set(t.trackId, { userId: t.userId, kind: t.kind, source: t.source, streamId: t.streamId });
      this.ensureTile(t.userId);
      this.attachPending();
    });
    on("track:unpublished", (t) => {
      this.published.delete(t.trackId);
      this.received.delete(t.trackId);
      const tile = this.tiles.get(t.userId);
      if (!tile) return;
      tile.tracks.delete(t.trackId);
      this.refreshTileMedia(t.userId);
      const stillPublishing = [...this.published.values()].some((p) => p.userId === t.userId);
      if (!stillPublishing) this.removeTile(t.userId);
    });
    on("call:participant-joined", ({ userId }) => {
      if (userId === this.me) return;
      this.ensureTile(userId);
      announce(`${this.nameOf(userId)} joined the call`);
    });
    on("call:participant-left", ({ userId }) => {
      // About ourselves: the server took us out (we left the chat, or were removed).
      if (userId === this.me) {
        announce("You are no longer in this call");
        this.close(false);
        return;
      }
      for (const [trackId, p] of this.published) if (p.userId === userId) this.published.delete(trackId);
      this.removeTile(userId);
      announce(`${this.nameOf(userId)} left the call`);
    });
    on("participant:muted", ({ userId, source, muted }) => {
      const tile = this.ensureTile(userId);
      tile.muted[source] = muted;
      this.renderFlags(userId);
    });
    on("call:speaker", ({ userId }) => {
      for (const [id, tile] of this.tiles) tile.el.classList.toggle("speaking", id === userId);
      this.selfTile?.classList.toggle("speaking", userId === this.me);
    });
    on("call:ended", () => {
      announce("The call ended");
      this.close(false);
    });
  }

  /**
   * Runs negotiation steps one after another.
   * @param {() => Promise<void>} step
   */
  enqueue(step) {
    this.chain = this.chain.then(step).catch((e) => {
      if (!this.closed) console.warn("negotiation step failed", e);
    });
    return this.chain;
  }

  sources() {
    const list = [];
    for (const track of this.localStream?.getTracks() ?? []) {
      list.push({ trackId: track.id, source: track.kind === "audio" ? "microphone" : "camera" });
    }
    if (this.screenSender?.track) list.push({ trackId: this.screenSender.track.id, source: "screen" });
    return list;
  }

  /** Offers what we publish; answers the SFU's offer if the ack carries one. */
  negotiate() {
    return this.enqueue(async () => {
      if (this.closed) return;
      this.makingOffer = true;
      this.offerDuringOurs = null;
      let data;
      try {
        await this.pc.setLocalDescription();
        data = await request(this.socket, "rtc:offer", {
          callId: this.callId,
          sdp: this.pc.localDescription.sdp,
          sources: this.sources(),
        });
      } catch (e) {
        // No answer is coming: take the offer back so the SFU's offers can be answered.
        if (this.pc.signalingState === "have-local-offer") {
          await this.pc.setLocalDescription({ type: "rollback" }).catch(() => {});
        }
        throw e;
      } finally {
        // Answered (or failed): SFU offers from now on are new ones, queued behind this step.
        this.makingOffer = false;
      }
      // Our offer crossed one of the SFU's and withdrew it: that one is never answered.
      if (typeof data.withdrawnOfferId === "number") {
        this.staleUpTo = Math.max(this.staleUpTo, data.withdrawnOfferId);
      }
      await this.pc.setRemoteDescription({ type: "answer", sdp: data.sdp });
      const waiting = this.offerDuringOurs;
      this.offerDuringOurs = null;
      if (data.offer) {
        this.noteOffer(data.offer);
        await this.answerSfu(data.offer);
      } else if (waiting) {
        // Made by the SFU after it answered ours: it still stands.
        await this.answerSfu(waiting);
      }
    });
  }

  /** @param {SfuOffer} offer */
  async answerSfu({ offerId, sdp }) {
    // Before our first offer there is no connection; that offer withdraws this one.
    if (this.closed || !this.pc) return;
    let offer = { offerId, sdp };
    while (offer) {
      // Superseded or withdrawn offers are not answered.
      if (offer.offerId < this.newestOfferId || offer.offerId <= this.staleUpTo) return;
      if (this.pc.signalingState !== "stable") return;
      await this.pc.setRemoteDescription({ type: "offer", sdp: offer.sdp });
      await this.pc.setLocalDescription();
      let data;
      try {
        data = await request(this.socket, "rtc:answer", {
          callId: this.callId,
          offerId: offer.offerId,
          sdp: this.pc.localDescription.sdp,
        });
      } catch (e) {
        if (e.code === "unexpected_answer") return; // withdrawn; a newer offer follows
        throw e;
      }
      offer = data?.offer;
      if (offer) this.noteOffer(offer);
    }
  }

  /** @param {SfuOffer} offer */
  noteOffer({ offerId }) {
    if (typeof offerId === "number" && offerId > this.newestOfferId) this.newestOfferId = offerId;
  }

  /** @param {RTCIceCandidate | null} candidate */
  sendCandidate(candidate) {
    if (this.closed || !this.callId) return;
    /** @type {{ callId: string, candidate: string, sdpMid?: string, sdpMLineIndex?: number }} */
    const payload = { callId: this.callId, candidate: candidate ? candidate.candidate : "" };
    if (candidate?.sdpMid != null) payload.sdpMid = candidate.sdpMid;
    if (candidate?.sdpMLineIndex != null) payload.sdpMLineIndex = candidate.sdpMLineIndex;
    request(this.socket, "rtc:candidate", payload).catch(() => {});
  }

  /** @param {RTCTrackEvent} ev */
  onTrack({ track, streams }) {
    this.received.set(track.id, { track, stream: streams[0] });
    track.addEventListener("ended", () => this.received.delete(track.id));
    this.attachPending();
  }

  /** Puts every received track whose owner is known into its owner's tile. */
  attachPending() {
    for (const [trackId, { track }] of this.received) {
      const owner = this.published.get(trackId);
      if (!owner) continue;
      const tile = this.ensureTile(owner.userId);
      if (tile.tracks.get(trackId) === track) continue;
      tile.tracks.set(trackId, track);
      tile.sources.set(trackId, owner.source);
      this.refreshTileMedia(owner.userId);
    }
  }

  /**
   * @param {string} userId
   * @returns {Tile}
   */
  ensureTile(userId) {
    let tile = this.tiles.get(userId);
    if (tile) return tile;
    tile = createTile(userId, this.nameOf(userId));
    this.tiles.set(userId, tile);
    this.grid.append(tile.el);
    return tile;
  }

  /** @param {string} userId */
  removeTile(userId) {
    const tile = this.tiles.get(userId);
    if (!tile) return;
    tile.el.remove();
    this.tiles.delete(userId);
  }

  /**
   * Rebuilds a tile's streams from the tracks it holds.
   * @param {string} userId
   */
  refreshTileMedia(userId) {
    const tile = this.tiles.get(userId);
    if (tile) showTracks(tile);
  }

  /** @param {string} userId */
  renderFlags(userId) {
    const tile = this.tiles.get(userId);
    if (tile) showFlags(tile);
  }

  renderSelf() {
    this.selfTile = createSelfTile(this.localStream);
    this.grid.prepend(this.selfTile);
  }

  showStatus() {
    const state = this.pc?.connectionState ?? "connecting";
    $("#call-status").textContent = state === "connected" ? "Connected" : state[0].toUpperCase() + state.slice(1);
  }

  async toggleMute() {
    this.micMuted = !this.micMuted;
    for (const t of this.localStream.getAudioTracks()) t.enabled = !this.micMuted;
    await request(this.socket, "participant:mute", { callId: this.callId, source: "microphone", muted: this.micMuted }).catch(() => {});
    return this.micMuted;
  }

  async toggleCamera() {
    this.cameraOff = !this.cameraOff;
    for (const t of this.localStream.getVideoTracks()) t.enabled = !this.cameraOff;
    await request(this.socket, "participant:mute", { callId: this.callId, source: "camera", muted: this.cameraOff }).catch(() => {});
    return this.cameraOff;
  }

  /** Starts or stops sharing the screen as a second video track named `screen`. */
  async toggleScreen() {
    if (this.screenSender) {
      this.stopScreen();
      return false;
    }
    const stream = await navigator.mediaDevices.getDisplayMedia({ video: true, audio: false });
    const track = stream.getVideoTracks()[0];
    this.screenStream = stream;
    this.screenSender = this.pc.addTrack(track, stream);
    track.addEventListener("ended", () => this.stopScreen());
    await this.negotiate();
    return true;
  }

  stopScreen() {
    if (!this.screenSender) return;
    const sender = this.screenSender;
    this.screenSender = null;
    this.screenStream?.getTracks().forEach((t) => t.stop());
    this.screenStream = null;
    if (!this.closed) {
      this.pc.removeTrack(sender);
      this.negotiate();
    }
    $("#call-screen").setAttribute("aria-pressed", "false");
  }

  /**
   * Leaves (when `tellServer`) and tears everything down.
   * @param {boolean} [tellServer]
   */
  async close(tellServer = true) {
    if (this.closed) return;
    this.closed = true;
    for (const [event, fn] of this.handlers) this.socket.off(event, fn);
    if (tellServer && this.callId) await request(this.socket, "call:leave", { callId: this.callId }).catch(() => {});
    this.localStream?.getTracks().forEach((t) => t.stop());
    this.screenStream?.getTracks().forEach((t) => t.stop());
    this.pc?.close();
    if (window.huddle.pc === this.pc) window.huddle.pc = null;
    clear(this.grid);
    this.tiles.clear();
    this.onClosed?.();
  }
}
