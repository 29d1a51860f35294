/** Tests run from the TypeScript sources; worker threads load them through tsx (see src/runtime/worker-script.ts). */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  transform: { '^.+\\.ts$': ['ts-jest', { isolatedModules: true }] },
  testTimeout: 120000,
  maxWorkers: 2,
};
