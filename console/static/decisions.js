// The decisions page, live: rows arrive over an EventSource from
// /ui/decisions/stream (filtered by the server) and are prepended. Text
// only (textContent): nothing a record holds is read as HTML.
"use strict";
(function () {
  var body = document.getElementById("rows");
  var status = document.getElementById("live-status");
  if (!body || !body.dataset.stream || !window.EventSource) {
    return;
  }
  var maxRows = 500;
  function cell(tr, content) {
    var td = document.createElement("td");
    if (typeof content === "string") {
      td.textContent = content;
    } else if (content) {
      td.appendChild(content);
    }
    tr.appendChild(td);
  }
  function link(href, text) {
    var a = document.createElement("a");
    a.href = href;
    a.textContent = text;
    return a;
  }
  var es = new EventSource(body.dataset.stream);
  es.addEventListener("open", function () {
    status.textContent = "Live: new decisions appear at the top.";
    body.dataset.live = "true";
  });
  es.addEventListener("error", function () {
    status.textContent = "The live view is reconnecting…";
    body.dataset.live = "false";
  });
  es.addEventListener("decision", function (ev) {
    var d = JSON.parse(ev.data);
    for (var i = 0; i < body.rows.length; i++) {
      if (body.rows[i].dataset.id === d.id) {
        return; // on the page already
      }
    }
    var tr = document.createElement("tr");
    tr.dataset.id = d.id;
    tr.className = d.decision === "deny" ? "deny" : "allow";
    cell(tr, link("/ui/decisions/" + encodeURIComponent(d.id), d.time));
    cell(tr, d.agent);
    cell(tr, d.action);
    cell(tr, d.resource);
    var badge = document.createElement("span");
    badge.className = "badge " + tr.className;
    badge.textContent = d.decision;
    cell(tr, badge);
    cell(tr, d.reason);
    cell(tr, d.call);
    cell(tr, /^[0-9a-f]{32}$/.test(d.traceId) ? link("/ui/traces/" + d.traceId, "chain") : "");
    body.insertBefore(tr, body.firstChild);
    while (body.rows.length > maxRows) {
      body.deleteRow(-1);
    }
  });
})();
