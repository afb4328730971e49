#!/usr/bin/env python3
"""`make bench`: Mimir's engine against its peers on the same GGUF files, in one run.

Native (1 thread): Mimir vs candle-transformers (`mimir-train`'s `bench` binary) and llama.cpp
through llama-cpp-python (built from its PyPI sdist into bench/.venv). Browser (headless
Chromium, one page): Mimir's engine worker vs @wllama/wllama (bench/package.json pins it) at
the same thread count. Same pseudo-random 200-token prompt everywhere, greedy, 128 tokens
decoded past end-of-turn. Writes bench/results.json and bench/README.md; nothing is hard-coded.
"""

import argparse
import hashlib
import http.server
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
WORK = BENCH / "work"
VENV = BENCH / ".venv"
LLAMA_CPP_PYTHON = "0.3.16"
# Random weights with Phi-3-mini-4k's exact shapes in llama.cpp's Q4_K_M layout (~2.4 GB).
# Kept out of models/, which trunk copies into every app build.
PHI3_SHAPED = WORK / "phi3-mini-shaped.Q4_K_M.gguf"
# Chromium's DevTools port when a watcher drives the page (bench/profile.py).
DEBUG_PORT = 9229


def say(message):
    print(f"bench: {message}", flush=True)


def run(cmd, **kwargs):
    say(" ".join(str(c) for c in cmd))
    return subprocess.run(cmd, check=True, **kwargs)


# The native binaries are built for this CPU, as llama-cpp-python builds llama.cpp
# (GGML_NATIVE): without it candle's AVX2/FMA kernels are compiled out. Their own target
# folder keeps the flag from rebuilding the project's main one.
NATIVE_RUSTFLAGS = "-C target-cpu=native"
NATIVE_TARGET = WORK / "target"


def build_native():
    run(["cargo", "build", "--release", "-p", "mimir-train", "--bin", "bench", "--bin",
         "mimir-train"], cwd=ROOT,
        env={**os.environ, "CARGO_TARGET_DIR": str(NATIVE_TARGET), "RUSTFLAGS": NATIVE_RUSTFLAGS})


def sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ---------------------------------------------------------------- native


def token_counts(model, args):
    """(prompt, decode) tokens for `model`: fewer for the 3.8 B-parameter Phi-3 stand-in, so
    the whole run fits in 30 minutes on 2 cores."""
    if Path(model).resolve() == PHI3_SHAPED.resolve():
        return args.large_prompt_tokens, args.large_decode_tokens
    return args.prompt_tokens, args.decode_tokens


def median_engine(runs):
    """One engine's rounds as one row: the median of each timing, every round's decode kept."""
    row = dict(runs[0])
    for key in ("load_ms", "ttft_ms", "prefill_tok_s", "decode_tok_s"):
        values = [r[key] for r in runs if r.get(key) is not None]
        if values:
            row[key] = statistics.median(values)
    row["rounds"] = len(runs)
    row["decode_tok_s_rounds"] = [r.get("decode_tok_s") for r in runs]
    row["prefill_tok_s_rounds"] = [r.get("prefill_tok_s") for r in runs]
    return row


def native_mimir_candle(model, args):
    """Mimir and candle-transformers through the `bench` binary (release)."""
    prompt_tokens, decode_tokens = token_counts(model, args)
    out = subprocess.run(
        [NATIVE_TARGET / "release" / "bench", "--model", model, "--threads", "1",
         "--prompt-tokens", str(prompt_tokens), "--decode-tokens", str(decode_tokens),
         "--json"],
        check=True, capture_output=True, text=True,
    ).stdout
    return json.loads(out)


LLAMA_SCRIPT = r"""
import json, sys, time
import numpy as np
from llama_cpp import Llama
model, prompt, decode = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3])
start = time.perf_counter()
llm = Llama(model_path=model, n_ctx=len(prompt) + decode + 8, n_threads=1, n_threads_batch=1,
            n_batch=512, verbose=False)
load_ms = (time.perf_counter() - start) * 1e3
start = time.perf_counter()
llm.eval(prompt)
token = int(np.argmax(llm.scores[llm.n_tokens - 1]))
prefill_s = time.perf_counter() - start
start = time.perf_counter()
for _ in range(decode):
    llm.eval([token])
    token = int(np.argmax(llm.scores[llm.n_tokens - 1]))
decode_s = time.perf_counter() - start
import llama_cpp
print(json.dumps({"engine": "llama.cpp", "version": llama_cpp.__version__, "threads": 1,
                  "load_ms": load_ms, "ttft_ms": prefill_s * 1e3,
                  "prefill_tok_s": len(prompt) / prefill_s, "decode_tok_s": decode / decode_s}))
"""


