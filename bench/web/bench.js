// `make bench`, browser half: Mimir's engine worker and wllama on the same GGUF, one page,
// one run. bench/run.py serves this page, `config.json` (the models, the prompt ids, the
// thread count) and collects what it POSTs to /results.
import { Wllama } from '/wllama/index.js';

const logElement = document.getElementById('log');
const log = (line) => {
  logElement.textContent += line + '\n';
  fetch('/log', { method: 'POST', body: line });
};

// Resolves with the first event of `type` the worker sends; rejects on an error event.
function nextEvent(worker, types) {
  return new Promise((resolve, reject) => {
    const listener = (message) => {
      const event = JSON.parse(message.data);
      if (types.includes(event.type)) {
        worker.removeEventListener('message', listener);
        resolve(event);
      } else if (event.type === 'error' || event.type === 'load_failed') {
        worker.removeEventListener('message', listener);
        reject(new Error(`worker: ${event.message}`));
      }
    };
    worker.addEventListener('message', listener);
  });
}

function catalog(model) {
  return {
    // No hub tier: the model is the "compact" one, fetched from this page's origin.
    hub: 'http://127.0.0.1:9',
    tokenizer: { repo: 'none/none', revision: 'main', path: 'tokenizer.json' },
    tiers: [],
    compact: {
      name: model.name,
      url: new URL(model.url, location.href).href,
      size: model.size,
      sha256: model.sha256,
      // Only the settings panel's defaults come from here; the bench sends its own settings.
      config: model.name.startsWith('phi3') ? 'phi-3-mini-4k-instruct' : 'smollm2-135m-instruct',
    },
    settings: new URL('/app/server_config.json', location.href).href,
  };
}

// i32x4.relaxed_dot_i8x16_i7x16_add_s in the smallest module: the probe the app's page uses
// (RELAXED_SIMD_PROBE in src/ui/worker_client.rs) to pick its worker build.
const RELAXED_SIMD_PROBE = new Uint8Array([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, 0x01, 0x05, 0x01, 0x60, 0x00, 0x01, 0x7b,
  0x03, 0x02, 0x01, 0x00, 0x0a, 0x13, 0x01, 0x11, 0x00, 0x41, 0x00, 0xfd, 0x0f, 0x41, 0x00,
  0xfd, 0x0f, 0x41, 0x00, 0xfd, 0x0f, 0xfd, 0x93, 0x02, 0x0b,
]);

// The worker build the app would start here for `threads` threads, unless the run names a
// build (`--mimir-worker`). More than one thread takes the threaded build (with relaxed SIMD),
// which the page starts where it is cross-origin isolated, as this one is; `threads` runs that
// build on one thread too.
function workerUrl(choice, threads) {
  if (threads > 1 || choice === 'threads') {
    return `/app/worker-threads_loader.js?threads=${threads}`;
  }
  const relaxed = choice === 'relaxed'
    || (choice === 'auto' && WebAssembly.validate(RELAXED_SIMD_PROBE));
  return relaxed ? '/app/worker-relaxed_loader.js' : '/app/worker_loader.js';
}

async function startWorker(url) {
  const worker = new Worker(url);
  await nextEvent(worker, ['started']);
  return worker;
}

async function loadOurs(model, url) {
  const worker = await startWorker(url);
  worker.postMessage(JSON.stringify({ type: 'load', catalog: catalog(model) }));
  await nextEvent(worker, ['ready']);
  return worker;
}

