// The console's own script: progressive enhancement only; every page works without it.
"use strict";
(function () {
  const main = document.getElementById("main");
  const csrf = main ? main.dataset.csrf : "";

  async function post(url, body) {
    const response = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded", "x-csrf-token": csrf },
      body: new URLSearchParams(body),
    });
    return response.json();
  }

  // Live counts/validation: a textarea with data-check="URL" posts its text as it changes
  // and shows the answer in the element named by data-out.
  document.querySelectorAll("textarea[data-check]").forEach((area) => {
    const out = document.getElementById(area.dataset.out);
    let timer = null;
    const check = async () => {
      try {
        const answer = await post(area.dataset.check, { definition: area.value });
        out.textContent = answer.message;
        out.className = answer.ok ? "flash ok" : "flash bad";
      } catch (e) {
        out.textContent = "Could not check: " + e;
        out.className = "flash bad";
      }
    };
    area.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(check, 400); });
    check();
  });

  // Live pages: data-live="URL" is re-fetched when the server says something changed
  // (a WebSocket at data-live-ws), or every data-live-seconds as a fallback.
  document.querySelectorAll("[data-live]").forEach((box) => {
    const refresh = async () => {
      const response = await fetch(box.dataset.live, { headers: { accept: "text/html" } });
      if (response.ok) box.innerHTML = await response.text();
    };
    if (box.dataset.liveWs && "WebSocket" in window) {
      const url = new URL(box.dataset.liveWs, location.href);
      url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
      const connect = () => {
        const socket = new WebSocket(url);
        socket.onmessage = refresh;
        socket.onclose = () => setTimeout(connect, 3000);
      };
      connect();
    }
    const seconds = Number(box.dataset.liveSeconds || 0);
    if (seconds > 0) setInterval(refresh, seconds * 1000);
  });
})();
