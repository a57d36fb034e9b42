// The kiosk's only script: the on-screen keypad, the lock-out countdown, and
// the return to the start screen when nobody touches it. Served by the hub.
(function () {
  "use strict";
  var body = document.body;
  var idle = parseInt(body.getAttribute("data-idle-s") || "45", 10) * 1000;
  var home = body.getAttribute("data-home") || "/kiosk";
  var timer = null;
  function restart() {
    if (timer) { clearTimeout(timer); }
    if (location.pathname !== home) { timer = setTimeout(function () { location.href = home; }, idle); }
  }
  ["pointerdown", "keydown", "touchstart"].forEach(function (e) { document.addEventListener(e, restart, true); });
  restart();

  var display = document.getElementById("code");
  document.querySelectorAll("[data-key]").forEach(function (b) {
    b.addEventListener("click", function () {
      if (!display) { return; }
      var k = b.getAttribute("data-key");
      if (k === "back") { display.value = display.value.slice(0, -1); }
      else if (k === "clear") { display.value = ""; }
      else if (display.value.length < 32) { display.value += k; }
    });
  });
  document.addEventListener("keydown", function (e) {  // a USB keypad on the kiosk works too
    if (!display) { return; }
    if (/^[0-9]$/.test(e.key)) { display.value += e.key; e.preventDefault(); }
    else if (e.key === "Backspace") { display.value = display.value.slice(0, -1); e.preventDefault(); }
    else if (e.key === "Enter") { document.getElementById("code-form").submit(); }
  });

  document.querySelectorAll("[data-countdown]").forEach(function (el) {
    var left = parseInt(el.getAttribute("data-countdown"), 10);
    var secs = el.querySelector(".secs");
    var submit = document.getElementById("submit");
    if (submit && left > 0) { submit.disabled = true; }
    var tick = setInterval(function () {
      left -= 1;
      if (secs) { secs.textContent = String(Math.max(0, left)); }
      if (left <= 0) { clearInterval(tick); if (submit) { submit.disabled = false; } el.hidden = true; }
    }, 1000);
  });
})();
