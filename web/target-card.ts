import { currentToken, downloadWithToken, samePath } from './api.js';
import { fill, formatBytes, h } from './dom.js';
import type { TargetDoc } from './types.js';
import { errorBox, statusBadge } from './view.js';

/**
 * A link that downloads `path`. Without a token it is a plain link; with one, a click
 * fetches the bytes with the Authorization header and saves them (api.ts, downloadWithToken).
 */
export function downloadLink(path: string, name: string, label: string, onError: (err: unknown) => void): HTMLAnchorElement {
  const a = h('a', { href: path, download: name, class: 'download' }, label);
  a.addEventListener('click', (e) => {
    if (!currentToken()) return;
    e.preventDefault();
    downloadWithToken(path, name).catch(onError);
  });
  return a;
}

/**
 * One target of a build page: its state (updated in place at each poll) above a log pane
 * of fixed height, so lines arriving move nothing else on the page.
 */
export class TargetCard {
  readonly el: HTMLElement;
  private readonly summary = h('div', { class: 'target-summary' });
  private readonly log: HTMLPreElement;
  private readonly problem = h('div', { class: 'problem' });

  constructor(readonly target: string) {
    this.log = h('pre', { class: 'log', tabindex: 0, 'aria-label': `log of ${target}`, 'data-target': target });
    this.el = h('article', { class: 'target', 'data-target': target }, h('h3', {}, target), this.summary, this.problem, this.log);
  }

  update(t: TargetDoc): void {
    this.el.dataset.status = t.status;
    const rows: [string, Node | string][] = [['status', statusBadge(t.status, t.status)]];
    if (t.error) rows.push(['error', h('span', {}, h('strong', {}, t.error.code), ' ', t.error.message)]);
    if (t.verify) rows.push(['verify', verifyText(t.verify)]);
    if (t.artifact) {
      const a = t.artifact;
      rows.push(['size', formatBytes(a.size)], ['sha256', h('code', { class: 'sha256' }, a.sha256)]);
      rows.push(['artifact', downloadLink(samePath(a.url), a.name, a.name, (err) => fill(this.problem, errorBox(err)))]);
    }
    if (t.durationMs !== undefined) rows.push(['time', `${(t.durationMs / 1000).toFixed(1)} s`]);
    if (t.phases) rows.push(['phases', phasesText(t.phases)]);
    fill(this.summary, h('dl', {}, ...rows.flatMap(([k, v]) => [h('dt', {}, k), h('dd', { 'data-field': k }, v)])));
  }

  append(line: string): void {
    const log = this.log;
    // Keep following the end only while the reader is there; scrolling up stops it.
    const atEnd = log.scrollTop + log.clientHeight >= log.scrollHeight - 8;
    log.append(`${line}\n`);
    if (atEnd) log.scrollTop = log.scrollHeight;
  }
}

/** The phases that took time, in the order they run: "compile 2.7 s · loadCheck 1.1 s". */
function phasesText(phases: Record<string, number>): string {
  return Object.entries(phases)
    .filter(([, ms]) => ms >= 50)
    .map(([phase, ms]) => `${phase} ${(ms / 1000).toFixed(1)} s`)
    .join(' · ');
}

export function verifyText(v: NonNullable<TargetDoc['verify']>): HTMLElement {
  return h(
    'span',
    {},
    h('span', { class: `badge verify-${v.status}` }, v.status),
    v.method ? ` by ${v.method}` : '',
    v.probe?.how ? ` · probe: ${v.probe.how}` : '',
    v.message ? h('span', { class: 'verify-message' }, v.message) : '',
    v.probe?.reason ? h('span', { class: 'verify-message' }, v.probe.reason) : '',
  );
}
