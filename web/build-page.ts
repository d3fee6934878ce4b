import { apiFetch, apiJson, describeError, samePath } from './api.js';
import { fill, formatTime, h } from './dom.js';
import { followLog } from './log-stream.js';
import { matrixGrid } from './matrix-grid.js';
import { downloadLink, TargetCard } from './target-card.js';
import { isActive, TARGETS, type BuildDoc } from './types.js';
import { errorBox, statusBadge, type View } from './view.js';

const POLL_MS = 2000;

/**
 * `#/builds/<id>`: the build document (`GET /v1/builds/:id`), polled every 2 s until the
 * build ends, each target with its state and its log followed live, the downloads, the host
 * match, and Cancel (`DELETE /v1/builds/:id`) while the build may still change. A matrix
 * build (docs/hosts.md, "A matrix") shows its cells as a grid instead, and links to the
 * builds that ran them: it has no log of its own.
 */
export function buildPage(id: string): View {
  const stop = new AbortController();
  const head = h('div', { class: 'build-head' });
  const problem = h('div', { class: 'problem' });
  const cancel = h('button', { type: 'button', id: 'cancel', class: 'danger', hidden: true }, 'Cancel build');
  const links = h('div', { class: 'links' });
  const host = h('div', { class: 'host-match' });
  const grid = h('div', { class: 'targets' });
  const targetsTitle = h('h2', {}, 'Targets');
  const matrix = h('div', { class: 'matrix-section', hidden: true });
  const cards = new Map<string, TargetCard>();
  let timer: ReturnType<typeof setTimeout> | undefined;
  let following: Promise<void> | undefined;
  // The dependency phase's lines (go mod download) get a pane of their own, made when one comes.
  const paneOf = (source: string): TargetCard | undefined => {
    if (source !== 'deps' || cards.has(source)) return cards.get(source);
    const deps = new TargetCard('dependencies');
    cards.set(source, deps);
    grid.prepend(deps.el);
    return deps;
  };

  const show = (doc: BuildDoc) => {
    fill(head, ...header(doc));
    cancel.hidden = !isActive(doc.status);
    fill(links, ...buildLinks(doc, (err) => fill(problem, errorBox(err))));
    if (doc.matrix) {
      // Its releases' host matches are their builds'; its logs too.
      targetsTitle.textContent = 'Releases and targets';
      matrix.hidden = false;
      fill(
        matrix,
        matrixGrid(doc.matrix, (err) => fill(problem, errorBox(err))),
      );
      fill(host);
      return;
    }
    fill(host, ...hostMatch(doc));
    for (const t of TARGETS) {
      const state = doc.targets[t];
      if (!state) continue;
      let card = cards.get(t);
      if (!card) {
        card = new TargetCard(t);
        cards.set(t, card);
        grid.append(card.el);
      }
      card.update(state);
    }
  };
  const load = async () => {
    try {
      const doc = await apiJson<BuildDoc>('GET', `/v1/builds/${encodeURIComponent(id)}`, { signal: stop.signal });
      show(doc);
      fill(problem);
      if (!following && !doc.matrix) following = followLogs(id, paneOf, stop.signal);
      if (isActive(doc.status) && !stop.signal.aborted) timer = setTimeout(() => void load(), POLL_MS);
    } catch (err) {
      if (!stop.signal.aborted) fill(problem, errorBox(err));
    }
  };
  cancel.addEventListener('click', () => {
    cancel.disabled = true;
    apiFetch('DELETE', `/v1/builds/${encodeURIComponent(id)}`)
      .then(() => (clearTimeout(timer), load()))
      .catch((err: unknown) => fill(problem, errorBox(err)))
      .finally(() => (cancel.disabled = false));
  });
  void load();
  const el = h(
    'section',
    { class: 'view build-page' },
    h('p', {}, h('a', { href: '#/' }, '← All builds')),
    head,
    problem,
    h('div', { class: 'actions' }, cancel, links),
    host,
    targetsTitle,
    matrix,
    grid,
  );
  return { el, dispose: () => (stop.abort(), clearTimeout(timer)) };
}

