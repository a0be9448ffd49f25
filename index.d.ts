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

export type ModuleType = 'provider' | 'scheduler' | 'tracker' | 'pipeline'

/** Where and how I/O entries are written (all optional). */
export interface IOTrackingConfig {
  /** `false` turns recording off even with `enableIOTracking`; `true` alone turns it on only for a PipelineTracker (a plain module needs `enableIOTracking`). */
  enabled?: boolean
  /** Directory of the JSON-lines files (`~` is the home directory). Default `<debugBaseDirectory>/io`; memory only when neither is set. */
  ioDirectory?: string
  /** Entries per file before the next file is started. Default 1000. */
  maxEntriesPerFile?: number
  /** Files this module keeps; older ones are deleted. Default 5. */
  maxFiles?: number
}

export interface PipelineModuleConfig {
  id: string
  name: string
  /** Default `'1.0.0'`. */
  version?: string
  /** Default `''`. */
  description?: string
  /** Default `'pipeline'`. */
  type?: ModuleType
  providerName?: string
  endpoint?: string
  supportedModels?: string[]
  defaultModel?: string
  maxConcurrentRequests?: number
  requestTimeout?: number
  /** Reported by getPipelineMetrics() (`debugEnabled`). */
  enableTwoPhaseDebug?: boolean
  /** Base directory of the I/O files (`<dir>/io`), used when I/O tracking is on. */
  debugBaseDirectory?: string
  /** Records an I/O entry per tracked operation, stage and handled error (redacted; see getIOEntries()). */
  enableIOTracking?: boolean
  ioTrackingConfig?: IOTrackingConfig
  /** I/O entries kept in memory (oldest dropped first). Default 1000; 0 keeps none (files only). */
  maxIOEntries?: number
  [extra: string]: unknown
}

export interface ModuleProviderInfo {
  name: string
  endpoint: string | undefined
  supportedModels: string[]
  defaultModel: string | undefined
  type: ModuleType
}

/** The error object of a failure, as the engine reports it in events and I/O entries. */
export type ErrorPayload = Record<string, unknown> & { code: string; message: string; retryable: boolean }

/**
 * One I/O entry, redacted (API keys, tokens, passwords at any depth). Written by
 * trackPipelineOperation (`operationType` as given, default `'pipeline-operation'`),
 * recordPipelineStage (`'module_operation'`), handlePipelineError (`'error'`) and, for each
 * request a scheduler runs with a PipelineTracker, by the engine (`'pipeline_end'`).
 */
export interface PipelineIOEntry {
  /** Epoch ms. */
  timestamp: number
  /** Order of recording within the log. */
  seq: number
  /** The module's id; for `'pipeline_end'` the scheduler's label (`'scheduler'`, a PipelineScheduler's virtual model id, a Pipeline's id). */
  moduleId: string
  /** The module's id; for `'pipeline_end'` the pipeline or provider that served the request (null or absent when none was reached). */
  pipelineId?: string | null
  /** The operation or stage name; the request id for `'pipeline_end'`. */
  operationId: string
  operationType: 'pipeline-operation' | 'module_operation' | 'error' | 'pipeline_end' | (string & {})
  /** `'pipeline_end'` only. */
  requestId?: string
  /** `'pipeline_end'` only: the target that served the request (null for a scheduler's own providers). */
  targetId?: string | null
  /** The operation's input, the stage's data, the error's `additionalData` or the request sent. */
  input?: any
  /** The operation's result or the response (`{chunks, response}` for a stream). */
  output?: any
  /** ms. */
  duration?: number
  success: boolean
  /** A message; for `'pipeline_end'` the error object (`{code, message, retryable, …}`). */
  error?: string | ErrorPayload
  /** `'pipeline_end'` only: upstream attempts made. */
  attempts?: number
  /** recordPipelineStage: `{phase: status}`. */
  context?: { phase?: string; [k: string]: unknown }
}

/** getIOEntries() filter; every field given must match. */
export interface IOEntryFilter {
  operationId?: string
  operationType?: string
  requestId?: string
  success?: boolean
  /** Entries at or after this epoch ms. */
  since?: number
  /** The newest `limit` matches. */
  limit?: number
}

export type ModuleStageStatus = 'started' | 'completed' | 'failed'

export interface PipelineErrorContext {
  operation?: string
  stage?: string
  requestId?: string
  /** Recorded as the I/O entry's `input`. */
  additionalData?: Record<string, any>
}

/** What handlePipelineError() keeps of an error (the last one is `getStatus().lastError`). */
export interface HandledPipelineError {
  message: string
  code?: string
  operation?: string
  stage?: string
  requestId?: string
  /** Epoch ms. */
  timestamp: number
}

export interface PipelineModuleStatus {
  id: string
  name: string
  type: ModuleType
  version: string
  destroyed: boolean
  /** ms since construction. */
  uptime: number
  ioTrackingEnabled: boolean
  /** Module-level stage records kept (at most 100). */
  stageRecords: number
  /** Handled errors kept (at most 100). */
  errorCount: number
  lastError?: HandledPipelineError
}

export interface PipelineModuleMetrics {
  debugEnabled: boolean
  ioTrackingEnabled: boolean
  debugConfig: { baseDirectory: string | undefined; ioTrackingConfig: IOTrackingConfig | undefined }
  /** The newest 100 entries. */
  ioEntries: PipelineIOEntry[]
  /** The I/O files written so far that still exist (newest last). */
  ioFiles: string[]
  /** Why file output stopped (memory recording goes on), if it did. */
  ioError: string | undefined
  stages: number
  errors: number
}

export interface PipelineModuleEvents {
  configUpdated: { oldConfig: PipelineModuleConfig; newConfig: PipelineModuleConfig }
  stage: { stage: string; status: ModuleStageStatus; timestamp: number; data: unknown }
  /** Not `error`, which would throw when nobody listens. */
  pipelineError: { error: unknown; context: PipelineErrorContext; source: string; severity: 'high'; timestamp: number }
}

export class PipelineBaseModule extends EventEmitter {
  /** Validated: throws ValidationError naming the field. */
  constructor(config: PipelineModuleConfig)
  on<K extends keyof PipelineModuleEvents>(event: K, listener: (payload: PipelineModuleEvents[K]) => void): this
  on(event: string | symbol, listener: (...args: any[]) => void): this
  once<K extends keyof PipelineModuleEvents>(event: K, listener: (payload: PipelineModuleEvents[K]) => void): this
  once(event: string | symbol, listener: (...args: any[]) => void): this
  off<K extends keyof PipelineModuleEvents>(event: K, listener: (payload: PipelineModuleEvents[K]) => void): this
  off(event: string | symbol, listener: (...args: any[]) => void): this
  getInfo(): { id: string; name: string; version: string; description: string; type: ModuleType }
  getConfig(): PipelineModuleConfig
  getPipelineConfig(): PipelineModuleConfig
  /** Validated; emits `configUpdated` with `{oldConfig, newConfig}`. */
  updatePipelineConfig(partial: Partial<PipelineModuleConfig>): void
  updateConfig(partial: Partial<PipelineModuleConfig>): void
  getProviderInfo(): ModuleProviderInfo
  /**
   * Runs `operation`, recording input, output, duration and any error as an I/O entry (when I/O
   * tracking is on); resolves with its result or rejects with its error, unchanged.
   */
  trackPipelineOperation<T>(operationId: string, operation: () => Promise<T> | T, inputData?: unknown, operationType?: string): Promise<T>
  /** Records a module-level stage (default status `'started'`) and emits `stage`; a bad name or status throws ValidationError. */
  recordPipelineStage(stageName: string, stageData?: unknown, status?: ModuleStageStatus): void
  /** Records the error with its context and emits `pipelineError`; never throws. */
  handlePipelineError(error: unknown, context?: PipelineErrorContext): void
  getStatus(): PipelineModuleStatus
  getPipelineMetrics(): PipelineModuleMetrics
  /** Oldest first; `[]` when I/O tracking is off. */
  getIOEntries(filter?: IOEntryFilter): PipelineIOEntry[]
  destroy(): Promise<void>
}

