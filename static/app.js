// Progressive enhancement for the ld-eaas pages. Everything here also works
// without JavaScript (forms post, pages refresh); this only makes it smoother.
// Served from our own origin: the CSP allows no inline script.
(function () {
  "use strict";
  document.documentElement.classList.add("js");

  function ready(fn) {
    if (document.readyState === "loading") {
      document.addEventListener("DOMContentLoaded", fn);
    } else {
      fn();
    }
  }

  function getJson(url) {
    return fetch(url, {
      headers: { Accept: "application/json" },
      credentials: "same-origin",
    }).then(function (res) {
      return res.json().then(function (body) {
        return { ok: res.ok, body: body };
      });
    });
  }

  // ---- settings: source list follows the project, live preview ----------
  function setupSettings() {
    var form = document.getElementById("settings-form");
    if (!form) return;
    var project = form.querySelector("select#project_key");
    var source = form.querySelector("select#source_environment_key");

    if (project && source) {
      project.addEventListener("change", function () {
        var previous = source.value;
        source.disabled = true;
        source.setAttribute("aria-busy", "true");
        getJson("/settings/environments?project_key=" + encodeURIComponent(project.value))
          .then(function (r) {
            while (source.options.length) source.remove(0);
            if (!r.ok) {
              source.add(new Option((r.body.error && r.body.error.message) || "Could not load environments", ""));
              return;
            }
            source.add(new Option("Choose an environment…", ""));
            r.body.environments.forEach(function (e) {
              var label = e.name + " (" + e.key + ")" + (e.note ? " — " + e.note : "");
              source.add(new Option(label, e.key, false, e.key === previous));
            });
          })
          .catch(function () {
            while (source.options.length) source.remove(0);
            source.add(new Option("Could not load environments; try again", ""));
          })
          .then(function () {
            source.disabled = false;
            source.removeAttribute("aria-busy");
            updatePreview();
          });
      });
    }

    var timer = null;
    function updatePreview() {
      var data = new FormData(form);
      data.delete("csrf_token");
      data.delete("intent");
      var query = new URLSearchParams(data).toString();
      getJson("/settings/preview?" + query).then(function (r) {
        if (!r.ok || !r.body.preview) return;
        var p = r.body.preview;
        setText("preview-key", p.environment_key);
        setText("preview-name", p.environment_name);
        setText("preview-project", p.project_key || "—");
        setText("preview-source", p.source_environment_key || "—");
        setText("preview-expires", p.expires);
        var tags = document.getElementById("preview-tags");
        if (tags) {
          tags.textContent = "";
          p.tags.forEach(function (t) {
            var span = document.createElement("span");
            span.className = "tag";
            span.textContent = t;
            tags.appendChild(span);
          });
        }
        var swatch = document.getElementById("preview-swatch");
        if (swatch && /^[0-9a-fA-F]{6}$/.test(p.color)) {
          swatch.src = "data:image/svg+xml," + encodeURIComponent(
            "<svg xmlns='http://www.w3.org/2000/svg' width='16' height='16'><rect width='16' height='16' rx='4' fill='#" + p.color + "'/></svg>");
        }
      }).catch(function () { /* the server-rendered preview stays */ });
    }
    form.addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(updatePreview, 250);
    });
    form.addEventListener("change", function (e) {
      if (e.target !== project) updatePreview();
    });

    var summary = document.getElementById("error-summary");
    if (summary) summary.focus();
  }

  function setText(id, text) {
    var el = document.getElementById(id);
    if (el) el.textContent = text;
  }

  // ---- environments: reveal keys in place, copy, follow pending work ----
  function keyRow(label, value) {
    var row = document.createElement("div");
    row.className = "key-row";
    var l = document.createElement("span");
    l.className = "label";
    l.textContent = label;
    var code = document.createElement("code");
    code.textContent = value;
    code.setAttribute("data-copy", "");
    var button = document.createElement("button");
    button.type = "button";
    button.className = "secondary small copy";
    button.textContent = "Copy";
    row.appendChild(l);
    row.appendChild(code);
    row.appendChild(button);
    return row;
  }

  function setupReveal() {
    document.addEventListener("submit", function (e) {
      var form = e.target;
      if (!form.classList || !form.classList.contains("reveal")) return;
      e.preventDefault();
      var button = form.querySelector("button");
      if (button) button.disabled = true;
      fetch(form.action, {
        method: "POST",
        body: new URLSearchParams(new FormData(form)),
        headers: { Accept: "application/json" },
        credentials: "same-origin",
      })
        .then(function (res) {
          if (!res.ok) throw new Error("status " + res.status);
          return res.json();
        })
        .then(function (keys) {
          var cell = form.closest("tr").querySelector("td");
          var box = document.createElement("div");
          box.className = "keys";
          box.setAttribute("aria-live", "polite");
          box.appendChild(keyRow("SDK key", keys.sdk_key));
          if (keys.mobile_key) box.appendChild(keyRow("Mobile key", keys.mobile_key));
          cell.appendChild(box);
          form.remove();
        })
        .catch(function () {
          // Fall back to the plain form post, which renders the keys.
          form.submit();
        });
    });
  }

  function setupCopy() {
    document.addEventListener("click", function (e) {
      var button = e.target.closest && e.target.closest("button.copy");
      if (!button || !navigator.clipboard) return;
      var code = button.parentNode.querySelector("[data-copy]");
      if (!code) return;
      navigator.clipboard.writeText(code.textContent).then(function () {
        var before = button.textContent;
        button.textContent = "Copied";
        setTimeout(function () { button.textContent = before; }, 1500);
      });
    });
  }

  // While an environment is being created or deleted, fetch the page again
  // every few seconds and swap in what changed: the rows whose status moved
  // on, or the whole list when environments came or went.
  function setupPolling() {
    var region = document.getElementById("environments-region");
    var table = document.getElementById("environments");
    if (!region || !table || table.getAttribute("data-busy") !== "true") return;
    var url = new URL(window.location.href);
    url.searchParams.set("poll", "1");
    var rounds = 0;
    function rowIds(root) {
      return Array.prototype.map.call(root.querySelectorAll("tr.env-row"), function (r) {
        return r.getAttribute("data-ephemeral-id") + "/" + (r.getAttribute("data-status") === "deleted");
      }).join("\n");
    }
    function tick() {
      rounds += 1;
      fetch(url.toString(), { credentials: "same-origin" })
        .then(function (res) { return res.ok ? res.text() : Promise.reject(res.status); })
        .then(function (html) {
          var doc = new DOMParser().parseFromString(html, "text/html");
          var freshRegion = doc.getElementById("environments-region");
          if (!freshRegion) return false;
          var current = document.getElementById("environments");
          var fresh = doc.getElementById("environments");
          if (!current || !fresh || rowIds(current) !== rowIds(fresh)) {
            var replacement = document.importNode(freshRegion, true);
            document.getElementById("environments-region").replaceWith(replacement);
          } else {
            var freshRows = fresh.querySelectorAll("tr.env-row");
            Array.prototype.forEach.call(current.querySelectorAll("tr.env-row"), function (row, i) {
              var next = freshRows[i];
              var inUse = row.querySelector("details[open]") || row.querySelector(".keys");
              if (next && !inUse && next.getAttribute("data-status") !== row.getAttribute("data-status")) {
                row.replaceWith(document.importNode(next, true));
              }
            });
            current.setAttribute("data-busy", fresh.getAttribute("data-busy"));
          }
          return fresh !== null && fresh.getAttribute("data-busy") === "true";
        })
        .then(function (busy) {
          if (busy && rounds < 300) setTimeout(tick, 1500);
        })
        .catch(function () {
          if (rounds < 300) setTimeout(tick, 5000);
        });
    }
    setTimeout(tick, 1000);
  }

  ready(function () {
    setupSettings();
    setupReveal();
    setupCopy();
    setupPolling();
  });
})();
