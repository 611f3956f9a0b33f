// The app's frame: which view this document is (DC/OS, Mesos or Marathon), the hash router,
// the layout around pages, and login redirects. A page is a module exporting render
// functions `(root, params, query) -> dispose?`, loaded when first visited.

import { h, replace, notice } from './dom.js';
import * as api from './api.js';

const DCOS_ROUTES = [
  ['login', 'login', 'render', { bare: true }],
  ['dashboard', 'dashboard', 'render', { nav: 'dashboard' }],
  ['services', 'services', 'renderList', { nav: 'services' }],
  ['services/new', 'service-form', 'renderCreate', { nav: 'services' }],
  ['services/detail/:id', 'services', 'renderDetail', { nav: 'services' }],
  ['services/edit/:id', 'service-form', 'renderEdit', { nav: 'services' }],
  ['jobs', 'jobs', 'renderList', { nav: 'jobs' }],
  ['jobs/new', 'jobs', 'renderCreate', { nav: 'jobs' }],
  ['jobs/detail/:id', 'jobs', 'renderDetail', { nav: 'jobs' }],
  ['catalog', 'catalog', 'renderList', { nav: 'catalog' }],
  ['catalog/:name', 'catalog', 'renderPackage', { nav: 'catalog' }],
  ['nodes', 'nodes', 'renderList', { nav: 'nodes' }],
  ['nodes/:id', 'nodes', 'renderDetail', { nav: 'nodes' }],
  ['components', 'components', 'renderList', { nav: 'components' }],
  ['components/:unit', 'components', 'renderDetail', { nav: 'components' }],
  ['tasks/:id', 'tasks', 'render', { nav: 'services' }],
  ['organization/users', 'organization', 'renderUsers', { nav: 'organization' }],
  ['organization/users/:uid', 'organization', 'renderUser', { nav: 'organization' }],
];

const DCOS_NAV = [
  ['dashboard', 'Dashboard'], ['services', 'Services'], ['jobs', 'Jobs'], ['catalog', 'Catalog'],
  ['nodes', 'Nodes'], ['components', 'Components'], ['organization/users', 'Organization'],
];

const VIEWS = {
  dcos: { routes: DCOS_ROUTES, home: 'dashboard' },
  mesos: {
    routes: [
      ['', 'mesos', 'renderOverview', {}],
      ['frameworks/:id', 'mesos', 'renderFramework', {}],
      ['agents/:id', 'mesos', 'renderAgent', {}],
    ],
    home: '',
  },
  marathon: {
    routes: [
      ['', 'marathon', 'renderOverview', {}],
      ['apps/:id', 'marathon', 'renderApp', {}],
    ],
    home: '',
  },
};

const app = document.getElementById('application');
const current = VIEWS[api.view] || VIEWS.dcos;
let dispose = null;
let shell = null;

