// scopegate console: Copy buttons, confirmations, and the per-API scope toggles.
// Everything also works without this file, except Copy (select the text instead).
(function () {
  "use strict";

  document.addEventListener("click", function (e) {
    var copy = e.target.closest("[data-copy]");
    if (copy) {
      var src = document.getElementById(copy.getAttribute("data-copy"));
      if (src) {
        var text = src.textContent.trim();
        var done = function () {
          var old = copy.textContent;
          copy.textContent = "Copied";
          copy.classList.add("copied");
          setTimeout(function () { copy.textContent = old; copy.classList.remove("copied"); }, 1500);
        };
        if (navigator.clipboard && window.isSecureContext) {
          navigator.clipboard.writeText(text).then(done, function () { select(src); });
        } else {
          select(src);
          try { document.execCommand("copy"); done(); } catch (err) { /* selected for manual copy */ }
        }
      }
      e.preventDefault();
      return;
    }
    var confirmBtn = e.target.closest("button[data-confirm]");
    if (confirmBtn && !window.confirm(confirmBtn.getAttribute("data-confirm"))) {
      e.preventDefault();
      return;
    }
    var clear = e.target.closest("[data-clear-scopes]");
    if (clear && !clear.defaultPrevented) {
      var form = clear.form;
      if (form) {
        form.querySelectorAll("input[name=api], input[name=scope]").forEach(function (i) { i.checked = false; });
        syncAll();
      }
    }
  });

  function select(el) {
    var range = document.createRange();
    range.selectNodeContents(el);
    var sel = window.getSelection();
    sel.removeAllRanges();
    sel.addRange(range);
  }

  function rowOf(el) { return el.closest(".scope-row"); }

  function sync(row) {
    var toggle = row.querySelector("input[name=api]");
    row.classList.toggle("on", toggle.checked);
  }

  function syncAll() { document.querySelectorAll(".scope-row").forEach(sync); }

  document.addEventListener("change", function (e) {
    var t = e.target;
    if (t.name === "api") {
      var row = rowOf(t);
      var methods = row.querySelectorAll("input[name=scope]");
      var any = Array.prototype.some.call(methods, function (m) { return m.checked; });
      if (t.checked && !any && methods.length) { methods[0].checked = true; }
      if (!t.checked) { methods.forEach(function (m) { m.checked = false; }); }
      sync(row);
    } else if (t.name === "scope") {
      var r = rowOf(t);
      var toggle = r.querySelector("input[name=api]");
      var some = Array.prototype.some.call(r.querySelectorAll("input[name=scope]"), function (m) { return m.checked; });
      toggle.checked = some;
      sync(r);
    }
  });

  document.addEventListener("DOMContentLoaded", syncAll);
})();
