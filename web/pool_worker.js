// A thread of the engine's matmul pool (src/worker/threads.rs): the threaded engine worker
// starts it and sends its compiled module, its shared memory and the pool worker to run.
// The module's start function runs on the first thread only, so this one runs no engine.
importScripts('./worker-threads.js');

self.onmessage = ({ data: [module, memory, worker] }) => {
  self.onmessage = null;
  wasm_bindgen.initSync({ module, memory });
  wasm_bindgen.mimirPoolWorker(worker);
};
