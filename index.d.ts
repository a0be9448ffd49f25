// Public types of rcc-pipeline. Hand-written: this is what TypeScript users see.
import { EventEmitter } from 'node:events'

// ---------------------------------------------------------------- OpenAI shapes

export type MessageRole = 'system' | 'user' | 'assistant' | 'tool' | 'developer'
export type ToolType = 'function'
export type FinishReason = 'stop' | 'length' | 'tool_calls' | 'content_filter' | 'function_call'

export interface ContentPart {
  type: 'text' | 'image_url' | 'input_audio' | (string & {})
  text?: string
  image_url?: { url: string; detail?: 'auto' | 'low' | 'high' | (string & {}) }
  [extra: string]: unknown
}

export interface FunctionCallData {
  name: string
  arguments: string
}

export interface ToolCallData {
  id: string
  type: ToolType
  function: FunctionCallData
  index?: number
}

export interface ChatMessageData {
  role: MessageRole
  content: string | ContentPart[] | null
  name?: string | null
  tool_calls?: ToolCallData[] | null
  tool_call_id?: string | null
  function_call?: FunctionCallData | null
  /** Vendor extension (Qwen, DeepSeek, ...): the model's visible reasoning. */
  reasoning_content?: string | null
  [extra: string]: unknown
}

export interface ChatToolData {
  type: ToolType
  function: { name: string; description?: string; parameters?: Record<string, unknown> }
}

export interface OpenAIChatRequestData {
  model?: string
  messages: ChatMessageData[]
  temperature?: number
  max_tokens?: number
  /** The original README's spelling; sent as `max_tokens`. */
  maxTokens?: number
  top_p?: number
  n?: number
  stream?: boolean
  stream_options?: { include_usage?: boolean }
  stop?: string | string[] | null
  presence_penalty?: number
  frequency_penalty?: number
  logit_bias?: Record<string, number> | null
  user?: string
  tools?: ChatToolData[]
  tool_choice?: string | Record<string, unknown> | null
  /** Unknown fields (vendor extensions such as `metadata`) pass through untouched. */
  [extra: string]: unknown
}

export interface UsageStatsData {
  prompt_tokens: number
  completion_tokens: number
  total_tokens: number
  prompt_tokens_details?: { cached_tokens?: number; [k: string]: unknown }
  completion_tokens_details?: { reasoning_tokens?: number; [k: string]: unknown }
  [extra: string]: unknown
}

export interface ChatChoiceData {
  index: number
  message: ChatMessageData
  finish_reason: FinishReason | (string & {}) | null
  logprobs?: unknown
}

export interface OpenAIChatResponseData {
  id: string
  object: 'chat.completion' | (string & {})
  /** Unix seconds. */
  created: number
  model: string
  choices: ChatChoiceData[]
  usage?: UsageStatsData
  system_fingerprint?: string | null
  [extra: string]: unknown
}

export interface ChatCompletionChunkDelta {
  role?: MessageRole
  content?: string | null
  reasoning_content?: string | null
  /** Fragments keyed by `index`; an empty-string `id` marks a continuation. */
  tool_calls?: Array<{ index: number; id?: string; type?: ToolType; function?: { name?: string; arguments?: string } }>
  [extra: string]: unknown
}

export interface ChatCompletionChunk {
  id: string
  object: 'chat.completion.chunk'
  created: number
  model: string
  choices: Array<{ index: number; delta: ChatCompletionChunkDelta; finish_reason: FinishReason | (string & {}) | null; logprobs?: unknown }>
  /** Present on the final usage chunk (`choices: []`) when `stream_options.include_usage` was set. */
  usage?: UsageStatsData | null
  [extra: string]: unknown
}

// ---------------------------------------------------------------- errors

export interface PipelineErrorOptions {
  code?: string
  cause?: unknown
  retryable?: boolean
  requestId?: string
  pipelineId?: string
  providerName?: string
  [field: string]: unknown
}

