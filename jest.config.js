/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/__test__'],
  testMatch: ['**/*.spec.ts'],
  transform: { '^.+\\.ts$': ['ts-jest', { tsconfig: '<rootDir>/tsconfig.json' }] },
  // Specs import the package by its name, as users do.
  moduleNameMapper: {
    '^rcc-pipeline$': '<rootDir>/index.js',
    '^rcc-pipeline/mock$': '<rootDir>/mock.js',
  },
  testTimeout: 30000,
  // No forceExit: a handle that keeps Node alive must fail the run, not be papered over.
}
