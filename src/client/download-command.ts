import { parseArgsOr } from '../usage-error.js';
import { TERMINAL, type BuildStatus } from '../contract/build-vocabulary.js';
import { bundleLine, downloadArtifacts, downloadBundle, downloadEvidence, evidenceLine } from './artifact-download.js';
import { EXIT } from './client-errors.js';
import { clientFrom, CONNECTION_OPTIONS, exitCodeOf } from './client-options.js';
import { DOWNLOAD_USAGE } from './client-usage.js';
import { singleId } from './status-command.js';
import { failureNotes, summaryTable } from './summary-table.js';

/**
 * `plugforge download ID [--out DIR] [--bundle]`: every succeeded artifact of an ended build,
 * each verified against its sha256 and kept with the build's provenance, signatures and SBOMs, and with --bundle the build's Mattermost-style bundle. Exit 0 when every target succeeded and verified, 1 when not
 * (or the build has not ended yet).
 */
export async function downloadCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseArgsOr(
    {
      args,
      allowPositionals: true,
      options: {
        ...CONNECTION_OPTIONS,
        out: { type: 'string', default: 'dist' },
        bundle: { type: 'boolean', default: false },
        json: { type: 'boolean', default: false },
      },
    },
    DOWNLOAD_USAGE,
  );
  if (values.help) {
    process.stdout.write(`${DOWNLOAD_USAGE}\n`);
    return EXIT.ok;
  }
  const id = singleId(positionals, DOWNLOAD_USAGE);
  const client = clientFrom(values, DOWNLOAD_USAGE);
  return exitCodeOf(async () => {
    const doc = await client.build(id);
    if (!TERMINAL.has(doc.status as BuildStatus)) {
      process.stderr.write(`plugforge: build ${id} is still ${doc.status}; wait for it with: plugforge logs ${id} --follow\n`);
      if (values.json) process.stdout.write(`${JSON.stringify({ ...doc, downloads: {} }, null, 2)}\n`);
      return EXIT.failed;
    }
    const downloading = downloadArtifacts(client, doc, values.out);
    // The evidence is fetched beside the artifacts, and kept for the verified ones.
    const keeping = downloadEvidence(client, doc, values.out, downloading);
    keeping.catch(() => undefined);
    const downloads = await downloading;
    const bundle = values.bundle ? await downloadBundle(client, doc, values.out) : undefined;
    const evidence = await keeping;
    if (values.json) process.stdout.write(`${JSON.stringify({ ...doc, downloads, ...(bundle ? { bundle } : {}), evidence }, null, 2)}\n`);
    else
      process.stdout.write(
        summaryTable(doc, downloads) + failureNotes(doc) + (bundle ? bundleLine(bundle) : '') + evidenceLine(evidence, values.out),
      );
    const allVerified = Object.keys(doc.targets).every((t) => downloads[t as keyof typeof downloads]?.verified);
    return doc.status === 'succeeded' && allVerified && (bundle?.verified ?? true) ? EXIT.ok : EXIT.failed;
  }, values.json);
}
