// Unit tests of the helpers the browser test relies on to judge pixels and
// to build the relay command line (no X, no browser needed).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { comparePixels, relayArgv } from './lib.mjs';

test('comparePixels: identical 2x2 images (alpha ignored)', () => {
    const rgb = Buffer.from([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    const rgba = Buffer.from([1, 2, 3, 255, 4, 5, 6, 0, 7, 8, 9, 17, 10, 11, 12, 255]);
    assert.deepEqual(comparePixels(rgba, rgb, 2, 2), { count: 0, box: null, samples: [] });
});

test('comparePixels: one channel off by one at (1,1) is found', () => {
    const rgb = Buffer.from([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    const rgba = Buffer.from([1, 2, 3, 255, 4, 5, 6, 255, 7, 8, 9, 255, 10, 11, 13, 255]);
    assert.deepEqual(comparePixels(rgba, rgb, 2, 2), {
        count: 1,
        box: { x0: 1, y0: 1, x1: 1, y1: 1 },
        samples: [{ x: 1, y: 1, canvas: [10, 11, 13], x11: [10, 11, 12] }],
    });
});

test('comparePixels: bounding box spans all differences', () => {
    const rgb = Buffer.alloc(3 * 3 * 3);
    const rgba = Buffer.alloc(3 * 3 * 4);
    rgba[(0 * 3 + 2) * 4] = 9; // (2,0)
    rgba[(2 * 3 + 0) * 4 + 1] = 9; // (0,2)
    const r = comparePixels(rgba, rgb, 3, 3);
    assert.equal(r.count, 2);
    assert.deepEqual(r.box, { x0: 0, y0: 0, x1: 2, y1: 2 });
});

test('relayArgv substitutes both placeholders and splits on whitespace', () => {
    assert.deepEqual(
        relayArgv('target/release/wsvnc  --listen {listen} --target {target}', '127.0.0.1:1', '127.0.0.1:2'),
        ['target/release/wsvnc', '--listen', '127.0.0.1:1', '--target', '127.0.0.1:2']);
    assert.deepEqual(relayArgv('websockify {listen} {target}', 'a:1', 'b:2'), ['websockify', 'a:1', 'b:2']);
});

test('relayArgv rejects a template without {listen} or {target}', () => {
    assert.throws(() => relayArgv('websockify 127.0.0.1:1 {target}', 'a', 'b'), /must contain \{listen\} and \{target\}/);
    assert.throws(() => relayArgv('websockify {listen}', 'a', 'b'), /must contain/);
});
