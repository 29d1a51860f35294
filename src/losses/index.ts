export * from './common';
export * from './ntxent';
export * from './supcon';
export * from './infonce';
export * from './nce';
export * from './swav';
