// @ts-check
// Signed out: sign in, sign up, and verify the emailed code.

import { $, toast } from "./dom.js";
import { auth, onSignedOut } from "./api.js";
import { S } from "./state.js";
import { startApp } from "./app.js";

/**
 * Between sign-up and the emailed code.
 * @type {{ email: string, password: string } | null}
 */
let pendingSignup = null;

/** @param {"signin-panel" | "signup-panel" | "verify-panel"} panel */
export function showAuth(panel) {
  $("#app-view").hidden = true;
  $("#auth-view").hidden = false;
  for (const id of ["signin-panel", "signup-panel", "verify-panel"]) $("#" + id).hidden = id !== panel;
  const first = $(`#${panel} input`);
  first?.focus();
}

/**
 * @param {string} id
 * @param {string} [text]
 */
function formError(id, text) {
  $("#" + id).textContent = text || "";
}

/**
 * @param {HTMLButtonElement} button
 * @param {boolean} on
 */
function busy(button, on) {
  button.disabled = on;
  button.setAttribute("aria-busy", on ? "true" : "false");
}

/**
 * The text input `sel` names.
 * @param {string} sel
 * @returns {HTMLInputElement}
 */
const input = (sel) => $(sel);

$("#show-signup").addEventListener("click", () => showAuth("signup-panel"));
$("#show-signin").addEventListener("click", () => showAuth("signin-panel"));
$("#verify-back").addEventListener("click", () => showAuth("signin-panel"));

$("#signin-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const email = input("#signin-email").value.trim();
  const password = input("#signin-password").value;
  formError("signin-error");
  if (!email || !password) return formError("signin-error", "Enter your email and password.");
  busy($("#signin-submit"), true);
  try {
    await auth.login(email, password);
    input("#signin-password").value = "";
    await startApp();
  } catch (e) {
    if (e.code === "email_not_verified") {
      pendingSignup = { email, password };
      await auth.resend(email).catch(() => {});
      showVerify(email);
    } else {
      formError("signin-error", e.status === 401 ? "Wrong email or password." : e.message);
    }
  } finally {
    busy($("#signin-submit"), false);
  }
});

$("#signup-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  formError("signup-error");
  const form = {
    firstName: input("#signup-first").value.trim(),
    lastName: input("#signup-last").value.trim(),
    username: input("#signup-username").value.trim(),
    email: input("#signup-email").value.trim(),
    password: input("#signup-password").value,
    passwordConfirm: input("#signup-confirm").value,
  };
  if (Object.values(form).some((v) => !v)) return formError("signup-error", "Fill in every field.");
  if (form.password.length < 8) return formError("signup-error", "The password needs at least 8 characters.");
  if (form.password !== form.passwordConfirm) return formError("signup-error", "The passwords do not match.");
  busy($("#signup-submit"), true);
  try {
    await auth.register(form);
    pendingSignup = { email: form.email, password: form.password };
    showVerify(form.email);
  } catch (e) {
    formError("signup-error", e.message);
  } finally {
    busy($("#signup-submit"), false);
  }
});

/** @param {string} email */
function showVerify(email) {
  $("#verify-text").textContent = `We sent a code to ${email}. Enter it below.`;
  input("#verify-code").value = "";
  formError("verify-error");
  showAuth("verify-panel");
}

$("#verify-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  formError("verify-error");
  const otp = input("#verify-code").value.trim();
  if (!otp) return formError("verify-error", "Enter the code from the email.");
  if (!pendingSignup) return showAuth("signin-panel");
  busy($("#verify-submit"), true);
  try {
    await auth.verify(pendingSignup.email, otp, pendingSignup.password);
    pendingSignup = null;
    await startApp();
  } catch (e) {
    formError("verify-error", e.status === 400 || e.status === 403 ? "That code is not right or has expired." : e.message);
  } finally {
    busy($("#verify-submit"), false);
  }
});

$("#resend-code").addEventListener("click", async () => {
  if (!pendingSignup) return;
  try {
    await auth.resend(pendingSignup.email);
    toast("A new code is on its way.");
  } catch (e) {
    toast(e.message);
  }
});

onSignedOut(() => {
  S.socket?.disconnect();
  toast("Your session ended; please sign in again.");
  showAuth("signin-panel");
});
