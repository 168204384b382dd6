// One WebSocket to /api/live for the whole console, with reconnect and backoff.
// Events: "status" {state: connecting|live|down, attempt, retryAt, since, restored}
//         "message" (a message of the feed: event, deliveries, report)

const MAX_DELAY = 15_000;

export class Live extends EventTarget {
  constructor(token) {
    super();
    this.token = token;
    this.ws = null;
    this.state = "connecting";
    this.attempt = 0;
    this.lostAt = null;
    this.timer = null;
    this.stopped = false;
    this.everLive = false;
  }

  start() {
    this.stopped = false;
    this.connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    if (this.ws) {
      this.ws.onclose = null;
      this.ws.close(1000, "signed out");
      this.ws = null;
    }
  }

  connect() {
    clearTimeout(this.timer);
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const ws = new WebSocket(`${scheme}://${location.host}/api/live`);
    this.ws = ws;
    this.setState("connecting");
    ws.onopen = () => ws.send(JSON.stringify({ type: "auth", token: this.token }));
    ws.onmessage = (ev) => {
      let msg;
      try {
        msg = JSON.parse(ev.data);
      } catch {
        return;
      }
      if (msg.type === "hello") {
        const restored = this.everLive;
        this.everLive = true;
        this.attempt = 0;
        this.setState("live", { restored });
        this.lostAt = null;
        return;
      }
      if (msg.type === "error") {
        this.dispatchEvent(new CustomEvent("autherror", { detail: msg.error }));
        this.stop();
        return;
      }
      this.dispatchEvent(new CustomEvent("message", { detail: msg }));
    };
    ws.onclose = (ev) => {
      if (this.ws !== ws || this.stopped) return;
      this.ws = null;
      if (ev.code === 1008) return; // policy violation: the token was refused ("autherror" said so)
      this.lostAt = this.lostAt || new Date();
      this.attempt += 1;
      // 0.5 s, 1 s, 2 s ... up to 15 s, with jitter so a room of wall displays does not reconnect in step.
      const base = Math.min(MAX_DELAY, 500 * 2 ** (this.attempt - 1));
      const delay = base / 2 + Math.random() * (base / 2);
      this.setState("down", { retryAt: Date.now() + delay });
      this.timer = setTimeout(() => this.connect(), delay);
    };
  }

  setState(state, extra = {}) {
    this.state = state;
    const detail = { state, attempt: this.attempt, since: this.lostAt, ...extra };
    this.dispatchEvent(new CustomEvent("status", { detail }));
  }
}
