// The served pages (/pages/enroll, /pages/login): the ceremony token comes in the URL
// fragment (#token=...), which the browser never sends to a server; it is taken out of
// the address bar at once.
import { mount } from "./faceverify.js";

const params = new URLSearchParams(location.hash.slice(1));
const token = params.get("token");
// "#token=...&transport=http" forces the HTTP fallback (for a network that blocks WebSockets).
const transport = params.get("transport") === "http" ? "http" : "auto";
history.replaceState(null, "", location.pathname + location.search);
const root = /** @type {HTMLElement} */ (document.getElementById("fv"));
if (!token) {
  root.dataset.state = "expired";
  root.textContent = "This page needs a link from the app you are signing in to. Go back and start again.";
} else {
  // The last outcome's receipt, for a page script (or a test) to hand to the app's backend.
  const keep = (/** @type {string} */ _state, /** @type {any} */ detail) => {
    if (detail && detail.receipt) /** @type {any} */ (window).__fvOutcome = { receipt: detail.receipt, images: detail.images };
  };
  // The service is where this page is served from, whatever prefix it is mounted under.
  const service = new URL("../../", import.meta.url).href;
  mount(root, { token, service, transport, onState: keep });
}
