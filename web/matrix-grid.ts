import { samePath } from './api.js';
import { h } from './dom.js';
import { downloadLink, verifyText } from './target-card.js';
import { STATUSES, TARGETS, type MatrixCell, type MatrixDoc } from './types.js';
import { statusBadge } from './view.js';

/**
 * A matrix build's cells (docs/hosts.md, "A matrix") as a table: a row per host release, a
 * column per target, each cell its status, verify result, artifact (named for its release),
 * the release whose run built it when not its own, and its error. Then the builds that ran
 * the cells, each linked to its own page, where their logs are.
 */
export function matrixGrid(matrix: MatrixDoc, onError: (err: unknown) => void): HTMLElement {
  const targets = TARGETS.filter((t) => matrix.cells.some((c) => c.target === t));
  const cellOf = (host: string, target: string) => matrix.cells.find((c) => c.host === host && c.target === target);
  const table = h(
    'table',
    { class: 'matrix', id: 'matrix' },
    h('caption', {}, `${count(matrix.hosts.length, 'host release')} × ${count(targets.length, 'target')}`),
    h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'release'), ...targets.map((t) => h('th', { scope: 'col' }, t)))),
    h(
      'tbody',
      {},
      ...matrix.hosts.map((host) =>
        h(
          'tr',
          { 'data-host': host },
          h('th', { scope: 'row' }, host),
          ...targets.map((t) => {
            const cell = cellOf(host, t);
            return cell ? matrixCell(cell, onError) : h('td', { class: 'muted' }, '-');
          }),
        ),
      ),
    ),
  );
  return h(
    'div',
    { class: 'matrix-view' },
    // Wider than a phone: the table scrolls inside its box, the page does not.
    h('div', { class: 'matrix-scroll', tabindex: 0, role: 'region', 'aria-label': 'the matrix of releases and targets' }, table),
    h('h2', {}, 'Builds'),
    h(
      'p',
      { class: 'muted' },
      "A matrix build runs nothing itself: releases that need the same bytes are one build, and the logs are those builds'.",
    ),
    h(
      'ul',
      { class: 'matrix-builds' },
      ...matrix.builds.map((b) =>
        h('li', { 'data-build': b.build }, h('a', { href: `#/builds/${b.build}` }, h('code', {}, b.build)), ` for ${b.hosts.join(', ')}`),
      ),
    ),
  );
}

function matrixCell(cell: MatrixCell, onError: (err: unknown) => void): HTMLTableCellElement {
  return h(
    'td',
    { class: 'matrix-cell', 'data-host': cell.host, 'data-target': cell.target, 'data-status': cell.status },
    statusBadge(cell.status),
    cell.verify ? h('div', { class: 'cell-verify' }, verifyText(cell.verify)) : '',
    cell.artifact
      ? h('div', { class: 'cell-artifact' }, downloadLink(samePath(cell.artifact.url), cell.artifact.name, cell.artifact.name, onError))
      : '',
    cell.reusedFrom ? h('div', { class: 'cell-reused muted' }, `built with ${cell.reusedFrom}`) : '',
    cell.error ? h('div', { class: 'cell-error' }, h('strong', {}, cell.error.code), ' ', cell.error.message) : '',
  );
}

/**
 * A matrix build's cells in a line of the list: "3 releases × 2 targets: 4 succeeded, 2 failed",
 * each count in its status's badge.
 */
export function cellsSummary(cells: readonly { host: string; target: string; status: string }[]): HTMLElement {
  const hosts = new Set(cells.map((c) => c.host)).size;
  const targets = new Set(cells.map((c) => c.target)).size;
  const counts = STATUSES.map((s) => [s, cells.filter((c) => c.status === s).length] as const).filter(([, n]) => n > 0);
  return h(
    'span',
    { class: 'cells-summary' },
    `${count(hosts, 'release')} × ${count(targets, 'target')}: `,
    ...counts.flatMap(([s, n], i) => [i ? ', ' : '', statusBadge(s, `${n} ${s}`)]),
  );
}

function count(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}
