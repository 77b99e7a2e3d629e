/* OmniCX web chat widget: one thread per customer, live over WebSocket.
 *
 *   <script src="https://omnicx.example/c/widget.js"></script>
 *   <script>
 *     OmniCXChat.start({host: "https://omnicx.example", writeKey: "wk_...",
 *       // a signed-in customer (identity verification; the hash comes from your backend):
 *       userId: "u-1", userHash: "<hex HMAC-SHA256 of the user id>",
 *       // otherwise the visitor's anonymous id (analytics.js's is used when present):
 *       anonymousId: "..."});
 *   </script>
 *
 * Without a user id the widget uses analytics.js's anonymous id, or one of its own kept in
 * localStorage, so the thread survives reloads and follows the visitor when she signs in.
 * OmniCXChat.start returns the chat object: chat.send(text), chat.typing(), chat.close();
 * options.onEvent(event) sees every event (message, typing, status, assignment, read, error).
 */
(function (global) {
  "use strict";

  var KEY = "omnicx_chat_anonymous_id";

  function anonymousId(options) {
    if (options.anonymousId) { return options.anonymousId; }
    try {
      var a = global.analytics && global.analytics.user && global.analytics.user();
      if (a && a.anonymousId && a.anonymousId()) { return a.anonymousId(); }
    } catch (e) { /* analytics.js not loaded */ }
    var id = null;
    try { id = global.localStorage.getItem(KEY); } catch (e) { /* storage blocked */ }
    if (!id) {
      id = "anon-" + Math.random().toString(36).slice(2) + Date.now().toString(36);
      try { global.localStorage.setItem(KEY, id); } catch (e) { /* storage blocked */ }
    }
    return id;
  }

  function Chat(options) {
    this.options = options;
    this.host = (options.host || "").replace(/\/$/, "");
    this.seen = {};
    this.retry = 1000;
    this.closed = false;
    this.onEvent = options.onEvent || function () {};
    this.params = {write_key: options.writeKey || ""};
    if (options.thread) { this.params.thread = options.thread; }
    if (options.userId) {
      this.params.user_id = options.userId;
      this.params.user_hash = options.userHash || "";
    }
    if (!options.thread) { this.params.anonymous_id = anonymousId(options); }
    if (options.channel) { this.params.channel = options.channel; }
    if (options.ui !== false && global.document) { this.render(); }
  }

  Chat.prototype.query = function () {
    var p = this.params;
    return Object.keys(p).map(function (k) {
      return encodeURIComponent(k) + "=" + encodeURIComponent(p[k]);
    }).join("&");
  };

  Chat.prototype.connect = function () {
    var self = this;
    var ws = new global.WebSocket(this.host.replace(/^http/, "ws") + "/c/ws?" + this.query());
    this.socket = ws;
    ws.onopen = function () { self.retry = 1000; };
    ws.onmessage = function (e) { self.receive(JSON.parse(e.data)); };
    ws.onclose = function (e) {
      if (self.closed || e.code === 4401) { return; }
      setTimeout(function () { self.connect(); }, self.retry);
      self.retry = Math.min(self.retry * 2, 30000);
    };
    return this;
  };

  Chat.prototype.receive = function (event) {
    var self = this;
    if (event.type === "ready") {
      event.messages.forEach(function (m) { self.show(m); });
    } else if (event.type === "message") {
      this.show(event.message);
    }
    this.onEvent(event);
  };

  Chat.prototype.show = function (message) {
    if (this.seen[message.id]) { return; }
    this.seen[message.id] = true;
    if (!this.list) { return; }
    var line = global.document.createElement("div");
    line.className = "omnicx-msg omnicx-" + message.author;
    line.textContent = message.body;  // text only: never HTML from the thread
    line.style.cssText = "margin:4px 0;padding:6px 10px;border-radius:10px;max-width:80%;" +
      (message.author === "customer" ? "background:#2563eb;color:#fff;margin-left:auto" :
        "background:#f3f4f6;color:#111");
    this.list.appendChild(line);
    this.list.scrollTop = this.list.scrollHeight;
    if (message.author !== "customer" && this.socket && this.socket.readyState === 1) {
      this.socket.send(JSON.stringify({type: "read", up_to: message.id}));
    }
  };

  Chat.prototype.send = function (text) {
    if (!text || !this.socket || this.socket.readyState !== 1) { return false; }
    this.socket.send(JSON.stringify({type: "message", body: text}));
    return true;
  };

  Chat.prototype.typing = function () {
    if (this.socket && this.socket.readyState === 1) {
      this.socket.send(JSON.stringify({type: "typing"}));
    }
  };

  Chat.prototype.close = function () {
    this.closed = true;
    if (this.socket) { this.socket.close(); }
  };

  Chat.prototype.render = function () {
    var self = this, doc = global.document;
    var box = doc.createElement("div");
    box.id = "omnicx-chat";
    box.style.cssText = "position:fixed;right:16px;bottom:16px;width:320px;font:14px sans-serif;" +
      "background:#fff;border:1px solid #ddd;border-radius:12px;box-shadow:0 4px 16px #0002";
    this.list = doc.createElement("div");
    this.list.style.cssText = "height:320px;overflow-y:auto;padding:8px;display:flex;" +
      "flex-direction:column";
    var form = doc.createElement("form");
    var input = doc.createElement("input");
    input.placeholder = "Write a message…";
    input.style.cssText = "width:100%;box-sizing:border-box;padding:8px;border:0;" +
      "border-top:1px solid #eee";
    input.oninput = function () { self.typing(); };
    form.onsubmit = function (e) {
      e.preventDefault();
      if (self.send(input.value.trim())) { input.value = ""; }
    };
    form.appendChild(input);
    box.appendChild(this.list);
    box.appendChild(form);
    (doc.body || doc.documentElement).appendChild(box);
  };

  global.OmniCXChat = {
    start: function (options) { return new Chat(options || {}).connect(); },
    Chat: Chat
  };
})(typeof window !== "undefined" ? window : this);