/**
 * Follows the build's log as one stream (`GET …/logs?follow=1` as events, src/api/log-routes.ts),
 * each line "[target] text" handed to that target's pane, until the build ends. One stream
 * rather than one per target (`&target=`): a browser opens at most six connections to a
 * server, and four per build page would leave a second tab's page waiting.
 */
async function followLogs(id: string, paneOf: (source: string) => TargetCard | undefined, signal: AbortSignal): Promise<void> {
  const route = (line: string) => {
    const m = /^\[([^\]]+)\] ?(.*)$/s.exec(line);
    if (m) paneOf(m[1]!)?.append(m[2]!);
  };
  try {
    await followLog(`/v1/builds/${encodeURIComponent(id)}/logs?follow=1`, route, signal);
  } catch (err) {
    if (signal.aborted) return;
    const { code, message } = describeError(err);
    for (const t of TARGETS) paneOf(t)?.append(`[page] the log could not be followed: ${code}: ${message}`);
  }
}

function header(doc: BuildDoc): (Node | string)[] {
  const facts: [string, Node | string][] = [
    ['module', doc.module ?? ''],
    ['Go', doc.goRequested && doc.goRequested !== doc.go ? `${doc.go} (asked: ${doc.goRequested})` : doc.go],
    ['mode', doc.mode],
    ['host profile', doc.host],
    ['created', formatTime(doc.createdAt)],
  ];
  if (doc.finishedAt) facts.push(['finished', formatTime(doc.finishedAt)]);
  if (doc.canceledAt) facts.push(['canceled', formatTime(doc.canceledAt)]);
  if (doc.reusedFrom) facts.push(['reuses', h('a', { href: `#/builds/${doc.reusedFrom}` }, doc.reusedFrom)]);
  return [
    h('h1', {}, doc.name, ' ', h('code', { class: 'build-id' }, doc.id), ' ', statusBadge(doc.status)),
    h('dl', { class: 'facts' }, ...facts.flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, v)])),
  ];
}

/** All artifacts at once; the Mattermost-style bundle only where there can be one (mode exe). */
function buildLinks(doc: BuildDoc, onError: (err: unknown) => void): Node[] {
  const artifacts = doc.matrix ? doc.matrix.cells.some((c) => c.artifact) : Object.values(doc.targets).some((t) => t?.artifact);
  if (isActive(doc.status) || !artifacts) return [];
  const all = downloadLink(
    samePath(doc.links.artifacts ?? `/v1/builds/${doc.id}/artifacts.tar.gz`),
    `${doc.name}-${doc.id}.tar.gz`,
    'artifacts.tar.gz',
    onError,
  );
  const bundle = downloadLink(
    `/v1/builds/${encodeURIComponent(doc.id)}/bundle.tar.gz`,
    `${doc.name}-bundle.tar.gz`,
    'bundle.tar.gz',
    onError,
  );
  return doc.mode === 'exe' && !doc.matrix ? [all, bundle] : [all];
}

function hostMatch(doc: BuildDoc): Node[] {
  const m = doc.hostMatch;
  if (!m) return [h('p', { class: 'muted' }, 'Host match: none asked for (no host go.mod or binary given).')];
  const said = [
    `from ${m.from}`,
    m.go ? `Go ${m.go}` : '',
    m.trimpath ? 'trimpath' : '',
    m.tags?.length ? `tags ${m.tags.join(',')}` : '',
    m.modules !== undefined ? `${m.modules} module(s)` : '',
  ];
  return [
    h('h2', {}, 'Host match'),
    h('p', {}, said.filter(Boolean).join(' · ')),
    ...(m.notes ?? []).map((n) => h('p', { class: 'muted' }, n)),
  ];
}
