import { apiJson } from './api.js';
import { fill, formatTime, h } from './dom.js';
import { cellsSummary } from './matrix-grid.js';
import { isActive, STATUSES, TARGETS, type BuildList, type BuildSummary } from './types.js';
import { errorBox, statusBadge, type View } from './view.js';
import { watchesSection } from './watches-list.js';

const PAGE = 20;
const POLL_MS = 2000;

interface ListState {
  status: string;
  module: string;
  builds: BuildSummary[];
  next?: string;
}

/**
 * `#/`: the tenant's builds from `GET /v1/builds`, newest first, filtered by status and
 * module, a page at a time ("More" follows the cursor), polled every 2 s while any build
 * shown may still change. Below them, the tenant's watches (web/watches-list.ts).
 */
export function buildsList(): View {
  const stop = new AbortController();
  const state: ListState = { status: '', module: '', builds: [] };
  const list = h('ul', { class: 'builds', id: 'builds' });
  const problem = h('div', { class: 'problem' });
  const more = h('button', { type: 'button', class: 'more', id: 'more', hidden: true }, 'More');
  let timer: ReturnType<typeof setTimeout> | undefined;

  const query = (limit: number, cursor?: string) => {
    const q = new URLSearchParams({ limit: String(limit) });
    if (state.status) q.set('status', state.status);
    if (state.module) q.set('module', state.module);
    if (cursor) q.set('cursor', cursor);
    return `/v1/builds?${q}`;
  };
  const show = (page: BuildList, append: boolean) => {
    state.builds = append ? [...state.builds, ...page.builds] : page.builds;
    state.next = page.next;
    fill(list, ...(state.builds.length ? state.builds.map(buildRow) : [h('li', { class: 'empty' }, 'No builds yet.')]));
    more.hidden = !state.next;
    fill(problem);
    clearTimeout(timer);
    if (!stop.signal.aborted && state.builds.some((b) => isActive(b.status))) timer = setTimeout(() => void load(false), POLL_MS);
  };
  // A poll asks again for as many builds as are shown, so the rows already loaded stay.
  const load = async (append: boolean) => {
    try {
      const limit = append ? PAGE : Math.min(100, Math.max(PAGE, state.builds.length));
      show(await apiJson<BuildList>('GET', query(limit, append ? state.next : undefined), { signal: stop.signal }), append);
    } catch (err) {
      if (!stop.signal.aborted) fill(problem, errorBox(err));
    }
  };
  more.addEventListener('click', () => void load(true));
  const filters = filterForm(state, () => {
    state.builds = [];
    void load(false);
  });
  void load(false);
  const el = h('section', { class: 'view' }, h('h1', {}, 'Builds'), filters, problem, list, more, watchesSection(stop.signal));
  return { el, dispose: () => (stop.abort(), clearTimeout(timer)) };
}

function filterForm(state: ListState, apply: () => void): HTMLFormElement {
  const status = h(
    'select',
    { id: 'filter-status', name: 'status' },
    h('option', { value: '' }, 'any'),
    ...STATUSES.map((s) => h('option', { value: s }, s)),
  );
  const module = h('input', { id: 'filter-module', name: 'module', type: 'text', placeholder: 'example.com/hello', autocomplete: 'off' });
  const form = h(
    'form',
    { class: 'filters', role: 'search' },
    h('label', {}, 'Status ', status),
    h('label', {}, 'Module ', module),
    h('button', { type: 'submit' }, 'Filter'),
  );
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    state.status = status.value;
    state.module = module.value.trim();
    apply();
  });
  return form;
}

function buildRow(b: BuildSummary): HTMLLIElement {
  const targets = TARGETS.flatMap((t) => {
    const s = b.targets[t];
    return s ? [statusBadge(s.status, `${t.replace('linux-', '')} ${s.status}${s.verify ? ` · ${s.verify}` : ''}`)] : [];
  });
  return h(
    'li',
    { class: 'build-row', 'data-id': b.id, 'data-status': b.status },
    h('a', { href: `#/builds/${b.id}`, class: 'build-link' }, h('span', { class: 'build-name' }, b.name), ' ', h('code', {}, b.id)),
    statusBadge(b.status),
    h(
      'span',
      { class: 'meta' },
      [b.module, `Go ${b.go}`, b.mode, b.host, formatTime(b.createdAt), b.reusedFrom ? `reuses ${b.reusedFrom}` : '']
        .filter(Boolean)
        .join(' · '),
    ),
    // A matrix build's targets are empty: its cells say how it went.
    b.cells ? h('span', { class: 'target-badges' }, cellsSummary(b.cells)) : h('span', { class: 'target-badges' }, ...targets),
  );
}
