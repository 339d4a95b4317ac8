// Appended inside the Emscripten module factory (--post-js): small accessors the JS driver
// (lib/backends/wasm-core.ts) needs and the 3.1.6 runtime does not export.
Module['cclipMemory'] = function () { return wasmMemory; };
// Every pthread Worker (Node worker_threads or web Workers), idle or running.
Module['cclipWorkers'] = function () { return PThread.unusedWorkers.concat(PThread.runningWorkers); };
