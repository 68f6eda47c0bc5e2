// faceverify browser capture: consent, live enrolment and live login from a webcam.
//
// A dependency-free ES module (no build step). Typed with JSDoc; faceverify.d.ts
// declares the same API for TypeScript users.
//
//   import { mount } from "https://faceverify.example/pages/static/faceverify.js";
//   const { outcome, receipt } = await mount(document.querySelector("#face"), {
//     service: "https://faceverify.example",
//     token,                       // a ceremony token your backend minted with its API key
//   });
//   // send `receipt` to your backend; it redeems it at the service (POST /v1/ceremonies/receipts)
//
// The browser never holds an API key: the ceremony token allows one ceremony for
// one subject, for minutes. Frames go over a WebSocket, or HTTP when that fails,
// at a steady rate with at most one frame in flight; prompts and per-frame
// feedback are shown as they arrive, in ARIA live regions.

/**
 * @typedef {"consent" | "starting" | "capturing" | "finishing" | "match" | "no-match" | "enrolled"
 *   | "retry" | "locked-out" | "refused" | "expired" | "camera-denied" | "no-camera"
 *   | "connection-lost" | "error"} CaptureState
 */

/**
 * @typedef {object} Outcome
 * @property {CaptureState} outcome  the final state
 * @property {string | null} receipt  the service's sealed receipt (match, no-match, enrolled), for your backend
 * @property {string} message  what the page showed
 */

/**
 * @typedef {object} MountOptions
 * @property {string} token  ceremony token from your backend
 * @property {string} [service]  the service's origin (default: this page's)
 * @property {number} [fps]  frames sent per second (default 5)
 * @property {"auto" | "websocket" | "http"} [transport]  default "auto": WebSocket, HTTP when it fails
 * @property {number} [maxWidth]  frames are scaled to at most this width (default 640)
 * @property {(state: CaptureState, detail: object) => void} [onState]  called on every state change
 * @property {MediaDevices} [mediaDevices]  for tests (default navigator.mediaDevices)
 * @property {boolean} [setTitle]  set document.title to the ceremony's heading (default true)
 * @property {boolean} [stylesheet]  add faceverify.css (beside this module) to the page (default true)
 */

/**
 * @typedef {object} FrameUpdate
 * @property {string} state  "baseline" | "challenge" | "passed" | "failed"
 * @property {string} prompt
 * @property {string[]} feedback  per-frame feedback keys, e.g. "no-face", "turn-further"
 * @property {[number, number]} progress  challenges done, challenges asked
 * @property {boolean} finished
 * @property {{colour: string, hex: string} | null} [screen]  the screen-light colour to show until the next answer
 */

/** Texts for the per-frame feedback keys the service sends; an unknown key is shown as words.
 * @type {Record<string, string>} */
export const FEEDBACK = {
  "no-face": "No face found: centre your face in the picture.",
  "several-faces": "Only one person in the picture, please.",
  "too-dark": "It is too dark: face a light.",
  "too-bright": "Too much light behind or on you.",
  "blurred": "The picture is blurred: hold still.",
  "too-small": "Come a little closer.",
  "cut-off": "Your whole face must be in the picture.",
  "look-straight": "Look straight at the camera.",
  "turn-further": "A little further.",
  "come-closer": "A little closer.",
  "hold-still": "Hold still.",
  "wrong-way": "The other way.",
  "frozen": "The picture is not moving: is the camera working?",
};

/** What each final state says to the person.
 * @type {Record<string, string>} */
export const MESSAGES = {
  "match": "It's you: verified.",
  "no-match": "We could not confirm it's you.",
  "enrolled": "Done: your face template was enrolled.",
  "retry": "The check did not succeed. You can try again.",
  "locked-out": "Too many attempts.",
  "refused": "Face verification is not available for this account.",
  "expired": "This link has expired. Go back and start again.",
  "camera-denied": "Camera access was denied. Allow the camera for this site in your browser's settings, then try again.",
  "no-camera": "No camera was found. Connect a camera, then try again.",
  "connection-lost": "The connection to the service was lost. Check your network, then try again.",
  "error": "Something went wrong. Try again.",
};

const FINAL = new Set(["match", "no-match", "enrolled", "retry", "locked-out", "refused", "expired",
  "camera-denied", "no-camera", "connection-lost", "error"]);
