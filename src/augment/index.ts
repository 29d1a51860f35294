export * from './rng';
export * from './ops';
export * from './views';
export * from './grid';
