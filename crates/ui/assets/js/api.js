// The cluster's public APIs, as any client reaches them through Admin Router: one request
// function that turns every component's error shape into an ApiError, and the base path of
// each component for the view this page is (the DC/OS UI at `/`, or a component's own UI,
// which may be opened on its own port).

export const view = document.body.dataset.view || 'dcos';

// A component's own view talks to its component relative to the document (`master/state`
// under `/mesos/` is the master's `/master/state`); the DC/OS UI uses Admin Router's paths.
const own = new URL('.', document.baseURI).pathname.replace(/\/$/, '');
const BASES = {
  mesos: view === 'mesos' ? own : '/mesos',
  marathon: view === 'marathon' ? own : '/service/marathon',
  metronome: '/service/metronome',
  history: '/dcos-history-service',
  health: '/system/health/v1',
  iam: '/acs/api/v1',
  package: '/package',
  cosmos: '/cosmos',
  logs: '/system/v1/logs',
  metrics: '/system/v1/metrics',
};

/** The path of `path` on `component` (`api.path('marathon', '/v2/apps')`). */
export function path(component, p) {
  return `${BASES[component]}${p}`;
}

/** Whether the page is reached through Admin Router (so `/agent/...` and friends exist). */
export const throughAdminRouter = view === 'dcos' || own === '/mesos' || own === '/marathon'
  || own === '/service/marathon';

/** An API's refusal: the status, a message for people, and field errors by JSON path. */
export class ApiError extends Error {
  constructor(status, message, body) {
    super(message);
    this.status = status;
    this.body = body;
  }

  /** Whether the component itself is missing: Admin Router, not the component, answered. */
  get unavailable() {
    const componentAnswered = this.body && typeof this.body === 'object';
    return this.status === 0 || ([404, 502, 503, 504].includes(this.status) && !componentAnswered);
  }

  /**
   * Marathon's and Metronome's `details: [{path, errors}]` (and Cosmos' schema errors) as
   * `{'/cpus': ['must be ...']}`; '' holds errors about the whole object.
   */
  fieldErrors() {
    const out = {};
    const add = (p, msgs) => {
      const key = normalisePath(p);
      out[key] = (out[key] || []).concat(msgs);
    };
    const b = this.body || {};
    for (const d of Array.isArray(b.details) ? b.details : []) {
      add(d.path || '', Array.isArray(d.errors) ? d.errors : [String(d.errors || '')]);
    }
    // Cosmos' JSON schema errors: `{instance: {pointer}, keyword, missing, message}`; a
    // missing required property is the property's error, not its parent's.
    for (const e of (b.data && Array.isArray(b.data.errors)) ? b.data.errors : []) {
      if (typeof e === 'string' || !e) {
        add('', [String(e)]);
        continue;
      }
      let p = String((e.instance && e.instance.pointer) || e.instancePath || e.path || '');
      if (e.keyword === 'required' && Array.isArray(e.missing) && e.missing.length === 1) {
        p = `${p}/${String(e.missing[0]).replace(/~/g, '~0').replace(/\//g, '~1')}`;
      }
      add(p, [e.message || JSON.stringify(e)]);
    }
    return out;
  }
}

/**
 * Paths as JSON pointers: `/cpus` stays (a pointer may name a property with dots), while
 * Marathon's `obj.cpus`, `(0)` and `[0]` become `/obj/cpus`, `/0`.
 */
function normalisePath(p) {
  let s = String(p || '').replace(/\((\d+)\)/g, '/$1').replace(/\[(\d+)\]/g, '/$1');
  if (!s.startsWith('/')) s = `/${s.replace(/\./g, '/')}`;
  return s === '/' ? '' : s;
}

let onUnauthorized = () => {};

/** What to do when a request is refused for want of a login (the UI goes to its login page). */
export function whenUnauthorized(fn) {
  onUnauthorized = fn;
}

function messageOf(status, body, text) {
  if (body && typeof body === 'object') {
    if (typeof body.message === 'string' && body.message) return body.message;
    if (typeof body.description === 'string' && body.description) return body.description;
    if (typeof body.error === 'string') return body.error;
    if (typeof body.title === 'string') return body.title;
  }
  const plain = String(text || '').replace(/<[^>]*>/g, ' ').replace(/\s+/g, ' ').trim();
  return plain ? `${status}: ${plain.slice(0, 300)}` : `The request failed with status ${status}.`;
}

