/**
 * --conv-kernels: what initBackend does when the optional oneDNN addon is missing. This machine has the
 * addon, so a loader stands in one that failed to load, with the message `require` gives where it was not
 * built. initBackend keeps its first successful choice, so the refusal is tested first.
 */
import { initBackend } from '../../src/runtime/backend';

const missing = () => "likeness-dnnl-conv: Cannot find module './build/Release/dnnl_conv.node'";

describe('--conv-kernels without the oneDNN addon', () => {
  it("'onednn' refuses to start and says how to build the addon", async () => {
    await expect(initBackend('wasm', { convKernels: 'onednn', loadAddon: missing })).rejects.toThrow(
      /--conv-kernels onednn: likeness-dnnl-conv: Cannot find module .*apt-get install libdnnl-dev/,
    );
  });

  it("'onednn-bf16' refuses to start too", async () => {
    await expect(initBackend('wasm', { convKernels: 'onednn-bf16', loadAddon: missing })).rejects.toThrow(/--conv-kernels onednn-bf16: likeness-dnnl-conv: Cannot find module/);
  });

  it("'auto' keeps the wasm kernels and says why", async () => {
    const info = await initBackend('wasm', { convKernels: 'auto', loadAddon: missing });
    expect(info.name).toBe('wasm');
    expect(info.convolutions).toBe('wasm');
    expect(info.skipped.join('\n')).toMatch(/likeness-dnnl-conv: Cannot find module/);
  });
});