export class PipelineError extends Error {
  constructor(message: string, options?: PipelineErrorOptions)
  /** Stable machine-readable code, e.g. `RATE_LIMIT_ERROR`, `TIMEOUT`, `CONNECTION_ERROR`. */
  code: string
  /** Whether trying again (possibly elsewhere) may succeed. */
  retryable: boolean
  requestId?: string
  pipelineId?: string
  providerName?: string
  cause?: unknown
}
/** RCC v4 wording for a failed pipeline; the same class as PipelineError. */
export const PipelineExecutionError: typeof PipelineError
export type PipelineExecutionError = PipelineError

export class ValidationError extends PipelineError {
  /** Path of the offending value: `model`, `timeouts.connect`, `messages[1].content`. */
  field?: string
}
export class AuthenticationError extends PipelineError {
  status?: number
  body?: string
  providerCode?: string
}
export class RateLimitError extends PipelineError {
  status?: number
  /** From `retry-after-ms` or `retry-after` (seconds or HTTP date). */
  retryAfterMs?: number
  body?: string
  providerCode?: string
}
export class CircuitBreakerError extends PipelineError {
  retryAfterMs?: number
}
export type TimeoutPhase = 'queue' | 'connect' | 'firstToken' | 'idle' | 'total'
export class TimeoutError extends PipelineError {
  phase: TimeoutPhase
  timeoutMs: number
}
export class QueueFullError extends PipelineError {
  maxQueueSize?: number
}
export class CancelledError extends PipelineError {
  constructor(message?: string, options?: PipelineErrorOptions)
}
/** An upstream HTTP error or error envelope (`code` PROVIDER_ERROR), or a connection failure (`code` CONNECTION_ERROR). */
export class ProviderError extends PipelineError {
  status?: number
  body?: string
  providerCode?: string
  retryAfterMs?: number
}
export class StreamError extends PipelineError {
  /** The response rebuilt from the chunks received before the failure. */
  partial?: OpenAIChatResponseData
}
export class NoAvailablePipelineError extends PipelineError {}

// ---------------------------------------------------------------- base module

export interface PipelineModuleConfig {
  id: string
  name: string
  version?: string
  description?: string
  type?: 'provider' | 'scheduler' | 'tracker' | 'pipeline'
  providerName?: string
  endpoint?: string
  supportedModels?: string[]
  defaultModel?: string
  maxConcurrentRequests?: number
  requestTimeout?: number
  enableTwoPhaseDebug?: boolean
  debugBaseDirectory?: string
  enableIOTracking?: boolean
  [extra: string]: unknown
}

export interface ModuleProviderInfo {
  name: string
  endpoint: string | undefined
  supportedModels: string[]
  defaultModel: string | undefined
  type: 'provider' | 'scheduler' | 'tracker' | 'pipeline'
}

export class PipelineBaseModule extends EventEmitter {
  constructor(config: PipelineModuleConfig)
  getInfo(): { id: string; name: string; version: string; description: string; type: string }
  getConfig(): PipelineModuleConfig
  getPipelineConfig(): PipelineModuleConfig
  /** Validated; emits `configUpdated` with `{oldConfig, newConfig}`. */
  updatePipelineConfig(partial: Partial<PipelineModuleConfig>): void
  updateConfig(partial: Partial<PipelineModuleConfig>): void
  getProviderInfo(): ModuleProviderInfo
  getStatus(): { id: string; name: string; type: string; destroyed: boolean }
  destroy(): Promise<void>
}

// ---------------------------------------------------------------- providers

/** Milliseconds. */
export interface ProviderTimeouts {
  /** TCP/TLS connection (default 10000). */
  connect?: number
  /** Until the first byte (non-stream) or first chunk (stream) (default 60000). */
  firstToken?: number
  /** Longest gap between two chunks (default 60000). */
  idle?: number
  /** The whole call (default 600000). */
  total?: number
}

