// Organization: the IAM's accounts (users and service accounts) and each account's
// permissions, through Admin Router's /acs/api/v1. Users are added, deleted, granted and
// revoked here as with the DC/OS UI's Organization pages.

import {
  h, field, heading, notice, replace, update, table, button, crumbs, kv, badge, confirmDialog,
} from '../dom.js';
import * as api from '../api.js';
import { live } from '../poll.js';

const ACTIONS = ['full', 'create', 'read', 'update', 'delete'];

/** A resource id as one path segment: the IAM wants its `/` escaped twice (`%252F`). */
function ridPath(rid) {
  return encodeURIComponent(rid.replaceAll('/', '%2F')).replace(/%3A/gi, ':');
}

function userLink(uid) {
  return h('a', { href: `#/organization/users/${encodeURIComponent(uid)}` }, uid);
}

/** Shows `e` (or nothing for null) in `box`. */
function showError(box, e, prefix = '') {
  update(box, e ? notice('bad', prefix, e.message) : null);
}

/** `tr` elements of a table built by `table()` get `dataset(row)` (none when it is empty). */
function tagRows(tbl, rows, dataset) {
  if (!rows.length) return tbl;
  [...tbl.tBodies[0].rows].forEach((tr, i) => Object.assign(tr.dataset, dataset(rows[i])));
  return tbl;
}

// --- #/organization/users -------------------------------------------------------------------

export function renderUsers(root) {
  const message = h('div', { 'aria-live': 'polite' });
  const errors = h('div');
  const list = h('div');
  const me = api.currentUser()?.uid;

  async function remove(uid) {
    const yes = await confirmDialog('Delete user', `Delete the user ${uid}? Their permissions go with them.`, 'Delete');
    if (!yes) return;
    try {
      await api.send('iam', `/users/${encodeURIComponent(uid)}`, undefined, 'DELETE');
      replace(message, notice('ok', `User ${uid} deleted.`));
    } catch (e) {
      replace(message, notice('bad', `Could not delete ${uid}: ${e.message}`));
    }
    refresh();
  }

  async function load() {
    const [users, services] = await Promise.all([
      api.get('iam', '/users'), api.get('iam', '/users?type=service'),
    ]);
    const rows = [...(users?.array || []), ...(services?.array || [])];
    const columns = [
      { title: 'User ID', cell: (u) => userLink(u.uid) },
      { title: 'Description', cell: (u) => u.description || '' },
      { title: 'Kind', cell: (u) => (u.is_service ? 'service account' : 'user') },
      { title: 'Actions', cell: (u) => (u.uid === me ? h('span', { class: 'muted small' }, 'you') : button('Delete', () => remove(u.uid), 'danger')) },
    ];
    update(list, tagRows(table(columns, rows, 'No users.', { 'aria-label': 'Users' }), rows, (u) => ({ uid: u.uid })));
  }

  function refresh() {
    // At once after a change, instead of waiting for the next poll.
    load().then(() => showError(errors, null)).catch((e) => showError(errors, e, 'Could not list users: '));
  }

  replace(root, crumbs('Organization', 'Users'), heading('Users'), message, errors, list,
    addUserForm(message, refresh));
  const stop = live(load, (e) => showError(errors, e, 'Could not list users: '));
  return () => stop();
}

/** The "Add user" form: PUT /users/<uid> with a description and a password. */
function addUserForm(message, refresh) {
  const uid = h('input', { type: 'text', name: 'uid', autocomplete: 'off', required: true });
  const description = h('input', { type: 'text', name: 'description', autocomplete: 'off' });
  const password = h('input', { type: 'password', name: 'password', autocomplete: 'new-password', required: true });
  const fields = {
    uid: field('User ID', uid, 'Letters, digits and @ . _ -'),
    description: field('Description', description, 'Usually the person\'s full name.'),
    password: field('Password', password, 'At least 5 characters.'),
  };
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Add user');
  const form = h('form', { class: 'form', novalidate: true },
    h('div', { class: 'row' }, fields.uid, fields.description, fields.password), submit);

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    Object.values(fields).forEach((f) => f.setError(null));
    const id = uid.value.trim();
    let bad = false;
    if (!id) { fields.uid.setError('Enter a user ID.'); bad = true; }
    if (!password.value) { fields.password.setError('Enter a password.'); bad = true; }
    if (bad) return;
    submit.disabled = true;
    try {
      await api.send('iam', `/users/${encodeURIComponent(id)}`, { description: description.value.trim(), password: password.value }, 'PUT');
      replace(message, notice('ok', `User ${id} added.`));
      form.reset();
      refresh();
    } catch (err) {
      // The IAM's errors say which part is wrong by code or in words.
      const code = err.body?.code || '';
      const text = err.message;
      if (/USER_ID|USER_EXISTS/.test(code)) fields.uid.setError(text);
      else if (/password/i.test(text)) fields.password.setError(text);
      else if (/description/i.test(text)) fields.description.setError(text);
      else replace(message, notice('bad', `Could not add ${id}: ${text}`));
    } finally {
      submit.disabled = false;
    }
  });
  return h('section', { class: ['panel', 'org-form'], 'aria-labelledby': 'add-user-title' },
    h('h2', { id: 'add-user-title' }, 'Add user'), form);
}

