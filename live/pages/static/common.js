// What every page shares: building elements (text only, never HTML), the signed-in
// account kept for this tab, calls to the REST API, and retry delays.

const ACCOUNT_KEY = "streamcart.account";
/** A flash sale's events, each carrying the sale (or, claimed and returned, its counts). */
export const FLASH_EVENTS = ["scheduled", "started", "ended", "claimed", "returned"]
  .map((name) => `flash:${name}`);
const FIRST_RETRY_MS = 500;
const LAST_RETRY_MS = 30000;

/** An element with `text` as its text (user-supplied text is never parsed as HTML). */
export function el(tag, { text, className, ...attributes } = {}, children = []) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  if (className) node.className = className;
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  node.append(...children);
  return node;
}

export function byId(id) {
  return document.getElementById(id);
}

/** Exponential back-off with jitter: about 0.5 s, 1 s, 2 s ... up to 30 s. */
export function backoffMs(attempt) {
  const ceiling = Math.min(LAST_RETRY_MS, FIRST_RETRY_MS * 2 ** attempt);
  return ceiling * (0.5 + Math.random() / 2);
}

/** Whole seconds as m:ss (a countdown, a moment in a video). */
export function minutesSeconds(seconds) {
  return `${Math.floor(seconds / 60)}:${String(seconds % 60).padStart(2, "0")}`;
}

const money = new Intl.NumberFormat("vi-VN", { style: "currency", currency: "VND" });

export function formatPrice(amount) {
  return money.format(amount);
}

/** The signed-in account of this tab ({token, user}) or null. */
export function account() {
  const saved = sessionStorage.getItem(ACCOUNT_KEY);
  return saved ? JSON.parse(saved) : null;
}

export function signOut() {
  sessionStorage.removeItem(ACCOUNT_KEY);
}

/** A JSON call to the REST API; a problem document's detail is thrown as an Error. */
export async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  const signedIn = account();
  if (signedIn) headers.Authorization = `Bearer ${signedIn.token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
  });
  const answer = response.status === 204 ? null : await response.json();
  if (!response.ok) throw new Error(answer?.detail ?? answer?.title ?? `HTTP ${response.status}`);
  return answer;
}

export async function signIn(email, password) {
  const tokens = await api("POST", "/api/auth/login", { email, password });
  const signedIn = { token: tokens.access_token, user: tokens.user };
  sessionStorage.setItem(ACCOUNT_KEY, JSON.stringify(signedIn));
  return signedIn;
}

/** The sign-in form (#sign-in) or who is signed in (#signed-in, #me), whichever applies. */
export function showAccount() {
  const signedIn = account();
  byId("sign-in").hidden = Boolean(signedIn);
  byId("signed-in").hidden = !signedIn;
  byId("me").textContent = signedIn?.user.display_name ?? "";
}

/** Run `action`; a failure is said in `notice` (a problem's detail, in plain words). */
export async function attempt(notice, action) {
  notice.textContent = "";
  try {
    await action();
  } catch (error) {
    notice.textContent = error.message;
  }
}

/** A refusal from the server (an ack's `error`, or an `error` event) in plain words. */
export function explain(error) {
  const wait = error.retry_after ? ` Try again in ${error.retry_after} s.` : "";
  return `${error.message}${wait}`;
}
