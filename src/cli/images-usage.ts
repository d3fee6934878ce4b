/** The usage lines of `plugforge images` (kept apart so main.ts can show them without loading the image builder). */
export const IMAGES_USAGE = `usage: plugforge images build --go VERSION [--source auto|debian|go-release [--alongside]] [--targets t1,t2] [--repo REPO] [--force] [--quiet]
       plugforge images list [--repo REPO] [--json]`;
