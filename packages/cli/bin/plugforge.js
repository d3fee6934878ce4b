#!/usr/bin/env node
// The plugforge client: `plugforge build|status|list|logs|download|verify|toolchains …` (src/client/client-main.ts).
import { clientMain } from '../dist/client/client-main.js';

clientMain(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    console.error(`plugforge: ${err instanceof Error ? err.message : String(err)}`);
    process.exitCode = 1;
  },
);
