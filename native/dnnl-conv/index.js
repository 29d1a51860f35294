'use strict';
// Between two convolutions the wasm backend's own threads run everything else (batch norm, element-wise
// ops); OpenMP threads that spin-wait for the next convolution would take their cores. libgomp reads
// this when it loads, with the addon, so it is set first, unless the user chose a policy.
// (bench/train-step --onednn, ResNet-18 at full widths: 72-76 images/s passive, 58-63 active.)
if (process.env.OMP_WAIT_POLICY === undefined) process.env.OMP_WAIT_POLICY = 'PASSIVE';
// The compiled addon; require() throws when it was not built (no libdnnl-dev on this machine), and
// Likeness then keeps its wasm kernels.
module.exports = require('./build/Release/dnnl_conv.node');