async function benchOurs(model, config) {
  // First load downloads into OPFS and verifies; the timed one reads the cache in a new worker.
  const url = workerUrl(config.mimir_worker, config.threads);
  (await loadOurs(model, url)).terminate();
  const start = performance.now();
  const worker = await loadOurs(model, url);
  const loadMs = performance.now() - start;

  const sent = performance.now();
  let firstTokenMs = null;
  worker.addEventListener('message', (message) => {
    if (firstTokenMs === null && JSON.parse(message.data).type === 'token') {
      firstTokenMs = performance.now() - sent;
    }
  });
  worker.postMessage(JSON.stringify({
    type: 'bench',
    prompt: config.prompt,
    config: {
      temperature: 0,
      max_tokens: config.decode_tokens,
      repetition_penalty: 1,
      context_length: config.prompt.length + config.decode_tokens + 8,
      loop_guard: { ngram: 0, max_repeats: 0 },
    },
  }));
  const done = await nextEvent(worker, ['done']);
  worker.postMessage(JSON.stringify({ type: 'info' }));
  const info = await nextEvent(worker, ['info']);
  worker.terminate();
  const peak = Math.max(...info.perf.memory.map((m) => m.wasm_bytes));
  // Where the load from cache went (fetch from the cache with its check, header, tokenizer,
  // weights, settings), as the worker's log records it.
  const attempts = info.perf.attempts;
  const loadStages = attempts.length ? attempts[attempts.length - 1].stages : [];
  const s = done.stats;
  const raw = await rawOpfsRead(model.size).catch((error) => {
    log(`raw OPFS read failed: ${error}`);
    return {};
  });
  return {
    engine: 'mimir',
    kernels: info.perf.kernels,
    threads: config.threads,
    load_ms: loadMs,
    load_stages: loadStages,
    opfs_read_ms: raw.ms ?? null,
    opfs_read_whole_ms: raw.wholeMs ?? null,
    opfs_read_whole_error: raw.wholeError ?? null,
    ttft_ms: s.time_to_first_token_ms,
    page_ttft_ms: firstTokenMs,
    prefill_tok_s: s.prefill_tokens_per_s,
    decode_tok_s: s.decode_tokens_per_s,
    generated_tokens: s.generated_tokens,
    peak_wasm_bytes: peak,
  };
}

// The raw cost of reading a cached model: the cached `.bin` file of exactly `size` bytes (the
// one Mimir's worker stored), read front to back in 4 MiB chunks through a sync access handle
// in a fresh worker, with no parsing. A failure here costs only this number, logged.
async function rawOpfsRead(size) {
  const code = `
    async function find(dir) {
      for await (const [name, handle] of dir.entries()) {
        if (handle.kind === 'directory') {
          const found = await find(handle);
          if (found) return found;
        } else if (name.endsWith('.bin') && (await handle.getFile()).size === ${size}) {
          return handle;
        }
      }
      return null;
    }
    (async () => {
      const file = await find(await navigator.storage.getDirectory());
      if (!file) { postMessage({ error: 'no cached file of ${size} bytes in OPFS' }); return; }
      const access = await file.createSyncAccessHandle();
      const buffer = new Uint8Array(4 << 20);
      let start = performance.now();
      let at = 0;
      for (;;) {
        const n = access.read(buffer, { at });
        if (n === 0) break;
        at += n;
      }
      const ms = performance.now() - start;
      // The same read into one buffer of the file's size: the bytes then exist in memory,
      // as a model's weights must (fresh pages cost their first touch). Some Chromium
      // versions refuse an ArrayBuffer this large (148 does for the 2.4 GB Phi-3 file).
      let wholeMs = null;
      let wholeError = null;
      try {
        start = performance.now();
        const whole = new Uint8Array(${size});
        for (let done = 0; done < whole.length; ) {
          const n = access.read(whole.subarray(done, done + (4 << 20)), { at: done });
          if (n === 0) break;
          done += n;
        }
        wholeMs = performance.now() - start;
      } catch (error) {
        wholeError = String(error);
      }
      access.close();
      postMessage({ ms, wholeMs, wholeError, bytes: at });
    })().catch((error) => postMessage({ error: String(error) }));
  `;
  const worker = new Worker(URL.createObjectURL(new Blob([code], { type: 'text/javascript' })));
  const result = await new Promise((resolve) => {
    worker.onmessage = (e) => resolve(e.data);
    worker.onerror = (e) => resolve({ error: e.message || 'the read worker failed' });
  });
  worker.terminate();
  if (result.error) throw new Error(result.error);
  if (result.wholeError) log(`raw OPFS read into one buffer failed: ${result.wholeError}`);
  return result;
}

async function loadWllama(model, config) {
  const wllama = new Wllama({ default: '/wllama/wasm/wllama.wasm' }, { suppressNativeLog: true });
  await wllama.loadModelFromUrl(new URL(model.url, location.href).href, {
    n_threads: config.threads,
    n_ctx: config.prompt.length + config.decode_tokens + 64,
    n_batch: 512,
  });
  return wllama;
}

