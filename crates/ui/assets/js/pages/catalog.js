// The Catalog: Cosmos' packages through Admin Router (`/package/...`): a search as you type
// over the repositories' packages (marking those installed), and a package's page with its
// details and an install form generated from its options schema.

import {
  h, replace, update, badge, notice, field, heading, crumbs, kv, linkTo, failureNotice, notFoundNotice, busy,
} from '../dom.js';
import * as api from '../api.js';
import { live } from '../poll.js';
import { schemaForm } from './schema-form.js';

const SEARCH_DELAY_MS = 250;
// Cosmos' `list` reads every Marathon app: asked far less often than the pages' 2 s.
const LIST_EVERY_MS = 15000;

const COSMOS = 'The Catalog (Cosmos)';

/** A failed Cosmos call in words (a missing Cosmos says so). */
const problem = (e) => failureNotice(e, COSMOS);

/** Installed packages (Cosmos' list, from Marathon's apps) as `[{appId, name, version}]`. */
async function installedApps(packageName) {
  const answer = await api.cosmos('list', packageName ? { packageName } : {});
  return ((answer && answer.packages) || []).map((p) => {
    const def = (p.packageInformation && p.packageInformation.packageDefinition) || {};
    return { appId: p.appId, name: def.name, version: def.version };
  });
}

/** A link out, only for web addresses. */
function outLink(url, text) {
  return /^https?:\/\//i.test(String(url || '')) ? h('a', { href: url, rel: 'noopener noreferrer' }, text || url) : (text || url);
}

function tagList(tags) {
  return (tags || []).map((t) => [badge(t), ' ']);
}

// --- Search ---------------------------------------------------------------------------------

function packageCard(p, installs) {
  return h('article', { class: 'panel package' },
    h('h2', null, linkTo('catalog', p.name, p.name, { 'data-package': p.name })),
    h('div', { class: 'muted small' }, `Version ${p.currentVersion || '—'}`,
      installs ? [' ', badge('Installed', 'ok')] : null,
      p.selected ? [' ', badge('Certified', 'info')] : null),
    p.description ? h('p', null, p.description) : null,
    h('div', null, tagList(p.tags)));
}

export function renderList(root, _params, query) {
  const input = h('input', { type: 'search', name: 'q', value: query.get('q') || '', autocomplete: 'off' });
  const count = h('p', { class: 'muted small', 'aria-live': 'polite' });
  const message = h('div');
  const listMessage = h('div');
  const results = h('div');
  const form = h('form', { role: 'search', class: 'catalog-search' }, field('Search packages', input));
  replace(root, heading('Catalog'), form, message, listMessage, count, results);

  let packages = null;
  let installed = new Map();
  let stopped = false;
  let seq = 0;
  let timer = null;

  function draw() {
    if (!packages) return;
    count.textContent = `${packages.length} ${packages.length === 1 ? 'package' : 'packages'}`;
    update(results, packages.length
      ? h('div', { class: 'grid packages' }, packages.map((p) => packageCard(p, installed.get(p.name))))
      : h('p', { class: 'empty' }, 'No package matches your search.'));
  }

  async function search() {
    clearTimeout(timer);
    const mine = ++seq;
    const q = input.value.trim();
    // Kept in the address (without a hashchange) so going back returns to this search.
    history.replaceState(null, '', q ? `#/catalog?q=${encodeURIComponent(q)}` : '#/catalog');
    try {
      const answer = await api.cosmos('search', { query: q });
      if (stopped || mine !== seq) return;
      packages = (answer && answer.packages) || [];
      replace(message);
      draw();
    } catch (e) {
      if (!stopped && mine === seq) replace(message, problem(e));
    }
  }

  input.addEventListener('input', () => {
    clearTimeout(timer);
    timer = setTimeout(search, SEARCH_DELAY_MS);
  });
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    search();
  });
  search();

  const stop = live(async () => {
    const counts = new Map();
    for (const app of await installedApps()) counts.set(app.name, (counts.get(app.name) || 0) + 1);
    installed = counts;
    draw();
  }, (e) => update(listMessage, e ? notice('warn', `Which packages are installed is not known: ${e.message}`) : null), LIST_EVERY_MS);

  return () => {
    stopped = true;
    clearTimeout(timer);
    stop();
  };
}

// --- A package --------------------------------------------------------------------------------

function infoView(pkg) {
  const licenses = (pkg.licenses || []).map((l, i) => [i ? ', ' : '', outLink(l.url, l.name || l.url)]);
  return h('div', { class: 'panel package-info' },
    pkg.description ? h('p', null, pkg.description) : null,
    kv([
      ['Version', pkg.version],
      pkg.maintainer ? ['Maintainer', pkg.maintainer] : null,
      (pkg.tags || []).length ? ['Tags', tagList(pkg.tags)] : null,
      licenses.length ? ['Licenses', licenses] : null,
      pkg.website ? ['Website', outLink(pkg.website)] : null,
      pkg.scm ? ['Source', outLink(pkg.scm)] : null,
    ]));
}

