/** The resize runs off the JavaScript thread: timers keep firing while a large photo is preprocessed. */
import test from 'tape';
import { preprocessImages } from '../lib/image/index.js';
import { OPENAI_MEAN, OPENAI_STD, type PreprocessConfig } from '../lib/model-dir.js';
import { largestTimerGap } from './helpers/timer-gaps.js';

const CFG: PreprocessConfig = { size: 256, mean: OPENAI_MEAN, std: OPENAI_STD, interpolation: 'bicubic', resizeMode: 'shortest', fillColor: 0 };

test('the event loop stays responsive during a large resize', async (t) => {
  const width = 8000;
  const height = 6000; // 48 megapixels, RGB
  const data = new Uint8Array(width * height * 3);
  for (let i = 0; i < data.length; i++) data[i] = (i * 7 + (i >> 12)) & 255;

  let out: Float32Array = new Float32Array(0);
  const { maxGap, ticks, elapsed } = await largestTimerGap(async () => {
    out = await preprocessImages([{ data, width, height, channels: 3 }], CFG);
  }, 5);

  t.equal(out.length, 3 * 256 * 256, 'preprocessed');
  t.comment(`48 MP resize took ${elapsed.toFixed(0)} ms; ${ticks} timer ticks, longest gap ${maxGap.toFixed(1)} ms`);
  t.ok(ticks >= 5, `timers fired ${ticks} times during the resize`);
  t.ok(maxGap < Math.max(150, elapsed / 3), `longest event-loop gap ${maxGap.toFixed(1)} ms (resize ${elapsed.toFixed(0)} ms)`);
});
