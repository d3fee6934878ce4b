import { ApiError, currentToken, setToken, UNAUTHORIZED_EVENT } from './api.js';
import { buildPage } from './build-page.js';
import { buildsList } from './builds-list.js';
import { fill, h } from './dom.js';
import { submitForm } from './submit-form.js';
import { tokenForm } from './token-form.js';
import type { View } from './view.js';

/**
 * plugforge's web page: hash routes `#/` (the builds), `#/new` (submit one) and
 * `#/builds/<id>` (one build). Served by src/api/web-routes.ts; talks only to the API
 * of its own origin.
 */
const main = document.getElementById('main')!;
const tokenState = document.getElementById('token-state')!;
let current: View | undefined;

function show(view: View): void {
  current?.dispose();
  current = view;
  fill(main, view.el);
  showTokenState();
}

function route(): void {
  const hash = location.hash || '#/';
  const build = /^#\/builds\/([A-Za-z0-9_-]+)$/.exec(hash)?.[1];
  show(build ? buildPage(build) : hash === '#/new' ? submitForm() : buildsList());
  for (const a of document.querySelectorAll<HTMLAnchorElement>('nav a')) {
    if (a.getAttribute('href') === (build ? '#/' : hash)) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
}

function showTokenState(): void {
  if (!currentToken()) return fill(tokenState);
  const forget = h('button', { type: 'button', class: 'link-button', id: 'forget-token' }, 'Forget token');
  forget.addEventListener('click', () => {
    setToken(undefined);
    route();
  });
  fill(tokenState, 'Token set · ', forget);
}

// Any 401 replaces the view with the token form once; the view asked for comes back after.
window.addEventListener(UNAUTHORIZED_EVENT, (e) => {
  const err = (e as CustomEvent<ApiError>).detail;
  if (current?.el.querySelector('#token-form')) return;
  setToken(undefined);
  show(tokenForm(err.message, route));
});
// After a navigation, keyboard and screen reader users start at the new view, not the old link.
window.addEventListener('hashchange', () => {
  route();
  main.focus({ preventScroll: true });
});
route();
