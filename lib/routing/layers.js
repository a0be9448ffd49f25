'use strict'
// A routing pipeline: four layers fixed at init (llmswitch → workflow → compatibility →
// provider) and the handshake that checks they are wired.

const { PipelineError } = require('../errors')
const { checkProtocol, convertRequest, convertResponse, convertStream } = require('../llmswitch')

const LAYERS = ['llmswitch', 'workflow', 'compatibility', 'provider']

/** Layer 1: protocol conversion between the callers' protocol and the providers' OpenAI Chat. */
class LLMSwitchLayer {
  constructor(protocol = 'openai-chat') {
    checkProtocol(protocol, 'protocol')
    this.protocol = protocol
  }
  get passThrough() { return this.protocol === 'openai-chat' }
  convertRequest(request) { return this.passThrough ? request : convertRequest(request, this.protocol, 'openai-chat') }
  convertResponse(response) { return this.passThrough ? response : convertResponse(response, 'openai-chat', this.protocol) }
  /** Chat chunks → the caller's stream events (stateful: one call per stream). */
  convertStream(chunks) { return this.passThrough ? chunks : convertStream(chunks, 'openai-chat', this.protocol) }
}

/** Layer 2: streaming control. Streams stay streams and non-streams stay non-streams. */
class WorkflowLayer {
  processRequest(request) { return request }
  processResponse(response) { return response }
}

/** Layer 3: provider quirks; for OpenAI-compatible servers, only the target model is set. */
class CompatibilityLayer {
  constructor(type, targetModel) {
    this.type = type
    this.targetModel = targetModel
  }
  mapRequest(request) { return { ...request, model: this.targetModel } }
  mapResponse(response) { return response }
}

/** One pipeline of the table: a provider × model × API key with its four layers. */
class RoutePipeline {
  constructor(spec, layers) {
    this.pipelineId = spec.pipelineId
    this.spec = spec
    this.layers = layers
    this.status = 'created'
    this.layerStatus = Object.fromEntries(LAYERS.map((l) => [l, 'created']))
  }

  /** Checks that every layer is present and exposes what the next one calls; then `runtime`. */
  handshake() {
    const need = {
      llmswitch: ['convertRequest', 'convertResponse', 'convertStream'],
      workflow: ['processRequest', 'processResponse'],
      compatibility: ['mapRequest', 'mapResponse'],
      provider: ['chat', 'streamChat'],
    }
    for (const layer of LAYERS) {
      const obj = this.layers[layer]
      const missing = obj ? need[layer].filter((m) => typeof obj[m] !== 'function') : need[layer]
      if (missing.length) {
        this.status = 'failed'
        this.layerStatus[layer] = 'failed'
        throw new PipelineError(`Pipeline ${this.pipelineId}: layer '${layer}' is not wired (missing ${missing.join(', ')})`, {
          code: 'PIPELINE_NOT_WIRED',
          pipelineId: this.pipelineId,
        })
      }
      this.layerStatus[layer] = 'ready'
    }
    this.status = 'runtime'
    return true
  }

  _ready() {
    if (this.status !== 'runtime') throw new PipelineError(`Pipeline ${this.pipelineId} not ready (${this.status})`, { code: 'PIPELINE_NOT_READY', pipelineId: this.pipelineId })
  }

  _inbound(request) {
    const { llmswitch, workflow, compatibility } = this.layers
    return compatibility.mapRequest(workflow.processRequest(llmswitch.convertRequest(request)))
  }

  /** Runs the request down the four layers and the answer back up (this pipeline only). */
  async execute(request, options) {
    this._ready()
    const { llmswitch, workflow, compatibility, provider } = this.layers
    const response = await provider.chat(this._inbound(request), options)
    return llmswitch.convertResponse(workflow.processResponse(compatibility.mapResponse(response)))
  }

  async *executeStreaming(request, options) {
    this._ready()
    const { llmswitch, compatibility, provider } = this.layers
    const inbound = this._inbound(request)
    async function* chatChunks() {
      for await (const chunk of provider.streamChat(inbound, options)) yield compatibility.mapResponse(chunk)
    }
    yield* llmswitch.convertStream(chatChunks())
  }

  getDebugInfo() {
    return {
      pipelineId: this.pipelineId,
      status: this.status,
      routeInfo: { virtualModel: this.spec.virtualModels.join(', '), virtualModels: [...this.spec.virtualModels], provider: this.spec.provider, targetModel: this.spec.targetModel, apiKeyIndex: this.spec.apiKeyIndex },
      endpoint: this.spec.endpoint,
      type: this.spec.type,
      layerStatus: { ...this.layerStatus },
    }
  }

  destroy() {
    this.status = 'destroyed'
  }
}

module.exports = { LAYERS, LLMSwitchLayer, WorkflowLayer, CompatibilityLayer, RoutePipeline }