/** The hash as `{parts, query}`: `#/services/detail/%2Fweb?x=1`. */
function location() {
  const raw = window.location.hash.replace(/^#\/?/, '');
  const [p, q] = raw.split('?');
  const parts = p ? p.split('/').filter((s) => s !== '') : [];
  return { parts, query: new URLSearchParams(q || '') };
}

function match(parts) {
  for (const [pattern, module, fn, opts] of current.routes) {
    const segs = pattern ? pattern.split('/') : [];
    if (segs.length !== parts.length) continue;
    const params = [];
    let ok = true;
    segs.forEach((s, i) => {
      if (s.startsWith(':')) {
        try {
          params.push(decodeURIComponent(parts[i]));
        } catch (_) {
          ok = false;
        }
      } else if (s !== parts[i]) ok = false;
    });
    if (ok) return { module, fn, opts, params };
  }
  return null;
}

/** Goes to `hash` (`#/services`). */
function go(hash) {
  if (window.location.hash === hash) route();
  else window.location.hash = hash;
}

function dcosShell(navKey) {
  const user = api.currentUser();
  if (!shell) {
    const main = h('main', { id: 'content' });
    const nav = h('nav', { 'aria-label': 'Main' }, DCOS_NAV.map(([key, label]) => h('a', { href: `#/${key}`, dataset: { nav: key.split('/')[0] } }, label)));
    const clusterName = h('div', { class: 'cluster', title: 'Cluster' });
    const top = h('div', { class: 'topbar' });
    shell = { main, nav, top, clusterName, el: h('div', { class: 'layout' },
      h('a', { class: 'skip', href: '#content', onclick: (e) => { e.preventDefault(); main.querySelector('h1')?.focus(); } }, 'Skip to content'),
      h('aside', { class: 'sidebar' },
        h('div', { class: 'brand' }, h('img', { src: 'assets/favicon.svg', alt: '' }), 'DC/OS'),
        clusterName, nav),
      h('div', null, top, main)) };
    api.get('mesos', '/master/state-summary').then((s) => {
      shell.clusterName.textContent = (s && s.cluster) || '';
    }).catch(() => {});
  }
  for (const a of shell.nav.querySelectorAll('a')) {
    if (a.dataset.nav === navKey) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  replace(shell.top, user
    ? [h('span', { class: 'muted', 'data-user': user.uid }, user.description || user.uid),
      h('button', { type: 'button', onclick: logout }, 'Log out')]
    : []);
  if (app.firstChild !== shell.el) replace(app, shell.el);
  return shell.main;
}

function simpleShell(title, links) {
  if (!shell) {
    const main = h('main', { id: 'content' });
    shell = { main, el: h('div', { class: 'simple' },
      h('header', { class: 'app' }, h('span', { class: 'name' }, title), links.map(([href, label]) => h('a', { href }, label))),
      main) };
  }
  if (app.firstChild !== shell.el) replace(app, shell.el);
  return shell.main;
}

async function logout() {
  try {
    await api.logout();
  } catch (_) {
    // The cookies are gone either way.
  }
  go('#/login');
}

let generation = 0;

async function route() {
  const { parts, query } = location();
  const found = match(parts);
  if (!found) {
    go(`#/${current.home}`);
    return;
  }
  generation += 1;
  const mine = generation;
  if (dispose) {
    try {
      dispose();
    } catch (_) {
      // A page failing to stop must not keep the next from showing.
    }
    dispose = null;
  }
  // A dialog of the page left must not act for it after it is gone.
  for (const d of document.querySelectorAll('dialog')) d.close();
  // Each page draws into an element of its own: a late answer of the page left lands in a
  // detached element, never over the new page.
  const root = h('div');
  if (found.opts.bare) {
    replace(app, root);
    shell = null;
  } else if (api.view === 'mesos') {
    replace(simpleShell('Mesos', [['#/', 'Overview']]), root);
  } else if (api.view === 'marathon') {
    replace(simpleShell('Marathon', [['#/', 'Applications']]), root);
  } else {
    replace(dcosShell(found.opts.nav), root);
  }
  try {
    const mod = await import(`./pages/${found.module}.js`);
    if (mine !== generation) return;
    const result = mod[found.fn](root, found.params, query);
    dispose = typeof result === 'function' ? result : null;
  } catch (e) {
    if (mine === generation) replace(root, notice('bad', `This page failed to load: ${e.message}`));
  }
  const h1 = root.querySelector('h1');
  if (h1 && document.activeElement === document.body) h1.focus({ preventScroll: true });
}

async function start() {
  if (api.view === 'dcos') {
    try {
      await api.request('/dcos-metadata/ui-config.json');
    } catch (e) {
      replace(app, notice('bad', `Error requesting UI Configuration: ${e.message}`));
      return;
    }
  }
  api.whenUnauthorized(() => {
    const { parts } = location();
    if (parts[0] === 'login') return;
    // Back to this hash after the login, or to this page when it is a component's view.
    // On a component's own port there is no login page to go to: the page says why.
    if (api.view === 'dcos') {
      go(`#/login?redirect=${encodeURIComponent(window.location.hash || `#/${current.home}`)}`);
    } else if (api.throughAdminRouter) {
      window.location.href = `/#/login?redirect=${encodeURIComponent(window.location.pathname + window.location.hash)}`;
    }
  });
  window.addEventListener('hashchange', route);
  route();
}

start();
