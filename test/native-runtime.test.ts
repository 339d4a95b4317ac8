/** Native backend runtime behaviour: event loop stays free, dispose, concurrent calls, bad inputs. */
import os from 'node:os';
import path from 'node:path';
import test from 'tape';
import { nativeBackend } from '../lib/backends/native.js';
import { ClipError } from '../lib/errors.js';
import { fixtureModel, floats, loadNative, readExpected, tokensOf } from './native-helpers.js';
import { largestTimerGap } from './helpers/timer-gaps.js';

const skip = !nativeBackend.available().ok;

async function rejectsWith(t: test.Test, promise: Promise<unknown>, code: string, pattern: RegExp, what: string): Promise<void> {
  try {
    await promise;
    t.fail(`${what}: resolved, expected ${code}`);
  } catch (err) {
    t.ok(err instanceof ClipError && err.code === code, `${what}: ${code} (${(err as Error).message})`);
    t.match((err as Error).message, pattern, `${what}: message says why`);
  }
}

test('native: the event loop stays free during a long inference', { skip }, async (t) => {
  const model = await fixtureModel('xxlarge-deep256');
  // Leave one core to the JS thread: on a small shared box, a pool on every core makes the timer measure the OS
  // scheduler rather than whether we block the loop.
  const native = await loadNative(model, 'fp32', Math.max(1, os.availableParallelism() - 1));
  const size = model.arch.vision.imageSize;
  const oneImage = 3 * size * size;
  try {
    // Size the batch so the call takes about a second on this machine.
    const probe = 4;
    let start = performance.now();
    await native.encodeImage(new Float32Array(probe * oneImage).fill(0.1), probe);
    const perImage = (performance.now() - start) / probe;
    const n = Math.max(probe, Math.min(512, Math.ceil(1000 / perImage)));
    const pixels = new Float32Array(n * oneImage);
    for (let i = 0; i < pixels.length; i++) pixels[i] = Math.sin(i);

    // The same timer with nothing else running from this process: the machine's own scheduling noise
    // (other processes on a loaded box also delay timers, and that is not ours to fail on).
    const idleGap = await largestTimerGap(() => new Promise((resolve) => setTimeout(resolve, 300)));
    start = performance.now();
    let features: Float32Array | undefined;
    const busy = await largestTimerGap(async () => {
      features = (await native.encodeImage(pixels, n)).features;
    });
    const elapsed = performance.now() - start;
    t.equal(features?.length, n * model.arch.embedDim, `batch of ${n} images took ${elapsed.toFixed(0)} ms`);
    t.ok(elapsed > 300, 'the inference was long enough to matter');
    const limit = Math.max(100, 3 * idleGap.maxGap);
    t.ok(busy.ticks >= elapsed / 10 / 4, `timer fired ${busy.ticks} times`);
    t.ok(busy.maxGap < limit, `largest gap between timer ticks ${busy.maxGap.toFixed(1)} ms < ${limit.toFixed(0)} ms (idle machine noise: ${idleGap.maxGap.toFixed(1)} ms)`);
  } finally {
    native.dispose();
  }
});

test('native: concurrent calls on one model give the sequential results', { skip }, async (t) => {
  const model = await fixtureModel('xxlarge-tiny');
  const expected = await readExpected(path.join(model.dir, 'expected.safetensors'));
  const pixels = floats(expected.get('pixels'), 'pixels');
  const tokens = tokensOf(expected.get('tokens'));
  const images = expected.get('pixels')!.shape[0];
  const texts = expected.get('tokens')!.shape[0];
  const native = await loadNative(model, 'fp32');
  try {
    const imageSeq = await native.encodeImage(pixels, images);
    const textSeq = await native.encodeText(tokens, texts);
    const order: number[] = [];
    const calls = [
      native.encodeImage(pixels, images),
      native.encodeText(tokens, texts),
      native.encodeImage(pixels, images),
      native.encodeText(tokens, texts),
      native.encodeImage(pixels, images, { capture: true }),
    ].map((p, i) => p.then((out) => (order.push(i), out)));
    const all = await Promise.all(calls);
    t.deepEqual(order, [0, 1, 2, 3, 4], 'calls on one model settle in call order (one at a time)');
    for (const [i, out] of all.entries()) {
      const want = i % 2 === 0 ? imageSeq.features : textSeq.features;
      t.deepEqual(Array.from(out.features), Array.from(want), `concurrent call ${i} matches the sequential result`);
    }
    // Row independence: encoding one row alone gives the batch's row.
    const size = model.arch.vision.imageSize;
    const single = await native.encodeImage(pixels.subarray(3 * size * size, 6 * size * size), 1);
    const dim = model.arch.embedDim;
    const row = imageSeq.features.subarray(dim, 2 * dim);
    const diff = Math.max(...Array.from(single.features, (v, i) => Math.abs(v - row[i])));
    t.ok(diff < 1e-5, `image row 1 alone matches its batch row (max diff ${diff.toExponential(2)})`);
  } finally {
    native.dispose();
  }
});