/** The notice of a finished install, linking to its service. */
function installedNotice(answer) {
  const el = notice('ok', `${answer.packageName} ${answer.packageVersion || ''} is installed`,
    answer.appId ? [' as ', h('code', null, answer.appId), '. ', linkTo('services/detail', answer.appId, 'Open the service')] : '.',
    answer.postInstallNotes ? h('p', null, answer.postInstallNotes) : null);
  el.setAttribute('data-installed', answer.appId || answer.packageName);
  return el;
}

function errorList(errors) {
  const items = Object.entries(errors).map(([p, msgs]) => h('li', null, p ? `${p}: ${msgs.join(' ')}` : msgs.join(' ')));
  return items.length ? h('ul', null, items) : null;
}

export function renderPackage(root, [name]) {
  const message = h('div');
  const info = h('div');
  const installedEl = h('div');
  const installedMessage = h('div');
  const versionEl = h('div', { class: 'version-choice' });
  const installEl = h('div');
  const installSection = h('section', { 'aria-label': 'Install' }, h('h2', null, 'Install'), versionEl, installEl);
  replace(root, crumbs(['Catalog', '#/catalog'], name), heading(name), message, info, installedMessage, installedEl, installSection);
  let stopped = false;
  let stopList = null;

  function installForm(pkg) {
    const options = schemaForm(pkg.config || {}, {});
    const msg = h('div');
    const submit = h('button', { type: 'submit', class: 'primary' }, 'Install');
    const form = h('form', { class: 'form', novalidate: true, 'aria-label': `Install ${pkg.name}` },
      pkg.preInstallNotes ? notice('info', pkg.preInstallNotes) : null,
      pkg.config ? options.element : h('p', { class: 'muted' }, 'This package has no options.'),
      msg, h('div', { class: 'toolbar' }, submit));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      replace(msg);
      options.setErrors({});
      let values;
      try {
        values = options.value();
      } catch (err) {
        replace(msg, notice('bad', err.message));
        return;
      }
      await busy(submit, async () => {
        try {
          const answer = await api.cosmos('install', { packageName: pkg.name, packageVersion: pkg.version, options: values });
          if (stopped) return;
          replace(msg, installedNotice(answer));
          if (stopList) stopList.now();
        } catch (err) {
          if (stopped) return;
          if (err.body && err.body.type === 'JsonSchemaMismatch') {
            const rest = options.setErrors(err.fieldErrors());
            replace(msg, notice('bad', err.message, errorList(rest)));
          } else {
            replace(msg, problem(err));
          }
        }
      });
    });
    return form;
  }

  /** The services installed from this package, every 15 s (and at once after an install). */
  function watchInstalled() {
    return live(async () => {
      const apps = (await installedApps(name)).filter((a) => a.name === name);
      update(installedEl, apps.length
        ? h('div', { class: 'panel', 'data-installed-apps': '' }, h('h2', null, 'Installed'),
          h('ul', null, apps.map((a) => h('li', null, linkTo('services/detail', a.appId), ` (version ${a.version || '—'})`))))
        : null);
    }, (e) => update(installedMessage, e ? notice('warn', `Which services run this package is not known: ${e.message}`) : null), LIST_EVERY_MS);
  }

  // Each show() is numbered: only the newest (the version selected last) may draw its form,
  // whatever order the answers come in.
  let shown = 0;
  async function show(version) {
    const mine = ++shown;
    // The form shown so far is of another version: it must not install while this loads.
    for (const b of installEl.querySelectorAll('button')) b.disabled = true;
    try {
      const answer = await api.cosmos('describe', version ? { packageName: name, packageVersion: version } : { packageName: name });
      if (stopped || mine !== shown) return;
      const pkg = (answer && answer.package) || {};
      replace(message);
      replace(info, infoView(pkg));
      replace(installEl, installForm(pkg));
      // Only a package that exists gets its versions and installed services asked for.
      if (!stopList) {
        versions();
        stopList = watchInstalled();
      }
    } catch (e) {
      if (stopped || mine !== shown) return;
      const missing = e.body && e.body.type === 'PackageNotFound';
      installSection.hidden = missing;
      replace(message, missing ? notFoundNotice(`There is no package ${name}.`, 'Back to Catalog', '#/catalog') : problem(e));
    }
  }

  /** A choice of version when the repositories hold more than one (newest first). */
  async function versions() {
    try {
      const answer = await api.cosmos('list-versions', { packageName: name, includePackageVersions: true });
      const list = Object.entries((answer && answer.results) || {}).sort((a, b) => Number(b[1]) - Number(a[1])).map(([v]) => v);
      if (stopped || list.length < 2) return;
      const select = h('select', { name: 'version', onchange: () => show(select.value) },
        list.map((v, i) => h('option', { value: v }, i ? v : `${v} (latest)`)));
      replace(versionEl, field('Version', select));
    } catch (_) {
      // Without the list the latest version is installed; describe says what went wrong.
    }
  }

  show();

  return () => {
    stopped = true;
    if (stopList) stopList();
  };
}
