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

    // Fields as the form shows them, top to bottom (the error summary
    // follows this order too).
    var FIELDS = ["project_key", "source_environment_key", "name_template", "key_prefix", "color", "ttl_value"];
    // Fields changed since the page was rendered: a problem the server
    // reported on one of them (e.g. from LaunchDarkly) may no longer hold.
    var dirty = {};
    var badge = document.getElementById("saved-badge");
    function setBadge(label, tone) {
      if (!badge) return;
      badge.textContent = label;
      badge.className = "badge badge-" + tone;
    }

    function describedBy(input, id, on) {
      var ids = (input.getAttribute("aria-describedby") || "").split(/\s+/).filter(function (x) {
        return x && x !== id;
      });
      if (on) ids.push(id);
      input.setAttribute("aria-describedby", ids.join(" "));
    }

    // Shows the live check's problems next to their fields, keeps the
    // server's problems on fields not touched since, and rebuilds the error
    // summary (in field order) from what is shown.
    function showFieldErrors(errors) {
      var byField = {};
      errors.forEach(function (e) {
        if (!(e[0] in byField)) byField[e[0]] = e[1];
      });
      FIELDS.forEach(function (field) {
        var input = form.querySelector("#" + field);
        if (!input) return;
        var id = field + "-error";
        var shown = document.getElementById(id);
        var message = byField[field];
        if (message) {
          if (!shown) {
            shown = document.createElement("p");
            shown.className = "field-error";
            shown.id = id;
            var box = input.closest(".field");
            var button = box.querySelector("button");
            box.insertBefore(shown, button && button.parentNode === box ? button : null);
          }
          shown.textContent = message;
          shown.setAttribute("data-live", "true");
          input.setAttribute("aria-invalid", "true");
          describedBy(input, id, true);
        } else if (shown && (shown.hasAttribute("data-live") || dirty[field])) {
          shown.remove();
          input.setAttribute("aria-invalid", "false");
          describedBy(input, id, false);
        }
      });
      updateSummary();
    }

    function updateSummary() {
      var summary = document.getElementById("error-summary");
      var items = [];
      FIELDS.forEach(function (field) {
        var shown = document.getElementById(field + "-error");
        if (shown) items.push([field, shown.textContent]);
      });
      if (!summary) {
        refreshBadge();
        return;
      }
      var list = summary.querySelector("ul");
      Array.prototype.forEach.call(list.querySelectorAll("li[data-field]"), function (li) { li.remove(); });
      items.forEach(function (item) {
        var li = document.createElement("li");
        li.setAttribute("data-field", item[0]);
        var a = document.createElement("a");
        a.href = "#" + item[0];
        a.textContent = item[1];
        li.appendChild(a);
        list.appendChild(li);
      });
      var left = list.querySelectorAll("li").length;
      if (!left) {
        summary.remove();
      } else {
        summary.querySelector("h2").textContent = "Please fix " + (left === 1 ? "this problem" : "these problems") + " before saving";
      }
      refreshBadge();
    }

    // Never "Saved" beside problems or unsaved changes.
    function refreshBadge() {
      if (document.getElementById("error-summary") || form.querySelector(".field-error")) {
        setBadge("Not saved", "bad");
      } else if (Object.keys(dirty).length) {
        setBadge("Unsaved changes", "warn");
      }
    }

    function showPreview(p) {
      var fields = document.getElementById("preview-fields");
      var problem = document.getElementById("preview-problem");
      if (fields) fields.hidden = !p;
      if (problem) problem.hidden = !!p;
      if (!p) return;
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
    }

    var timer = null;
    var asked = 0;
    function updatePreview() {
      var data = new FormData(form);
      data.delete("csrf_token");
      data.delete("intent");
      var query = new URLSearchParams(data).toString();
      var mine = ++asked;
      getJson("/settings/preview?" + query).then(function (r) {
        if (mine !== asked) return; // a newer answer is on its way
        if (r.ok && r.body.preview) {
          showFieldErrors([]);
          showPreview(r.body.preview);
        } else if (r.body && r.body.errors) {
          // 422: the draft has problems; say so now, not on save.
          showFieldErrors(r.body.errors);
          showPreview(null);
        }
      }).catch(function () { /* the server-rendered preview stays */ });
    }
    function edited(e) {
      if (e.target && e.target.name) dirty[e.target.name === "ttl_unit" ? "ttl_value" : e.target.name] = true;
      refreshBadge();
    }
    form.addEventListener("input", function (e) {
      edited(e);
      clearTimeout(timer);
      timer = setTimeout(updatePreview, 250);
    });
    form.addEventListener("change", function (e) {
      edited(e);
      if (e.target !== project) updatePreview();
    });

    var summary = document.getElementById("error-summary");
    if (summary) summary.focus();
  }

  // A refused API token: the form is open again, ready for another try.
  function setupTokenRetry() {
    var retry = document.querySelector("#api-token[data-retry]");
    var input = retry && retry.querySelector("#api_token");
    if (input) input.focus();
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

  // The environments page stays live while it is open and visible: it asks
  // the cheap /environments/version (a conditional request, answered 304
  // while nothing changed) and, when the list changed, fetches the page and
  // merges in rows that appeared, changed or went. Rows in use (an open
  // confirmation, revealed keys, focus) are left alone until they are not.
  function setupLive() {
    var region = document.getElementById("environments-region");
    if (!region) return;
    var here = new URL(window.location.href);
    var pageUrl = new URL(here.toString());
    pageUrl.searchParams.set("poll", "1");
    var versionUrl = new URL("/environments/version", here);
    ["cursor", "show"].forEach(function (name) {
      var value = here.searchParams.get(name);
      if (value) versionUrl.searchParams.set(name, value);
    });
    var version = region.getAttribute("data-version") || "";
    var timer = null;
    var failures = 0;
    var rounds = 0;

    function busy() {
      var table = document.getElementById("environments");
      return !!table && table.getAttribute("data-busy") === "true";
    }
    function schedule(ms) {
      clearTimeout(timer);
      timer = null;
      if (document.visibilityState === "hidden") return; // resumed when shown
      timer = setTimeout(tick, ms);
    }
    function next() {
      if (failures) return Math.min(30000, 5000 * failures);
      return busy() ? 1500 : 4000;
    }
    function rowKey(row) {
      return row.getAttribute("data-ephemeral-id") + "/" + row.getAttribute("data-key");
    }
    function inUse(row) {
      return !!(row.querySelector("details[open]") || row.querySelector(".keys") ||
        row.contains(document.activeElement));
    }
    function announce(text) {
      var status = document.getElementById("live-status");
      if (status) status.textContent = text;
    }

    // Returns false when a row in use kept an older state.
    function merge(doc) {
      var fresh = doc.getElementById("environments-region");
      if (!fresh) return true;
      var current = document.getElementById("environments-region");
      var table = document.getElementById("environments");
      var freshTable = doc.getElementById("environments");
      if (!table || !freshTable) {
        current.replaceWith(document.importNode(fresh, true));
        announce("The list of environments was updated.");
        return true;
      }
      var complete = true;
      var added = 0;
      var body = table.tBodies[0];
      var byKey = {};
      Array.prototype.forEach.call(body.querySelectorAll("tr.env-row"), function (row) {
        byKey[rowKey(row)] = row;
      });
      var wanted = Array.prototype.map.call(freshTable.tBodies[0].querySelectorAll("tr.env-row"), function (row) {
        var mine = byKey[rowKey(row)];
        if (mine && mine.getAttribute("data-version") === row.getAttribute("data-version")) return mine;
        if (mine && inUse(mine)) {
          complete = false;
          return mine;
        }
        if (!mine) added += 1;
        return document.importNode(row, true);
      });
      // Rows that went first, then the rest in order: rows that stay never
      // move, so focus and open confirmations are kept.
      Array.prototype.forEach.call(body.querySelectorAll("tr.env-row"), function (row) {
        if (wanted.indexOf(row) < 0) {
          if (inUse(row) && row.contains(document.activeElement)) complete = false;
          row.remove();
        }
      });
      wanted.forEach(function (row, i) {
        var at = body.children[i];
        if (at === row) return;
        var mine = byKey[rowKey(row)];
        if (mine && mine !== row && mine.parentNode === body) {
          body.replaceChild(row, mine);
        } else {
          body.insertBefore(row, at || null);
        }
      });
      table.setAttribute("data-busy", freshTable.getAttribute("data-busy"));
      var pager = current.querySelector("nav.pager");
      var freshPager = fresh.querySelector("nav.pager");
      if (pager && freshPager) pager.replaceWith(document.importNode(freshPager, true));
      var note = document.getElementById("not-connected-note");
      var freshNote = doc.getElementById("not-connected-note");
      if (note && !freshNote) note.remove();
      if (!note && freshNote) current.insertBefore(document.importNode(freshNote, true), current.firstChild);
      if (added) announce(added === 1 ? "A new environment appeared." : added + " new environments appeared.");
      return complete;
    }

    function refresh() {
      return fetch(pageUrl.toString(), { credentials: "same-origin", cache: "no-store" })
        .then(function (res) { return res.ok ? res.text() : Promise.reject(res.status); })
        .then(function (html) {
          var doc = new DOMParser().parseFromString(html, "text/html");
          var fresh = doc.getElementById("environments-region");
          var complete = merge(doc);
          // A row kept back makes the next round look again.
          version = complete && fresh ? fresh.getAttribute("data-version") || "" : "";
          var region = document.getElementById("environments-region");
          if (region && fresh) region.setAttribute("data-version", fresh.getAttribute("data-version") || "");
        });
    }

    function tick() {
      rounds += 1;
      // A page left open all day stops asking after about eight hours.
      if (rounds > 7200) return;
      fetch(versionUrl.toString(), {
        credentials: "same-origin",
        cache: "no-store",
        headers: { Accept: "application/json", "If-None-Match": '"' + version + '"' },
      })
        .then(function (res) {
          if (res.status === 304) return null;
          if (!res.ok) return Promise.reject(res.status);
          return res.json();
        })
        .then(function (body) {
          if (body && body.version !== version) return refresh();
          return null;
        })
        .then(function () {
          failures = 0;
          schedule(next());
        })
        .catch(function () {
          failures += 1;
          schedule(next());
        });
    }

    document.addEventListener("visibilitychange", function () {
      if (document.visibilityState === "visible") {
        schedule(0);
      } else {
        clearTimeout(timer);
        timer = null;
      }
    });
    schedule(next());
  }

  ready(function () {
    setupSettings();
    setupTokenRetry();
    setupReveal();
    setupCopy();
    setupLive();
  });
})();