const RETRYABLE = new Set(["retry", "camera-denied", "no-camera", "connection-lost", "error"]);

/** An error from the service: its problem+json code and HTTP status. */
export class ServiceError extends Error {
  /** @param {string} code @param {number} status @param {string} detail @param {object} [body] */
  constructor(code, status, detail, body) {
    super(detail);
    this.name = "ServiceError";
    this.code = code;
    this.status = status;
    this.body = body || {};
  }
}

/** Thin client of the ceremony routes; holds the current (narrowing) ceremony token. */
export class CeremonyClient {
  /** @param {string} service @param {string} token */
  constructor(service, token) {
    this.service = service.replace(/\/+$/, "");
    this.token = token;
  }

  /** @param {string} path @param {RequestInit} [init] */
  async request(path, init = {}) {
    const headers = { Authorization: `Bearer ${this.token}`, ...(init.headers || {}) };
    let response;
    try {
      response = await fetch(this.service + path, { ...init, headers, credentials: "omit", cache: "no-store" });
    } catch (err) {
      throw new ServiceError("connection_lost", 0, String(err));
    }
    const body = await response.json().catch(() => ({}));
    if (!response.ok) {
      throw new ServiceError(body.code || "error", response.status, body.detail || response.statusText, body);
    }
    return body;
  }

  /** The ceremony: kind, subject, purpose and (enrolment) the consent document. */
  describe() { return this.request("/ceremony/v1"); }

  /** Record the person's explicit agreement to the document with this digest. @param {string} sha256 */
  async agree(sha256) {
    const body = await this.request("/ceremony/v1/consent", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ agree: true, sha256 }),
    });
    this.token = body.token;
    return body;
  }

  /** Start a live session; the token is then bound to it. */
  async start() {
    const body = await this.request("/ceremony/v1/session", { method: "POST" });
    this.sessionToken = body.token;
    return body;
  }

  /** One frame over HTTP. @param {Blob} frame @returns {Promise<FrameUpdate>} */
  frame(frame) {
    return this.withSession(() => this.request("/ceremony/v1/frames", {
      method: "POST", headers: { "Content-Type": frame.type || "image/jpeg" }, body: frame,
    }));
  }

  /** Decide the session: {outcome, receipt}. */
  finish() { return this.withSession(() => this.request("/ceremony/v1/finish", { method: "POST" })); }

  /** @template T @param {() => Promise<T>} call @returns {Promise<T>} */
  async withSession(call) {
    const saved = this.token;
    this.token = this.sessionToken || saved;
    try { return await call(); } finally { this.token = saved; }
  }

  /** A WebSocket URL for the session's frames. @param {string} path */
  socketUrl(path) {
    const url = new URL(path, this.service + "/");
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    return url.toString();
  }
}

/** Frames over one WebSocket: send a frame, await its update (one in flight). */
class SocketTransport {
  /** @param {string} url @param {string} token */
  static open(url, token, timeoutMs = 4000) {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url);
      const timer = setTimeout(() => { ws.close(); reject(new Error("websocket timeout")); }, timeoutMs);
      ws.onopen = () => ws.send(JSON.stringify({ token }));
      ws.onerror = () => { clearTimeout(timer); reject(new Error("websocket error")); };
      ws.onclose = () => { clearTimeout(timer); reject(new Error("websocket closed")); };
      ws.onmessage = (event) => {
        clearTimeout(timer);
        const msg = JSON.parse(event.data);
        if (msg.type === "ready") resolve(new SocketTransport(ws));
        else reject(new Error("websocket refused"));
      };
    });
  }

  /** @param {WebSocket} ws */
  constructor(ws) {
    this.ws = ws;
    this.kind = "websocket";
    /** @type {((msg: any) => void) | null} */ this.pending = null;
    /** @type {((err: Error) => void) | null} */ this.failed = null;
    ws.onmessage = (event) => { const p = this.pending; this.pending = this.failed = null; if (p) p(JSON.parse(event.data)); };
    ws.onclose = ws.onerror = () => { const f = this.failed; this.pending = this.failed = null; this.closed = true; if (f) f(new Error("websocket closed")); };
  }

  /** @param {Blob} frame @returns {Promise<FrameUpdate>} */
  send(frame) {
    if (this.closed) return Promise.reject(new Error("websocket closed"));
    return new Promise((resolve, reject) => {
      this.pending = (msg) => {
        if (msg.type === "problem") reject(new ServiceError(msg.problem.code, msg.problem.status, msg.problem.detail, msg.problem));
        else resolve(msg);
      };
      this.failed = reject;
      this.ws.send(frame);
    });
  }

  close() { this.closed = true; try { this.ws.close(1000); } catch { /* already closed */ } }
}

