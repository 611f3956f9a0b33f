// Organization: the IAM's accounts (users and service accounts) and each account's
// permissions, through Admin Router's /acs/api/v1. Users are added, deleted, granted and
// revoked here as with the DC/OS UI's Organization pages.

import {
  h, field, heading, notice, replace, table, button, crumbs, kv, badge, confirmDialog, linkTo, busy,
  notFoundNotice,
} from '../dom.js';
import * as api from '../api.js';
import { liveSection } from '../poll.js';

const IAM = 'The IAM';

const ACTIONS = ['full', 'create', 'read', 'update', 'delete'];

/** A resource id as one path segment: the IAM wants its `/` escaped twice (`%252F`). */
function ridPath(rid) {
  return api.segment(rid.replaceAll('/', '%2F')).replace(/%3A/gi, ':');
}

const userPath = (uid) => `/users/${api.segment(uid)}`;

// --- #/organization/users -------------------------------------------------------------------

export function renderUsers(root) {
  const message = h('div', { 'aria-live': 'polite' });
  const list = h('div');
  const me = api.currentUser()?.uid;

  async function remove(uid, deleteButton) {
    const yes = await confirmDialog('Delete user', `Delete the user ${uid}? Their permissions go with them.`, 'Delete');
    if (!yes) return;
    await busy(deleteButton, async () => {
      try {
        await api.send('iam', userPath(uid), undefined, 'DELETE');
        replace(message, notice('ok', `User ${uid} deleted.`));
      } catch (e) {
        replace(message, notice('bad', `Could not delete ${uid}: ${e.message}`));
      }
    });
    stop.now();
  }

  async function load() {
    const [users, services] = await Promise.all([
      api.get('iam', '/users'), api.get('iam', '/users?type=service'),
    ]);
    const rows = [...(users?.array || []), ...(services?.array || [])];
    const columns = [
      { title: 'User ID', cell: (u) => linkTo('organization/users', u.uid) },
      { title: 'Description', cell: (u) => u.description || '—' },
      { title: 'Kind', cell: (u) => (u.is_service ? 'Service account' : 'User') },
      { title: 'Actions', cell: (u) => (u.uid === me ? h('span', { class: 'muted small' }, 'you')
        : button('Delete', (e) => remove(u.uid, e.currentTarget), 'danger')) },
    ];
    return table(columns, rows, 'No users.', { 'aria-label': 'Users' }, (u) => ({ 'data-uid': u.uid }));
  }

  // stop.now() redraws at once after a change, instead of waiting for the next poll.
  replace(root, crumbs('Organization', 'Users'), heading('Users'), message, list,
    addUserForm(message, () => stop.now()));
  const stop = liveSection(list, load, IAM);
  return stop;
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
    await busy(submit, async () => {
      try {
        await api.send('iam', userPath(id), { description: description.value.trim(), password: password.value }, 'PUT');
        replace(message, notice('ok', `User ${id} added.`));
        form.reset();
        refresh();
      } catch (err) {
        // The IAM's errors say which part is wrong by code or in words.
        const code = err.body?.code || '';
        const text = err.message;
        if (/USER_ID|USER_EXISTS/.test(code) || (err.status === 400 && !err.body)) fields.uid.setError(text);
        else if (/password/i.test(text)) fields.password.setError(text);
        else if (/description/i.test(text)) fields.description.setError(text);
        else replace(message, notice('bad', `Could not add ${id}: ${text}`));
      }
    });
  });
  return h('section', { class: ['panel', 'org-form'], 'aria-labelledby': 'add-user-title' },
    h('h2', { id: 'add-user-title' }, 'Add user'), form);
}

// --- #/organization/users/:uid --------------------------------------------------------------

export function renderUser(root, [uid]) {
  const message = h('div', { 'aria-live': 'polite' });
  const body = h('div');

  async function revoke(rid, action, revokeButton) {
    await busy(revokeButton, async () => {
      try {
        await api.send('iam', `/acls/${ridPath(rid)}${userPath(uid)}/${api.segment(action)}`, undefined, 'DELETE');
        replace(message, notice('ok', `Revoked ${action} on ${rid}.`));
      } catch (e) {
        replace(message, notice('bad', `Could not revoke ${action} on ${rid}: ${e.message}`));
      }
    });
    stop.now();
  }

  async function load() {
    const [user, perms] = await Promise.all([api.get('iam', userPath(uid)), api.get('iam', `${userPath(uid)}/permissions`)]);
    // One row per resource and action, so each can be revoked on its own.
    const rows = (perms?.direct || []).flatMap((p) => (p.actions || []).map((a) => ({ rid: p.rid, action: a.name, description: p.description })));
    const inherited = (perms?.groups || []).flatMap((p) => (p.actions || []).map((a) => ({ ...p, action: a.name })));
    return [
      kv([
        ['Description', user.description || '—'],
        ['Kind', user.is_service ? 'Service account' : 'User'],
        ['Provider', user.provider_type || 'internal'],
      ]),
      h('h2', null, 'Permissions'),
      table([
        { title: 'Resource ID', cell: (r) => h('code', null, r.rid) },
        { title: 'Action', cell: (r) => badge(r.action, r.action === 'full' ? 'info' : '') },
        { title: 'Description', cell: (r) => r.description || '—' },
        { title: '', cell: (r) => button('Revoke', (e) => revoke(r.rid, r.action, e.currentTarget), 'danger') },
      ], rows, 'No permissions granted to this account directly.', { 'aria-label': 'Permissions' },
      (r) => ({ 'data-rid': r.rid, 'data-action': r.action })),
      inherited.length ? [h('h2', null, 'Through groups'), table([
        { title: 'Resource ID', cell: (r) => h('code', null, r.rid) },
        { title: 'Action', cell: (r) => r.action },
        { title: 'Group', cell: (r) => r.gid },
      ], inherited)] : null,
    ];
  }

  const grant = grantForm(uid, message, () => stop.now());
  replace(root, crumbs(['Users', '#/organization/users'], uid), heading(uid), message, body, grant);
  // No such account (say, deleted meanwhile): said so once, instead of failing every 2 s.
  const stop = liveSection(body, load, IAM, (e) => {
    if (e?.body?.code !== 'ERR_UNKNOWN_USER_ID') return null;
    grant.hidden = true;
    return notFoundNotice(`There is no user ${uid}.`, 'Back to Users', '#/organization/users');
  });
  return stop;
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
    await busy(submit, async () => {
      try {
        const acls = await api.get('iam', '/acls');
        if (!(acls?.array || []).some((a) => a.rid === r)) {
          await api.send('iam', `/acls/${ridPath(r)}`, { description: `${r} (created by the UI)` }, 'PUT');
        }
        await api.send('iam', `/acls/${ridPath(r)}${userPath(uid)}/${api.segment(action.value)}`, undefined, 'PUT');
        replace(message, notice('ok', `Granted ${action.value} on ${r}.`));
        rid.value = '';
        refresh();
      } catch (err) {
        if (err.body?.code === 'ERR_INVALID_RESOURCE_ID') ridField.setError(err.message);
        else replace(message, notice('bad', `Could not grant ${action.value} on ${r}: ${err.message}`));
      }
    });
  });
  return h('section', { class: ['panel', 'org-form'], 'aria-labelledby': 'grant-title' },
    h('h2', { id: 'grant-title' }, 'Grant a permission'), form);
}
