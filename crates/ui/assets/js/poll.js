// Keeping pages live: each page's loader runs now, every 2 s, and at once when the Mesos
// operator API's event stream reports a change (a task or agent added or updated), so what
// changes in the cluster shows without reloading.

import { path, view } from './api.js';

const INTERVAL_MS = 2000;
const loaders = new Set();
let stream = null;

/**
 * Runs `load()` now and keeps running it (never two at once) until the returned stop is
 * called. Errors go to `onError` (the page shows them); a later success clears them.
 */
export function live(load, onError = () => {}) {
  let stopped = false;
  let running = false;
  let again = false;
  let timer = null;
  const entry = { kick: () => run() };
  async function run() {
    if (stopped) return;
    if (running) {
      again = true;
      return;
    }
    running = true;
    clearTimeout(timer);
    try {
      await load();
      onError(null);
    } catch (e) {
      if (!stopped && e.name !== 'AbortError') onError(e);
    }
    running = false;
    if (stopped) return;
    if (again) {
      again = false;
      run();
      return;
    }
    timer = setTimeout(run, INTERVAL_MS);
  }
  loaders.add(entry);
  ensureStream();
  run();
  return () => {
    stopped = true;
    clearTimeout(timer);
    loaders.delete(entry);
  };
}

let kickTimer = null;
function kickAll() {
  // Events come in bursts (a deployment is many updates): one refresh per burst.
  if (kickTimer) return;
  kickTimer = setTimeout(() => {
    kickTimer = null;
    for (const l of loaders) l.kick();
  }, 150);
}

const CHANGES = new Set(['TASK_ADDED', 'TASK_UPDATED', 'AGENT_ADDED', 'AGENT_REMOVED', 'FRAMEWORK_ADDED', 'FRAMEWORK_UPDATED', 'FRAMEWORK_REMOVED']);

/** The master's operator event stream (RecordIO of JSON events), reconnected after 2 s. */
function ensureStream() {
  // Marathon's own view may be opened where no master is behind `/mesos`: it polls only.
  if (stream || view === 'marathon') return;
  stream = new AbortController();
  const { signal } = stream;
  (async () => {
    while (!signal.aborted) {
      try {
        await subscribe(signal);
      } catch (_) {
        // The stream is a hint to refresh sooner; polling goes on without it.
      }
      await new Promise((r) => setTimeout(r, INTERVAL_MS));
    }
  })();
}

async function subscribe(signal) {
  const resp = await fetch(path('mesos', '/api/v1?subscribe'), {
    method: 'POST', signal, credentials: 'same-origin',
    headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
    body: JSON.stringify({ type: 'SUBSCRIBE' }),
  });
  if (!resp.ok || !resp.body) {
    // Drained so the connection is freed; the loop retries later.
    await resp.text().catch(() => {});
    return;
  }
  const reader = resp.body.getReader();
  const decoder = new TextDecoder();
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += decoder.decode(value, { stream: true });
    // RecordIO: "<length>\n<record>"; lengths count bytes, records here are ASCII JSON
    // in practice, and a record cut by a multibyte character just waits for more.
    for (;;) {
      const nl = buf.indexOf('\n');
      if (nl < 0) break;
      const len = Number(buf.slice(0, nl));
      if (!Number.isFinite(len)) throw new Error('bad RecordIO length');
      const rest = buf.slice(nl + 1);
      const bytesAvail = new TextEncoder().encode(rest);
      if (bytesAvail.length < len) break;
      const record = new TextDecoder().decode(bytesAvail.slice(0, len));
      buf = new TextDecoder().decode(bytesAvail.slice(len));
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
