import { apiJson } from './api.js';
import { fill, formatBytes, h } from './dom.js';
import { filesOfDirectoryInput, packFolder, type FolderFile } from './pack-folder.js';
import { HOSTS, TARGETS, type BuildDoc, type Toolchains } from './types.js';
import { errorBox, type View } from './view.js';

/** Where the source comes from: a .tar.gz as it is, or a folder the page packs itself. */
type Source = { kind: 'archive'; file: File } | { kind: 'folder'; name: string; files: FolderFile[] };

/**
 * `#/new`: `POST /v1/builds`. The source is a .tar.gz (chosen or dropped) sent as it is, or a
 * folder packed here (pack-folder.ts); options go in the query. With a host binary the body
 * is multipart (parts `source` and `hostBinary`). On 202 the page goes to the new build.
 */
export function submitForm(): View {
  const stop = new AbortController();
  let source: Source | undefined;
  const chosen = h('p', { class: 'chosen', id: 'source-chosen', 'aria-live': 'polite' }, 'No source chosen yet.');
  const problem = h('div', { class: 'problem' });
  const archive = h('input', { type: 'file', id: 'source-archive', accept: '.tar.gz,.tgz,application/gzip' });
  const folder = h('input', { type: 'file', id: 'source-folder', webkitdirectory: true, multiple: true });
  const choose = (s: Source) => {
    source = s;
    fill(
      chosen,
      s.kind === 'archive'
        ? `Archive ${s.file.name} (${formatBytes(s.file.size)}), sent as it is.`
        : `Folder ${s.name}: ${s.files.length} file(s), packed here with the CLI's ignore rules.`,
    );
  };
  archive.addEventListener('change', () => {
    const file = archive.files?.[0];
    if (!file) return;
    folder.value = '';
    choose({ kind: 'archive', file });
  });
  folder.addEventListener('change', () => {
    const files = folder.files;
    if (!files?.length) return;
    archive.value = '';
    choose({ kind: 'folder', name: files[0]!.webkitRelativePath.split('/')[0] ?? '', files: filesOfDirectoryInput(files) });
  });
  const drop = dropZone((file) => choose({ kind: 'archive', file }));
  const options = optionFields(stop.signal, problem);
  const submit = h('button', { type: 'submit', id: 'submit' }, 'Build');
  const form = h(
    'form',
    { class: 'submit-form', id: 'submit-form' },
    h(
      'fieldset',
      {},
      h('legend', {}, 'Source'),
      drop,
      h('label', {}, 'A .tar.gz of the plugin ', archive),
      h('label', {}, 'or its folder ', folder),
      chosen,
    ),
    options.fieldset,
    submit,
    problem,
  );
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    if (!source) return fill(problem, errorBox(new Error('Choose a .tar.gz or a folder first.')));
    submit.disabled = true;
    send(source, options.query(), options.hostBinary(), (text) => fill(chosen, text))
      .then((doc) => (location.hash = `#/builds/${doc.id}`))
      .catch((err: unknown) => fill(problem, errorBox(err)))
      .finally(() => (submit.disabled = false));
  });
  return { el: h('section', { class: 'view' }, h('h1', {}, 'New build'), form), dispose: () => stop.abort() };
}

async function send(source: Source, query: URLSearchParams, hostBinary: File | undefined, say: (text: string) => void): Promise<BuildDoc> {
  let body: Blob = source.kind === 'archive' ? source.file : new Blob();
  if (source.kind === 'folder') {
    say(`Packing ${source.name}…`);
    const packed = await packFolder(source.files);
    say(
      `Packed ${packed.files} file(s), ${formatBytes(packed.bytes)} (${packed.ignored} left out by the ignore rules) into ${formatBytes(packed.archive.size)}; uploading…`,
    );
    body = packed.archive;
  }
  const path = `/v1/builds?${query}`;
  if (!hostBinary) return apiJson<BuildDoc>('POST', path, { body, headers: { 'Content-Type': 'application/gzip' } });
  const form = new FormData();
  form.append('source', body, 'source.tar.gz');
  form.append('hostBinary', hostBinary, hostBinary.name);
  return apiJson<BuildDoc>('POST', path, { body: form });
}