export interface ProviderConfig {
  name: string
  /** OpenAI-compatible base URL, e.g. `https://api.openai.com/v1` (`/chat/completions` is appended). */
  endpoint?: string
  apiKey?: string
  /** Several keys are used round-robin. */
  apiKeys?: string[]
  supportedModels?: string[]
  defaultModel?: string
  /** Extra headers sent with every request (they override the defaults). */
  headers?: Record<string, string>
  /** Retries the provider makes by itself (default 0: inside a scheduler, the scheduler retries). */
  maxRetries?: number
  timeouts?: ProviderTimeouts
  /** `'2'` forces HTTP/2 (h2c over plain http); `'auto'` negotiates (default). */
  httpVersion?: 'auto' | '1.1' | '2'
  metadata?: Record<string, unknown>
  [extra: string]: unknown
}

export interface CallOptions {
  signal?: AbortSignal
  timeouts?: ProviderTimeouts
  compatibility?: CompatibilityModule
}

/** The original package's request/response mapper, accepted as the second argument of chat(). */
export interface CompatibilityModule {
  mapRequest?: (request: OpenAIChatRequestData) => any
  mapResponse?: (response: any) => any
}

export interface ProviderCapabilities {
  streaming: boolean
  tools: boolean
  vision: boolean
  jsonMode: boolean
}

export interface ProviderInfo extends ModuleProviderInfo {
  capabilities: ProviderCapabilities
}

export interface HealthCheckResult {
  status: 'healthy' | 'degraded' | 'unhealthy'
  provider: string
  latencyMs: number
  error?: string
  /** ISO 8601. */
  timestamp: string
}

export abstract class BaseProvider extends PipelineBaseModule {
  constructor(config: ProviderConfig)
  /** The configured provider name. */
  readonly name: string
  readonly endpoint: string | undefined
  readonly supportedModels: string[]
  readonly defaultModel: string | undefined
  chat(request: OpenAIChatRequestData, options?: CallOptions | CompatibilityModule): Promise<OpenAIChatResponseData>
  streamChat(request: OpenAIChatRequestData, options?: CallOptions | CompatibilityModule): AsyncIterable<ChatCompletionChunk>
  /** Override point for JS subclasses. */
  executeChat(request: OpenAIChatRequestData, options?: CallOptions): Promise<OpenAIChatResponseData>
  /** Override point; the default replays executeChat() as chunks. */
  executeStreamChat(request: OpenAIChatRequestData, options?: CallOptions): AsyncIterable<ChatCompletionChunk>
  healthCheck(): Promise<HealthCheckResult>
  listModels(options?: CallOptions): Promise<string[]>
  getProviderInfo(): ProviderInfo
  getCapabilities(): ProviderCapabilities
  authenticate(): Promise<void>
}

/** Any OpenAI-compatible endpoint, with HTTP, SSE and timeouts in Rust. */
export class OpenAICompatibleProvider extends BaseProvider {
  constructor(config: ProviderConfig)
  executeChat(request: OpenAIChatRequestData, options?: CallOptions): Promise<OpenAIChatResponseData>
  executeStreamChat(request: OpenAIChatRequestData, options?: CallOptions): AsyncIterable<ChatCompletionChunk>
}

// ---------------------------------------------------------------------------------------------
// Scheduling

export type PriorityLevel = 'low' | 'medium' | 'high' | 'critical'
export type LoadBalancingStrategyName = 'round-robin' | 'random' | 'weighted' | 'least-connections' | (string & {})
export type OperationType = 'chat' | 'streamChat' | 'healthCheck'
export type CircuitState = 'closed' | 'open' | 'half-open'

export interface CircuitBreakerConfig {
  /** Default true. */
  enabled?: boolean
  /** Consecutive counted failures that open a circuit. Default 5. */
  failureThreshold?: number
  /** ms an open circuit stays open (longer if the upstream sent Retry-After). Default 60000. */
  recoveryTimeout?: number
  /** Probes let through while half-open. Default 1. */
  halfOpenMaxCalls?: number
}

