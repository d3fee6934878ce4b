import { describeError } from './api.js';
import { h } from './dom.js';

/** What the router shows: an element, and how to stop what it started (polls, log follows). */
export interface View {
  el: HTMLElement;
  dispose(): void;
}

/** An error as the user sees it: the API's code, then its message. */
export function errorBox(err: unknown): HTMLElement {
  const { code, message } = describeError(err);
  return h(
    'div',
    { class: 'error', role: 'alert' },
    h('strong', { class: 'error-code' }, code),
    ' ',
    h('span', { class: 'error-message' }, message),
  );
}

export function statusBadge(status: string, label = status): HTMLElement {
  return h('span', { class: `badge status-${status}` }, label);
}
