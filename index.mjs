// ES module entry: the same objects as the CommonJS entry (one copy of every class).
import pkg from './index.js'

export const {
  PipelineError,
  PipelineExecutionError,
  ValidationError,
  AuthenticationError,
  RateLimitError,
  CircuitBreakerError,
  TimeoutError,
  QueueFullError,
  CancelledError,
  ProviderError,
  StreamError,
  NoAvailablePipelineError,
  PipelineBaseModule,
  BaseProvider,
  OpenAICompatibleProvider,
  EnhancedPipelineScheduler,
  PipelineScheduler,
  Pipeline,
  version,
  name,
} = pkg
export default pkg
