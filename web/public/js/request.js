// @ts-check
// Requests over the page's socket: an event with an acknowledgement (docs/socket-events.md §2).

/**
 * An error an acknowledgement carried (`{ error: { code, message, retryAfterMs } }`).
 * @typedef {Error & { code: string, retryAfterMs?: number }} RequestError
 */

/**
 * Emits a request event and resolves to its ack data, or throws its error (a
 * `RequestError`; a lost ack is a plain timeout error, without `code`).
 * @param {import("socket.io-client").Socket} socket
 * @param {string} event
 * @param {unknown} payload
 * @param {number} [timeoutMs]
 * @returns {Promise<any>} the ack's data, shaped as docs/socket-events.md says for `event`
 */
export async function request(socket, event, payload, timeoutMs = 15_000) {
  const res = await socket.timeout(timeoutMs).emitWithAck(event, payload);
  if (res?.error) {
    /** @type {RequestError} */
    const err = Object.assign(new Error(res.error.message || res.error.code), {
      code: res.error.code,
      retryAfterMs: res.error.retryAfterMs,
    });
    throw err;
  }
  return res?.data ?? res;
}
