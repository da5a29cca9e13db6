// @ts-check
// What a call captures and shows: my camera and microphone, and the grid's tiles, one per
// participant (camera, shared screen, sound, mute flags) and my own camera's. call.js
// decides which track goes to which tile.

import { h, clear, toast } from "./dom.js";

/** @typedef {import("./views.js").CallType} CallType */

/**
 * Opens the camera (for a video call) and the microphone; what is unavailable is left out.
 * @param {CallType} type
 * @returns {Promise<MediaStream>}
 */
export async function openMedia(type) {
  try {
    return await navigator.mediaDevices.getUserMedia({ audio: true, video: type === "video" });
  } catch (e) {
    if (type === "video") {
      toast("Camera unavailable; joining with audio only.");
      try {
        return await navigator.mediaDevices.getUserMedia({ audio: true });
      } catch {
        /* fall through */
      }
    }
    toast("Microphone and camera are unavailable; you can still watch and listen.");
    return new MediaStream();
  }
}

/**
 * A participant's tile in the grid.
 * @typedef {object} Tile
 * @property {HTMLDivElement} el
 * @property {HTMLVideoElement} video the camera
 * @property {HTMLVideoElement} screen the shared screen
 * @property {HTMLAudioElement} audio
 * @property {HTMLDivElement} flags
 * @property {Map<string, MediaStreamTrack>} tracks trackId → track
 * @property {Map<string, string>} sources trackId → source
 * @property {Record<string, boolean>} muted source → muted
 */

/**
 * A participant's tile, with nothing to show yet.
 * @param {string} userId
 * @param {string} name the participant's display name
 * @returns {Tile}
 */
export function createTile(userId, name) {
  const video = h("video", { "data-user-id": userId, "data-source": "camera", autoplay: true, playsInline: true });
  video.muted = true; // sound plays through the <audio> element
  const screen = h("video", { "data-user-id": userId, "data-source": "screen", class: "screen", autoplay: true, playsInline: true, hidden: true });
  screen.muted = true;
  const audio = h("audio", { autoplay: true });
  const flags = h("div", { class: "flags" });
  const el = h(
    "div",
    { class: "tile", "data-user-id": userId, "data-testid": "call-tile", role: "group", "aria-label": name },
    video,
    screen,
    audio,
    h("span", { class: "label" }, name),
    flags,
  );
  return { el, video, screen, audio, flags, tracks: new Map(), sources: new Map(), muted: {} };
}

/**
 * Rebuilds a tile's streams from the tracks it holds.
 * @param {Tile} tile
 */
export function showTracks(tile) {
  const camera = [];
  const screen = [];
  const sound = [];
  for (const [trackId, track] of tile.tracks) {
    const source = tile.sources.get(trackId);
    if (track.kind === "audio") sound.push(track);
    else if (source === "screen") screen.push(track);
    else camera.push(track);
  }
  setStream(tile.video, camera);
  setStream(tile.screen, screen);
  setStream(tile.audio, sound);
  tile.screen.hidden = screen.length === 0;
}

/**
 * Shows a tile's mute flags.
 * @param {Tile} tile
 */
export function showFlags(tile) {
  clear(tile.flags);
  if (tile.muted.microphone) tile.flags.append(h("span", {}, "Muted"));
  if (tile.muted.camera) tile.flags.append(h("span", {}, "Camera off"));
}

/**
 * My own tile: my camera, without sound.
 * @param {MediaStream} localStream
 */
export function createSelfTile(localStream) {
  const video = h("video", { id: "self-video", "data-self": "true", autoplay: true, playsInline: true });
  video.muted = true;
  video.srcObject = new MediaStream(localStream.getVideoTracks());
  return h(
    "div",
    { class: "tile self", "data-testid": "self-tile", role: "group", "aria-label": "You" },
    video,
    h("span", { class: "label" }, "You"),
  );
}

/**
 * @param {HTMLMediaElement} el
 * @param {MediaStreamTrack[]} tracks
 */
function setStream(el, tracks) {
  const current = /** @type {MediaStream | null} */ (el.srcObject)?.getTracks() ?? [];
  const same = current.length === tracks.length && tracks.every((t) => current.includes(t));
  if (same) return;
  el.srcObject = tracks.length ? new MediaStream(tracks) : null;
  if (tracks.length) el.play?.().catch(() => {});
}
