// Appended inside the Emscripten module factory (--post-js): small accessors the JS driver
// (lib/backends/wasm-core.ts) needs and the 3.1.6 runtime does not export.
Module['cclipMemory'] = function () { return wasmMemory; };
// Every pthread Worker (Node worker_threads or web Workers), idle or running.
Module['cclipWorkers'] = function () { return PThread.unusedWorkers.concat(PThread.runningWorkers); };
// Environment variables the core reads with getenv (e.g. CCLIP_PROFILE=1), set before the first read.
if (Module['cclipEnv']) Object.assign(ENV, Module['cclipEnv']);