/**
 * A request: `opts` are `method`, `body` (JSON unless a string), `accept`, `contentType`,
 * `signal`, `headers`. Resolves to the parsed JSON (or text); rejects with an ApiError.
 */
export async function request(url, opts = {}) {
  const headers = { Accept: opts.accept || 'application/json', ...(opts.headers || {}) };
  let body = opts.body;
  if (body !== undefined && typeof body !== 'string') {
    body = JSON.stringify(body);
  }
  if (body !== undefined) headers['Content-Type'] = opts.contentType || 'application/json';
  let resp;
  try {
    resp = await fetch(url, {
      method: opts.method || (body !== undefined ? 'POST' : 'GET'),
      headers, body, signal: opts.signal, credentials: 'same-origin',
    });
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new ApiError(0, `The cluster did not answer (${e.message}).`, null);
  }
  const text = await resp.text();
  let parsed = null;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch (_) {
    parsed = null;
  }
  if (!resp.ok) {
    if (resp.status === 401) onUnauthorized();
    throw new ApiError(resp.status, messageOf(resp.status, parsed, text), parsed);
  }
  return parsed !== null ? parsed : text;
}

/**
 * An id as one path segment. `.` and `..` (which `fetch` would resolve as steps up into
 * another API) and empty ids are refused.
 */
export function segment(id) {
  const s = String(id);
  if (s === '' || s === '.' || s === '..') throw new ApiError(400, `"${s}" is not a valid id.`, null);
  return encodeURIComponent(s);
}

/**
 * A Marathon id's path below `/v2/apps` (`/a/b` -> `/a/b`), each segment checked: ids are
 * paths, and a `..` in one must not lead the request elsewhere.
 */
export function appPath(id) {
  return String(id).split('/').filter((p) => p !== '').map(segment).join('/');
}

/** GET of a component's path. */
export function get(component, p, opts) {
  return request(path(component, p), opts);
}

/** A JSON call (POST unless `method`) to a component's path. */
export function send(component, p, body, method = 'POST', opts = {}) {
  return request(path(component, p), { ...opts, method, body });
}

const pkg = (kind, version) => `application/vnd.dcos.package.${kind}+json;charset=utf-8;version=${version}`;
const COSMOS = {
  search: ['search-request', 'v1', 'search-response', 'v1'],
  describe: ['describe-request', 'v1', 'describe-response', 'v3'],
  list: ['list-request', 'v1', 'list-response', 'v1'],
  install: ['install-request', 'v1', 'install-response', 'v2'],
  uninstall: ['uninstall-request', 'v1', 'uninstall-response', 'v1'],
  'list-versions': ['list-versions-request', 'v1', 'list-versions-response', 'v1'],
  render: ['render-request', 'v1', 'render-response', 'v1'],
  'repository/list': ['repository.list-request', 'v1', 'repository.list-response', 'v1'],
};

/** A Cosmos package call (`search`, `describe`, `install`, ...) with its vendor media types. */
export function cosmos(action, body = {}) {
  const [req, reqV, resp, respV] = COSMOS[action];
  return request(path('package', `/${action}`), {
    method: 'POST', body, contentType: pkg(req, reqV), accept: pkg(resp, respV),
  });
}

/** The logged-in account from DC/OS' info cookie (`{uid, description}`), or null. */
export function currentUser() {
  const c = document.cookie.split(';').map((s) => s.trim()).find((s) => s.startsWith('dcos-acs-info-cookie='));
  if (!c) return null;
  try {
    return JSON.parse(atob(decodeURIComponent(c.split('=').slice(1).join('='))));
  } catch (_) {
    return null;
  }
}

/** Logs in; the IAM sets the cookies every later request carries. */
export function login(uid, password) {
  return request(path('iam', '/auth/login'), { method: 'POST', body: { uid, password } });
}

/** Logs out: the IAM clears the auth cookie; the info cookie is the UI's to clear. */
export async function logout() {
  try {
    await request(path('iam', '/auth/logout'));
  } finally {
    document.cookie = 'dcos-acs-info-cookie=; Max-Age=0; Path=/';
  }
}