def ensure_llama_cpp():
    """llama-cpp-python from its sdist in bench/.venv; None when it cannot be built here."""
    python = VENV / "bin" / "python"
    check = [str(python), "-c", f"import llama_cpp; assert llama_cpp.__version__ == '{LLAMA_CPP_PYTHON}'"]
    if python.exists() and subprocess.run(check, capture_output=True).returncode == 0:
        return python
    say(f"building llama-cpp-python {LLAMA_CPP_PYTHON} from its sdist (10-20 min, once)")
    try:
        if not python.exists():
            run([sys.executable, "-m", "venv", VENV])
        run([python, "-m", "pip", "install", "--quiet", "--no-binary", "llama-cpp-python",
             f"llama-cpp-python=={LLAMA_CPP_PYTHON}", "numpy"],
            env={**os.environ, "CMAKE_BUILD_PARALLEL_LEVEL": str(os.cpu_count() or 1)})
    except subprocess.CalledProcessError as e:
        say(f"llama-cpp-python could not be built: {e}")
        return None
    return python


def native_llama_cpp(python, model, prompt, decode):
    out = subprocess.run([python, "-c", LLAMA_SCRIPT, model, json.dumps(prompt), str(decode)],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


# ---------------------------------------------------------------- browser


class Site(http.server.SimpleHTTPRequestHandler):
    """The bench page, the built app, wllama and the models, with the Space's isolation
    headers and byte ranges; POST /results ends the run, POST /log prints a line."""

    routes = {}
    models = {}
    results = None
    finished = threading.Event()

    def log_message(self, *_):
        pass

    def end_headers(self):
        self.send_header("Cross-Origin-Opener-Policy", "same-origin")
        self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
        self.send_header("Cross-Origin-Resource-Policy", "cross-origin")
        self.send_header("Cache-Control", "no-store")
        super().end_headers()

    def translate_path(self, path):
        path = path.split("?", 1)[0]
        if path == "/config.json":
            return str(WORK / "site" / "config.json")
        if path.startswith("/models/"):
            model = self.models.get(path.removeprefix("/models/"))
            return str(model or BENCH / "web" / "__missing__")
        for prefix, folder in self.routes.items():
            if path.startswith(prefix):
                rest = path[len(prefix):].lstrip("/") or "index.html"
                target = (folder / rest).resolve()
                if ".." in Path(rest).parts:
                    return str(folder / "__refused__")
                return str(target)
        return str(BENCH / "web" / "__missing__")

    def guess_type(self, path):
        if str(path).endswith(".wasm"):
            return "application/wasm"
        if str(path).endswith(".js"):
            return "text/javascript"
        return super().guess_type(path)

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.path == "/results":
            Site.results = json.loads(body)
            Site.finished.set()
        elif self.path == "/progress":
            Site.results = json.loads(body)
        elif self.path == "/log":
            say(f"page: {body.decode(errors='replace')}")
        self.send_response(204)
        self.end_headers()

    def do_GET(self):
        rng = self.headers.get("Range")
        path = Path(self.translate_path(self.path))
        if not rng or not path.is_file():
            return super().do_GET()
        size = path.stat().st_size
        start_s, _, end_s = rng.removeprefix("bytes=").partition("-")
        start = int(start_s or 0)
        end = min(int(end_s) if end_s else size - 1, size - 1)
        if start >= size:
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{size}")
            self.end_headers()
            return
        self.send_response(206)
        self.send_header("Content-Type", self.guess_type(str(path)))
        self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.send_header("Content-Length", str(end - start + 1))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        with open(path, "rb") as f:
            f.seek(start)
            left = end - start + 1
            while left > 0:
                chunk = f.read(min(left, 1 << 20))
                if not chunk:
                    break
                self.wfile.write(chunk)
                left -= len(chunk)


def browser_run(models, args, watch=None):
    """Runs the bench page in headless Chromium and returns what it posted. `watch(url,
    finished)`, when given, opens the page itself through Chromium's DevTools port
    (`DEBUG_PORT`) and returns once `finished` is set or it gives up (bench/profile.py)."""
    site = WORK / "site"
    shutil.rmtree(site, ignore_errors=True)
    site.mkdir(parents=True)
    config = {
        "prompt_tokens": args.prompt_tokens,
        "decode_tokens": args.decode_tokens,
        "mimir_worker": args.mimir_worker,
        "engines": ([{"engine": "mimir", "threads": t} for t in args.mimir_threads]
                    if "mimir" in args.engines else [])
        + ([{"engine": "wllama", "threads": t} for t in args.wllama_threads]
           if "wllama" in args.engines else []),
        "models": [
            {"name": m["name"], "url": f"/models/{Path(m['path']).name}", "size": m["size"],
             "sha256": m["sha256"], "prompt": m["prompt"], "decode_tokens": m["decode_tokens"]}
            for m in models
        ],
    }
    (site / "config.json").write_text(json.dumps(config))
    Site.routes = {
        "/app/": WORK / "dist",
        "/wllama/": BENCH / "node_modules" / "@wllama" / "wllama" / "esm",
        "/": BENCH / "web",
    }
    Site.models = {Path(m["path"]).name: Path(m["path"]).resolve() for m in models}
    server = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), Site)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    profile = tempfile.mkdtemp(prefix="mimir-bench-chromium-")
    url = f"http://127.0.0.1:{args.port}/"
    opened = [f"--remote-debugging-port={DEBUG_PORT}", "about:blank"] if watch else [url]
    chromium = subprocess.Popen(
        [args.chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
         f"--user-data-dir={profile}", *args.chromium_flag, *opened],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        if watch:
            watch(url, Site.finished)
        if not Site.finished.wait(0 if watch else args.browser_timeout):
            say(f"the page did not finish within {args.browser_timeout} s; keeping what it sent")
            Site.results = dict(Site.results or {"models": []})
            Site.results["error"] = f"timed out after {args.browser_timeout} s"
    finally:
        chromium.terminate()
        chromium.wait()
        server.shutdown()
        shutil.rmtree(profile, ignore_errors=True)
    return Site.results


# ---------------------------------------------------------------- report


def ratio(a, b):
    return a / b if a and b else None


def fmt(value, digits=1):
    return "–" if value is None else f"{value:.{digits}f}"


def machine():
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "system": platform.platform(),
        "load_average_at_start": os.getloadavg(),
    }