export interface RetryConfig {
  /** Default 2 (so at most 3 upstream calls per request). */
  maxRetries?: number
  /** ms, default 500. */
  baseDelay?: number
  /** ms, default 8000. */
  maxDelay?: number
  /** Default 2. */
  backoffMultiplier?: number
  /** Default true. */
  jitter?: boolean
}

export interface EnhancedSchedulerConfig {
  maxConcurrentRequests?: number
  /** ms from scheduling to the answer (to the first chunk for streams). Default 30000. */
  requestTimeout?: number
  loadBalancingStrategy?: LoadBalancingStrategyName
  circuitBreaker?: CircuitBreakerConfig
  retry?: RetryConfig
  maxQueueSize?: number
  /** ms between provider health checks; none when unset. */
  healthCheckInterval?: number
}

/** The original framework's scheduler config (flat breaker fields, `retryStrategy`). */
export interface SchedulerConfig {
  maxConcurrentRequests?: number
  requestTimeout?: number
  healthCheckInterval?: number
  retryStrategy?: { maxRetries?: number; baseDelay?: number; maxDelay?: number; backoffMultiplier?: number }
  loadBalancingStrategy?: LoadBalancingStrategyName
  enableCircuitBreaker?: boolean
  circuitBreakerThreshold?: number
  circuitBreakerTimeout?: number
  maxQueueSize?: number
  circuitBreaker?: CircuitBreakerConfig
  retry?: RetryConfig
}

export interface SchedulerOptions {
  requestId?: string
  timeout?: number
  retries?: number
  priority?: number | PriorityLevel
  signal?: AbortSignal
  metadata?: Record<string, unknown>
  healthCheck?: boolean
  circuitBreaker?: boolean
}

export interface ScheduleOptions {
  signal?: AbortSignal
  /** Overrides retry.maxRetries for this request. */
  retries?: number
}

export interface RegisterProviderOptions {
  id?: string
  weight?: number
  /** Calls allowed in flight on this provider at once. */
  maxConcurrentRequests?: number
  enabled?: boolean
  models?: string[]
}

/** What a custom strategy sees of each eligible candidate. */
export interface PipelineInfo {
  id: string
  weight: number
  enabled: boolean
  activeRequests: number
  maxConcurrentRequests: number | null
  totalRequests: number
  successfulRequests: number
  failedRequests: number
  errorRate: number
  averageResponseTime: number
  circuitState: CircuitState
  healthStatus: 'healthy' | 'degraded' | 'unhealthy' | 'unknown'
}

export interface LoadBalancingStrategy {
  selectPipeline(pipelines: PipelineInfo[]): PipelineInfo | string | null | Promise<PipelineInfo | string | null>
}

export interface MemberMetrics {
  totalRequests: number
  successfulRequests: number
  failedRequests: number
  activeRequests: number
  averageResponseTime: number
  p50ResponseTime: number
  p95ResponseTime: number
  p99ResponseTime: number
  errorRate: number
  weight: number
  enabled: boolean
  circuitState: CircuitState
  consecutiveFailures: number
  circuitBreakerTripCount: number
  healthStatus: 'healthy' | 'degraded' | 'unhealthy' | 'unknown'
  lastUsed: number
  lastOutcome: 'success' | 'failure' | null
}

export interface SchedulerMetrics {
  totalRequests: number
  successfulRequests: number
  failedRequests: number
  /** Running plus queued. */
  activeRequests: number
  currentConcurrentRequests: number
  maxConcurrentRequests: number
  queueLength: number
  averageResponseTime: number
  p50ResponseTime: number
  p95ResponseTime: number
  p99ResponseTime: number
  averageQueueTime: number
  errorRate: number
  /** Completed requests per second over the last minute. */
  throughput: number
  circuitBreakerTripped: boolean
  circuitBreakerTripCount: number
  /** ms since construction. */
  uptime: number
  /** Epoch ms of the last health-check round, or null. */
  lastHealthCheck: number | null
  loadBalancingStrategy: string
  pipelines: Record<string, MemberMetrics>
}

