// Keeping pages live: each page's loader runs now, every 2 s, and sooner when the Mesos
// operator API's event stream reports a change (a task or agent added or updated), so what
// changes in the cluster shows without reloading.

import { path, view } from './api.js';
import { h, update, failureNotice } from './dom.js';

const INTERVAL_MS = 2000;
/** The least time between the starts of two runs of a loader that events asked for. */
const KICK_GAP_MS = 1000;
const loaders = new Set();

/**
 * Runs `load()` now and keeps running it (never two at once) until the returned stop is
 * called: every `intervalMs`, and sooner on the cluster's events when that is the default
 * 2 s (a slower poll is of something the events do not change). Errors go to `onError` (the
 * page shows them); a later success clears them with `onError(null)`. `stop.now()` runs it
 * again at once (after a change the page made).
 */
export function live(load, onError = () => {}, intervalMs = INTERVAL_MS) {
  let stopped = false;
  let running = false;
  let again = false;
  let timer = null;
  let startedAt = 0;
  async function run() {
    if (stopped) return;
    if (running) {
      again = true;
      return;
    }
    running = true;
    startedAt = Date.now();
    clearTimeout(timer);
    try {
      await load();
      if (!stopped) onError(null);
    } catch (e) {
      if (!stopped && e.name !== 'AbortError') onError(e);
    }
    running = false;
    if (stopped) return;
    ensureStream();
    if (again) {
      again = false;
      run();
      return;
    }
    timer = setTimeout(run, intervalMs);
  }
  // An event asks for a run soon, but no sooner than KICK_GAP_MS after the last one
  // started: a deployment of a thousand tasks is a thousand events.
  const entry = {
    kick() {
      if (stopped || running) return;
      clearTimeout(timer);
      timer = setTimeout(run, Math.max(0, startedAt + KICK_GAP_MS - Date.now()));
    },
  };
  if (intervalMs === INTERVAL_MS) loaders.add(entry);
  run();
  const stop = () => {
    stopped = true;
    clearTimeout(timer);
    loaders.delete(entry);
    if (!loaders.size) closeStream();
  };
  stop.now = () => run();
  return stop;
}

/**
 * A live section: `load()` resolves to what `el` shows (redrawn only when it changed);
 * failures show above it in words naming `component`. `gone(e)`, when it gives a node for
 * an error (the item was deleted), shows that node and stops. Returns the stop.
 */
export function liveSection(el, load, component, gone = () => null) {
  const problems = h('div');
  const content = h('div');
  el.replaceChildren(problems, content);
  const stop = live(async () => {
    const shown = await load();
    if (shown !== undefined) update(content, shown);
  }, (e) => {
    const end = e && gone(e);
    if (end) {
      stop();
      update(problems);
      update(content, end);
      return;
    }
    update(problems, e ? failureNotice(e, component) : null);
  });
  return stop;
}

// --- The event stream -------------------------------------------------------------------------

let stream = null;

const CHANGES = new Set(['TASK_ADDED', 'TASK_UPDATED', 'AGENT_ADDED', 'AGENT_REMOVED', 'FRAMEWORK_ADDED', 'FRAMEWORK_UPDATED', 'FRAMEWORK_REMOVED']);

function kickAll() {
  for (const l of loaders) l.kick();
}

function closeStream() {
  if (stream) stream.abort();
  stream = null;
}

// A page being left closes its stream at once: the browser would otherwise hold the
// connection a while, and six of them starve every later request to the same host.
window.addEventListener('pagehide', closeStream);

/**
 * The master's operator event stream (RecordIO of JSON events), opened once a loader has
 * run (it must not delay a page's first data) and reconnected after 2 s while loaders
 * run; a refusal (no login, no permission) ends it.
 */
function ensureStream() {
  // Marathon's own view may be opened where no master is behind `/mesos`: it polls only.
  if (stream || view === 'marathon' || !loaders.size) return;
  const controller = new AbortController();
  stream = controller;
  (async () => {
    while (stream === controller && !controller.signal.aborted) {
      let refused = false;
      try {
        refused = await subscribe(controller.signal);
      } catch (_) {
        // The stream is a hint to refresh sooner; polling goes on without it.
      }
      if (refused) break;
      await new Promise((r) => setTimeout(r, INTERVAL_MS));
    }
    if (stream === controller) stream = null;
  })();
}

/** Reads the stream until it ends; resolves true if the master refused it. */
async function subscribe(signal) {
  const resp = await fetch(path('mesos', '/api/v1?subscribe'), {
    method: 'POST', signal, credentials: 'same-origin',
    headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
    body: JSON.stringify({ type: 'SUBSCRIBE' }),
  });
  if (!resp.ok || !resp.body) {
    await resp.text().catch(() => {});
    return resp.status === 401 || resp.status === 403;
  }
  const reader = resp.body.getReader();
  const records = new RecordIO();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return false;
    for (const record of records.push(value)) {
      let event = null;
      try {
        event = JSON.parse(record);
      } catch (_) {
        event = null;
      }
      if (event && CHANGES.has(event.type)) kickAll();
    }
  }
}

/**
 * RecordIO (`<length>\n<bytes>`...) from chunks of bytes. Chunks are kept apart until the
 * record they belong to is whole, so a large record (the first, SUBSCRIBED, holds the whole
 * state) is copied and decoded once.
 */
class RecordIO {
  constructor() {
    this.chunks = [];
    this.size = 0;
    this.need = 0;
    this.decoder = new TextDecoder();
  }

  /** Adds a chunk; returns the records it completed, as text. */
  push(chunk) {
    this.chunks.push(chunk);
    this.size += chunk.length;
    if (this.size < this.need) return [];
    const joined = new Uint8Array(this.size);
    let off = 0;
    for (const c of this.chunks) {
      joined.set(c, off);
      off += c.length;
    }
    const out = [];
    let at = 0;
    this.need = 0;
    for (;;) {
      const nl = joined.indexOf(10, at);
      if (nl < 0) break;
      const len = Number(this.decoder.decode(joined.subarray(at, nl)));
      if (!Number.isSafeInteger(len) || len < 0) throw new Error('bad RecordIO length');
      if (joined.length < nl + 1 + len) {
        this.need = nl + 1 + len - at;
        break;
      }
      out.push(this.decoder.decode(joined.subarray(nl + 1, nl + 1 + len)));
      at = nl + 1 + len;
    }
    const rest = joined.slice(at);
    this.chunks = rest.length ? [rest] : [];
    this.size = rest.length;
    return out;
  }
}
