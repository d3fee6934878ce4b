#!/usr/bin/env node
// The one plugforge executable: `plugforge serve|api|worker|images …` (see src/cli/main.ts).
import { main } from '../dist/cli/main.js';

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    console.error(`plugforge: ${err instanceof Error ? err.message : String(err)}`);
    process.exitCode = 1;
  },
);
