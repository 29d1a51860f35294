/**
 * --conv-kernels: what initBackend does when the optional oneDNN addon is missing. This machine has the
 * addon, so its absence is simulated by making `require('likeness-dnnl-conv')` throw, as it does where the
 * addon was not built. initBackend keeps its first successful choice, so the refusal is tested first.
 */
import { initBackend } from '../../src/runtime/backend';

// virtual: where the addon was not built, npm left the package out and there is nothing to resolve
jest.mock(
  'likeness-dnnl-conv',
  () => {
    throw new Error("Cannot find module './build/Release/dnnl_conv.node'");
  },
  { virtual: true },
);

describe('--conv-kernels without the oneDNN addon', () => {
  it("'onednn' refuses to start and says how to build the addon", async () => {
    await expect(initBackend('wasm', { convKernels: 'onednn' })).rejects.toThrow(
      /--conv-kernels onednn: likeness-dnnl-conv: Cannot find module .*apt-get install libdnnl-dev/,
    );
  });

  it("'auto' keeps the wasm kernels and says why", async () => {
    const info = await initBackend('wasm', { convKernels: 'auto' });
    expect(info.name).toBe('wasm');
    expect(info.convolutions).toBe('wasm');
    expect(info.skipped.join('\n')).toMatch(/likeness-dnnl-conv: Cannot find module/);
  });
});
