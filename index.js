'use strict'
// The public API of rcc-pipeline. Hand-written over the generated loader (native.js): error
// classes, EventEmitter glue and the JS side of providers live here; the work happens in Rust.

const errors = require('./lib/errors')
const { PipelineBaseModule } = require('./lib/base-module')
const { BaseProvider, OpenAICompatibleProvider } = require('./lib/providers')
const { Pipeline } = require('./lib/pipeline')
const { EnhancedPipelineScheduler, PipelineScheduler } = require('./lib/schedulers')
const { version } = require('./package.json')

module.exports = {
  PipelineError: errors.PipelineError,
  PipelineExecutionError: errors.PipelineExecutionError,
  ValidationError: errors.ValidationError,
  AuthenticationError: errors.AuthenticationError,
  RateLimitError: errors.RateLimitError,
  CircuitBreakerError: errors.CircuitBreakerError,
  TimeoutError: errors.TimeoutError,
  QueueFullError: errors.QueueFullError,
  CancelledError: errors.CancelledError,
  ProviderError: errors.ProviderError,
  StreamError: errors.StreamError,
  NoAvailablePipelineError: errors.NoAvailablePipelineError,
  PipelineBaseModule,
  BaseProvider,
  OpenAICompatibleProvider,
  EnhancedPipelineScheduler,
  PipelineScheduler,
  Pipeline,
  version,
  name: 'rcc-pipeline',
}
