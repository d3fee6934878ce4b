import { setToken } from './api.js';
import { h } from './dom.js';
import type { View } from './view.js';

/**
 * Shown when the API answers 401: the server's words, and a field for this tab's token.
 * The token goes to sessionStorage (api.ts) and is sent as `Authorization: Bearer …`.
 */
export function tokenForm(message: string, done: () => void): View {
  const input = h('input', { type: 'password', id: 'token', name: 'token', autocomplete: 'off', required: true, spellcheck: 'false' });
  const form = h(
    'form',
    { class: 'token-form', id: 'token-form' },
    h('p', { role: 'alert' }, message),
    h('label', {}, 'API token ', input),
    h('p', { class: 'muted' }, 'Kept for this browser tab only (sessionStorage), and sent with every call to the API.'),
    h('button', { type: 'submit' }, 'Use this token'),
  );
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    setToken(input.value.trim());
    done();
  });
  queueMicrotask(() => input.focus());
  return { el: h('section', { class: 'view' }, h('h1', {}, 'This server needs a token'), form), dispose: () => undefined };
}
