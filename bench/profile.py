#!/usr/bin/env python3
"""Where a decode step goes in Chromium: runs the bench page for Mimir under a trace with V8's
CPU profiler (the DevTools protocol's `Tracing` domain, which records every thread, the nested
pool workers included) and prints each busy thread's functions by their own and their total
time over the last seconds of the run, when it decodes.

    python3 bench/profile.py --threads 1 --threads 2      # after `make bench` built bench/work/dist
    python3 bench/profile.py --model models/X.gguf --decode-tokens 400 --window 5 --top 30

A short prompt and a long decode make the window all decoding. The profiler's own thread takes
CPU time from the engine's threads, so on a machine with few cores a multi-thread profile shows
where the time goes, not how fast the threads run: measure speed with `run.py`.
"""

import argparse
import asyncio
import collections
import json
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import run


def websockets_module():
    """The `websockets` package; when missing, it is installed into bench/.venv (the venv
    run.py keeps for llama-cpp-python) and this script runs again from there."""
    try:
        import websockets

        return websockets
    except ImportError:
        pass
    python = run.VENV / "bin" / "python"
    if Path(sys.prefix).resolve() == run.VENV.resolve():
        raise SystemExit("bench/.venv has no websockets after installing it")
    if not python.exists():
        run.run([sys.executable, "-m", "venv", run.VENV])
    if subprocess.run([str(python), "-c", "import websockets"], capture_output=True).returncode:
        run.run([python, "-m", "pip", "install", "--quiet", "websockets"])
    sys.exit(subprocess.run([str(python), *sys.argv]).returncode)


async def trace(websockets, url, finished, timeout, events):
    """Adds to `events` the trace of the whole browser from loading `url` until `finished` is
    set (or `timeout` seconds pass)."""
    for _ in range(100):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{run.DEBUG_PORT}/json/version") as r:
                browser = json.load(r)["webSocketDebuggerUrl"]
            break
        except OSError:
            await asyncio.sleep(0.2)
    else:
        raise SystemExit("Chromium's DevTools endpoint did not come up")
    async with websockets.connect(browser, max_size=1 << 30) as ws:
        complete, ids = asyncio.Event(), iter(range(1, 1 << 30))

        async def send(method, params=None):
            await ws.send(json.dumps({"id": next(ids), "method": method, "params": params or {}}))

        async def read():
            async for raw in ws:
                message = json.loads(raw)
                if message.get("method") == "Tracing.dataCollected":
                    events.extend(message["params"]["value"])
                elif message.get("method") == "Tracing.tracingComplete":
                    complete.set()

        reader = asyncio.create_task(read())
        await send("Tracing.start", {"transferMode": "ReportEvents", "traceConfig": {
            "includedCategories": ["__metadata", "disabled-by-default-v8.cpu_profiler"]}})
        await send("Target.createTarget", {"url": url})
        start = time.time()
        while not finished.is_set() and time.time() - start < timeout:
            await asyncio.sleep(0.5)
        await send("Tracing.end")
        await asyncio.wait_for(complete.wait(), 120)
        reader.cancel()


def profiles(events):
    """Each profiled thread's samples: (thread, nodes by id, [(µs, node id)])."""
    names = {(e["pid"], e["tid"]): e["args"]["name"] for e in events
             if e.get("name") == "thread_name"}
    found = collections.defaultdict(lambda: {"nodes": {}, "samples": [], "deltas": []})
    for e in events:
        if e.get("name") == "Profile":
            name = names.get((e["pid"], e["tid"]), "thread")
            found[(e["pid"], e["id"])]["thread"] = f"{name} {e['pid']}:{e['tid']}"
        elif e.get("name") == "ProfileChunk":
            p = found[(e["pid"], e["id"])]
            data = e["args"]["data"]
            for node in data.get("cpuProfile", {}).get("nodes", []):
                p["nodes"][node["id"]] = node
            p["samples"] += data.get("cpuProfile", {}).get("samples", [])
            p["deltas"] += data.get("timeDeltas", [])
    for p in found.values():
        # A sample lasts until the next one.
        durations = p["deltas"][1:] + [0]
        yield p.get("thread", "?"), p["nodes"], list(zip(durations, p["samples"]))