/** Frames over HTTP, one request each. */
class HttpTransport {
  /** @param {CeremonyClient} client */
  constructor(client) { this.client = client; this.kind = "http"; }
  /** @param {Blob} frame */
  send(frame) { return this.client.frame(frame); }
  close() {}
}

/** @param {string} tag @param {Record<string, string>} [attrs] @param {(Node | string)[]} [children] */
function el(tag, attrs = {}, children = []) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  for (const c of children) node.append(c);
  return node;
}

/** @param {string} text */
function sentence(text) { return text ? text[0].toUpperCase() + text.slice(1) + (/[.!?]$/.test(text) ? "" : ".") : ""; }

/** The state a service error ends a capture in. @param {any} err @returns {CaptureState} */
export function stateForError(err) {
  const code = err && /** @type {any} */ (err).code;
  if (code === "connection_lost") return "connection-lost";
  if (code === "unauthorized") return "expired"; // the ceremony token: forged, misused or expired
  if (code === "locked_out") return "locked-out";
  if (code === "not_live" || code === "low_quality" || code === "no_face" || code === "several_faces"
    || code === "unknown_session" || code === "timeout") return "retry";
  if (code === "not_verifiable" || code === "consent" || code === "forbidden") return "refused";
  return "error";
}

/** The state a getUserMedia failure ends in. @param {any} err @returns {CaptureState} */
export function stateForCameraError(err) {
  const name = err && err.name;
  if (name === "NotAllowedError" || name === "SecurityError") return "camera-denied";
  if (name === "NotFoundError" || name === "OverconstrainedError" || name === "NotReadableError") return "no-camera";
  return "error";
}

/**
 * Run a ceremony inside `root`: consent (enrolment), camera, challenge, result.
 * Resolves when the person reaches a final state they choose not to retry from, or at once
 * for match / no-match / enrolled.
 * @param {HTMLElement} root
 * @param {MountOptions} options
 * @returns {Promise<Outcome>}
 */
export function mount(root, options) {
  return new FaceCapture(root, options).run();
}

/** The capture widget. Usually used through {@link mount}. */
export class FaceCapture {
  /** @param {HTMLElement} root @param {MountOptions} options */
  constructor(root, options) {
    if (!options || !options.token) throw new TypeError("faceverify: a ceremony token is required");
    this.root = root;
    this.options = { fps: 5, transport: "auto", maxWidth: 640, ...options };
    this.client = new CeremonyClient(options.service || location.origin, options.token);
    this.media = options.mediaDevices || (navigator.mediaDevices || null);
    /** @type {CaptureState | null} */ this.state = null;
    if (this.options.stylesheet !== false) addStylesheet();
    this.root.classList.add("fv");
    this.root.replaceChildren();
    this.heading = el("h2", { class: "fv-heading", tabindex: "-1" });
    this.consentBox = el("section", { class: "fv-consent", hidden: "" });
    this.video = /** @type {HTMLVideoElement} */ (el("video", { class: "fv-video", playsinline: "", muted: "", autoplay: "", "aria-hidden": "true" }));
    this.video.muted = true;
    this.stage = el("div", { class: "fv-stage", hidden: "" }, [this.video, el("div", { class: "fv-oval", "aria-hidden": "true" })]);
    this.prompt = el("p", { class: "fv-prompt", role: "status", "aria-live": "assertive", "aria-atomic": "true" });
    this.feedback = el("p", { class: "fv-feedback", "aria-live": "polite", "aria-atomic": "true" });
    this.steps = el("ol", { class: "fv-steps", "aria-label": "Steps" });
    this.bar = /** @type {HTMLProgressElement} */ (el("progress", { class: "fv-progress", max: "1", value: "0", "aria-label": "Challenges done", hidden: "" }));
    this.result = el("div", { class: "fv-result", role: "alert", hidden: "" });
    this.actions = el("div", { class: "fv-actions" });
    // The screen-light challenge: the whole window behind the widget lights the face in the
    // colour the service asks for (a recording cannot know the sequence).
    this.light = el("div", { class: "fv-light", "aria-hidden": "true", hidden: "" });
    this.root.append(this.light, this.heading, this.consentBox, this.stage, this.prompt, this.feedback, this.bar, this.steps, this.result, this.actions);
  }

