// What the client adds to the page's globals.

interface Window {
  /** For tests and debugging (public/js/app.js). */
  huddle: {
    /** The live call's RTCPeerConnection. */
    pc: RTCPeerConnection | null;
    readonly call: import("../public/js/call.js").Call | null;
    readonly socket: import("socket.io-client").Socket | null;
    state: import("../public/js/state.js").State;
  };
}
