// KAP Clinic: the day calendar's geometry (scheduling/day.html). The view computes each block's offset
// and height in pixels; the page carries them as data attributes because the Content-Security-Policy
// (style-src 'self') refuses inline style attributes, and they are applied here through the CSSOM,
// which the policy allows. Loaded at the end of the page, so the blocks are placed before first paint.
(function () {
  "use strict";
  function px(value) {
    var n = Number(value);
    return isFinite(n) ? n + "px" : "";
  }
  document.querySelectorAll("[data-cal-day-height]").forEach(function (el) {
    el.style.setProperty("--cal-height", px(el.dataset.calDayHeight));
  });
  document.querySelectorAll("[data-cal-top]").forEach(function (el) {
    el.style.top = px(el.dataset.calTop);
  });
  document.querySelectorAll("[data-cal-height]").forEach(function (el) {
    el.style.height = px(el.dataset.calHeight);
  });
})();
