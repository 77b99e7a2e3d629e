/* OmniCX in-app client: an inbox with live delivery.
 *
 *   <script src="https://omnicx.example/m/inapp.js"></script>
 *   const inbox = new OmniCXInbox({host: "https://omnicx.example", writeKey: "wk_...",
 *     userId: "u-1", userHash: "<hex HMAC-SHA256 of the user id, from your backend>",
 *     onMessage: (card) => show(card)});
 *   const {items, unread} = await inbox.list();
 *   inbox.connect();            // WebSocket, falling back to server-sent events
 *   await inbox.markRead(id); await inbox.dismiss(id); await inbox.click(id);
 *
 * Cards arrive once per id even if a delivery is repeated (reconnects, retries).
 */
(function (global) {
  "use strict";

  function OmniCXInbox(options) {
    this.host = (options.host || "").replace(/\/$/, "");
    this.auth = {write_key: options.writeKey, user_id: options.userId, user_hash: options.userHash};
    this.onMessage = options.onMessage || function () {};
    this.seen = {};
    this.retry = 1000;
    this.closed = false;
  }

  OmniCXInbox.prototype.query = function () {
    var a = this.auth;
    return "write_key=" + encodeURIComponent(a.write_key) + "&user_id=" +
      encodeURIComponent(a.user_id) + "&user_hash=" + encodeURIComponent(a.user_hash);
  };

  OmniCXInbox.prototype.request = function (method, path, body) {
    return fetch(this.host + path, {
      method: method,
      headers: {
        "Content-Type": "application/json",
        "X-OmniCX-Write-Key": this.auth.write_key,
        "X-OmniCX-User-Id": this.auth.user_id,
        "X-OmniCX-User-Hash": this.auth.user_hash
      },
      body: body === undefined ? undefined : JSON.stringify(body)
    }).then(function (response) {
      if (!response.ok) { throw new Error("OmniCX: HTTP " + response.status); }
      return response.json();
    });
  };

  OmniCXInbox.prototype.list = function (limit) {
    var self = this;
    return this.request("GET", "/api/inapp/messages?limit=" + (limit || 50)).then(function (page) {
      page.items.forEach(function (card) { self.seen[card.id] = true; });
      return page;
    });
  };
  OmniCXInbox.prototype.markRead = function (id) {
    return this.request("PATCH", "/api/inapp/messages/" + id, {state: "read"});
  };
  OmniCXInbox.prototype.dismiss = function (id) {
    return this.request("PATCH", "/api/inapp/messages/" + id, {state: "dismissed"});
  };
  OmniCXInbox.prototype.click = function (id) {
    return this.request("POST", "/api/inapp/messages/" + id + "/click");
  };

  OmniCXInbox.prototype.deliver = function (card) {
    if (this.seen[card.id]) { return; }
    this.seen[card.id] = true;
    this.onMessage(card);
  };

  OmniCXInbox.prototype.connect = function () {
    var self = this;
    this.closed = false;
    if (global.WebSocket) {
      var url = this.host.replace(/^http/, "ws") + "/api/inapp/ws?" + this.query();
      var ws = new global.WebSocket(url);
      this.socket = ws;
      ws.onopen = function () { self.retry = 1000; };
      ws.onmessage = function (e) { self.deliver(JSON.parse(e.data)); };
      ws.onclose = function (e) {
        if (self.closed || e.code === 4401 || e.code === 4404) { return; }
        setTimeout(function () { self.connect(); }, self.retry);
        self.retry = Math.min(self.retry * 2, 30000);
      };
      return;
    }
    var source = new global.EventSource(this.host + "/api/inapp/stream?" + this.query());
    this.source = source;
    source.addEventListener("message", function (e) { self.deliver(JSON.parse(e.data)); });
  };

  OmniCXInbox.prototype.close = function () {
    this.closed = true;
    if (this.socket) { this.socket.close(); }
    if (this.source) { this.source.close(); }
  };

  global.OmniCXInbox = OmniCXInbox;
})(typeof window !== "undefined" ? window : this);
