'use strict'
// The public API of rcc-pipeline. Hand-written over the generated loader (native.js): error
// classes, EventEmitter glue and the JS side of providers live here; the work happens in Rust.

const errors = require('./lib/errors')
const { PipelineBaseModule } = require('./lib/base-module')
const { BaseProvider, OpenAICompatibleProvider } = require('./lib/providers')
const { Pipeline } = require('./lib/pipeline')
const { QwenProvider } = require('./lib/qwen')
const { IFlowProvider } = require('./lib/iflow')
const { EnhancedPipelineScheduler, PipelineScheduler } = require('./lib/schedulers')
const openai = require('./lib/openai-interface')
const { PipelineFactory } = require('./lib/factory')
const tracking = require('./lib/tracker')
const routing = require('./lib/routing/index.js')
const llmswitch = require('./lib/llmswitch')
const workflow = require('./lib/workflow')
const { VirtualModelSchedulerManager } = require('./lib/virtual-models')
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
  QwenProvider,
  IFlowProvider,
  EnhancedPipelineScheduler,
  PipelineScheduler,
  Pipeline,
  PipelineFactory,
  VirtualModelSchedulerManager,
  PipelineTracker: tracking.PipelineTracker,
  RequestContext: tracking.RequestContext,
  PipelineStage: tracking.PipelineStage,
  PipelineStageFactory: tracking.PipelineStageFactory,
  PipelineStageManager: tracking.PipelineStageManager,
  OpenAIChatRequest: openai.OpenAIChatRequest,
  OpenAIChatResponse: openai.OpenAIChatResponse,
  ChatMessage: openai.ChatMessage,
  ChatChoice: openai.ChatChoice,
  ToolCall: openai.ToolCall,
  FunctionCall: openai.FunctionCall,
  ChatTool: openai.ChatTool,
  UsageStats: openai.UsageStats,
  buildRoutingTable: routing.buildRoutingTable,
  loadRoutingTable: routing.loadRoutingTable,
  PipelineManager: routing.PipelineManager,
  PipelineRouter: routing.PipelineRouter,
  LoadBalancer: routing.LoadBalancer,
  PipelineDebugSystem: routing.PipelineDebugSystem,
  RoutePipeline: routing.RoutePipeline,
  StreamingControlWorkflow: workflow.StreamingControlWorkflow,
  ResponsesStreamingWorkflow: workflow.ResponsesStreamingWorkflow,
  StreamingToolCallParser: workflow.StreamingToolCallParser,
  convertRequest: llmswitch.convertRequest,
  convertResponse: llmswitch.convertResponse,
  convertStream: llmswitch.convertStream,
  protocolErrorBody: llmswitch.errorBody,
  responseToStream: llmswitch.responseToStream,
  streamToResponse: llmswitch.streamToResponse,
  PROTOCOLS: llmswitch.PROTOCOLS,
  version,
  name: 'rcc-pipeline',
}
