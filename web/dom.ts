/** A few lines of DOM building, so views read as the markup they make. */

export type Child = Node | string | number | undefined | null | false;
export type Props = Record<string, string | number | boolean | undefined | ((event: Event) => void)>;

/**
 * `h('a', { href: '#/', class: 'x', onclick: f }, 'text')`: `on…` props become listeners,
 * `true` an empty attribute, `false` and undefined none. Text is always a text node, never
 * parsed as HTML, so what the API says (logs, messages) cannot inject markup.
 */
export function h<K extends keyof HTMLElementTagNameMap>(tag: K, props: Props = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (typeof value === 'function') el.addEventListener(name.slice(2), value);
    else if (value === true) el.setAttribute(name, '');
    else if (value !== false && value !== undefined) el.setAttribute(name, String(value));
  }
  el.append(...kids(children));
  return el;
}

export function kids(children: Child[]): (Node | string)[] {
  return children.flatMap((c) => (c === undefined || c === null || c === false ? [] : [typeof c === 'number' ? String(c) : c]));
}

/** Replaces everything inside `el`. */
export function fill(el: Element, ...children: Child[]): void {
  el.replaceChildren(...kids(children));
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

export function formatTime(iso: string | undefined): string {
  return iso ? new Date(iso).toLocaleString() : '';
}
