export * from './dataset';
export * from './decode';
export * from './folder-dataset';
export * from './manifest-dataset';
export * from './idx-dataset';
export * from './open';
export * from './idx';