// ---------------------------------------------------------------- request tracking

export type PipelineStageStatus = 'pending' | 'running' | 'completed' | 'failed'
/** A request's status: `pending` with no stages, `running` until completed, then `completed` or `failed`. */
export type RequestStatus = 'pending' | 'running' | 'completed' | 'failed'

/**
 * One stage of a request, as a plain record (the original's `PipelineStage` interface; the
 * name `PipelineStage` is the class below). Stages a scheduler records: `request-init`,
 * `queue`, `pipeline-selection`, `authentication`, `api-execution`, `response-processing`.
 */
export interface PipelineStageRecord {
  stage: string
  /** Epoch ms. */
  startTime: number
  endTime?: number
  /** ms (microsecond resolution for stages the tracker timed). */
  duration?: number
  status: PipelineStageStatus
  error?: string
  data?: any
}

/** A request's record (toObject()); the original's `PipelineRequestContext` plus `duration` and `status`. */
export interface PipelineRequestContext {
  requestId: string
  pipelineId: string
  sessionId: string | null
  /** Epoch ms. */
  startTime: number
  endTime: number | null
  /** ms, once completed. */
  duration: number | null
  provider: string
  model: string | null
  operation: OperationType
  stages: PipelineStageRecord[]
  /** Redacted. */
  metadata: Record<string, any>
  status: RequestStatus
}

export interface RequestSummary {
  requestId: string
  pipelineId: string
  provider: string
  operation: string
  duration: number | undefined
  totalStages: number
  completedStages: number
  failedStages: number
  status: RequestStatus
}

/** The original's request-context interface. */
export interface IRequestContext {
  getRequestId(): string
  getPipelineId(): string
  getSessionId(): string | undefined
  getStartTime(): number
  getEndTime(): number | undefined
  getDuration(): number | undefined
  getProvider(): string
  getModel(): string | undefined
  getOperation(): string
  getStages(): PipelineStageRecord[]
  getMetadata(): Record<string, any> | undefined
  getStage(stageName: string): PipelineStageRecord | undefined
  getStageStatus(stageName: string): PipelineStageStatus | undefined
  addStage(stage: PipelineStageRecord): void
  updateStage(stageName: string, updates: Partial<PipelineStageRecord>): void
  isCompleted(): boolean
  isFailed(): boolean
  getFailedStages(): PipelineStageRecord[]
  getCompletedStages(): PipelineStageRecord[]
  getRunningStages(): PipelineStageRecord[]
  getStageDuration(stageName: string): number | undefined
  getTotalStageDuration(): number
  getSummary(): RequestSummary
  toObject(): PipelineRequestContext
  clone(): IRequestContext
  setSessionId(sessionId: string): void
  setEndTime(endTime: number): void
  setModel(model: string): void
  setMetadata(metadata: Record<string, any>): void
}

/** The original's stage interface. */
export interface IPipelineStage {
  getStageName(): string
  getStartTime(): number
  getEndTime(): number | undefined
  getDuration(): number | undefined
  getStatus(): PipelineStageStatus
  getError(): string | undefined
  getData(): any
  setStartTime(startTime: number): void
  setEndTime(endTime: number): void
  setStatus(status: PipelineStageStatus): void
  setError(error: string): void
  setData(data: any): void
  markAsStarted(): void
  markAsCompleted(data?: any): void
  markAsFailed(error: string): void
  isCompleted(): boolean
  isFailed(): boolean
  isRunning(): boolean
  toObject(): PipelineStageRecord
  clone(): IPipelineStage
}

export interface IPipelineStageFactory {
  createStage(name: string): IPipelineStage
  createStageWithData(name: string, data: any): IPipelineStage
  createStageFromObject(stage: PipelineStageRecord): IPipelineStage
}

export interface StageStatistics {
  total: number
  completed: number
  failed: number
  running: number
  pending: number
}

export interface IPipelineStageManager {
  addStage(stage: IPipelineStage): void
  getStage(name: string): IPipelineStage | undefined
  removeStage(name: string): boolean
  /** Assigns `updates` onto the stage object. */
  updateStage(name: string, updates: Partial<PipelineStageRecord> | Partial<IPipelineStage>): boolean
  getAllStages(): IPipelineStage[]
  getStagesByStatus(status: PipelineStageStatus): IPipelineStage[]
  getCompletedStages(): IPipelineStage[]
  getFailedStages(): IPipelineStage[]
  getRunningStages(): IPipelineStage[]
  getStageStatistics(): StageStatistics
  clearAllStages(): void
}

/** One stage: the record's fields plus the original's accessors. */
export class PipelineStage implements IPipelineStage {
  /** Throws ValidationError for an empty name. `init` defaults: `startTime` now, `status` `'pending'`. */
  constructor(name: string, init?: Partial<Omit<PipelineStageRecord, 'stage'>>)
  stage: string
  startTime: number
  endTime?: number
  duration?: number
  status: PipelineStageStatus
  error?: string
  data?: any
  getStageName(): string
  getStartTime(): number
  getEndTime(): number | undefined
  /** `duration`, else `endTime - startTime`, else undefined. */
  getDuration(): number | undefined
  getStatus(): PipelineStageStatus
  getError(): string | undefined
  getData(): any
  setStartTime(startTime: number): void
  /** Also sets `duration`. */
  setEndTime(endTime: number): void
  /** Throws ValidationError for an unknown status. */
  setStatus(status: PipelineStageStatus): void
  setError(error: string): void
  setData(data: any): void
  /** `running`, startTime now. */
  markAsStarted(): void
  markAsCompleted(data?: any): void
  markAsFailed(error: string): void
  isCompleted(): boolean
  isFailed(): boolean
  isRunning(): boolean
  /** The set fields only. */
  toObject(): PipelineStageRecord
  clone(): PipelineStage
  static fromObject(record: Pick<PipelineStageRecord, 'stage'> & Partial<PipelineStageRecord>): PipelineStage
}

/** New stages start `'pending'`. */
export class PipelineStageFactory implements IPipelineStageFactory {
  createStage(name: string): PipelineStage
  createStageWithData(name: string, data: any): PipelineStage
  createStageFromObject(stage: Pick<PipelineStageRecord, 'stage'> & Partial<PipelineStageRecord>): PipelineStage
}

/** Stages by name, for callers that manage their own (the tracker keeps stages per request). */
export class PipelineStageManager implements IPipelineStageManager {
  constructor()
  addStage(stage: IPipelineStage): void
  getStage(name: string): IPipelineStage | undefined
  removeStage(name: string): boolean
  updateStage(name: string, updates: Partial<PipelineStageRecord> | Partial<IPipelineStage>): boolean
  getAllStages(): IPipelineStage[]
  getStagesByStatus(status: PipelineStageStatus): IPipelineStage[]
  getCompletedStages(): IPipelineStage[]
  getFailedStages(): IPipelineStage[]
  getRunningStages(): IPipelineStage[]
  getStageStatistics(): StageStatistics
  clearAllStages(): void
}

/**
 * One tracked request. A context from the tracker is live (it reads the tracker each time, so
 * the stages a scheduler records show up; a getter throws ValidationError once the request is
 * no longer retained); clone() and PipelineTracker.completeRequest() give detached snapshots.
 */
