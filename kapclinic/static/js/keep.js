// KAP Clinic, issue #18 "No typed work is lost": what keeps a person's typing safe on every page.
//  1. The connection state is announced (window offline/online events) in [data-connection-state].
//  2. Staff are warned before the idle sign-out (<body data-idle-left ...>, dialog [data-idle-warning]):
//     a countdown and "Stay signed in" (a POST that counts as activity; asking how long is left does not).
//  3. Long forms ([data-draft] inside a <form>) keep a draft on the server as the author types; opening
//     the form again restores it with "Restored your unsaved draft from HH:MM" and a "Discard draft".
//     Drafts live in the database only, never in browser storage (docs/architecture.md "Drafts").
//  4. htmx saves inside a form holding [data-save-state] say what happened: "Saving…", "Saved 14:05",
//     or "Not saved: … your values are kept" with Retry. A failed save never clears the inputs, and a swap
//     keeps the scroll position and the focused field.
// No inline script or style anywhere (Content-Security-Policy): behaviour hangs on data attributes.
(function () {
  "use strict";

  function csrfToken(scope) {
    var input = (scope || document).querySelector('input[name="csrfmiddlewaretoken"]') ||
      document.querySelector('input[name="csrfmiddlewaretoken"]');
    if (input) { return input.value; }
    try { return JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRFToken"] || ""; } catch (e) { return ""; }
  }
  function hhmm(d) {
    return (d.getHours() < 10 ? "0" : "") + d.getHours() + ":" + (d.getMinutes() < 10 ? "0" : "") + d.getMinutes();
  }
  // The page's own requests name the page, so a sign-out they meet returns the person here afterwards.
  function headers(extra) {
    var h = { "HX-Current-URL": window.location.href, "X-CSRFToken": csrfToken() };
    for (var k in extra || {}) { h[k] = extra[k]; }
    return h;
  }

  // ---- 1. connection state ----------------------------------------------------------------------
  var connection = document.querySelector("[data-connection-state]");
  function announceConnection(text, offline) {
    if (!connection) { return; }
    connection.textContent = text;
    connection.classList.toggle("offline", !!offline);
  }
  window.addEventListener("offline", function () {
    announceConnection("Connection lost. What you type stays on this page; saves will say “Not saved” with a Retry.", true);
  });
  window.addEventListener("online", function () {
    announceConnection("Connection restored.", false);
    window.setTimeout(function () { if (navigator.onLine) { announceConnection("", false); } }, 8000);
  });

  // ---- 3. drafts (defined before the idle warning, which flushes them before a sign-out) ------------
  var drafts = [];
  function collect(form) {
    var data = {};
    Array.prototype.forEach.call(form.elements, function (el) {
      var type = (el.type || "").toLowerCase();
      if (!el.name || el.disabled || el.name === "csrfmiddlewaretoken" || type === "password" || type === "file" ||
          type === "submit" || type === "button" || type === "reset") { return; }
      if (type === "radio") { if (el.checked) { data[el.name] = el.value; } return; }
      if (type === "checkbox") {
        var list = data[el.name] || [];
        if (el.checked) { list.push(el.value); }
        data[el.name] = list;
        return;
      }
      if (el.tagName === "SELECT" && el.multiple) {
        data[el.name] = Array.prototype.filter.call(el.options, function (o) { return o.selected; }).map(function (o) { return o.value; });
        return;
      }
      data[el.name] = el.value;
    });
    return data;
  }
  function apply(form, data) {
    Array.prototype.forEach.call(form.elements, function (el) {
      var type = (el.type || "").toLowerCase();
      if (!el.name || !Object.prototype.hasOwnProperty.call(data, el.name) || el.name === "csrfmiddlewaretoken") { return; }
      var value = data[el.name];
      if (type === "radio") { el.checked = el.value === value; }
      else if (type === "checkbox") { el.checked = Array.isArray(value) && value.indexOf(el.value) >= 0; }
      else if (el.tagName === "SELECT" && el.multiple && Array.isArray(value)) {
        Array.prototype.forEach.call(el.options, function (o) { o.selected = value.indexOf(o.value) >= 0; });
      } else if (typeof value === "string" && type !== "submit" && type !== "button") { el.value = value; }
    });
  }
  function Draft(box) {
    var self = this;
    this.box = box;
    this.form = box.closest("form");
    this.url = box.getAttribute("data-draft-url");
    this.status = box.querySelector("[data-draft-status]");
    this.timer = null;
    this.firstChange = 0;
    this.dirty = false;
    this.submitting = false;
    this.form.addEventListener("input", function () { self.changed(); });
    this.form.addEventListener("change", function () { self.changed(); });
    this.form.addEventListener("submit", function () { self.submitting = true; window.clearTimeout(self.timer); });
    var discard = box.querySelector("[data-draft-discard]");
    if (discard) {
      discard.addEventListener("click", function () {
        discard.disabled = true;
        fetch(box.getAttribute("data-draft-discard-url"), { method: "POST", credentials: "same-origin", headers: headers() })
          .then(function (r) {
            if (!r.ok) { throw new Error(String(r.status)); }
            window.location.reload();
          })
          .catch(function () { discard.disabled = false; self.say("The draft could not be discarded: check the connection and try again."); });
      });
    }
    if (box.hasAttribute("data-draft-restore")) { this.restore(); }
  }
  Draft.prototype.say = function (text) { if (this.status) { this.status.textContent = text; } };
  Draft.prototype.changed = function () {
    var self = this;
    if (this.submitting) { return; }
    this.dirty = true;
    var now = Date.now();
    if (!this.firstChange) { this.firstChange = now; }
    window.clearTimeout(this.timer);
    // Save a second after typing pauses, and at least every 10 s of continuous typing.
    var wait = Math.max(0, Math.min(1000, 10000 - (now - this.firstChange)));
    this.timer = window.setTimeout(function () { self.save(false); }, wait);
  };
  Draft.prototype.save = function (leaving) {
    var self = this;
    window.clearTimeout(this.timer);
    if (!this.dirty || this.submitting) { return Promise.resolve(); }
    this.dirty = false;
    this.firstChange = 0;
    return fetch(this.url, {
      method: "POST", credentials: "same-origin", keepalive: !!leaving, redirect: "manual",
      headers: headers({ "Content-Type": "application/json" }),
      body: JSON.stringify({ data: collect(this.form) })
    }).then(function (r) {
      if (!r.ok) { throw new Error(r.type === "opaqueredirect" ? "signed out" : String(r.status)); }
      return r.json();
    }).then(function (j) {
      self.say("Draft saved " + j.saved_at + ".");
      document.dispatchEvent(new CustomEvent("kap:activity"));
    }).catch(function (err) {
      self.dirty = true;
      self.say(err && err.message === "signed out"
        ? "Draft not saved: you are signed out. What you typed is still on this page; sign in again in another tab to keep it."
        : "Draft not saved (connection lost?). What you typed is still on this page; it will be saved when you type again.");
    });
  };
  Draft.prototype.restore = function () {
    var self = this;
    fetch(this.url, { credentials: "same-origin", headers: headers(), redirect: "manual" })
      .then(function (r) { return r.status === 200 ? r.json() : null; })
      .then(function (j) {
        // Typing that started before the answer came wins: it will replace the draft anyway.
        if (!j || self.dirty) { return; }
        apply(self.form, j.data || {});
        var notice = self.box.querySelector("[data-draft-notice]");
        var when = self.box.querySelector("[data-draft-time]");
        if (when) { when.textContent = j.saved_at; }
        if (notice) { notice.hidden = false; }
        self.say("");
      })
      .catch(function () { self.say("Could not check for an unsaved draft (connection lost?)."); });
  };
  document.querySelectorAll("form [data-draft]").forEach(function (box) { drafts.push(new Draft(box)); });
  function flushDrafts(leaving) {
    return Promise.all(drafts.map(function (d) { return d.save(leaving); }));
  }
  window.addEventListener("pagehide", function () { flushDrafts(true); });
  document.addEventListener("visibilitychange", function () { if (document.visibilityState === "hidden") { flushDrafts(true); } });

  var leavingOnPurpose = false;  // the idle sign-out reloads the page: no "leave this page?" then

  // ---- 2. idle warning ----------------------------------------------------------------------------
  var body = document.body;
  var dialog = document.querySelector("[data-idle-warning]");
  if (body.hasAttribute("data-idle-left") && dialog && typeof dialog.showModal === "function") {
    var limit = parseInt(body.getAttribute("data-idle-limit"), 10);
    var deadline = Date.now() + parseInt(body.getAttribute("data-idle-left"), 10) * 1000;
    var warnBefore = Math.min(120, Math.floor(limit / 2));  // seconds of warning
    var countdown = dialog.querySelector("[data-idle-countdown]");
    var announce = dialog.querySelector("[data-idle-announce]");
    var error = dialog.querySelector("[data-idle-error]");
    var checking = false;
    var lastAnnounced = null;
    var fmt = function (s) { s = Math.max(0, Math.ceil(s)); return Math.floor(s / 60) + ":" + (s % 60 < 10 ? "0" : "") + (s % 60); };
    var ask = function (method) {
      return fetch(body.getAttribute(method === "POST" ? "data-idle-stay-url" : "data-idle-status-url"), {
        method: method, credentials: "same-origin", headers: headers(), redirect: "manual"
      }).then(function (r) {
        if (r.type === "opaqueredirect" || r.status === 401) { return { signed_in: false }; }
        if (!r.ok) { throw new Error(String(r.status)); }
        return r.json();
      });
    };
    var signedOut = function () { leavingOnPurpose = true; window.location.reload(); };  // the sign-in page, with ?next= this page
    var show = function () {
      if (!dialog.open) { flushDrafts(false); dialog.showModal(); }
    };
    var hide = function () { if (dialog.open) { dialog.close(); } lastAnnounced = null; if (error) { error.textContent = ""; } };
    var tick = function () {
      var left = (deadline - Date.now()) / 1000;
      if (dialog.open && countdown) {
        countdown.textContent = fmt(left);
        // Screen readers hear the time at a few moments, not every second.
        var mark = left > 60 ? Math.ceil(left / 60) * 60 : (left > 30 ? 60 : (left > 10 ? 30 : 10));
        if (announce && mark !== lastAnnounced) {
          lastAnnounced = mark;
          announce.textContent = "Signing out in " + fmt(left) + " unless you choose Stay signed in.";
        }
      }
      if (checking || left > warnBefore) { return; }
      if (dialog.open && left > 0) { return; }
      checking = true;
      var before = left <= 0 ? flushDrafts(false) : Promise.resolve();
      before.then(function () { return ask("GET"); }).then(function (j) {
        checking = false;
        if (!j.signed_in || j.seconds_left === null || j.seconds_left <= 0) { return signedOut(); }
        deadline = Date.now() + j.seconds_left * 1000;
        if (j.seconds_left <= warnBefore) { show(); } else { hide(); }
      }).catch(function () {
        checking = false;
        // Offline: the server cannot be asked; warn on the page's own clock and try again next tick.
        if (left <= 0) { deadline = Date.now() + 5000; }
        show();
      });
    };
    var stay = function () {
      ask("POST").then(function (j) {
        if (!j.signed_in) { return signedOut(); }
        deadline = Date.now() + j.seconds_left * 1000;
        hide();
      }).catch(function () {
        if (error) { error.textContent = "Could not reach the clinic server (connection lost?). Try again."; }
      });
    };
    dialog.querySelector("[data-idle-stay]").addEventListener("click", stay);
    dialog.addEventListener("cancel", function (e) { e.preventDefault(); stay(); });  // Escape
    // Anything the page sends counts as activity on the server: move the page's clock on (the server
    // notes activity once a minute, so the clock assumes the least and asks before warning anyway).
    var moved = function () { deadline = Math.max(deadline, Date.now() + Math.max(0, limit - 60) * 1000); };
    // Background polls (GET every n seconds) are not someone at the keyboard: only saves move the clock.
    document.addEventListener("htmx:beforeRequest", function (e) {
      var verb = e.detail && e.detail.requestConfig ? e.detail.requestConfig.verb : "get";
      if (verb && verb.toLowerCase() !== "get") { moved(); }
    });
    document.addEventListener("kap:activity", moved);
    window.setInterval(tick, 1000);
  }

  // Values typed into an htmx form and not saved yet (or refused, or not sent: connection lost) ask
  // "leave this page?" before a reload or a link throws them away.
  function markUnsaved(e) {
    var form = e.target && e.target.form;
    if (form && stateBox(form)) { form.setAttribute("data-unsaved", ""); }
  }
  document.addEventListener("input", markUnsaved);
  document.addEventListener("change", markUnsaved);
  window.addEventListener("beforeunload", function (e) {
    if (leavingOnPurpose || !document.querySelector("form[data-unsaved]")) { return; }
    e.preventDefault();
    e.returnValue = "";
  });

  // A skip link to a form field ([data-focus-target], e.g. "Skip to vitals entry") puts the cursor in it.
  document.addEventListener("click", function (e) {
    var link = e.target && e.target.closest ? e.target.closest("a[data-focus-target]") : null;
    var field = link ? document.getElementById(link.getAttribute("data-focus-target")) : null;
    if (!field) { return; }
    e.preventDefault();
    field.focus({ preventScroll: true });
    field.scrollIntoView({ block: "center" });
  });

  // ---- 4. htmx save state ---------------------------------------------------------------------------
  function stateBox(form) { return form && form.querySelector ? form.querySelector("[data-save-state]") : null; }
  function showState(form, text, failed) {
    var box = stateBox(form);
    if (!box) { return; }
    box.querySelector("[data-save-status]").textContent = text;
    box.classList.toggle("failed", !!failed);
    var retry = box.querySelector("[data-save-retry]");
    if (retry) { retry.hidden = !failed; }
  }
  function savingForm(e) {
    // The element that asked (detail.elt is the target for the swap events).
    var elt = e.detail && e.detail.requestConfig && e.detail.requestConfig.elt ? e.detail.requestConfig.elt : e.detail && e.detail.elt;
    var form = elt && elt.closest ? elt.closest("form") : null;
    return stateBox(form) ? form : null;
  }
  var pending = null;  // {formId, scrollY, focusId, outcome}
  document.addEventListener("htmx:beforeRequest", function (e) {
    var form = savingForm(e);
    if (!form) { return; }
    var active = document.activeElement;
    // Focus returns to the same field after the swap; from Retry (which has no id), to the save button.
    var focusId = active && form.contains(active) ? active.id : "";
    if (!focusId && active && form.contains(active)) {
      var submit = form.querySelector('button[type="submit"][id]');
      focusId = submit ? submit.id : "";
    }
    pending = {
      formId: form.id, top: form.getBoundingClientRect().top, alerts: document.querySelectorAll("[data-alerts] .alert-box").length,
      focusId: focusId, outcome: ""
    };
    showState(form, "Saving…", false);
  });
  document.addEventListener("htmx:beforeSwap", function (e) {
    if (!pending || !savingForm(e)) { return; }
    var xhr = e.detail.xhr;
    // A sign-out met on the way (the server sent the sign-in page): keep this page and its values.
    if (xhr && xhr.responseURL && xhr.responseURL.indexOf("/account/login/") >= 0) {
      e.detail.shouldSwap = false;
      pending.outcome = "signed-out";
      return;
    }
    pending.outcome = e.detail.shouldSwap ? (xhr.status === 400 || xhr.status === 409 ? "refused" : "saved") : pending.outcome;
  });
  // An outerHTML swap detaches the form that asked, so its own after-events never reach the document:
  // the new content's htmx:load says the swap is done.
  document.addEventListener("htmx:load", function (e) {
    if (!pending || (pending.outcome !== "saved" && pending.outcome !== "refused")) { return; }
    var form = document.getElementById(pending.formId);
    if (!form || !e.target || !e.target.contains || !e.target.contains(form)) { return; }
    var p = pending;
    pending = null;
    // The form stays where it was on the screen, even when something above it grew (a new alert).
    if (form) { window.scrollBy(0, form.getBoundingClientRect().top - p.top); }
    if (p.focusId) {
      var field = document.getElementById(p.focusId);
      if (field && document.activeElement !== field) { field.focus({ preventScroll: true }); }
    }
    if (form) {
      var added = document.querySelectorAll("[data-alerts] .alert-box").length - p.alerts;
      var saved = "Saved " + hhmm(new Date()) + "." + (added > 0 ? " " + added + " new alert" + (added > 1 ? "s" : "") + ": see Alerts above." : "");
      showState(form, p.outcome === "saved" ? saved : "Not saved: correct the fields marked in this form.", p.outcome !== "saved");
      if (p.outcome === "refused") {
        stateBox(form).querySelector("[data-save-retry]").hidden = true;
        form.setAttribute("data-unsaved", "");
      }
    }
  });
  document.addEventListener("htmx:sendError", function (e) {
    var form = savingForm(e);
    if (!form) { return; }
    pending = null;
    showState(form, "Not saved: connection lost. Your values are kept; press Retry when the connection is back.", true);
  });
  document.addEventListener("htmx:responseError", function (e) {
    var form = savingForm(e);
    if (!form) { return; }
    pending = null;
    var status = e.detail.xhr ? e.detail.xhr.status : 0;
    showState(form, "Not saved: the server answered with an error (" + status + "). Your values are kept; Retry.", true);
  });
  document.addEventListener("htmx:afterRequest", function (e) {
    var form = savingForm(e);
    if (!form || !pending || pending.outcome !== "signed-out") { return; }
    pending = null;
    showState(form, "Not saved: you were signed out. Your values are kept: sign in again in a new tab, then press Retry.", true);
  });
  document.addEventListener("click", function (e) {
    var retry = e.target && e.target.closest ? e.target.closest("[data-save-retry]") : null;
    if (!retry) { return; }
    var form = retry.closest("form");
    if (form && typeof form.requestSubmit === "function") { form.requestSubmit(); }
    else if (form && window.htmx) { window.htmx.trigger(form, "submit"); }
  });
})();