test('native: dispose semantics', { skip }, async (t) => {
  const model = await fixtureModel('xxlarge-tiny');
  const expected = await readExpected(path.join(model.dir, 'expected.safetensors'));
  const pixels = floats(expected.get('pixels'), 'pixels');
  const images = expected.get('pixels')!.shape[0];
  const native = await loadNative(model, 'fp32');
  const reference = await native.encodeImage(pixels, images);
  // Dispose while calls are in flight: they finish with correct results, nothing crashes.
  const inFlight = [native.encodeImage(pixels, images), native.encodeText(tokensOf(expected.get('tokens')), 1 * expected.get('tokens')!.shape[0])];
  native.dispose();
  const [image] = await Promise.all(inFlight);
  t.deepEqual(Array.from(image.features), Array.from(reference.features), 'a call in flight at dispose() completes correctly');
  await rejectsWith(t, native.encodeImage(pixels, images), 'E_DISPOSED', /disposed/, 'encodeImage after dispose');
  await rejectsWith(t, native.encodeText(new Int32Array(77), 1), 'E_DISPOSED', /disposed/, 'encodeText after dispose');
  native.dispose();
  t.pass('a second dispose() is harmless');
});

test('native: bad inputs are clear errors, not crashes', { skip }, async (t) => {
  const model = await fixtureModel('xxlarge-tiny');
  const native = await loadNative(model, 'fp32');
  const size = model.arch.vision.imageSize;
  const ctx = model.arch.text.contextLength;
  try {
    await rejectsWith(t, native.encodeImage(new Float32Array(3 * size * size - 1), 1), 'E_INVALID_ARGUMENT', /need/, 'short pixels');
    await rejectsWith(t, native.encodeImage(new Float32Array(3 * size * size), 2), 'E_INVALID_ARGUMENT', /need/, 'n larger than the pixels');
    await rejectsWith(t, native.encodeImage(new Float32Array(0), 0), 'E_INVALID_ARGUMENT', /Expected an integer between 1 and \d+ for n but received/, 'n = 0');
    await rejectsWith(t, native.encodeImage(new Float32Array(3 * size * size), 1.5), 'E_INVALID_ARGUMENT', /Expected an integer between 1 and \d+ for n but received/, 'fractional n');
    await rejectsWith(t, native.encodeText(new Int32Array(ctx - 1), 1), 'E_INVALID_ARGUMENT', /need/, 'short tokens');
    await rejectsWith(t, native.encodeText(new Int32Array(ctx), 0), 'E_INVALID_ARGUMENT', /Expected an integer between 1 and \d+ for n but received/, 'text n = 0');
    const outOfVocab = new Int32Array(ctx);
    outOfVocab[3] = model.arch.text.vocabSize;
    await rejectsWith(t, native.encodeText(outOfVocab, 1), 'E_INVALID_ARGUMENT', /Expected a token id inside the vocabulary/, 'token id = vocab size');
    const negative = new Int32Array(ctx);
    negative[0] = -1;
    await rejectsWith(t, native.encodeText(negative, 1), 'E_INVALID_ARGUMENT', /Expected a token id inside the vocabulary/, 'negative token id');
    const nan = new Float32Array(3 * size * size).fill(Number.NaN);
    const out = await native.encodeImage(nan, 1);
    t.equal(out.features.length, model.arch.embedDim, 'NaN pixels do not crash (NaN in, NaN out)');
    // The model still works after all of that.
    const ok = await native.encodeText(new Int32Array(ctx).fill(49407), 1);
    t.ok(ok.features.every(Number.isFinite), 'the model still answers after rejected calls');
  } finally {
    native.dispose();
  }
});

test('native: the addon itself rejects bad input (defence behind the JS checks)', { skip }, async (t) => {
  const model = await fixtureModel('xxlarge-tiny');
  const native = await loadNative(model, 'fp32');
  // Reach past the TypeScript wrapper to the addon handle, as a buggy caller could.
  const handle = (native as unknown as { handle: Record<string, (...args: unknown[]) => Promise<unknown>> }).handle;
  const size = model.arch.vision.imageSize;
  const cases: Array<[string, () => Promise<unknown>, RegExp]> = [
    ['short pixels', () => handle.encodeImage(new Float32Array(10), 1, false), /need/],
    ['n = 0', () => handle.encodeImage(new Float32Array(3 * size * size), 0, false), /n must be/],
    ['pixels not a Float32Array', () => handle.encodeImage([1, 2, 3], 1, false), /Float32Array/],
    ['token out of range', () => handle.encodeText(new Int32Array(77).fill(1 << 30), 1, 77, false), /outside the vocabulary/],
    ['wrong context length', () => handle.encodeText(new Int32Array(76), 1, 76, false), /context length/],
    ['tokens not an Int32Array', () => handle.encodeText(new Float32Array(77), 1, 77, false), /Int32Array/],
  ];
  try {
    for (const [what, call, pattern] of cases) {
      try {
        await call.call(handle);
        t.fail(`${what}: resolved`);
      } catch (err) {
        t.match((err as Error).message, pattern, `${what}: ${(err as Error).message}`);
      }
    }
  } finally {
    native.dispose();
  }
});