  /** @param {CaptureState} state @param {object} [detail] */
  setState(state, detail = {}) {
    this.state = state;
    this.root.dataset.state = state;
    if (this.options.onState) this.options.onState(state, detail);
  }

  /** @returns {Promise<Outcome>} */
  async run() {
    let info;
    try {
      info = await this.client.describe();
    } catch (err) {
      return this.end(stateForError(err));
    }
    this.info = info;
    this.heading.textContent = info.ceremony === "enroll" ? "Enrol your face" : "Verify it's you";
    if (this.options.setTitle !== false) document.title = `${this.heading.textContent} · faceverify`;
    if (info.ceremony === "enroll" && !info.consented) {
      const agreed = await this.askConsent(info.consent);
      if (!agreed) return this.end("refused", "You did not agree, so nothing was recorded. You can close this page.");
    }
    for (;;) {
      const outcome = await this.capture();
      if (!RETRYABLE.has(outcome.outcome)) return outcome;
      if (!(await this.offerRetry())) return outcome;
    }
  }

  /** Show the consent document; resolve true once the person explicitly agrees. @param {any} doc */
  askConsent(doc) {
    this.setState("consent");
    const text = el("div", { class: "fv-consent-text", tabindex: "0", role: "document", "aria-label": "Consent text" });
    // The exact text whose SHA-256 is recorded: paragraphs, "- " lists, and line breaks kept.
    for (const para of /** @type {string} */ (doc.text).trim().split(/\n\n+/)) {
      const lines = para.split("\n");
      if (lines.every((l) => l.startsWith("- "))) {
        text.append(el("ul", {}, lines.map((l) => el("li", {}, [l.slice(2)]))));
      } else {
        text.append(el("p", {}, lines.flatMap((l, i) => (i ? [el("br"), l] : [l]))));
      }
    }
    const box = el("input", { type: "checkbox", id: "fv-agree", class: "fv-agree" });
    const label = el("label", { for: "fv-agree" }, [`I have read this and I agree that a face template is made and kept for ${doc.retention_days} days at most, for ${doc.purpose} only.`]);
    const agree = el("button", { type: "button", class: "fv-primary", disabled: "" }, ["Agree and continue"]);
    const decline = el("button", { type: "button", class: "fv-secondary" }, ["No thanks"]);
    const digest = el("p", { class: "fv-digest" }, [`Document SHA-256: ${doc.sha256}`]);
    box.addEventListener("change", () => { agree.toggleAttribute("disabled", !(/** @type {HTMLInputElement} */ (box).checked)); });
    this.consentBox.replaceChildren(text, el("p", { class: "fv-check" }, [box, " ", label]), digest, el("div", { class: "fv-actions" }, [agree, decline]));
    this.consentBox.hidden = false;
    this.heading.focus();
    return new Promise((resolve) => {
      agree.addEventListener("click", async () => {
        agree.setAttribute("disabled", "");
        try {
          await this.client.agree(doc.sha256);
        } catch (err) {
          this.feedback.textContent = err instanceof Error ? err.message : String(err);
          agree.removeAttribute("disabled");
          return;
        }
        this.consentBox.hidden = true;
        resolve(true);
      });
      decline.addEventListener("click", () => { this.consentBox.hidden = true; resolve(false); });
    });
  }