export class RequestContext implements IRequestContext {
  /** Internal: contexts come from a PipelineTracker (`new RequestContext(null, id, record)` makes a detached one). */
  constructor(tracker: unknown, requestId: string, snapshot?: PipelineRequestContext)
  readonly requestId: string
  readonly pipelineId: string
  getRequestId(): string
  getPipelineId(): string
  getSessionId(): string | undefined
  getStartTime(): number
  getEndTime(): number | undefined
  getDuration(): number | undefined
  getProvider(): string
  getModel(): string | undefined
  getOperation(): OperationType
  getStages(): PipelineStageRecord[]
  getMetadata(): Record<string, any>
  /** The latest stage of that name. */
  getStage(stageName: string): PipelineStageRecord | undefined
  getStageStatus(stageName: string): PipelineStageStatus | undefined
  getStatus(): RequestStatus
  /** A PipelineStage or a record: `completed`/`failed` ends the open stage of that name, else one is opened. */
  addStage(stage: PipelineStage | (Pick<PipelineStageRecord, 'stage'> & Partial<PipelineStageRecord>)): void
  /** `status: 'completed' | 'failed'` ends the named stage (`error`, `data` recorded); `'running'`/`'pending'` opens one. */
  updateStage(stageName: string, updates: Partial<PipelineStageRecord>): void
  /** Completed or failed. */
  isCompleted(): boolean
  isFailed(): boolean
  getFailedStages(): PipelineStageRecord[]
  getCompletedStages(): PipelineStageRecord[]
  getRunningStages(): PipelineStageRecord[]
  getStageDuration(stageName: string): number | undefined
  getTotalStageDuration(): number
  getSummary(): RequestSummary
  toObject(): PipelineRequestContext
  toJSON(): PipelineRequestContext
  /** A detached snapshot. */
  clone(): RequestContext
  setSessionId(sessionId: string): void
  setModel(model: string): void
  /** Merged into the metadata (replaced, on a detached snapshot). */
  setMetadata(metadata: Record<string, any>): void
  /** Detached snapshots only: the tracker sets the end time when the request is completed. */
  setEndTime(endTime: number): void
}

/** getRequestStatistics(): stage counts over active requests (as the original), plus lifetime totals. */
export interface RequestStatistics {
  activeRequests: number
  totalStages: number
  completedStages: number
  failedStages: number
  runningStages: number
  /** Contexts ever created. */
  totalRequests: number
  completedRequests: number
  /** Completed with a failed outcome (or, when no owner said, with a failed stage). */
  failedRequests: number
  /** Dropped (oldest first) beyond `maxActiveRequests` without being completed. */
  abandonedRequests: number
  /** Finished requests still retained. */
  retainedRequests: number
}

export interface PipelineTrackerOptions extends Partial<PipelineModuleConfig> {
  /** Finished requests kept for getRequestContext(). Default 1000; 0 keeps none. */
  maxRetainedRequests?: number
  /** ms a finished request is retained. Default 300000. */
  retentionMs?: number
  /** Requests never completed are dropped (oldest first) beyond this. Default 100000. */
  maxActiveRequests?: number
}

/**
 * Request contexts with per-request stages (held in Rust), bounded retention of finished ones and
 * the base module's I/O log. Pass it to a scheduler, Pipeline, PipelineFactory or
 * VirtualModelSchedulerManager to have every request's stages recorded.
 */
