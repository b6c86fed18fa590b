//! The /login page: posts the username and password and goes on to a page of this server only; it must never follow a `next` that leads to another host.
// @ts-check

import { api, translatePage, showError } from '/app.js';
translatePage();
// Only pages of this server: never send someone to another host after logging in. The URL
// parser decides, as the browser will: `/\evil.example` or `/%09/evil.example` are other hosts.
const sameOrigin = (next) => {
  if (!next) return null;
  try {
    const u = new URL(next, location.origin);
    return u.origin === location.origin ? u.href : null;
  } catch {
    return null;
  }
};
const target = sameOrigin(new URLSearchParams(location.search).get('next')) ?? '/today';
document.getElementById('form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  showError(null);
  try {
    await api('POST', '/api/login', {
      username: /** @type {HTMLInputElement} */ (document.getElementById('username')).value,
      password: /** @type {HTMLInputElement} */ (document.getElementById('password')).value,
    }, { noRedirect: true });
    location.assign(target);
  } catch (e) {
    showError(e);
  }
});
