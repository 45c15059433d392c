// KAP Clinic: the few progressive enhancements the pages use. No page carries inline script: the
// Content-Security-Policy header (kapclinic.core.middleware.SecurityHeadersMiddleware) allows scripts
// from this site only, so behaviour is attached here through data attributes.
(function () {
  "use strict";
  // <select data-autosubmit>: submit the form as soon as the choice changes (e.g. the clinic switcher).
  document.addEventListener("change", function (e) {
    var t = e.target;
    if (t && t.matches && t.matches("select[data-autosubmit]") && t.form) { t.form.submit(); }
  });
  // <button data-print>: open the browser's print dialogue (printable records).
  document.addEventListener("click", function (e) {
    var t = e.target && e.target.closest ? e.target.closest("[data-print]") : null;
    if (t) { e.preventDefault(); window.print(); }
  });
  // Inside [data-swap-errors], htmx shows the server's answer to a refused save (400 with the form's
  // errors, 409 when someone else saved first) instead of silently ignoring it.
  document.addEventListener("htmx:beforeSwap", function (e) {
    var status = e.detail.xhr.status;
    if ((status === 400 || status === 409) && e.detail.elt && e.detail.elt.closest("[data-swap-errors]")) {
      e.detail.shouldSwap = true;
      e.detail.isError = false;
    }
  });
  // [data-checklist] sections with a [data-none-of-these] button (intake assessment): one press answers
  // "No" to each question of the section still "Not known yet". A question already answered (Yes or No)
  // is never changed, and the section says how many it set, so nothing is answered by accident.
  document.querySelectorAll("[data-checklist] [data-none-of-these]").forEach(function (b) { b.hidden = false; });
  document.addEventListener("click", function (e) {
    var b = e.target && e.target.closest ? e.target.closest("[data-none-of-these]") : null;
    if (!b) { return; }
    var section = b.closest("[data-checklist]");
    var set = 0, kept = 0;
    section.querySelectorAll('input[type="radio"][value="unknown"]').forEach(function (unknown) {
      var no = section.querySelector('input[type="radio"][name="' + unknown.name + '"][value="no"]');
      if (!no) { return; }
      if (unknown.checked) { no.checked = true; set += 1; } else { kept += 1; }
    });
    var status = section.querySelector("[data-none-of-these-status]");
    if (status) {
      status.textContent = set + " set to No" + (kept ? "; " + kept + " already answered, left as they were." : ".");
    }
  });
  // <form data-autosave> (the notes editor): its htmx requests go one at a time (hx-sync on the form),
  // so "Sign note" waits for an autosave in flight and sends the version that autosave returned.
  function autosaveForm(elt) {
    return elt && elt.closest ? elt.closest("form[data-autosave]") : null;
  }
  // An autosave always goes to the form's own address: htmx would otherwise send it to the formaction of
  // the button clicked last (Sign note).
  document.addEventListener("htmx:configRequest", function (e) {
    var elt = e.detail.elt;
    if (elt && elt.matches && elt.matches("form[data-autosave]")) { e.detail.path = elt.getAttribute("hx-post"); }
  });
  // Once a [data-final] button (Sign note) has asked to send, its request carries all the text: later
  // autosaves and saves of the form are not sent (nor can they push it out of the queue). If the server
  // refuses it (the page stays), the form saves again.
  // A second click on the final button while its request waits or runs is not sent either.
  var finalClick = new WeakMap();
  document.addEventListener("htmx:confirm", function (e) {
    var elt = e.detail.elt;
    var form = autosaveForm(elt);
    if (!form) { return; }
    if (elt.hasAttribute("data-final")) {
      // htmx asks again when it sends a queued request: the same click is let through.
      var first = finalClick.get(form);
      if (first && first !== e.detail.triggeringEvent) { e.preventDefault(); return; }
      finalClick.set(form, e.detail.triggeringEvent);
      form.setAttribute("data-closing", "");
      return;
    }
    if (form.hasAttribute("data-closing")) { e.preventDefault(); }
  });
  document.addEventListener("htmx:afterRequest", function (e) {
    var elt = e.detail.elt;
    var form = autosaveForm(elt);
    var xhr = e.detail.xhr;
    var leaving = xhr && xhr.status < 400 && xhr.getResponseHeader("HX-Redirect");
    if (form && elt.hasAttribute("data-final") && !leaving) {
      finalClick.delete(form);
      form.removeAttribute("data-closing");
    }
  });
})();