export interface SchedulerHealth {
  status: 'healthy' | 'degraded' | 'unhealthy'
  checks: { pipelineHealth: boolean; errorRate: boolean; responseTime: boolean; circuitBreaker: boolean; concurrency: boolean }
  details: {
    healthyPipelines: number
    totalPipelines: number
    openCircuits: number
    currentErrorRate: number
    averageResponseTime: number
    circuitBreakerTripped: boolean
    currentConcurrency: number
    maxConcurrency: number
    queueLength: number
  }
}

export interface SchedulerEvents {
  requestQueued: { requestId: string; priority: number; queueLength: number }
  requestStarted: { requestId: string; pipelineId: string; attempt: number }
  requestCompleted: { requestId: string; pipelineId: string; attempts: number; duration: number; chunks?: number }
  requestFailed: { requestId: string; pipelineId: string | null; attempts: number; error: Record<string, unknown> & { code: string; message: string } }
  retry: { requestId: string; pipelineId: string; attempt: number; delayMs: number; error: Record<string, unknown> & { code: string; message: string } }
  circuitOpen: { pipelineId: string; retryAfterMs: number }
  circuitHalfOpen: { pipelineId: string }
  circuitClose: { pipelineId: string }
  configUpdated: { oldConfig: Record<string, unknown>; newConfig: Record<string, unknown> }
}

declare abstract class SchedulerEventEmitter extends EventEmitter {
  on<K extends keyof SchedulerEvents>(event: K, listener: (payload: SchedulerEvents[K]) => void): this
  on(event: string | symbol, listener: (...args: any[]) => void): this
  once<K extends keyof SchedulerEvents>(event: K, listener: (payload: SchedulerEvents[K]) => void): this
  once(event: string | symbol, listener: (...args: any[]) => void): this
  off<K extends keyof SchedulerEvents>(event: K, listener: (payload: SchedulerEvents[K]) => void): this
  off(event: string | symbol, listener: (...args: any[]) => void): this
  registerLoadBalancingStrategy(name: string, strategy: LoadBalancingStrategy): void
  /** Runs every provider's healthCheck() now (unhealthy answers feed the breakers). */
  checkHealth(): Promise<SchedulerHealth>
  getHealth(): SchedulerHealth
}

/** The README's scheduler: providers registered directly, requests scheduled by id. */
export class EnhancedPipelineScheduler extends SchedulerEventEmitter {
  constructor(config?: EnhancedSchedulerConfig)
  readonly config: EnhancedSchedulerConfig
  registerProvider(provider: BaseProvider, options?: RegisterProviderOptions): Promise<void>
  unregisterProvider(idOrName: string): Promise<boolean>
  setProviderEnabled(id: string, enabled: boolean): boolean
  scheduleRequest(requestId: string, request: OpenAIChatRequestData, priority?: number | PriorityLevel, timeout?: number, options?: ScheduleOptions): Promise<OpenAIChatResponseData>
  scheduleStreamRequest(requestId: string, request: OpenAIChatRequestData, priority?: number | PriorityLevel, timeout?: number, options?: ScheduleOptions): AsyncIterable<ChatCompletionChunk>
  execute(request: OpenAIChatRequestData, operation?: 'chat', options?: SchedulerOptions): Promise<OpenAIChatResponseData>
  execute(request: OpenAIChatRequestData, operation: 'streamChat', options?: SchedulerOptions): Promise<AsyncIterable<ChatCompletionChunk>>
  execute(request: OpenAIChatRequestData, operation: 'healthCheck', options?: SchedulerOptions): Promise<SchedulerHealth>
  executeStreaming(request: OpenAIChatRequestData, operation?: OperationType, options?: SchedulerOptions): AsyncIterable<ChatCompletionChunk>
  updateConfig(partial: EnhancedSchedulerConfig): void
  getConfig(): EnhancedSchedulerConfig
  getMetrics(): SchedulerMetrics
  destroy(): Promise<void>
}

export interface TargetMetrics {
  requestCount: number
  errorCount: number
  healthStatus: string
}

