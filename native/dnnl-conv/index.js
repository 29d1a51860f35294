'use strict';
// The compiled addon; require() throws when it was not built (no libdnnl-dev on this machine), and
// Likeness then keeps its wasm kernels.
module.exports = require('./build/Release/dnnl_conv.node');