export class PipelineTracker extends PipelineBaseModule {
  /** Defaults: id `'pipeline-tracker'`, name `'Pipeline Tracker'`, type `'tracker'`, I/O tracking off. */
  constructor(options?: PipelineTrackerOptions)
  /** Internal: the native handle schedulers record into. */
  readonly nativeTracker: unknown
  /** `req_<epoch ms>_<counter>_<random>`. */
  generateRequestId(): string
  /**
   * Opens a context (`metadata.requestId` / `metadata.pipelineId`, when strings, become its ids).
   * Throws ValidationError for an unknown operation or an id already active.
   */
  createRequestContext(provider: string, operation?: OperationType, metadata?: Record<string, any>): RequestContext
  /** An active request, or a finished one still retained. */
  getRequestContext(requestId: string): RequestContext | undefined
  /** Opens a running stage; false when the request is not active. */
  addStage(requestId: string, stageName: string, data?: unknown): boolean
  /** Completes the open stage of that name (or records a completed one); false when the request is not active. */
  completeStage(requestId: string, stageName: string, data?: unknown): boolean
  failStage(requestId: string, stageName: string, error: string | Error, data?: unknown): boolean
  /** Ends the request; a detached snapshot (undefined when it was not active). */
  completeRequest(requestId: string): RequestContext | undefined
  /** Oldest first. */
  getActiveRequests(): RequestContext[]
  /** Finished requests still retained (detached), oldest first. */
  getCompletedRequests(): RequestContext[]
  getRequestStatistics(): RequestStatistics
  /** Forgets every active and retained request (the lifetime totals stay). */
  clearAllRequests(): void
  getStageFactory(): PipelineStageFactory
  getStageManager(): PipelineStageManager
  /** Scrubs this value (an API key) wherever it appears in later stages and I/O entries. */
  addSecret(value: string): void
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
// Qwen and iFlow

/** The original's `DeviceFlowData` (RFC 8628 device authorization, PKCE S256). */
export interface DeviceFlowData {
  deviceCode: string
  userCode: string
  verificationUri: string
  verificationUriComplete: string | null
  /** Seconds the device code stays valid. */
  expiresIn: number
  /** Seconds between polls the server asked for (null: the client's default, 2 s). */
  interval: number | null
  pkceVerifier: string
}

/** The original's `OAuthTokens` (the caller asked for them: handle as secrets). */
export interface OAuthTokens {
  accessToken: string
  refreshToken: string | null
  /** Seconds left. */
  expiresIn: number | null
  tokenType: string
  scope: string | null
  /** Qwen: the chat host the token is for. */
  resourceUrl: string | null
}

/** No secrets: what a dashboard may show. */
export interface TokenStatus {
  authMode: 'oauth' | 'apikey'
  hasAccessToken: boolean
  hasRefreshToken: boolean
  /** Usable now without a refresh (API-key modes: a key is there). */
  isValid: boolean
  /** Epoch ms. */
  expiresAt: number | null
  /** Whole seconds; 0 when expired or unknown. */
  timeUntilExpiry: number
  credentialsPath: string | null
  /** iFlow API-key mode: whether a key is configured or in the credentials file. */
  hasApiKey?: boolean
}

export interface TokenRefreshedEvent {
  expiresAt: number | null
  /** `otherProcess`: another process sharing the credentials file refreshed first. */
  origin: 'network' | 'otherProcess'
}

export interface AuthenticationRequiredEvent {
  reason: 'refreshRejected' | 'noRefreshToken' | 'noCredentials'
  message: string
}

export interface DeviceFlowEvent {
  userCode: string
  verificationUri: string
  verificationUriComplete: string | null
  expiresIn: number
  browserOpened: boolean
}

export interface AuthorizationUrlEvent {
  authorizeUrl: string
  redirectUri: string
  browserOpened: boolean
}

export interface QwenOAuthConfig {
  /** Default qwen-code's public client id. */
  clientId?: string
  clientSecret?: string
  /** Default `openid profile email model.completion`. */
  scopes?: string[] | string
  /** Default `https://chat.qwen.ai`; the device-code and token URLs follow it. */
  baseUrl?: string
  deviceCodeUrl?: string
  tokenUrl?: string
}

export interface QwenProviderConfig extends ProviderConfig {
  /** `apiKey` selects DashScope API-key mode (endpoint default `https://dashscope.aliyuncs.com/compatible-mode/v1`);
   * without it, OAuth mode (chat on the token's `resource_url`, default `https://portal.qwen.ai/v1`, unless `endpoint` is given). */
  oauth?: QwenOAuthConfig
  /** Default `~/.qwen/oauth_creds.json` (qwen-code's file; written atomically, mode 0600, cross-process locked). */
  tokenStoragePath?: string
  /** A token is refreshed this many ms before it expires. Default 30000. */
  refreshMarginMs?: number
}

export interface SignInOptions {
  signal?: AbortSignal
  /** Open the browser when a display exists. Default true. */
  autoOpen?: boolean
}

export interface QwenProviderEvents {
  deviceFlow: [DeviceFlowEvent]
  tokenRefreshed: [TokenRefreshedEvent]
  authenticationRequired: [AuthenticationRequiredEvent]
  storeWriteFailed: [{ message: string }]
}

/** Qwen: DashScope with an API key, or portal.qwen.ai with qwen-code's OAuth device flow. */
export class QwenProvider extends OpenAICompatibleProvider {
  constructor(config: QwenProviderConfig)
  readonly authMode: 'oauth' | 'apikey'
  /** Requests a device code; emits `deviceFlow`; opens the browser when asked and possible, else prints the URL when nobody listens. */
  initiateDeviceFlow(autoOpen?: boolean, options?: { signal?: AbortSignal }): Promise<DeviceFlowData>
  /** Polls until approved (AuthenticationError when denied or expired); stores and returns the tokens. */
  waitForDeviceAuthorization(deviceCode: string, pkceVerifier: string, options?: { signal?: AbortSignal }): Promise<OAuthTokens>
  refreshAccessToken(options?: { signal?: AbortSignal }): Promise<OAuthTokens>
  getTokenStatus(): TokenStatus
  /** Nothing with a key or a valid token; a refresh when expired; else the device flow. */
  authenticate(options?: SignInOptions): Promise<void>
  clearTokens(options?: { signal?: AbortSignal }): Promise<null>
  healthCheck(): Promise<HealthCheckResult & { tokenStatus: TokenStatus }>
  on<E extends keyof QwenProviderEvents>(event: E, listener: (...args: QwenProviderEvents[E]) => void): this
  on(event: string | symbol, listener: (...args: any[]) => void): this
  once<E extends keyof QwenProviderEvents>(event: E, listener: (...args: QwenProviderEvents[E]) => void): this
  once(event: string | symbol, listener: (...args: any[]) => void): this
}

export interface IFlowOAuthConfig {
  clientId?: string
  clientSecret?: string
  /** Default `https://iflow.cn/oauth`. */
  authorizeUrl?: string
  tokenUrl?: string
  userInfoUrl?: string
  /** Loopback callback port; 0 (default) picks a free one. */
  callbackPort?: number
  /** Host named in the redirect URI. Default `localhost` (the listener binds loopback only). */
  callbackHost?: string
}

export interface IFlowProviderConfig extends Partial<ProviderConfig> {
  /** Default `'apikey'` when `apiKey` is given, else `'oauth'`. */
  authMode?: 'apikey' | 'oauth'
  /** Signs every request (HMAC-SHA256 headers); without it, the credentials file's `apiKey`. */
  apiKey?: string
  /** Default `~/.iflow/oauth_creds.json` (the iFlow CLI's file; its other fields are kept). */
  credentialsPath?: string
  oauth?: IFlowOAuthConfig
}

export interface IFlowProviderEvents {
  authorizationUrl: [AuthorizationUrlEvent]
  tokenRefreshed: [TokenRefreshedEvent]
  authenticationRequired: [AuthenticationRequiredEvent]
  storeWriteFailed: [{ message: string }]
}

/** iFlow: signed requests with an API key, configured or obtained by signing in. */
export class IFlowProvider extends OpenAICompatibleProvider {
  constructor(config?: IFlowProviderConfig)
  readonly authMode: 'oauth' | 'apikey'
  getTokenStatus(): TokenStatus
  /** OAuth mode: emits `authorizationUrl`, waits (≤ `timeoutMs`, 5 min) for the loopback callback, stores tokens and API key. */
  authenticate(options?: SignInOptions & { timeoutMs?: number; force?: boolean }): Promise<void>
  refreshAccessToken(options?: { signal?: AbortSignal }): Promise<OAuthTokens>
  healthCheck(): Promise<HealthCheckResult & { tokenStatus: TokenStatus }>
  on<E extends keyof IFlowProviderEvents>(event: E, listener: (...args: IFlowProviderEvents[E]) => void): this
  on(event: string | symbol, listener: (...args: any[]) => void): this
  once<E extends keyof IFlowProviderEvents>(event: E, listener: (...args: IFlowProviderEvents[E]) => void): this
  once(event: string | symbol, listener: (...args: any[]) => void): this
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
  /**
   * The protocol callers speak (default `'openai-chat'`): requests in it are converted to OpenAI
   * Chat for the providers, answers and stream events back into it.
   */
  protocol?: Protocol
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
  /**
   * A context from the same PipelineTracker (or just its id): the stages go into it and it stays
   * open for the caller to complete; an id not being tracked gets a context the scheduler opens
   * and completes. Read by PipelineScheduler.execute() and VirtualModelSchedulerManager.execute();
   * elsewhere use `requestId`.
   */
  requestContext?: IRequestContext | { requestId: string }
  timeout?: number
  retries?: number
  priority?: number | PriorityLevel
  signal?: AbortSignal
  metadata?: Record<string, unknown>
  healthCheck?: boolean
  circuitBreaker?: boolean
  /** This request's protocol (overrides the scheduler's `protocol`). */
  protocol?: Protocol
}

export interface ScheduleOptions {
  signal?: AbortSignal
  /** Overrides retry.maxRetries for this request. */
  retries?: number
  /** This request's protocol (overrides the scheduler's `protocol`). */
  protocol?: Protocol
}

export interface RegisterProviderOptions {
  id?: string
  weight?: number
  /** Calls allowed in flight on this provider at once. */
  maxConcurrentRequests?: number
  enabled?: boolean
  /** Kept with the registration; not used for routing (see `model`). */
  models?: string[]
  /** The model sent upstream for this provider, in place of the request's. */
  model?: string
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
  /** `pipelineTracker`: records every request's context and stages (and `'pipeline_end'` I/O entries when its I/O tracking is on). */
  constructor(config?: EnhancedSchedulerConfig, pipelineTracker?: PipelineTracker)
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
  /** The tracked request's id (execute() results, not stream items). */
  requestId?: string
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
  /** The request's stages, when a PipelineTracker was given (execute() results, not stream items). */
  stages?: PipelineStageRecord[]
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
  /** The model this target asks its provider for (set by PipelineFactory from a virtual model target). */
  modelId?: string
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
  /** As SchedulerOptions.requestContext; read by Pipeline.execute() (not executeStreaming()). */
  requestContext?: IRequestContext | { requestId: string }
  /** The tracked request's id when no `requestContext` is given (Pipeline.execute()). */
  requestId?: string
  metadata?: Record<string, any>
  retries?: number
  healthCheck?: boolean
}

/** Targets with a balancing strategy; `execute` never rejects. */
export class Pipeline extends SchedulerEventEmitter {
  constructor(config: PipelineConfig, pipelineTracker?: PipelineTracker)
  readonly id: string
  execute(request: OpenAIChatRequestData, operation?: 'chat' | 'streamChat', options?: PipelineExecutionOptions): Promise<PipelineExecutionResult>
  /** Runs every target's health check: `targetId` `'all'`, `response` the health, `success` isHealthy(). */
  execute(request: OpenAIChatRequestData, operation: 'healthCheck', options?: PipelineExecutionOptions): Promise<PipelineExecutionResult<SchedulerHealth>>
  execute(request: OpenAIChatRequestData, operation: OperationType, options?: PipelineExecutionOptions): Promise<PipelineExecutionResult | PipelineExecutionResult<SchedulerHealth>>
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
  constructor(virtualModelId: string, config?: SchedulerConfig, pipelineTracker?: PipelineTracker)
  /** Resolves with a successful result; a final failure rejects with the typed error (it names `pipelineId`). */
  execute(request: OpenAIChatRequestData, operation?: 'chat' | 'streamChat', options?: SchedulerOptions): Promise<PipelineExecutionResult>
  /** Runs every pipeline's health check; resolves with the scheduler's health. */
  execute(request: OpenAIChatRequestData, operation: 'healthCheck', options?: SchedulerOptions): Promise<SchedulerHealth>
  execute(request: OpenAIChatRequestData, operation: OperationType, options?: SchedulerOptions): Promise<PipelineExecutionResult | SchedulerHealth>
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

// ================================================================ BEGIN OpenAI interface classes and PipelineFactory
// (lib/openai-interface.js, lib/factory.js). The `…Data` interfaces, MessageRole, ToolType and
// FinishReason are declared at the top of this file.

type ChatMessageContent = ChatMessageData['content']

/** A chat request (the 14 OpenAI fields plus any unknown ones, kept as given). */
export class OpenAIChatRequest {
  constructor(data?: OpenAIChatRequestData)
  model?: string
  /** Default `[]`. */
  messages: ChatMessageData[]
  temperature?: number
  max_tokens?: number
  top_p?: number
  n?: number
  /** Default false. */
  stream: boolean
  stop?: string | string[] | null
  presence_penalty?: number
  frequency_penalty?: number
  logit_bias?: Record<string, number> | null
  user?: string
  tools?: ChatToolData[]
  tool_choice?: string | Record<string, unknown> | null
  [extra: string]: unknown
  /** Throws `ValidationError('Model is required')` (field `model`) unless the flag is set, `ValidationError('Messages are required')` (field `messages`); else true. */
  validate(providerHasPreconfiguredModel?: boolean): boolean
  /** OpenAI JSON: the fields that are set. */
  toJSON(): OpenAIChatRequestData
}

export class OpenAIChatResponse {
  /** `object` defaults to `'chat.completion'`, `created` to now in Unix seconds, `choices` to `[]`. */
  constructor(data?: Partial<OpenAIChatResponseData>)
  id: string
  object: string
  created: number
  model: string
  choices: ChatChoiceData[]
  usage?: UsageStatsData
  system_fingerprint?: string | null
  [extra: string]: unknown
  /** `{id, object, created, model, choices, usage, system_fingerprint}` (unset ones left out) and the unknown fields. */
  toStandardFormat(): OpenAIChatResponseData
  toJSON(): OpenAIChatResponseData
}

export class ChatMessage {
  constructor(role: MessageRole, content: ChatMessageContent)
  role: MessageRole
  content: ChatMessageContent
  name: string | null
  function_call: FunctionCallData | null
  tool_calls: ToolCallData[] | null
  tool_call_id: string | null
  [extra: string]: unknown
  static user(content: ChatMessageContent): ChatMessage
  static assistant(content: ChatMessageContent, toolCalls?: ToolCallData[]): ChatMessage
  static system(content: ChatMessageContent): ChatMessage
  static tool(toolCallId: string, content: string): ChatMessage
  /** OpenAI JSON: `role`, `content`, and the optional fields that are not null. */
  toJSON(): ChatMessageData
}

export class ChatChoice {
  constructor(index: number, message: ChatMessageData, finishReason?: FinishReason)
  index: number
  message: ChatMessageData
  finish_reason: FinishReason
  /** Always null. */
  logprobs: unknown
  toJSON(): ChatChoiceData
}

export class ToolCall {
  constructor(id: string, type: ToolType, function_: FunctionCallData)
  id: string
  type: ToolType
  function: FunctionCallData
  toJSON(): ToolCallData
}

export class FunctionCall {
  /** `arguments_`: the JSON text of the arguments (an object is serialised). */
  constructor(name: string, arguments_: string | Record<string, unknown>)
  name: string
  arguments: string
  toJSON(): FunctionCallData
}

export class ChatTool {
  constructor(type: ToolType, function_: ChatToolData['function'])
  type: ToolType
  function: ChatToolData['function']
  toJSON(): ChatToolData
}

export class UsageStats {
  constructor(promptTokens?: number, completionTokens?: number, totalTokens?: number)
  prompt_tokens: number
  completion_tokens: number
  total_tokens: number
  [extra: string]: unknown
  toJSON(): UsageStatsData
}

/** The strategies a factory-built pipeline config may name. */
type FactoryLoadBalancingStrategy = 'round-robin' | 'weighted' | 'least-connections' | 'random'

export interface PipelineFactoryConfig {
  /** ms, default 30000. */
  defaultTimeout?: number
  /** ms, default 60000. */
  defaultHealthCheckInterval?: number
  /** Default 3. */
  defaultMaxRetries?: number
  /** Default 'round-robin'. */
  defaultLoadBalancingStrategy?: FactoryLoadBalancingStrategy
  /** Default true (kept for compatibility; unused, as in the original). */
  enableHealthChecks?: boolean
  /** Default true (kept for compatibility; unused, as in the original). */
  metricsEnabled?: boolean
  /** Receives the warnings of createPipelineFromVirtualModel (skipped targets, invalid configs). Default: silent. */
  logger?: { warn(message: string): void }
}

export interface VirtualModelTarget {
  providerId: string
  /** The model the target's provider is asked for. */
  modelId: string
  /** Default 1. */
  weight?: number
  /** Default true. */
  enabled?: boolean
  keyIndex?: number
}

export interface VirtualModelConfig {
  id: string
  name: string
  description?: string
  /** Required in the original; unused by the factory. */
  modelId?: string
  /** Required in the original; becomes the pipeline's `metadata.virtualModelProvider`. */
  provider?: string
  endpoint?: string
  apiKey?: string
  maxTokens?: number
  temperature?: number
  topP?: number
  /** Required in the original. */
  enabled?: boolean
  targets?: VirtualModelTarget[]
  capabilities?: string[]
  metadata?: Record<string, any>
  createdAt?: string
  updatedAt?: string
}

export interface VirtualModelPipelineConfig {
  virtualModel: VirtualModelConfig
  /** Providers by `VirtualModelTarget.providerId`. */
  providers: Map<string, BaseProvider> | Record<string, BaseProvider>
  metadata?: Record<string, any>
}

/** Overrides of the factory defaults; an explicit 0 is used (or rejected when invalid), never replaced. */
export interface PipelineCreationOptions {
  overrideTimeout?: number
  overrideHealthCheckInterval?: number
  overrideMaxRetries?: number
  overrideLoadBalancingStrategy?: FactoryLoadBalancingStrategy
  customMetadata?: Record<string, any>
  enableHealthChecks?: boolean
}

export interface PipelineValidationResult {
  isValid: boolean
  errors: string[]
  warnings: string[]
  /** The config that would be built (validateVirtualModelConfig, when valid). */
  pipelineConfig?: PipelineConfig
}

/** Builds Pipelines from virtual models or explicit configs, with the original's validation texts. */
export class PipelineFactory {
  constructor(config?: PipelineFactoryConfig, pipelineTracker?: PipelineTracker)
  /** null when invalid (see validateVirtualModelConfig); targets whose provider is missing are skipped. */
  createPipelineFromVirtualModel(virtualModelConfig: VirtualModelPipelineConfig, options?: PipelineCreationOptions): Pipeline | null
  /** Keyed by virtual model id; invalid ones are left out. */
  createPipelinesFromVirtualModels(virtualModelConfigs: VirtualModelPipelineConfig[], options?: PipelineCreationOptions): Map<string, Pipeline>
  validateVirtualModelConfig(config: VirtualModelPipelineConfig, options?: PipelineCreationOptions): PipelineValidationResult
  /** Throws `ValidationError('Pipeline configuration validation failed: …')` when invalid. */
  createPipelineFromConfig(config: PipelineConfig): Pipeline
  validatePipelineConfig(config: PipelineConfig): PipelineValidationResult
  /** Deep copy of config, targets and metadata; providers are shared. */
  clonePipelineConfig(config: PipelineConfig): PipelineConfig
  getFactoryConfig(): Required<Omit<PipelineFactoryConfig, 'logger'>> & Pick<PipelineFactoryConfig, 'logger'>
  /** Applies to pipelines created afterwards. */
  updateFactoryConfig(updates: Partial<PipelineFactoryConfig>): void
  /** Targets `test_target_<i>` (healthy); round-robin, 60000, 3, 30000 unless overridden. */
  createTestPipeline(virtualModelId: string, providers: BaseProvider[] | Map<string, BaseProvider> | Record<string, BaseProvider>, options?: PipelineCreationOptions): Pipeline
}
// ================================================================ END OpenAI interface classes and PipelineFactory

// ---------------------------------------------------------------- virtual models

export type HealthLevel = 'healthy' | 'degraded' | 'unhealthy'

/** Scale-out of a virtual model whose queue stays long (with `enableAutoScaling`). */
export interface AutoScalingConfig {
  /** ms between checks. Default 1000. */
  checkInterval?: number
  /** A queue longer than this counts as long. Default 1. */
  queueThreshold?: number
  /** Consecutive long checks before scaling up. Default 3. */
  sustainedChecks?: number
  /** Ceiling of a model's `maxConcurrentRequests`. Default: its configured value × `ceilingMultiplier`. */
  maxConcurrentRequests?: number
  /** Default 4. */
  ceilingMultiplier?: number
}

/** Every field is optional; validated at construction (ValidationError naming the field). */
export interface ManagerConfig {
  /** Default 100. */
  maxSchedulers?: number
  /** Each virtual model's PipelineScheduler config (see the register options' `schedulerConfig`). Default `{}`. */
  defaultSchedulerConfig?: SchedulerConfig
  pipelineFactoryConfig?: PipelineFactoryConfig
  /** Doubles a model's concurrency while its queue stays long (up to the ceiling) and halves it back when idle. Default false. */
  enableAutoScaling?: boolean
  autoScaling?: AutoScalingConfig
  scalingThresholds?: {
    /** Accepted; unused. */
    minRequestsPerMinute?: number
    /** Accepted; unused. */
    maxRequestsPerMinute?: number
    /** ms since the last scaling before scaling up. Default 5000. */
    scaleUpCooldown?: number
    /** ms since the last scaling before scaling down. Default 30000. */
    scaleDownCooldown?: number
  }
  /** ms between health-check rounds over every scheduler; none when unset. */
  healthCheckInterval?: number
  /** Accepted; unused. */
  metricsRetentionPeriod?: number
  /** Accepted; unused (as in the original). */
  enableMetricsExport?: boolean
}

export interface VirtualModelRegistrationOptions {
  /** Merged over `defaultSchedulerConfig` for this model. */
  schedulerConfig?: SchedulerConfig
  /** Passed to PipelineFactory.createPipelineFromVirtualModel(). */
  creationOptions?: PipelineCreationOptions
}

export interface VirtualModelMetrics {
  requests: number
  errors: number
  averageResponseTime: number
  /** Epoch ms; 0 before the first request. */
  lastUsed: number
  /** By error rate: < 0.1 healthy, < 0.3 degraded, else unhealthy. */
  healthStatus: HealthLevel
  /** The scheduler's current limit (moved by auto-scaling). */
  maxConcurrentRequests: number
  queueLength: number
  enabled: boolean
}

export interface ManagerMetrics {
  totalSchedulers: number
  /** Enabled ones. */
  activeSchedulers: number
  totalRequests: number
  successfulRequests: number
  failedRequests: number
  averageResponseTime: number
  overallErrorRate: number
  /** Construction time, epoch ms (as the original). */
  uptime: number
  /** Epoch ms of the last health-check round; 0 before the first. */
  lastHealthCheck: number
  virtualModelMetrics: Map<string, VirtualModelMetrics>
  systemLoad: {
    /** Never set (kept from the original's type). */
    cpuUsage?: number
    /** Resident set size, bytes. */
    memoryUsage: number
    activeConnections: number
    queueLength: number
  }
}

export interface ManagerHealth {
  status: HealthLevel
  /** 0–100: the mean of the schedulers' scores (healthy 100, degraded 50, unhealthy 0); 0 with none. */
  overallHealth: number
  schedulerHealth: Map<string, { status: HealthLevel; health: number; details: SchedulerHealth['details'] }>
  systemHealth: {
    status: HealthLevel
    checks: { schedulerAvailability: boolean; errorRates: boolean; responseTimes: boolean; systemResources: boolean }
    details: { errorRate: number; averageResponseTime: number; activeConnections: number; healthySchedulers: number }
  }
}

export interface VirtualModelMapping {
  virtualModelId: string
  schedulerId: string
  config: VirtualModelConfig
  providers: Map<string, BaseProvider>
  /** Epoch ms. */
  createdAt: number
  /** Epoch ms; 0 before the first request. */
  lastUsed: number
  enabled: boolean
}

export interface ScalingEvent {
  virtualModelId: string
  /** `maxConcurrentRequests` before and after. */
  from: number
  to: number
  queueLength: number
}

export interface ManagerEvents {
  virtualModelRegistered: { virtualModelId: string; schedulerId: string }
  virtualModelUnregistered: { virtualModelId: string; schedulerId: string }
  virtualModelEnabled: { virtualModelId: string }
  virtualModelDisabled: { virtualModelId: string }
  scaledUp: ScalingEvent
  scaledDown: ScalingEvent
}

/** One PipelineScheduler per virtual model (its targets in one factory-built Pipeline), looked up by virtual model id. */
export class VirtualModelSchedulerManager extends EventEmitter {
  /** `pipelineTracker` is given to the factory and every scheduler. */
  constructor(config?: ManagerConfig, pipelineTracker?: PipelineTracker)
  on<K extends keyof ManagerEvents>(event: K, listener: (payload: ManagerEvents[K]) => void): this
  on(event: string | symbol, listener: (...args: any[]) => void): this
  once<K extends keyof ManagerEvents>(event: K, listener: (payload: ManagerEvents[K]) => void): this
  once(event: string | symbol, listener: (...args: any[]) => void): this
  off<K extends keyof ManagerEvents>(event: K, listener: (payload: ManagerEvents[K]) => void): this
  off(event: string | symbol, listener: (...args: any[]) => void): this
  /**
   * Builds the model's pipeline and scheduler; resolves with the scheduler id
   * (`scheduler_<id>_<epoch ms>_<n>`). Rejects with ValidationError (`Virtual model <id> is already
   * registered`, `Maximum number of schedulers (<n>) reached`, `Virtual model configuration
   * validation failed: …`) or NoAvailablePipelineError. `enabled: false` registers it disabled.
   */
  registerVirtualModel(virtualModelConfig: VirtualModelConfig, providers: Map<string, BaseProvider> | Record<string, BaseProvider>, options?: VirtualModelRegistrationOptions): Promise<string>
  /** Destroys its scheduler; false when unknown. */
  unregisterVirtualModel(virtualModelId: string): Promise<boolean>
  /** False when unknown. */
  enableVirtualModel(virtualModelId: string): boolean
  /** False when unknown; a disabled model's requests reject with NoAvailablePipelineError. */
  disableVirtualModel(virtualModelId: string): boolean
  /** Rejects with NoAvailablePipelineError (`No scheduler found for virtual model <id>`) when unknown or disabled. */
  execute(virtualModelId: string, request: OpenAIChatRequestData, operation?: 'chat' | 'streamChat', options?: SchedulerOptions): Promise<PipelineExecutionResult>
  execute(virtualModelId: string, request: OpenAIChatRequestData, operation: 'healthCheck', options?: SchedulerOptions): Promise<SchedulerHealth>
  execute(virtualModelId: string, request: OpenAIChatRequestData, operation: OperationType, options?: SchedulerOptions): Promise<PipelineExecutionResult | SchedulerHealth>
  /** One result per chunk (`response` = the chunk). */
  executeStreaming(virtualModelId: string, request: OpenAIChatRequestData, operation?: OperationType, options?: SchedulerOptions): AsyncGenerator<PipelineExecutionResult<ChatCompletionChunk>, void, unknown>
  getManagerMetrics(): ManagerMetrics
  getManagerHealth(): ManagerHealth
  getVirtualModelMappings(): VirtualModelMapping[]
  getScheduler(schedulerId: string): PipelineScheduler | undefined
  getVirtualModelScheduler(virtualModelId: string): PipelineScheduler | null
  /** Stops the timers and destroys every scheduler. */
  destroy(): void
}

// ---------------------------------------------------------------- routing table (RCC v4)

/** `none` (default): a failed request throws, naming its pipeline. `next-pipeline`: the route's other pipelines are tried. */
export type RoutingFallback = 'none' | 'next-pipeline'

/** One upstream of a routing config. API keys never enter the table. */
export interface RoutingProviderConfig {
  /** http(s) base URL, e.g. `http://localhost:1234/v1`. */
  endpoint: string
  /** One pipeline per key (each distinct). Not together with `apiKey`. */
  apiKeys?: string[]
  apiKey?: string
  /** Default `'openai'`. Built in (OpenAI-compatible): openai, openai-compatible, lmstudio, vllm, ollama, deepseek, dashscope, openrouter; others need PipelineManager's `providerFactory`. */
  type?: string
  /** When given, the only models routes may name for this provider. */
  models?: string[]
  /** Used by PipelineManager for the built-in provider. */
  headers?: Record<string, string>
  timeouts?: ProviderTimeouts
  /** The llmswitch layer's protocol; only `'openai-chat'` is supported. */
  protocol?: string
  /** Other keys (e.g. `maxTokens`) reach the pipeline as `providerConfig`. */
  [extra: string]: unknown
}

/** One provider × model a virtual model routes to. The same pair twice in a route is one target with the weights summed. */
export interface RoutingTarget {
  provider: string
  model: string
  /** Non-negative; default 1. */
  weight?: number
}

/** The seed form: a rule is one target of the route `name`. */
export interface RoutingRule extends RoutingTarget {
  name: string
}

/**
 * A routing config: `routing.rules` (the seed's form, `[{name, provider, model}]`) and/or
 * `routing.<virtualModel>: [{provider, model, weight?}]` (the map form); both may be mixed.
 */
export interface RoutingConfig {
  providers: Record<string, RoutingProviderConfig>
  /** `rules` is the seed form; every other key is a virtual model (map form). */
  routing: { rules?: RoutingRule[]; [virtualModel: string]: RoutingTarget[] | RoutingRule[] | undefined }
  /** Default: the route named `default`, else the first route. */
  defaultRoute?: string
  fallback?: RoutingFallback
}

/** One route target × API key. */
export interface RouteEntry {
  /** `route-<virtualModel>-<pipelineId>`. */
  routeId: string
  routeName: string
  virtualModel: string
  provider: string
  targetModel: string
  apiKeyIndex: number
  pipelineId: string
  weight: number
  isActive: boolean
  health: 'healthy' | (string & {})
}

/** One pipeline the table needs: provider × target model × API key. */
export interface RoutingPipelineSpec {
  /** `<provider>-<targetModel>-<apiKeyIndex>`. */
  pipelineId: string
  provider: string
  type: string
  endpoint: string
  targetModel: string
  apiKeyIndex: number
  /** False for a key-less provider (a local server). */
  hasApiKey: boolean
  /** The routes that use it. */
  virtualModels: string[]
  /** The provider's config minus `endpoint`, `type`, `models` and the keys. */
  providerConfig: Record<string, unknown>
}

export interface RoutingTable {
  routes: Record<string, RouteEntry[]>
  pipelines: Record<string, RoutingPipelineSpec>
  defaultRoute: string
  fallback: RoutingFallback
}

/** Expands a routing config (in Rust). Throws ValidationError naming the config path (`routing.default[0].provider`). */
export function buildRoutingTable(config: RoutingConfig): RoutingTable
/** Reads a JSON routing config file and expands it; errors name the file (and line/column) or the field. */
export function loadRoutingTable(path: string): RoutingTable

/** Layer 1, protocol conversion (the built-in one passes OpenAI Chat through). */
export interface RouteLLMSwitchLayer {
  /** The caller's request → OpenAI Chat. */
  convertRequest(request: any): OpenAIChatRequestData
  /** OpenAI Chat answer → the caller's protocol. */
  convertResponse(response: OpenAIChatResponseData): any
  /** Chat chunks → the caller's stream events (one call per stream). */
  convertStream(chunks: AsyncIterable<ChatCompletionChunk>): AsyncIterable<any>
  protocol?: Protocol
}

/** Layer 2, streaming control. */
export interface RouteWorkflowLayer {
  processRequest(request: any): any
  processResponse(response: any): any
}

/** Layer 3, provider quirks (the built-in one sets the target model). `mapResponse` also sees stream chunks. */
export interface RouteCompatibilityLayer {
  mapRequest(request: any): OpenAIChatRequestData
  mapResponse(response: any): any
  type?: string
  targetModel?: string
}

/** Layer 4: a BaseProvider, or any object with chat() and streamChat(). */
export interface RouteProvider {
  name?: string
  chat(request: OpenAIChatRequestData, options?: CallOptions): Promise<OpenAIChatResponseData>
  streamChat(request: OpenAIChatRequestData, options?: CallOptions): AsyncIterable<ChatCompletionChunk>
  healthCheck?(): Promise<HealthCheckResult>
}

export interface RoutePipelineLayers {
  llmswitch: RouteLLMSwitchLayer
  workflow: RouteWorkflowLayer
  compatibility: RouteCompatibilityLayer
  provider: RouteProvider
}

export type RouteLayerName = keyof RoutePipelineLayers
export type RoutePipelineStatus = 'created' | 'runtime' | 'failed' | 'destroyed'
export type RouteLayerStatus = 'created' | 'ready' | 'failed'

export interface PipelineDebugInfo {
  pipelineId: string
  status: RoutePipelineStatus
  routeInfo: {
    /** The routes using it, joined with `', '`. */
    virtualModel: string
    virtualModels: string[]
    provider: string
    targetModel: string
    apiKeyIndex: number
  }
  endpoint: string
  type: string
  layerStatus: Record<RouteLayerName, RouteLayerStatus>
  /** From PipelineManager.getPipelinesDebugInfo(). */
  circuitState: CircuitState
}

/** One pipeline of the table, as four layers fixed at init: llmswitch → workflow → compatibility → provider. */
export class RoutePipeline {
  constructor(spec: RoutingPipelineSpec, layers: RoutePipelineLayers)
  readonly pipelineId: string
  readonly spec: RoutingPipelineSpec
  readonly layers: RoutePipelineLayers
  readonly status: RoutePipelineStatus
  readonly layerStatus: Record<RouteLayerName, RouteLayerStatus>
  /** Checks every layer has what the next one calls; then `status` is `'runtime'`. Throws PipelineError (`PIPELINE_NOT_WIRED`). */
  handshake(): true
  /** This pipeline only (no breaker, no retry); throws PipelineError (`PIPELINE_NOT_READY`) before handshake(). */
  execute(request: OpenAIChatRequestData, options?: CallOptions): Promise<OpenAIChatResponseData>
  executeStreaming(request: OpenAIChatRequestData, options?: CallOptions): AsyncGenerator<ChatCompletionChunk, void, unknown>
  getDebugInfo(): Omit<PipelineDebugInfo, 'circuitState'>
  destroy(): void
}

export interface PipelineManagerOptions {
  /** The protocol callers speak (default `'openai-chat'`): the llmswitch layer converts requests to OpenAI Chat and answers back. */
  protocol?: Protocol
  /** Overrides the table's `fallback`. */
  fallback?: RoutingFallback
  /** Builds the provider of a pipeline (needed for types without a built-in provider). */
  providerFactory?: (spec: RoutingPipelineSpec, apiKey: string | undefined) => RouteProvider
  /** Per virtual model. Default 64. */
  maxConcurrentRequests?: number
  /** ms. Default 60000. */
  requestTimeout?: number
  /** Default 'round-robin'. */
  loadBalancingStrategy?: LoadBalancingStrategyName
  /** Per pipeline (so per API key). Default `{enabled: true, failureThreshold: 3, recoveryTimeout: 30000}`. */
  circuitBreaker?: CircuitBreakerConfig
  /** Records every routed request's stages. */
  tracker?: PipelineTracker
}

/**
 * Builds every pipeline of a routing table up front and runs requests by virtual model on one
 * scheduler per route (a breaker per pipeline, i.e. per API key).
 */
export class PipelineManager {
  constructor(options?: PipelineManagerOptions)
  /** Reads a routing config file, builds the table and every pipeline. */
  static fromFile(path: string, options?: PipelineManagerOptions): Promise<PipelineManager>
  /** The table it was initialised from. */
  readonly table: RoutingTable | null
  /**
   * Builds and handshakes every pipeline, then the route schedulers. `config` (holding the API
   * keys) is needed only for a table that buildRoutingTable()/loadRoutingTable() did not return.
   */
  initializeFromRoutingTable(table: RoutingTable, config?: RoutingConfig): Promise<void>
  getPipeline(pipelineId: string): RoutePipeline | undefined
  /** Every live pipeline by id (a copy). */
  getAllPipelines(): Map<string, RoutePipeline>
  getPipelinesDebugInfo(): PipelineDebugInfo[]
  /** The pipeline's breaker state in the route schedulers (`open` if open in any). */
  circuitState(pipelineId: string): CircuitState
  /**
   * Routes by virtual model (the default route when undefined). Zero fallback: a failure rejects
   * with the typed error, its message prefixed `Pipeline <id> failed: `. Unknown route: NoAvailablePipelineError.
   */
  execute(virtualModel: string | undefined, request: OpenAIChatRequestData, options?: SchedulerOptions): Promise<OpenAIChatResponseData>
  executeStreaming(virtualModel: string | undefined, request: OpenAIChatRequestData, options?: SchedulerOptions): AsyncGenerator<ChatCompletionChunk, void, unknown>
  /** The route scheduler's metrics (per pipeline in `pipelines`). */
  getRouteMetrics(virtualModel?: string): SchedulerMetrics
  /** Destroys the route schedulers only. */
  destroyRoutes(): void
  destroy(): void
}

/** Names a virtual model's pipelines. */
export class PipelineRouter {
  constructor(table: RoutingTable)
  readonly table: RoutingTable
  /** The default route when undefined; throws NoAvailablePipelineError for an unknown one. */
  route(virtualModel?: string): { virtualModel: string; availablePipelines: string[] }
}

/** Picks one pipeline id; pipelines whose breaker is open are skipped while another is available. */
export class LoadBalancer {
  /** `manager` supplies breaker states, weights and in-flight counts. */
  constructor(manager?: PipelineManager | null, strategy?: 'round-robin' | 'random' | 'weighted' | 'least-connections')
  readonly strategy: 'round-robin' | 'random' | 'weighted' | 'least-connections'
  /** Throws NoAvailablePipelineError for an empty list. */
  selectPipeline(availablePipelines: string[]): string
}

export class PipelineDebugSystem {
  /** `logger` defaults to console. */
  constructor(manager: PipelineManager, logger?: { log(text: string): void } | null)
  /** Logs and returns a readable listing of the live pipelines. */
  recordLivePipelines(): string
  /** Throws PipelineError (`PIPELINE_VALIDATION_FAILED`) naming the expected pipelines that are not live. */
  validateAgainstConfig(table: RoutingTable): { expected: number; actual: number }
}

// ---------------------------------------------------------------------------------------------
// Workflow and protocol conversion (LLMSwitch)

/** The wire protocols LLMSwitch converts between (always through OpenAI Chat). */
export type Protocol = 'openai-chat' | 'openai-responses' | 'anthropic' | 'gemini'
export const PROTOCOLS: readonly Protocol[]

/** A request of protocol `from` in protocol `to` (ValidationError naming the JSON path when it cannot convert). */
export function convertRequest(body: Record<string, any>, from: Protocol, to: Protocol): Record<string, any>
/** A response of protocol `from` in protocol `to`. */
export function convertResponse(body: Record<string, any>, from: Protocol, to: Protocol): Record<string, any>
/** A stream of `from` events (chat chunks, Responses events, Anthropic events, Gemini fragments) as `to` events, one at a time. */
export function convertStream(events: AsyncIterable<Record<string, any>> | Iterable<Record<string, any>>, from: Protocol, to: Protocol): AsyncGenerator<Record<string, any>, void, unknown>
/** The error body a client of `protocol` expects for `error` (Anthropic `{type:'error', error}`, Gemini `{error:{code,status}}`, ...). */
export function protocolErrorBody(error: Error, protocol: Protocol): Record<string, any>
/** A chat.completion as the chunk stream that carries it. */
export function responseToStream(response: OpenAIChatResponseData, options?: { chunkSize?: number; includeUsage?: boolean }): ChatCompletionChunk[]
/** Chunks rebuilt into one chat.completion (content, reasoning, tool calls by index, finish_reason and usage merged). */
export function streamToResponse(chunks: ChatCompletionChunk[]): OpenAIChatResponseData

export interface ToolCallParseResult {
  /** The slot the fragment went to (a colliding id moves a call to a free index). */
  actualIndex?: number | null
  complete: boolean
  value?: any
  error?: string | null
  repaired: boolean
}

export interface CompletedToolCall {
  id: string | null
  name: string | null
  /** Parsed arguments (incomplete JSON repaired; `{}` when unrecoverable, with `error`). */
  args: any
  index: number
  /** The argument text as sent (repaired when `repaired`). */
  arguments: string
  repaired: boolean
  error?: string | null
}

/** qwen-code's streaming tool-call parser: fragments by index, `''` ids continue, JSON depth/string/escape tracked. */
export class StreamingToolCallParser {
  constructor()
  addChunk(index: number, chunk: string, id?: string | null, name?: string | null): ToolCallParseResult
  getCompletedToolCalls(): CompletedToolCall[]
  reset(): void
}

export interface StreamingControlConfig {
  /** Default true. */
  streamingToNonStreaming?: boolean
  /** Default false. */
  nonStreamingToStreaming?: boolean
  bufferSize?: number
  /** Characters per content chunk when a response is turned into a stream. */
  chunkSize?: number
  timeout?: number
  /** Keep `stream_options` to answer the caller with (usage chunk). Default true. */
  preserveStreamOptions?: boolean
}

/** Stream ⇄ non-stream control (both directions). */
export class StreamingControlWorkflow {
  constructor(definition?: { type?: string; config?: StreamingControlConfig } | StreamingControlConfig, dependencies?: unknown)
  readonly type: 'streaming-control'
  initialize(): Promise<void>
  /** `stream: true` → `stream: false` with `_originalStream` (and the reverse when `nonStreamingToStreaming`). */
  processIncoming<T extends Record<string, any>>(request: T): Promise<T & { stream: boolean; _originalStream?: boolean }>
  /** The upstream's answer (a chat.completion or chunk array) in the shape the caller of `processedRequest` asked for. */
  processOutgoing(response: OpenAIChatResponseData | ChatCompletionChunk[], processedRequest?: Record<string, any>): Promise<OpenAIChatResponseData | ChatCompletionChunk[]>
  getStatus(): Record<string, any>
}

export interface ResponsesStreamingConfig {
  enableEventProcessing?: boolean
  rebuildCompleteResponse?: boolean
  eventTimeout?: number
  /** Events one rebuild may hold; more is a StreamError (never silent dropping). Default 1000. */
  maxEventBufferSize?: number
  preserveEventOrder?: boolean
  enableMetrics?: boolean
}

/** Rebuilds a complete Responses object from Responses SSE events. */
export class ResponsesStreamingWorkflow {
  constructor(definition?: { type?: string; config?: ResponsesStreamingConfig } | ResponsesStreamingConfig, dependencies?: unknown)
  readonly type: 'responses-streaming-workflow'
  initialize(): Promise<void>
  /** A `{_protocol:'responses', _hasStreamingEvents:true, streamingEvents}` request → the rebuilt response; anything else unchanged. */
  processIncoming(request: Record<string, any>): Promise<any>
  /** Events (objects, or SSE text) → the complete Responses object. */
  rebuild(events: Record<string, any>[] | string): Record<string, any>
  getStatus(): Record<string, any>
}

export const version: string
export const name: string
