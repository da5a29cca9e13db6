// @ts-check
// REST access for the Huddle client: the session, token refresh, uploads and media URLs.
// Each browser tab or window is its own signed-in user: sessionStorage keeps the tab's
// short-lived access token and session id. The refresh token never reaches page script:
// the server keeps it in an HttpOnly cookie per session, which `refresh` names by id.

/** @typedef {import("./views.js").AuthResponse} AuthResponse */
/** @typedef {import("./views.js").UserView} UserView */
/** @typedef {import("./views.js").MediaView} MediaView */
/** @typedef {import("./views.js").UploadTicket} UploadTicket */
/** @typedef {import("./views.js").DownloadUrl} DownloadUrl */

/**
 * This tab's session, as sessionStorage keeps it.
 * @typedef {object} Session
 * @property {string} accessToken
 * @property {string} sessionId
 * @property {number} expiresAt when the access token expires, in ms since the epoch
 * @property {UserView} user
 */

const SESSION_KEY = "huddle.session";
/** Refresh the access token this long before it expires. */
const REFRESH_MARGIN_MS = 30_000;

/** An error answered by the server (`{ error: { code, message } }`) or the network. */
export class ApiError extends Error {
  /**
   * @param {number} status the HTTP status (0: no answer)
   * @param {string} [code]
   * @param {string} [message]
   */
  constructor(status, code, message) {
    super(message || code || `HTTP ${status}`);
    this.status = status;
    this.code = code || "http_" + status;
  }
}

let session = loadSession();
/** @type {Promise<void> | null} */
let refreshing = null;
/** @type {() => void} */
let signedOutHandler = () => {};

/** @returns {Session | null} */
function loadSession() {
  try {
    return JSON.parse(sessionStorage.getItem(SESSION_KEY) || "null");
  } catch {
    return null;
  }
}

/**
 * Called when the session cannot be renewed (refresh refused): the app shows sign-in.
 * @param {() => void} fn
 */
export function onSignedOut(fn) {
  signedOutHandler = fn;
}

export function currentSession() {
  return session;
}

export function accessToken() {
  return session?.accessToken ?? null;
}

/**
 * Stores an `AuthResponse` from login, verify or refresh.
 * @param {AuthResponse} auth
 */
export function saveAuth(auth) {
  session = {
    accessToken: auth.accessToken,
    sessionId: auth.sessionId,
    expiresAt: Date.now() + (auth.expiresIn ?? 900) * 1000,
    user: auth.user,
  };
  sessionStorage.setItem(SESSION_KEY, JSON.stringify(session));
}

/** @param {UserView} user */
export function updateUser(user) {
  if (!session) return;
  session.user = user;
  sessionStorage.setItem(SESSION_KEY, JSON.stringify(session));
}

export function clearSession() {
  session = null;
  sessionStorage.removeItem(SESSION_KEY);
}

/** @param {Response} res */
async function parseError(res) {
  let code = "";
  let message = "";
  try {
    const body = await res.json();
    code = body?.error?.code ?? "";
    message = body?.error?.message ?? "";
  } catch {
    /* not JSON */
  }
  if (res.status === 429 && !message) message = "Too many attempts; try again later";
  return new ApiError(res.status, code, message);
}

/**
 * One request of the auth routes. Same-origin cookies go with it: the session's HttpOnly
 * refresh cookie, and the device cookie that keeps this browser out of an account-wide
 * lockout.
 * @param {string} method
 * @param {string} path
 * @param {unknown} [body]
 * @returns {Promise<any>} the JSON answer (null for 204)
 */
