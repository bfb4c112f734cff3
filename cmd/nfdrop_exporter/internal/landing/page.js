// Refreshes the numbers from the JSON summary; the page is complete without it.
(function () {
  var root = document.getElementById("nfdrop-summary");
  if (!root || !window.fetch) return;
  var api = root.getAttribute("data-api");
  var every = 1000 * (parseInt(root.getAttribute("data-refresh"), 10) || 5);
  // Same formats as the server (landing.go).
  function pct(x) { return (x * 100).toFixed(1) + "%"; }
  function rate(x) { return (x || 0).toFixed(2); }
  function age(s) { return s === null || s === undefined ? "never" : s.toFixed(1) + " s ago"; }
  function hms(t) { return String(t).substr(11, 8); }
  var classNames = ["teardown", "handshake", "probe", "other", "fragment", "malformed"];
  function el(id) { return document.getElementById(id); }
  function text(id, v) { var e = el(id); if (e && e.textContent !== String(v)) e.textContent = v; }
  function esc(s) { return String(s).replace(/[&<>"]/g, function (c) { return {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"}[c]; }); }
  function bars(prefix, counts) {
    var x = 0;
    counts.forEach(function (c) {
      var r = el(prefix + c.name);
      if (!r) return;
      var w = c.share * 1000;
      r.setAttribute("x", x.toFixed(1));
      r.setAttribute("width", w.toFixed(1));
      var t = r.querySelector("title");
      if (t) t.textContent = c.name + ": " + c.packets;
      x += w;
    });
  }
  function rows(id, items, cols) {
    var body = el(id);
    if (!body) return;
    var html = items.map(function (it) {
      return '<tr data-name="' + esc(it.name || it.source) + '">' + cols.map(function (f) {
        var v = f(it);
        return "<td" + (typeof v === "number" ? ' class="n"' : "") + ">" + esc(v) + "</td>";
      }).join("") + "</tr>";
    }).join("");
    body.innerHTML = html || '<tr><td colspan="' + cols.length + '" class="note">none</td></tr>';
  }
  var countCols = [function (c) { return c.name; }, function (c) { return c.packets; }, function (c) { return pct(c.share); }];
  var sourceCols = [
    function (s) { return s.source; }, function (s) { return s.packets; }, function (s) { return s.error; },
    function (s) { return classNames.filter(function (c) { return s.classes[c] > 0; }).map(function (c) { return c + " " + s.classes[c]; }).join(", "); },
    function (s) { return hms(s.last_seen); }
  ];
  function update(doc) {
    text("generated-at", hms(doc.generated_at));
    doc.groups.forEach(function (g) {
      var p = "g" + g.group + "-";
      var up = el(p + "up");
      if (up) { up.textContent = g.up ? "up" : "down"; up.className = "badge " + (g.up ? "up" : "down"); }
      var v = el(p + "verdict");
      if (v) { v.textContent = g.verdict; v.className = "verdict " + g.level; }
      text(p + "age", age(g.last_packet_age_seconds));
      text(p + "packets", g.packets);
      text(p + "pps", rate(g.rate.packets_per_second));
      text(p + "window", g.rate.window_seconds.toFixed(0));
      text(p + "lost", g.lost);
      text(p + "lps", rate(g.rate.lost_per_second));
      text(p + "teardown-share", pct(g.teardown_share));
      bars(p + "bar-", g.classes);
      g.classes.forEach(function (c) {
        text(p + "class-" + c.name, c.packets);
        text(p + "class-" + c.name + "-share", pct(c.share));
        text(p + "class-" + c.name + "-rate", rate(c.per_second));
      });
      if (g.evidence) {
        var e = g.evidence, t = e.proven + e.unproven + e.skipped;
        text(p + "proven", e.proven); text(p + "unproven", e.unproven); text(p + "skipped", e.skipped);
        bars(p + "ebar-", ["proven", "unproven", "skipped"].map(function (n) { return {name: n, packets: e[n], share: t ? e[n] / t : 0}; }));
      }
      rows(p + "ports", g.ports, countCols);
      rows(p + "flags", g.flags, countCols);
      if (g.reasons) rows(p + "reasons", g.reasons, countCols);
      if (g.sources) {
        ["addresses", "networks"].forEach(function (lv) {
          var s = g.sources[lv];
          rows(p + lv, s.entries, sourceCols);
          var a = el(p + lv + "-accuracy");
          if (a) a.textContent = (s.exact ? "exact counts" : "counts over by at most " + s.error_bound) + " · " + s.total + " packets · " + s.capacity + " counters";
        });
      }
    });
    root.setAttribute("data-updated", doc.generated_at);
  }
  function tick() {
    fetch(api, {credentials: "same-origin", cache: "no-store"})
      .then(function (r) { if (!r.ok) throw new Error(r.status); return r.json(); })
      .then(update)
      .catch(function () { root.setAttribute("data-error", "1"); })
      .then(function () { setTimeout(tick, every); });
  }
  setTimeout(tick, every);
})();