async function benchWllama(model, config) {
  log('wllama: first load (download into its cache)');
  await (await loadWllama(model, config)).exit();
  log('wllama: load from cache');
  const start = performance.now();
  const wllama = await loadWllama(model, config);
  const loadMs = performance.now() - start;
  const threads = wllama.getNumThreads();

  log('wllama: completion');
  const sent = performance.now();
  let firstTokenMs = null;
  let timings = null;
  let generated = 0;
  await wllama.createCompletion({
    // wllama 3.8.1 fails on a prompt of token ids (its worker reads a garbage output length),
    // so it gets text of about the same length; prefill tok/s counts the tokens it reports.
    prompt: 'The quick brown fox jumps over the lazy dog. '.repeat(Math.ceil(config.prompt.length / 10)),
    max_tokens: config.decode_tokens,
    temp: 0,
    ignore_eos: true,
    stream: true,
    onData: (chunk) => {
      if (firstTokenMs === null) firstTokenMs = performance.now() - sent;
      if (chunk.timings) timings = chunk.timings;
      generated += 1;
    },
  });
  await wllama.exit();
  if (!timings) throw new Error('wllama returned no timings');
  return {
    engine: 'wllama',
    threads,
    load_ms: loadMs,
    ttft_ms: timings.prompt_ms,
    page_ttft_ms: firstTokenMs,
    prompt_n: timings.prompt_n,
    prefill_tok_s: timings.prompt_per_second,
    decode_tok_s: timings.predicted_per_second,
    generated_tokens: timings.predicted_n,
    peak_wasm_bytes: null,
  };
}

// What one yield to the event loop costs after a busy step: `setTimeout(0)` (clamped to 4 ms
// once nested 5 deep) against a `MessageChannel` message, in a dedicated worker as the engine's.
async function yieldCost(steps, busyMs) {
  const code = `
    const spin = (ms) => { const end = performance.now() + ms; while (performance.now() < end); };
    const viaTimeout = () => new Promise((r) => setTimeout(r, 0));
    const channel = new MessageChannel();
    let pending = null;
    channel.port1.onmessage = () => pending();
    const viaChannel = () => new Promise((r) => { pending = r; channel.port2.postMessage(null); });
    async function time(yieldOnce) {
      const start = performance.now();
      for (let i = 0; i < ${steps}; i++) { spin(${busyMs}); await yieldOnce(); }
      return (performance.now() - start - ${steps} * ${busyMs}) / ${steps};
    }
    (async () => postMessage({ timeout_ms: await time(viaTimeout), channel_ms: await time(viaChannel) }))();
  `;
  const worker = new Worker(URL.createObjectURL(new Blob([code], { type: 'text/javascript' })));
  const result = await new Promise((resolve) => { worker.onmessage = (e) => resolve(e.data); });
  worker.terminate();
  return result;
}

async function main() {
  const config = await (await fetch('/config.json')).json();
  const results = { user_agent: navigator.userAgent, cross_origin_isolated: crossOriginIsolated, models: [] };
  try {
    results.yield_overhead = await yieldCost(200, 5);
    log(`yield overhead per token: ${JSON.stringify(results.yield_overhead)}`);
    for (const model of config.models) {
      const runConfig = { ...config, prompt: model.prompt, decode_tokens: model.decode_tokens };
      const entry = { name: model.name, url: model.url, size: model.size, engines: [] };
      for (const { engine, threads } of config.engines) {
        log(`${model.name}: ${engine}, ${threads} thread(s)`);
        try {
          const bench = engine === 'mimir' ? benchOurs : benchWllama;
          const result = await bench(model, { ...runConfig, threads });
          log(`${model.name}: ${JSON.stringify(result)}`);
          entry.engines.push(result);
        } catch (error) {
          log(`${model.name}: ${engine} failed: ${error.stack || error}`);
          entry.engines.push({ engine, threads, error: String(error) });
        }
      }
      results.models.push(entry);
      // What is measured so far survives a run that later times out.
      await fetch('/progress', { method: 'POST', body: JSON.stringify(results) });
    }
  } catch (error) {
    results.error = String(error.stack || error);
  }
  await fetch('/results', { method: 'POST', body: JSON.stringify(results) });
  log('done');
}

main();