  /** One live session: camera, frames until the service says finished, then the decision. @returns {Promise<Outcome>} */
  async capture() {
    this.root.classList.remove("fv-final");
    this.result.hidden = true;
    this.actions.replaceChildren();
    this.setState("starting");
    this.prompt.textContent = "Starting the camera…";
    let stream;
    try {
      if (!this.media || !this.media.getUserMedia) throw Object.assign(new Error("no mediaDevices"), { name: "NotFoundError" });
      stream = await this.media.getUserMedia({ video: { width: { ideal: 640 }, height: { ideal: 480 }, facingMode: "user" }, audio: false });
    } catch (err) {
      return this.end(stateForCameraError(err));
    }
    this.stream = stream;
    try {
      this.video.srcObject = stream;
      this.stage.hidden = false;
      await this.video.play().catch(() => {});
      await waitForVideo(this.video);
      let ticket;
      try {
        ticket = await this.client.start();
      } catch (err) {
        return this.end(stateForError(err), undefined, err instanceof ServiceError ? err.body : {});
      }
      this.showSteps(ticket.challenges);
      this.showPrompt(ticket.prompt);
      this.showScreen(ticket.screen);
      this.setState("capturing", { challenges: ticket.challenges });
      const transport = await this.openTransport(ticket);
      this.transport = transport;
      this.root.dataset.transport = transport.kind;
      const ended = await this.pump(transport, Date.parse(ticket.deadline));
      transport.close();
      if (ended) return ended;
      this.setState("finishing");
      this.prompt.textContent = "Checking…";
      this.feedback.textContent = "";
      let decision;
      try {
        decision = await this.client.finish();
      } catch (err) {
        return this.end(stateForError(err), undefined, err instanceof ServiceError ? err.body : {});
      }
      return this.end(/** @type {CaptureState} */ (decision.outcome), undefined, decision);
    } finally {
      for (const track of stream.getTracks()) track.stop();
      this.stage.hidden = true;
      this.showScreen(null);
    }
  }

  /** WebSocket first (unless told otherwise), HTTP when it cannot be opened. @param {any} ticket */
  async openTransport(ticket) {
    if (this.options.transport !== "http" && typeof WebSocket !== "undefined") {
      try {
        return await SocketTransport.open(this.client.socketUrl(ticket.websocket), this.client.sessionToken);
      } catch (err) {
        if (this.options.transport === "websocket") throw err;
      }
    }
    return new HttpTransport(this.client);
  }

  /**
   * Send frames at a steady rate, one in flight, until the session finishes.
   * Returns an Outcome when the capture ended otherwise (connection lost), else null.
   * @param {{send: (f: Blob) => Promise<FrameUpdate>, kind: string, close: () => void}} transport
   * @param {number} deadline
   */
  async pump(transport, deadline) {
    const canvas = document.createElement("canvas");
    // With a screen-light challenge, at least 10 frames a second: each colour is read on the
    // frames after the display and the camera caught up with it.
    const fps = this.root.dataset.screen ? Math.max(10, this.options.fps || 5) : this.options.fps || 5;
    const period = 1000 / Math.max(1, Math.min(15, fps));
    let failures = 0;
    let http = null;
    for (;;) {
      const started = performance.now();
      const frame = await grab(this.video, canvas, this.options.maxWidth || 640);
      let update;
      try {
        update = await (http || transport).send(frame);
        failures = 0;
      } catch (err) {
        if (err instanceof ServiceError && err.code !== "connection_lost") return this.end(stateForError(err));
        failures += 1;
        if (!http && transport.kind === "websocket") { http = new HttpTransport(this.client); this.root.dataset.transport = "http"; continue; }
        if (failures >= 3) return this.end("connection-lost");
        await sleep(period);
        continue;
      }
      this.showUpdate(update);
      if (update.finished) return null;
      if (Date.now() > deadline + 2000) return null; // let the service decide (it will say why)
      await sleep(Math.max(0, period - (performance.now() - started)));
    }
  }

  /** @param {number} count */
  showSteps(count) {
    this.steps.replaceChildren(el("li", { "data-step": "0" }, ["Look at the camera"]));
    for (let i = 1; i <= count; i++) this.steps.append(el("li", { "data-step": String(i) }, [`Movement ${i} of ${count}`]));
    this.bar.max = count;
    this.bar.value = 0;
    this.bar.hidden = false;
    this.markStep(0);
  }

  /** @param {number} current */
  markStep(current) {
    for (const li of this.steps.children) {
      const n = Number(li.getAttribute("data-step"));
      li.classList.toggle("fv-done", n < current);
      if (n === current) li.setAttribute("aria-current", "step"); else li.removeAttribute("aria-current");
    }
  }

  /** @param {string} text */
  showPrompt(text) {
    const shown = sentence(text);
    if (this.prompt.textContent !== shown) this.prompt.textContent = shown;
  }

