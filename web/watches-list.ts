import { apiJson } from './api.js';
import { fill, formatTime, h } from './dom.js';
import type { Watch } from './types.js';
import { errorBox } from './view.js';

/**
 * The Watches section of `#/`: the tenant's watches from `GET /v1/watches`, each with its
 * host, the build it rebuilds, its callback, and its last rebuilds (newest first), linked
 * to their builds or with the reason one could not start. Read once when the view opens.
 */
export function watchesSection(signal: AbortSignal): HTMLElement {
  const list = h('ul', { class: 'watches', id: 'watches' });
  const problem = h('div', { class: 'problem' });
  void apiJson<{ watches: Watch[] }>('GET', '/v1/watches', { signal }).then(
    ({ watches }) => fill(list, ...(watches.length ? watches.map(watchRow) : [h('li', { class: 'empty' }, 'No watches.')])),
    (err: unknown) => {
      if (!signal.aborted) fill(problem, errorBox(err));
    },
  );
  return h(
    'section',
    { class: 'watches-section', 'aria-labelledby': 'watches-title' },
    h('h2', { id: 'watches-title' }, 'Watches'),
    problem,
    list,
  );
}

/** One watch: its host and build, its callback, and its last rebuilds, newest first. */
export function watchRow(w: Watch): HTMLLIElement {
  const rebuilds = [...w.builds]
    .reverse()
    .map((b) =>
      h(
        'li',
        { class: 'watch-build', 'data-release': b.release },
        h('span', { class: 'watch-release' }, b.release),
        ' ',
        b.build
          ? h('a', { href: `#/builds/${b.build}`, class: 'watch-rebuild' }, h('code', {}, b.build))
          : h('span', { class: 'cell-error' }, h('strong', {}, b.error?.code ?? 'no_build'), ' ', b.error?.message ?? ''),
        ' ',
        h('span', { class: 'meta' }, formatTime(b.at)),
      ),
    );
  return h(
    'li',
    { class: 'watch-row', 'data-id': w.id },
    h(
      'div',
      { class: 'watch-head' },
      h('strong', { class: 'watch-host' }, w.host),
      ' rebuilds ',
      h('a', { href: `#/builds/${w.build}`, class: 'watch-build-link' }, h('code', {}, w.build)),
    ),
    h(
      'div',
      { class: 'meta' },
      ...(w.callback ? ['callback ', h('code', { class: 'watch-callback' }, w.callback)] : ['no callback']),
      ` · since ${formatTime(w.createdAt)}`,
    ),
    rebuilds.length ? h('ol', { class: 'watch-builds' }, ...rebuilds) : h('div', { class: 'meta' }, 'No release since.'),
  );
}
