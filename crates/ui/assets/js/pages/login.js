// The login page: the IAM's uid and password login (POST /acs/api/v1/auth/login), whose
// cookies carry the login to every API; then back where the user was sent from.

import { h, field, heading, notice, replace } from '../dom.js';
import * as api from '../api.js';

/**
 * Where to go after the login: a hash of this app, or a page of this origin (a component's
 * view Admin Router sent here). The URL parser decides, not a prefix check: browsers drop
 * tabs and newlines inside URLs, so `/\t/evil.example` is another site.
 */
function destination(query) {
  const r = query.get('redirect') || '';
  if (/^#\/(?!login)/.test(r)) return { hash: r };
  try {
    const u = new URL(r, window.location.href);
    if (r.startsWith('/') && u.origin === window.location.origin && !u.hash.startsWith('#/login')) {
      return { href: u.pathname + u.search + u.hash };
    }
  } catch (_) {
    // Not a URL: the dashboard.
  }
  return { hash: '#/dashboard' };
}

export function render(root, _params, query) {
  const uid = h('input', { type: 'text', name: 'uid', autocomplete: 'username', required: true });
  const password = h('input', { type: 'password', name: 'password', autocomplete: 'current-password', required: true });
  const message = h('div', { 'aria-live': 'polite' });
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Log in');
  const form = h('form', { class: 'panel login-form', novalidate: true },
    message, field('Username', uid), field('Password', password), submit);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    if (!uid.value || !password.value) {
      replace(message, notice('bad', 'Enter your username and password.'));
      return;
    }
    submit.disabled = true;
    replace(message);
    try {
      await api.login(uid.value.trim(), password.value);
      const to = destination(query);
      if (to.href) window.location.href = to.href;
      else window.location.hash = to.hash;
    } catch (err) {
      const text = err.status === 401 ? 'The username or password is wrong.' : err.message;
      replace(message, notice('bad', text));
      password.value = '';
      password.focus();
    } finally {
      submit.disabled = false;
    }
  });
  replace(root, h('div', { class: 'login' },
    h('div', { class: 'brand' }, h('img', { src: 'assets/favicon.svg', alt: '' })),
    heading('Log in to DC/OS'), form));
  uid.focus();
}