async function plain(method, path, body) {
  const res = await fetch(path, {
    method,
    credentials: "same-origin",
    headers: body === undefined ? {} : { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!res.ok) throw await parseError(res);
  return res.status === 204 ? null : res.json();
}

/** Exchanges the refresh token for new tokens; concurrent callers share one exchange. */
export function refreshTokens() {
  if (!refreshing) {
    refreshing = (async () => {
      if (!session?.sessionId) throw new ApiError(401, "unauthorized", "not signed in");
      try {
        saveAuth(await plain("POST", "/api/v1/auth/refresh", { sessionId: session.sessionId }));
      } catch (e) {
        if (e.status === 401 || e.status === 403) {
          clearSession();
          signedOutHandler();
        }
        throw e;
      }
    })().finally(() => {
      refreshing = null;
    });
  }
  return refreshing;
}

/** Resolves to an access token that is not about to expire. */
export async function freshToken() {
  if (session && session.expiresAt - Date.now() < REFRESH_MARGIN_MS) await refreshTokens();
  return accessToken();
}

/**
 * An authenticated JSON request; refreshes the token once on 401.
 * @param {string} method
 * @param {string} path
 * @param {unknown} [body]
 * @returns {Promise<any>} the JSON answer (null for 204); its type is the route's
 */
export async function api(method, path, body) {
  await freshToken();
  for (let attempt = 0; ; attempt++) {
    /** @type {Record<string, string>} */
    const headers = { authorization: `Bearer ${accessToken()}` };
    if (body !== undefined) headers["content-type"] = "application/json";
    const res = await fetch(path, {
      method,
      credentials: "omit",
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (res.status === 401 && attempt === 0 && session?.sessionId) {
      await refreshTokens();
      continue;
    }
    if (!res.ok) throw await parseError(res);
    return res.status === 204 ? null : res.json();
  }
}

// ---- Auth routes ----

export const auth = {
  /** @param {Record<string, string>} form */
  register: (form) => plain("POST", "/api/v1/auth/register", form),
  /**
   * @param {string} email
   * @param {string} otp
   * @param {string} password
   */
  async verify(email, otp, password) {
    saveAuth(await plain("POST", "/api/v1/auth/verify", { email, otp, password }));
    return session;
  },
  /** @param {string} email */
  resend: (email) => plain("POST", "/api/v1/auth/send-otp", { email }),
  /**
   * @param {string} email
   * @param {string} password
   */
  async login(email, password) {
    saveAuth(await plain("POST", "/api/v1/auth/login", { email, password }));
    return session;
  },
  async logout() {
    const sessionId = session?.sessionId;
    try {
      if (sessionId) await plain("POST", "/api/v1/auth/logout", { sessionId });
    } finally {
      clearSession();
    }
  },
};

// ---- Media ----

/**
 * Uploads a file straight to the media store with a presigned form, then confirms it.
 * `kind` is "avatar" or "attachment" (which needs `chatId`). Resolves to the MediaView.
 * @param {File} file
 * @param {"avatar" | "attachment"} kind
 * @param {string} [chatId]
 * @returns {Promise<MediaView>}
 */
export async function upload(file, kind, chatId) {
  /** @type {UploadTicket} */
  const ticket = await api("POST", "/api/v1/media/uploads", {
    kind,
    chatId: kind === "attachment" ? chatId : undefined,
    fileName: file.name || "file",
    // One exact type, as the server takes it: a recorder's "audio/webm;codecs=opus" is audio/webm.
    contentType: file.type.split(";")[0].trim().toLowerCase() || "application/octet-stream",
    size: file.size,
  });
  const form = new FormData();
  for (const [name, value] of Object.entries(ticket.form.fields)) form.append(name, value);
  form.append("file", file);
  const res = await fetch(ticket.form.url, { method: "POST", body: form, credentials: "omit" });
  if (!res.ok) throw new ApiError(res.status, "upload_failed", `The store refused the upload (HTTP ${res.status})`);
  return api("POST", `/api/v1/media/uploads/${ticket._id}/complete`);
}

/** @type {Map<string, DownloadUrl>} */
const urlCache = new Map();

/**
 * A short-lived download URL for a media id (or an `/api/v1/media/{id}` path).
 * @param {string} idOrPath
 * @returns {Promise<string>}
 */
export async function mediaUrl(idOrPath) {
  const path = idOrPath.startsWith("/") ? idOrPath : `/api/v1/media/${idOrPath}`;
  const hit = urlCache.get(path);
  if (hit && new Date(hit.expiresAt).getTime() - Date.now() > 20_000) return hit.url;
  /** @type {DownloadUrl} */
  const fresh = await api("GET", path);
  urlCache.set(path, fresh);
  return fresh.url;
}
