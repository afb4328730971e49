// Starts the app. Trunk would inline this in index.html; a file of its own lets the
// Content-Security-Policy allow scripts from the page's origin only (`pattern_script` in
// Trunk.toml points here).
import init from './mimir.js';

await init({ module_or_path: './mimir_bg.wasm' });