def report(events, window_s, top):
    for thread, nodes, samples in profiles(events):
        parents = {n["id"]: n["parent"] for n in nodes.values() if "parent" in n}

        def name(node_id):
            frame = nodes[node_id]["callFrame"]
            return frame["functionName"] or f"({frame.get('url', '')[-40:]})"

        # The last `window_s` seconds the thread was profiled.
        kept, total = [], 0
        for duration, node_id in reversed(samples):
            if total >= window_s * 1e6:
                break
            kept.append((duration, node_id))
            total += duration
        idle = sum(d for d, n in kept if name(n) == "(idle)")
        if total == 0 or idle > 0.9 * total:
            continue
        own, within = collections.Counter(), collections.Counter()
        for duration, node_id in kept:
            own[name(node_id)] += duration
            seen, at = set(), node_id
            while at is not None:
                if name(at) not in seen:
                    seen.add(name(at))
                    within[name(at)] += duration
                at = parents.get(at)
        print(f"\n{thread}: {total / 1e6:.1f} s sampled, {100 * idle / total:.0f} % idle")
        print("   self  total  function")
        for function, t in own.most_common(top):
            print(f"  {100 * t / total:4.1f}%  {100 * within[function] / total:4.1f}%  "
                  f"{function[:110]}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=str(run.ROOT / "models" / "SmolLM2-135M-Instruct.Q8_0.gguf"))
    parser.add_argument("--threads", type=int, action="append", default=None,
                        help="Mimir's threads, one page run each (default 1)")
    parser.add_argument("--prompt-tokens", type=int, default=16)
    parser.add_argument("--decode-tokens", type=int, default=400)
    parser.add_argument("--window", type=float, default=5.0,
                        help="seconds at the end of each thread's profile to count")
    parser.add_argument("--top", type=int, default=20)
    parser.add_argument("--mimir-worker", choices=["auto", "simd128", "relaxed"], default="auto")
    parser.add_argument("--port", type=int, default=8096)
    parser.add_argument("--chromium", default=shutil.which("chromium") or "chromium")
    parser.add_argument("--timeout", type=int, default=900)
    parser.add_argument("--save", help="also write the raw trace events here (JSON)")
    args = parser.parse_args()
    websockets = websockets_module()
    if not (run.WORK / "dist" / "index.html").exists():
        raise SystemExit("no bench/work/dist: run `make bench` (or bench/run.py) first")
    path = Path(args.model)
    if not path.is_file():
        raise SystemExit(f"{path}: no such model file")
    # run.py's pseudo-random ids, below 32 000 so that they are valid in every model here.
    prompt = [100 + (i * 7919 + 13) % (32000 - 200) for i in range(args.prompt_tokens)]
    model = {"name": path.name, "path": str(path), "size": path.stat().st_size,
             "sha256": run.sha256(path), "prompt": prompt, "decode_tokens": args.decode_tokens}
    page = argparse.Namespace(
        prompt_tokens=args.prompt_tokens, decode_tokens=args.decode_tokens,
        mimir_worker=args.mimir_worker, engines=["mimir"], mimir_threads=args.threads or [1],
        wllama_threads=[], port=args.port, chromium=args.chromium, chromium_flag=[],
        browser_timeout=args.timeout)
    events = []
    results = run.browser_run([model], page, watch=lambda url, finished: asyncio.run(
        trace(websockets, url, finished, args.timeout, events)))
    for measured in (results.get("models") or [{}])[0].get("engines", []):
        print(f"{measured.get('kernels')}: prefill {measured.get('prefill_tok_s', 0):.1f} tok/s, "
              f"decode {measured.get('decode_tok_s', 0):.1f} tok/s (under the profiler)")
    if "error" in results:
        print(f"the page: {results['error']}")
    if args.save:
        Path(args.save).write_text(json.dumps(events))
    report(events, args.window, args.top)


if __name__ == "__main__":
    main()