export interface PipelineExecutionResult<R = OpenAIChatResponseData> {
  pipelineId: string
  targetId: string
  success: boolean
  response?: R
  error?: string
  errorCode?: string
  errorDetails?: PipelineError
  /** What a failed stream had received. */
  partial?: OpenAIChatResponseData
  duration: number
  /** Start time, epoch ms. */
  timestamp: number
  attempts?: number
  targetMetrics?: TargetMetrics
  stages?: unknown[]
}

export interface PipelineTarget {
  id: string
  provider: BaseProvider
  weight?: number
  enabled?: boolean
  healthStatus?: 'healthy' | 'unhealthy' | 'unknown'
  lastHealthCheck?: number
  requestCount?: number
  errorCount?: number
  metadata?: Record<string, any>
}

export interface PipelineConfig {
  id: string
  name?: string
  virtualModelId: string
  description?: string
  targets: PipelineTarget[]
  loadBalancingStrategy?: LoadBalancingStrategyName
  healthCheckInterval?: number
  maxRetries?: number
  timeout?: number
  weight?: number
  metadata?: Record<string, any>
}

export interface PipelineMetrics {
  totalRequests: number
  successfulRequests: number
  failedRequests: number
  averageResponseTime: number
  currentTargets: number
  healthyTargets: number
  unhealthyTargets: number
  errorRate: number
  /** Construction time, epoch ms (as the original). */
  uptime: number
  lastUsed: number
}

export interface PipelineExecutionOptions {
  timeout?: number
  signal?: AbortSignal
  requestContext?: { requestId?: string } & Record<string, unknown>
  metadata?: Record<string, any>
  retries?: number
  healthCheck?: boolean
}

/** Targets with a balancing strategy; `execute` never rejects. */
export class Pipeline extends SchedulerEventEmitter {
  constructor(config: PipelineConfig, pipelineTracker?: unknown)
  readonly id: string
  execute(request: OpenAIChatRequestData, operation?: OperationType, options?: PipelineExecutionOptions): Promise<PipelineExecutionResult>
  executeStreaming(request: OpenAIChatRequestData, operation?: OperationType, options?: PipelineExecutionOptions): AsyncIterable<PipelineExecutionResult<ChatCompletionChunk>>
  addTarget(target: PipelineTarget): void
  removeTarget(targetId: string): boolean
  updateTarget(targetId: string, updates: Partial<PipelineTarget>): boolean
  getTarget(targetId: string): (PipelineTarget & TargetMetrics) | undefined
  getTargets(): (PipelineTarget & TargetMetrics)[]
  setTargetEnabled(targetId: string, enabled: boolean): boolean
  getMetrics(): PipelineMetrics
  getConfig(): PipelineConfig
  /** Changes timeout / strategy / health-check interval for new calls; emits `configUpdated`. */
  updateConfig(partial: Partial<Omit<PipelineConfig, 'targets'>>): void
  isHealthy(): boolean
  destroy(): void
}

/** The original framework's scheduler over Pipelines of one virtual model. */
export class PipelineScheduler extends SchedulerEventEmitter {
  constructor(virtualModelId: string, config?: SchedulerConfig, pipelineTracker?: unknown)
  /** Resolves with a successful result; a final failure rejects with the typed error (it names `pipelineId`). */
  execute(request: OpenAIChatRequestData, operation?: OperationType, options?: SchedulerOptions): Promise<PipelineExecutionResult>
  executeStreaming(request: OpenAIChatRequestData, operation?: OperationType, options?: SchedulerOptions): AsyncIterable<PipelineExecutionResult<ChatCompletionChunk>>
  addPipeline(pipeline: Pipeline): void
  removePipeline(pipelineId: string): boolean
  getPipelines(): Pipeline[]
  getConfig(): SchedulerConfig
  getMetrics(): SchedulerMetrics
  updateConfig(partial: SchedulerConfig): void
  getVirtualModelId(): string
  destroy(): void
}

export const version: string
export const name: string