// --- #/organization/users/:uid --------------------------------------------------------------

export function renderUser(root, [uid]) {
  const message = h('div', { 'aria-live': 'polite' });
  const errors = h('div');
  const about = h('div');
  const direct = h('div');
  const groups = h('div');
  const userPath = `/users/${encodeURIComponent(uid)}`;

  async function revoke(rid, action) {
    try {
      await api.send('iam', `/acls/${ridPath(rid)}/users/${encodeURIComponent(uid)}/${action}`, undefined, 'DELETE');
      replace(message, notice('ok', `Revoked ${action} on ${rid}.`));
    } catch (e) {
      replace(message, notice('bad', `Could not revoke ${action} on ${rid}: ${e.message}`));
    }
    refresh();
  }

  async function load() {
    const [user, perms] = await Promise.all([api.get('iam', userPath), api.get('iam', `${userPath}/permissions`)]);
    update(about, kv([
      ['Description', user.description || ''],
      ['Kind', user.is_service ? 'service account' : 'user'],
      ['Provider', user.provider_type || 'internal'],
    ]));
    // One row per resource and action, so each can be revoked on its own.
    const rows = (perms?.direct || []).flatMap((p) => (p.actions || []).map((a) => ({ rid: p.rid, action: a.name, description: p.description })));
    update(direct, tagRows(table([
      { title: 'Resource ID', cell: (r) => h('code', null, r.rid) },
      { title: 'Action', cell: (r) => badge(r.action, r.action === 'full' ? 'info' : '') },
      { title: 'Description', cell: (r) => r.description || '' },
      { title: '', cell: (r) => button('Revoke', () => revoke(r.rid, r.action), 'danger') },
    ], rows, 'No permissions granted to this account directly.', { 'aria-label': 'Permissions' }), rows, (r) => ({ rid: r.rid, action: r.action })));
    const inherited = (perms?.groups || []).flatMap((p) => (p.actions || []).map((a) => ({ ...p, action: a.name })));
    update(groups, inherited.length ? [h('h2', null, 'Through groups'), table([
      { title: 'Resource ID', cell: (r) => h('code', null, r.rid) },
      { title: 'Action', cell: (r) => r.action },
      { title: 'Group', cell: (r) => r.gid },
    ], inherited)] : null);
  }

  function refresh() {
    load().then(() => showError(errors, null)).catch((e) => showError(errors, e));
  }

  replace(root, crumbs(['Users', '#/organization/users'], uid), heading(uid), message, errors, about,
    h('h2', null, 'Permissions'), direct, groups, grantForm(uid, message, refresh));
  const stop = live(load, (e) => {
    showError(errors, e);
    // No such account (say, deleted meanwhile): asking again every 2 s would only fail again.
    if (e?.body?.code === 'ERR_UNKNOWN_USER_ID') stop();
  });
  return () => stop();
}

/** The "Grant" form: the resource's ACL is created first when the IAM has none yet. */
function grantForm(uid, message, refresh) {
  const rid = h('input', { type: 'text', name: 'rid', autocomplete: 'off', required: true });
  const action = h('select', { name: 'action' }, ACTIONS.map((a) => h('option', { value: a }, a)));
  const ridField = field('Resource ID', rid, 'For example dcos:adminrouter:service:marathon or dcos:superuser.');
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Grant');
  const form = h('form', { class: 'form', novalidate: true },
    h('div', { class: ['row', 'org-grant'] }, ridField, field('Action', action)), submit);

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    ridField.setError(null);
    const r = rid.value.trim();
    if (!r) {
      ridField.setError('Enter a resource ID.');
      return;
    }
    submit.disabled = true;
    try {
      const acls = await api.get('iam', '/acls');
      if (!(acls?.array || []).some((a) => a.rid === r)) {
        await api.send('iam', `/acls/${ridPath(r)}`, { description: `${r} (created by the UI)` }, 'PUT');
      }
      await api.send('iam', `/acls/${ridPath(r)}/users/${encodeURIComponent(uid)}/${action.value}`, undefined, 'PUT');
      replace(message, notice('ok', `Granted ${action.value} on ${r}.`));
      rid.value = '';
      refresh();
    } catch (err) {
      if (err.body?.code === 'ERR_INVALID_RESOURCE_ID') ridField.setError(err.message);
      else replace(message, notice('bad', `Could not grant ${action.value} on ${r}: ${err.message}`));
    } finally {
      submit.disabled = false;
    }
  });
  return h('section', { class: ['panel', 'org-form'], 'aria-labelledby': 'grant-title' },
    h('h2', { id: 'grant-title' }, 'Grant a permission'), form);
}