  /** The screen-light colour (null: none). @param {{colour: string, hex: string} | null | undefined} screen */
  showScreen(screen) {
    const hex = screen && /^#[0-9a-f]{6}$/.test(screen.hex) ? screen.hex : null;
    this.light.hidden = !hex;
    this.light.style.background = hex || "";
    if (hex && screen) this.root.dataset.screen = screen.colour; else delete this.root.dataset.screen;
  }

  /** @param {FrameUpdate} update */
  showUpdate(update) {
    this.showScreen(update.screen);
    this.showPrompt(update.prompt);
    const [done, asked] = update.progress || [0, 0];
    this.bar.max = Math.max(1, asked);
    this.bar.value = done;
    this.bar.setAttribute("aria-valuetext", `${done} of ${asked} movements done`);
    this.markStep(update.state === "baseline" ? 0 : done + 1);
    const words = (update.feedback || []).map((k) => FEEDBACK[k] || sentence(k.replace(/[-_]/g, " ")));
    const text = words.join(" ");
    if (this.feedback.textContent !== text) this.feedback.textContent = text;
    this.root.dataset.prompt = update.prompt;
  }

  /** Offer "Try again"; resolves true when pressed. */
  offerRetry() {
    const again = el("button", { type: "button", class: "fv-primary" }, ["Try again"]);
    this.actions.replaceChildren(again);
    again.focus();
    return new Promise((resolve) => again.addEventListener("click", () => resolve(true), { once: true }));
  }

  /**
   * Show a final state.
   * @param {CaptureState} state @param {string} [message] @param {any} [detail]
   * @returns {Outcome}
   */
  end(state, message, detail = {}) {
    if (!FINAL.has(state)) state = "error";
    let text = message || MESSAGES[state];
    const wait = detail && detail.retry_after;
    if (state === "locked-out" && !message) {
      text += wait ? ` You can try again in about ${wait < 90 ? `${wait} seconds` : `${Math.ceil(wait / 60)} minutes`}.` : " Try again later.";
    }
    this.prompt.textContent = "";
    this.feedback.textContent = "";
    this.result.textContent = text;
    this.result.className = `fv-result fv-${state}`;
    this.result.hidden = false;
    this.root.classList.add("fv-final");
    this.setState(state, detail);
    const receipt = (detail && detail.receipt) || null;
    if (receipt && this.info && this.info.return_url) {
      const go = el("a", { class: "fv-primary", href: `${this.info.return_url}#receipt=${encodeURIComponent(receipt)}` }, ["Continue"]);
      this.actions.replaceChildren(go);
      go.focus();
    }
    return { outcome: state, receipt, message: text };
  }
}

/** The widget's style sheet, from beside this module, once per page. */
function addStylesheet() {
  const href = new URL("faceverify.css", import.meta.url).href;
  if ([...document.querySelectorAll('link[rel="stylesheet"]')].some((l) => /** @type {HTMLLinkElement} */ (l).href === href)) return;
  document.head.append(el("link", { rel: "stylesheet", href }));
}

/** @param {number} ms */
function sleep(ms) { return new Promise((r) => setTimeout(r, ms)); }

/** @param {HTMLVideoElement} video */
function waitForVideo(video) {
  if (video.videoWidth > 0) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => { video.removeEventListener("loadeddata", done); resolve(undefined); };
    video.addEventListener("loadeddata", done);
    setTimeout(done, 3000);
  });
}

/** The current video frame as a JPEG (unmirrored: left is the person's left). */
function grab(/** @type {HTMLVideoElement} */ video, /** @type {HTMLCanvasElement} */ canvas, /** @type {number} */ maxWidth) {
  const scale = Math.min(1, maxWidth / (video.videoWidth || maxWidth));
  canvas.width = Math.round((video.videoWidth || 640) * scale);
  canvas.height = Math.round((video.videoHeight || 480) * scale);
  const ctx = /** @type {CanvasRenderingContext2D} */ (canvas.getContext("2d"));
  ctx.drawImage(video, 0, 0, canvas.width, canvas.height);
  return new Promise((resolve) => canvas.toBlob((b) => resolve(/** @type {Blob} */ (b)), "image/jpeg", 0.85));
}
