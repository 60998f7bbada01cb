// Small progressive enhancements; every page works without them.
// 1. [data-poll]: refresh the element's content from its URL every 1.5 s until the fragment
//    carries [data-final] (a finished run), so the debugger updates live without reloading.
// 2. [data-wake]: count down to a delay's wake time (epoch seconds).
(function () {
  "use strict";
  function poll(el) {
    var url = el.getAttribute("data-poll");
    var timer = setInterval(function () {
      // Do not swap the content under a user who is using a control inside it.
      if (el.contains(document.activeElement) && document.activeElement !== document.body) return;
      fetch(url, { credentials: "same-origin", headers: { "X-Requested-With": "fetch" } })
        .then(function (r) {
          // Redirected (the session ended): show that page instead of pasting it in here.
          if (r.redirected) { window.location.href = r.url; return Promise.reject(0); }
          return r.ok ? r.text() : Promise.reject(r.status);
        })
        .then(function (html) {
          el.innerHTML = html;
          if (el.querySelector("[data-final]")) {
            clearInterval(timer);
            el.removeAttribute("data-poll");
          }
          tick();
        })
        .catch(function () { /* keep the last good content; try again next time */ });
    }, 1500);
  }
  function tick() {
    var now = Date.now() / 1000;
    document.querySelectorAll("[data-wake]").forEach(function (el) {
      // Count on the server's clock: the browser's may be off by more than the delay.
      if (!el.hasAttribute("data-offset")) {
        var server = parseFloat(el.getAttribute("data-server-now"));
        el.setAttribute("data-offset", isNaN(server) ? "0" : String(server - now));
      }
      var left = parseFloat(el.getAttribute("data-wake")) - now - parseFloat(el.getAttribute("data-offset"));
      el.textContent = left > 0 ? "in " + left.toFixed(1) + " s" : "due now";
    });
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-poll]").forEach(poll);
    tick();
    setInterval(tick, 250);
  });
})();
// 3. The template editor: re-render the preview as the content or sample data change.
(function () {
  "use strict";
  document.addEventListener("DOMContentLoaded", function () {
    var form = document.getElementById("template-form");
    if (!form) return;
    var target = document.getElementById("preview");
    var timer = null;
    var seq = 0;
    function refresh() {
      clearTimeout(timer);
      timer = setTimeout(function () {
        var mine = ++seq;
        fetch(form.getAttribute("data-preview"), {
          method: "POST",
          credentials: "same-origin",
          headers: { "Content-Type": "application/x-www-form-urlencoded" },
          body: new URLSearchParams(new FormData(form)).toString()
        }).then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
          .then(function (html) { if (mine === seq) target.innerHTML = html; })
          .catch(function () { /* keep the last preview */ });
      }, 300);
    }
    form.addEventListener("input", refresh);
    form.addEventListener("change", refresh);
    form.addEventListener("designer-change", refresh);
  });
})();
// 4. form[data-confirm]: ask before a destructive action (delete, revoke).
document.addEventListener("submit", function (event) {
  var form = event.target;
  var question = form.getAttribute && form.getAttribute("data-confirm");
  if (question && !window.confirm(question)) event.preventDefault();
}, true);
