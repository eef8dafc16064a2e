// Commenting on a version: quote a selected passage, keep the draft in this browser, send it with its
// idempotency key (retrying on overload or a lost connection, so it is stored once), count down to the deadline.
const RETRIES = 6;

function clauseOf(node, documentRoot) {
  let element = node.nodeType === Node.ELEMENT_NODE ? node : node.parentElement;
  while (element && element.parentElement !== documentRoot) element = element.parentElement;
  while (element) {
    if (element.classList && element.classList.contains("clause-heading")) return element.id;
    element = element.previousElementSibling;
  }
  return null;
}

function setUpSelection(form, documentRoot) {
  const status = document.getElementById("draft-status");
  const composer = document.getElementById("comment-composer");
  let timer = null;
  document.addEventListener("selectionchange", () => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      const selection = window.getSelection();
      if (!selection || selection.isCollapsed || !documentRoot.contains(selection.anchorNode)) return;
      const clause = clauseOf(selection.anchorNode, documentRoot);
      if (!clause || clauseOf(selection.focusNode, documentRoot) !== clause) return;
      const quote = selection.toString().trim();
      if (!quote) return;
      form.elements.clause_key.value = clause;
      form.elements.quote.value = quote;
      form.elements.start.value = "";
      form.elements.end.value = "";
      if (composer) {
        composer.open = true;
        composer.scrollIntoView({ block: "nearest" });
      }
      status.textContent = form.dataset.quotedLabel || `“${quote.slice(0, 60)}” (${clause})`;
      saveDraft(form);
    }, 250);
  });
}

function draftFields(form) {
  const data = {};
  for (const name of ["clause_key", "quote", "body", "proposed_text", "type", "visibility", "idempotency_key"]) {
    if (form.elements[name]) data[name] = form.elements[name].value;
  }
  return data;
}

function saveDraft(form) {
  localStorage.setItem(form.dataset.draftKey, JSON.stringify(draftFields(form)));
}

function restoreDraft(form) {
  const saved = localStorage.getItem(form.dataset.draftKey);
  if (!saved) return;
  try {
    const data = JSON.parse(saved);
    if (!data.body) return;
    for (const [name, value] of Object.entries(data)) if (form.elements[name]) form.elements[name].value = value;
    const composer = document.getElementById("comment-composer");
    if (composer) composer.open = true;
  } catch {
    localStorage.removeItem(form.dataset.draftKey);
  }
}

async function sendWithRetries(form) {
  const status = document.getElementById("draft-status");
  for (let attempt = 0; attempt < RETRIES; attempt += 1) {
    try {
      const response = await fetch(form.action, { method: "POST", body: new FormData(form), redirect: "follow" });
      if (response.status === 503) {
        const wait = Number(response.headers.get("Retry-After") || 2);
        status.textContent = form.dataset.busyLabel.replace("{seconds}", () => wait);
        await new Promise((resolve) => setTimeout(resolve, wait * 1000));
        continue;
      }
      if (response.redirected) {
        window.location.assign(response.url);
        return;
      }
      // Refused (invalid, closed): submit normally so the page shows why; the same key makes it safe.
      form.submit();
      return;
    } catch {
      status.textContent = form.dataset.offlineLabel;
      await new Promise((resolve) => setTimeout(resolve, 1000 * 2 ** attempt));
    }
  }
  // Still not sent: fall back to a plain submission, which shows whatever the server answers.
  form.submit();
}

function setUpForm(form) {
  restoreDraft(form);
  form.addEventListener("input", () => saveDraft(form));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    saveDraft(form);
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    sendWithRetries(form).finally(() => {
      button.disabled = false;
    });
  });
}

function setUpCountdown(element) {
  const closes = new Date(element.dataset.closes);
  const output = element.querySelector(".countdown");
  if (!output) return;
  const format = new Intl.RelativeTimeFormat(document.documentElement.lang, { numeric: "auto" });
  function tick() {
    const minutes = Math.round((closes - Date.now()) / 60000);
    if (minutes <= 0) {
      output.textContent = "";
      return;
    }
    let phrase;
    if (minutes < 120) phrase = format.format(minutes, "minute");
    else if (minutes < 48 * 60) phrase = format.format(Math.round(minutes / 60), "hour");
    else phrase = format.format(Math.round(minutes / (24 * 60)), "day");
    output.textContent = ` (${phrase})`;
    element.classList.toggle("deadline-near", minutes <= 15);
  }
  tick();
  setInterval(tick, 30000);
}

const receipt = document.querySelector("[data-clear-draft]");
if (receipt) localStorage.removeItem(receipt.dataset.clearDraft);
const form = document.getElementById("comment-form");
const documentRoot = document.getElementById("document");
if (form) setUpForm(form);
if (form && documentRoot) setUpSelection(form, documentRoot);
for (const deadline of document.querySelectorAll(".deadline[data-closes]")) setUpCountdown(deadline);
