// Part of `npm run build`: the page's html and css next to its compiled module
// (tsconfig.web.json compiles web/*.ts into dist/web/assets; src/api/web-routes.ts serves them).
import { copyFileSync, mkdirSync } from 'node:fs';

mkdirSync('dist/web/assets', { recursive: true });
copyFileSync('web/index.html', 'dist/web/index.html');
copyFileSync('web/app.css', 'dist/web/assets/app.css');