function dropZone(onFile: (file: File) => void): HTMLElement {
  const zone = h('div', { class: 'drop-zone', id: 'drop-zone' }, 'Drop a .tar.gz here, or choose one below.');
  zone.addEventListener('dragover', (e) => {
    e.preventDefault();
    zone.classList.add('over');
  });
  zone.addEventListener('dragleave', () => zone.classList.remove('over'));
  zone.addEventListener('drop', (e) => {
    e.preventDefault();
    zone.classList.remove('over');
    const file = e.dataTransfer?.files[0];
    if (file) onFile(file);
  });
  return zone;
}

/**
 * Go (from `GET /v1/toolchains`), targets, host profile, registered host releases (`hosts=`;
 * several build a matrix: docs/hosts.md), an optional host binary and the package to build.
 */
function optionFields(signal: AbortSignal, problem: HTMLElement) {
  const go = h('select', { id: 'go', name: 'go' }, h('option', { value: '' }, "the server's default"));
  const targets = TARGETS.map((t) => h('input', { type: 'checkbox', name: 'targets', value: t, checked: true }));
  const host = h('select', { id: 'host', name: 'host' }, ...HOSTS.map((p) => h('option', { value: p }, p)));
  const releases = h('input', {
    type: 'text',
    id: 'hosts',
    name: 'hosts',
    placeholder: 'gotify@2.3.0,gotify@2.4.0',
    autocomplete: 'off',
    'aria-describedby': 'hosts-hint',
  });
  const pkg = h('input', { type: 'text', id: 'package', name: 'package', placeholder: './server', autocomplete: 'off' });
  const binary = h('input', { type: 'file', id: 'host-binary' });
  apiJson<Toolchains>('GET', '/v1/toolchains', { signal })
    .then((tc) => {
      const versions = tc.toolchains.map((t) => t.go);
      fill(
        go,
        ...versions.map((v) => h('option', { value: v }, v)),
        ...(versions.length ? [] : [h('option', { value: '' }, `the server's default (${tc.defaultGo})`)]),
      );
      go.value = versions.find((v) => v === tc.defaultGo || v.startsWith(`${tc.defaultGo}.`)) ?? versions[0] ?? '';
    })
    .catch((err: unknown) => signal.aborted || fill(problem, errorBox(err)));
  const fieldset = h(
    'fieldset',
    {},
    h('legend', {}, 'Options'),
    h('label', {}, 'Go ', go),
    h(
      'fieldset',
      { class: 'targets-choice' },
      h('legend', {}, 'Targets'),
      ...targets.map((box) => h('label', { class: 'check' }, box, ` ${box.value}`)),
    ),
    h('label', {}, 'Host profile ', host),
    h('label', {}, 'Host releases (optional) ', releases),
    h(
      'p',
      { class: 'hint muted', id: 'hosts-hint' },
      'Registered releases, comma-separated: several build every release and target (a matrix).',
    ),
    h('label', {}, 'Host binary (optional: the host executable, or its `go version -m` text) ', binary),
    h('label', {}, 'Package (optional: the main package, relative to go.mod; default the root) ', pkg),
  );
  const query = () => {
    const q = new URLSearchParams();
    if (go.value) q.set('go', go.value);
    q.set(
      'targets',
      targets
        .filter((b) => b.checked)
        .map((b) => b.value)
        .join(','),
    );
    q.set('host', host.value);
    const hosts = releases.value.replace(/\s+/g, '');
    if (hosts) q.set('hosts', hosts);
    const dir = pkg.value.trim();
    if (dir) q.set('package', dir);
    return q;
  };
  return { fieldset, query, hostBinary: () => binary.files?.[0] };
}