def write_report(results):
    (BENCH / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    lines = [
        "# Benchmark",
        "",
        "Written by `make bench` (`bench/run.py`); do not edit by hand. Every number below comes",
        "from the run described here, all engines measured in that one run on the same GGUF files",
        "and the same pseudo-random prompt, greedy, decoding past end-of-turn.",
        "",
        f"- command: `{results['command']}`",
        f"- when: {results['date']}",
        f"- machine: {results['machine']['cpu']}, {results['machine']['cores']} cores, "
        f"{results['machine']['system']}; load average at start "
        f"{', '.join(f'{x:.2f}' for x in results['machine']['load_average_at_start'])}"
        + (" (other work shared the cores: compare ratios, not absolute numbers)"
           if results['machine']['load_average_at_start'][0] > 1.5 else " (otherwise idle)"),
        f"- browser: {results.get('browser', {}).get('version', '–')}, headless, "
        f"user agent `{results.get('browser', {}).get('user_agent', '–')}`",
        "",
    ]
    for model in results["models"]:
        lines += [f"## {model['name']} ({model['size'] / 1e6:.1f} MB)", "",
                  f"Prompt {model['prompt_tokens']} tokens, {model['decode_tokens']} decoded.", "",
                  "| where | engine | threads | load ms | TTFT ms | prefill tok/s | decode tok/s "
                  "| peak wasm MiB | prefill ratio | decode ratio |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        native = {e["engine"]: e for e in model.get("native", [])}
        browser = model.get("browser", [])
        ours_native = native.get("mimir", {})
        ours_web = next((e for e in browser
                         if e.get("engine") == "mimir" and e.get("threads", 1) == 1), {})
        for e in model.get("native", []):
            lines.append(
                f"| native | {e['engine']} | {e.get('threads', 1)} | {fmt(e.get('load_ms'), 0)} "
                f"| {fmt(e.get('ttft_ms'), 0)} | {fmt(e.get('prefill_tok_s'))} "
                f"| {fmt(e.get('decode_tok_s'))} | – "
                f"| {fmt(ratio(ours_native.get('prefill_tok_s'), e.get('prefill_tok_s')), 2)} "
                f"| {fmt(ratio(ours_native.get('decode_tok_s'), e.get('decode_tok_s')), 2)} |")
        for e in browser:
            if "error" in e:
                lines.append(f"| browser | {e['engine']} | {e.get('threads', '–')} | failed: "
                             f"{e['error'][:120]} | | | | | | |")
                continue
            peak = e.get("peak_wasm_bytes")
            engine = e["engine"] + (f" ({e['kernels']})" if e.get("kernels") else "")
            lines.append(
                f"| browser | {engine} | {e.get('threads', 1)} | {fmt(e.get('load_ms'), 0)} "
                f"| {fmt(e.get('ttft_ms'), 0)} | {fmt(e.get('prefill_tok_s'))} "
                f"| {fmt(e.get('decode_tok_s'))} | {fmt(peak / 2**20 if peak else None, 0)} "
                f"| {fmt(ratio(ours_web.get('prefill_tok_s'), e.get('prefill_tok_s')), 2)} "
                f"| {fmt(ratio(ours_web.get('decode_tok_s'), e.get('decode_tok_s')), 2)} |")
        if ours_web and ours_native.get("decode_tok_s") and "llama.cpp" in native:
            ref = native["llama.cpp"]
            lines += ["", f"Mimir in the browser / native llama.cpp, 1 thread: prefill "
                      f"{fmt(ratio(ours_web.get('prefill_tok_s'), ref['prefill_tok_s']), 2)}, "
                      f"decode {fmt(ratio(ours_web.get('decode_tok_s'), ref['decode_tok_s']), 2)}."]
        threaded = [e for e in browser if e.get("engine") == "mimir" and "error" not in e
                    and e.get("threads", 1) > 1]
        for e in threaded:
            lines += ["", f"Mimir in the browser, {e['threads']} threads / 1 thread: prefill "
                      f"{fmt(ratio(e.get('prefill_tok_s'), ours_web.get('prefill_tok_s')), 2)}, "
                      f"decode {fmt(ratio(e.get('decode_tok_s'), ours_web.get('decode_tok_s')), 2)}."]
            peer = next((w for w in browser if w.get("engine") == "wllama" and "error" not in w
                         and w.get("threads") == e["threads"]), None)
            if peer:
                lines[-1] += (f" Against wllama on {e['threads']} threads: prefill "
                              f"{fmt(ratio(e.get('prefill_tok_s'), peer.get('prefill_tok_s')), 2)}, "
                              f"decode {fmt(ratio(e.get('decode_tok_s'), peer.get('decode_tok_s')), 2)}.")
        if ours_web.get("opfs_read_ms"):
            lines += ["", f"Mimir's load from the OPFS cache {fmt(ours_web['load_ms'], 0)} ms, the raw "
                      f"read of the same file {fmt(ours_web['opfs_read_ms'], 0)} ms: "
                      f"{fmt(ratio(ours_web['load_ms'], ours_web['opfs_read_ms']), 2)}×."]
            if ours_web.get("opfs_read_whole_ms"):
                lines[-1] += (f" Read into one buffer of the file's size (the bytes then in memory): "
                              f"{fmt(ours_web['opfs_read_whole_ms'], 0)} ms, "
                              f"{fmt(ratio(ours_web['load_ms'], ours_web['opfs_read_whole_ms']), 2)}×.")
            elif ours_web.get("opfs_read_whole_error"):
                lines[-1] += (" The read into one buffer of the file's size failed: "
                              f"{ours_web['opfs_read_whole_error']}.")
        if ours_web.get("load_stages"):
            stages = " · ".join(f"{s['stage']} {fmt(s['ms'], 0)} ms"
                                for s in ours_web["load_stages"])
            lines += ["", f"The worker's own account of that load: {stages}."]
        lines.append("")
    lines += [
        f"Native builds: `RUSTFLAGS=\"{results.get('native_rustflags', '')}\"` (llama.cpp: its "
        "default native build). Native rows are medians over rounds that each run all three "
        "engines (the SmolLM2 files: 3 by default; every round's numbers are in results.json), "
        "because this VM's speed drifts by 15-20 % within minutes. Ratios are Mimir's number over "
        "the row's (so Mimir's own rows read 1.00). Load: native,",
        "opening and reading the GGUF into the model; browser, a new worker reading the model from",
        "the OPFS cache (wllama: its own OPFS cache) until it is ready. TTFT: the engine's own",
        "prompt time (page-side times including message passing are in results.json). Peak wasm:",
        "the worker's linear memory after the reply (it never shrinks); wllama does not expose its",
        "worker's memory.",
        "",
    ]
    if "yield_overhead" in results:
        y = results["yield_overhead"]
        lines += [f"Yield to the event loop between tokens (200 yields after 5 ms of work, in a "
                  f"worker): `setTimeout(0)` {y['timeout_ms']:.2f} ms, `MessageChannel` "
                  f"{y['channel_ms']:.2f} ms each.", ""]
    if results.get("release_wasm_bytes"):
        sizes = ", ".join(f"`{name}` {size / 2**20:.2f} MiB"
                          for name, size in results["release_wasm_bytes"].items())
        built = results.get("trunk_release_build_s")
        lines += [f"Release wasm (`trunk build --release`, no wasm-opt): {sizes}"
                  + (f"; built in {built:.0f} s in this run." if built else "."), ""]
    notes = BENCH / "NOTES.md"
    if notes.exists():
        lines += [notes.read_text().rstrip(), ""]
    (BENCH / "README.md").write_text("\n".join(lines))


# ---------------------------------------------------------------- main


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", action="append", default=[],
                        help="GGUF files (default: the bundled SmolLM2 Q4_1 and Q8_0)")
    parser.add_argument("--prompt-tokens", type=int, default=200)
    parser.add_argument("--decode-tokens", type=int, default=128)
    parser.add_argument("--large-prompt-tokens", type=int, default=64,
                        help="prompt tokens for the Phi-3-shaped model")
    parser.add_argument("--large-decode-tokens", type=int, default=16,
                        help="decoded tokens for the Phi-3-shaped model")
    parser.add_argument("--wllama-threads", type=int, action="append", default=None)
    parser.add_argument("--mimir-threads", type=int, action="append", default=None,
                        help="Mimir's threads in the browser (default 1 and 2; more than one "
                             "runs the threaded worker build)")
    parser.add_argument("--engines", default="mimir,wllama",
                        help="browser engines, comma-separated (mimir, wllama)")
    parser.add_argument("--port", type=int, default=int(os.environ.get("BENCH_PORT", 8095)))
    parser.add_argument("--chromium", default=shutil.which("chromium") or "chromium")
    parser.add_argument("--browser-timeout", type=int, default=1500)
    parser.add_argument("--chromium-flag", action="append", default=[],
                        help="one more Chromium flag, e.g. --enable-logging=stderr for the worker's console")
    parser.add_argument("--native-rounds", type=int, default=3,
                        help="native rounds per SmolLM2 file (all three engines each round; "
                             "the table gives medians); the Phi-3-shaped file runs once")
    parser.add_argument("--mimir-worker", choices=["auto", "simd128", "relaxed", "threads"],
                        default="auto",
                        help="Mimir's worker build for one thread: the page's choice (relaxed "
                             "SIMD where the browser has it), one of the two, or the threaded "
                             "build (more threads always take it), to compare it with itself")
    parser.add_argument("--skip-build", action="store_true", help="use the binaries already built")
    parser.add_argument("--no-browser", action="store_true")
    parser.add_argument("--no-llama-cpp", action="store_true")
    parser.add_argument("--report-only", action="store_true",
                        help="rewrite bench/README.md from bench/results.json")
    args = parser.parse_args()
    if args.report_only:
        write_report(json.loads((BENCH / "results.json").read_text()))
        return
    args.wllama_threads = args.wllama_threads or [1, 2]
    args.mimir_threads = args.mimir_threads or [1, 2]
    model_paths = args.model or [str(ROOT / "models/SmolLM2-135M-Instruct.Q4_1.gguf"),
                                 str(ROOT / "models/SmolLM2-135M-Instruct.Q8_0.gguf"),
                                 str(PHI3_SHAPED)]
    started = time.time()
    trunk_build_s = None

    if not args.skip_build:
        build_native()
        if not args.no_browser:
            run(["npm", "install", "--no-audit", "--no-fund", "--silent"], cwd=BENCH)
            build = time.time()
            run(["trunk", "build", "--release", "--dist", WORK / "dist"], cwd=ROOT)
            trunk_build_s = time.time() - build
            say(f"trunk build --release: {trunk_build_s:.0f} s")
    wants_phi3 = any(Path(p).resolve() == PHI3_SHAPED.resolve() for p in model_paths)
    if wants_phi3 and not PHI3_SHAPED.exists():
        # Deterministic: the same bytes on every machine (about 5 minutes, once).
        run([NATIVE_TARGET / "release" / "mimir-train", "tiny", "--shape", "phi3-mini",
             "--quant", "q4_k_m", "--out", PHI3_SHAPED])
        # Write the 2.4 GB back to disk now: left to the kernel, the writeback ran under the
        # first native measurements and made their loads 2-4 s instead of 0.1-0.3 s.
        os.sync()
    python = None if args.no_llama_cpp else ensure_llama_cpp()

    models = []
    for path in model_paths:
        rounds = 1 if Path(path).resolve() == PHI3_SHAPED.resolve() else args.native_rounds
        say(f"native: {path} ({rounds} round(s))")
        # Reading the file for its digest also puts it in the page cache, so the first engine
        # measured does not pay for a cold read the others are spared (the 2.4 GB file may
        # have been evicted by the previous run's browser profiles).
        digest = sha256(path)
        measured = []
        for _ in range(rounds):
            native = native_mimir_candle(path, args)
            engines = native["engines"]
            for e in engines:
                e["threads"] = native["threads"]
            if python:
                engines.append(native_llama_cpp(python, path, native["prompt"],
                                                native["decode_tokens"]))
            measured.append(engines)
        engines = [median_engine([r[i] for r in measured]) for i in range(len(measured[0]))]
        models.append({"name": Path(path).name, "path": path, "size": Path(path).stat().st_size,
                       "sha256": digest, "prompt": native["prompt"],
                       "prompt_tokens": native["prompt_tokens"],
                       "decode_tokens": native["decode_tokens"], "native": engines})

    results = {
        "command": " ".join(["python3", "bench/run.py"] + sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(started)),
        "machine": machine(),
        "native_rustflags": NATIVE_RUSTFLAGS,
        "trunk_release_build_s": trunk_build_s,
    }
    if not args.no_browser:
        version = subprocess.run([args.chromium, "--version"], capture_output=True,
                                 text=True).stdout.strip()
        page = browser_run(models, args)
        results["browser"] = {"version": version, "user_agent": page.get("user_agent"),
                              "cross_origin_isolated": page.get("cross_origin_isolated")}
        if "yield_overhead" in page:
            results["yield_overhead"] = page["yield_overhead"]
        if "error" in page:
            results["browser"]["error"] = page["error"]
        for model, measured in zip(models, page.get("models", [])):
            model["browser"] = measured["engines"]
        for model in models[len(page.get("models", [])):]:
            model["browser"] = [{"engine": "all", "error": page.get("error", "not reached")}]
        wasm = sorted((WORK / "dist").glob("*.wasm"))
        results["release_wasm_bytes"] = {w.name: w.stat().st_size for w in wasm}
    for model in models:
        model.pop("path")
        model.pop("prompt")
    results["models"] = models
    results["wall_s"] = time.time() - started
    write_report(results)
    say(f"wrote bench/results.json and bench/README.md in {results['wall_s']:.0f} s")


if __name__ == "__main__":
    main()
