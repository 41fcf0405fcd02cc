// AITBC explorer: relative times, copy buttons, and the home page's live feed.
// Every page works without this script; it only keeps things current.
(function () {
  "use strict";

  function relative(iso) {
    var seconds = Math.round((Date.now() - Date.parse(iso)) / 1000);
    var future = seconds < 0;
    seconds = Math.abs(seconds);
    if (seconds < 5) return "just now";
    var units = [[60, "s", 1], [3600, "min", 60], [86400, "h", 3600], [Infinity, "d", 86400]];
    for (var i = 0; i < units.length; i++) {
      if (seconds < units[i][0]) {
        var amount = Math.floor(seconds / units[i][2]) + " " + units[i][1];
        return future ? "in " + amount : amount + " ago";
      }
    }
    return "";
  }

  function refreshTimes(root) {
    (root || document).querySelectorAll("time[data-rel]").forEach(function (el) {
      var text = relative(el.getAttribute("datetime"));
      if (text) el.textContent = text;
    });
  }

  function setupCopy() {
    document.querySelectorAll("button[data-copy]").forEach(function (button) {
      var source = document.getElementById(button.getAttribute("data-copy"));
      if (!source || !navigator.clipboard) return;
      button.hidden = false;
      button.addEventListener("click", function () {
        navigator.clipboard.writeText(source.textContent).then(function () {
          button.textContent = "Copied";
          setTimeout(function () { button.textContent = "Copy"; }, 1500);
        });
      });
    });
  }

  function setupLive() {
    var live = document.getElementById("live");
    if (!live || !window.WebSocket) return;
    var status = document.getElementById("live-status");
    var tip = document.getElementById("tip-height");
    var seq = -1, delay = 1000, loading = false, pending = false, socket = null;

    function show(on, text) {
      status.hidden = false;
      status.classList.toggle("on", on);
      status.textContent = text;
    }

    function highest() {
      var top = -1;
      live.querySelectorAll("tr[data-height]").forEach(function (row) {
        top = Math.max(top, parseInt(row.getAttribute("data-height"), 10));
      });
      return top;
    }

    function reload() {
      if (loading) { pending = true; return; }
      loading = true;
      var before = highest();
      fetch(live.getAttribute("data-src"), { cache: "no-store" })
        .then(function (response) { return response.ok ? response.text() : Promise.reject(response.status); })
        .then(function (html) {
          var doc = new DOMParser().parseFromString(html, "text/html");
          live.replaceChildren.apply(live, Array.prototype.slice.call(doc.body.childNodes));
          live.querySelectorAll("tr[data-height]").forEach(function (row) {
            if (before >= 0 && parseInt(row.getAttribute("data-height"), 10) > before) row.classList.add("fresh");
          });
          refreshTimes(live);
        })
        .catch(function () { /* the next block retries */ })
        .then(function () {
          loading = false;
          if (pending) { pending = false; setTimeout(reload, 300); }
        });
    }

    function connect() {
      var scheme = location.protocol === "https:" ? "wss://" : "ws://";
      socket = new WebSocket(scheme + location.host + "/explorer/ws");
      socket.onopen = function () { delay = 1000; show(true, "live"); };
      socket.onmessage = function (event) {
        var message;
        try { message = JSON.parse(event.data); } catch (e) { return; }
        if (message.type === "block") {
          if (seq >= 0 && message.seq !== seq + 1) socket.send(JSON.stringify({ type: "snapshot" }));
          seq = message.seq;
          if (tip) { tip.textContent = message.seq.toLocaleString("en-US"); tip.setAttribute("href", "/blocks/" + message.seq); }
          reload();
        } else if (message.type === "snapshot") {
          if (message.seq !== seq) { seq = message.seq; reload(); }
        }
      };
      socket.onclose = function () {
        show(false, "reconnecting…");
        setTimeout(connect, delay);
        delay = Math.min(delay * 2, 15000);
      };
    }
    connect();
  }

  document.addEventListener("DOMContentLoaded", function () {
    refreshTimes();
    setInterval(refreshTimes, 5000);
    setupCopy();
    setupLive();
  });
})();
