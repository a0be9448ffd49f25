'use strict'
// The RCC v4 routing table (this folder): `buildRoutingTable` expands a config into one pipeline per
// provider × target model × API key (in Rust, crates/core/src/route); `PipelineManager` builds
// every pipeline up front as four layers (llmswitch → workflow → compatibility → provider) and
// handshakes them; `PipelineRouter` names a virtual model's pipelines; `LoadBalancer` picks one;
// `PipelineDebugSystem` lists what is live and checks it against the table.
//
// Requests through `PipelineManager.execute` run on one native scheduler per virtual model whose
// members are that route's pipelines, so each API key has its own breaker: a key that starts
// failing (401, 429, 5xx) is cooled down while the others keep serving. Zero fallback by default
// (a failed request throws, naming the pipeline); `fallback: 'next-pipeline'` retries the next.

const { buildRoutingTable, loadRoutingTable } = require('./table')
const { LLMSwitchLayer, WorkflowLayer, CompatibilityLayer, RoutePipeline } = require('./layers')
const { PipelineManager } = require('./manager')
const { PipelineRouter } = require('./router')
const { LoadBalancer } = require('./balancer')
const { PipelineDebugSystem } = require('./debug')

module.exports = {
  buildRoutingTable,
  loadRoutingTable,
  PipelineManager,
  PipelineRouter,
  LoadBalancer,
  PipelineDebugSystem,
  RoutePipeline,
  LLMSwitchLayer,
  WorkflowLayer,
  CompatibilityLayer,
}
