'use strict'
// PipelineBaseModule: the EventEmitter every component of the package extends. This is the
// part the providers need (identity, config, events, destroy); I/O tracking arrives with the
// tracker.

const { EventEmitter } = require('node:events')
const { ValidationError } = require('./errors')

const MODULE_TYPES = ['provider', 'scheduler', 'tracker', 'pipeline']

function validateModuleConfig(config) {
  if (config === null || typeof config !== 'object' || Array.isArray(config)) {
    throw new ValidationError('config must be an object', { field: 'config' })
  }
  for (const k of ['id', 'name']) {
    if (typeof config[k] !== 'string' || config[k].trim() === '') {
      throw new ValidationError(`${k} must be a non-empty string, got ${JSON.stringify(config[k])}`, { field: k })
    }
  }
  if (config.type !== undefined && !MODULE_TYPES.includes(config.type)) {
    throw new ValidationError(`type must be one of ${MODULE_TYPES.join(', ')}, got ${JSON.stringify(config.type)}`, { field: 'type' })
  }
}

class PipelineBaseModule extends EventEmitter {
  constructor(config) {
    super()
    validateModuleConfig(config)
    this.pipelineConfig = { version: '1.0.0', description: '', ...config }
    this.info = {
      id: this.pipelineConfig.id,
      name: this.pipelineConfig.name,
      version: this.pipelineConfig.version,
      description: this.pipelineConfig.description,
      type: this.pipelineConfig.type || 'pipeline',
    }
    this.destroyed = false
  }

  getInfo() {
    return { ...this.info }
  }

  getConfig() {
    return { ...this.pipelineConfig }
  }

  getPipelineConfig() {
    return { ...this.pipelineConfig }
  }

  /** Merges `partial` into the config after validating the result; emits `configUpdated`. */
  updatePipelineConfig(partial) {
    const oldConfig = this.getPipelineConfig()
    const next = { ...oldConfig, ...partial }
    validateModuleConfig(next)
    this.pipelineConfig = next
    this.emit('configUpdated', { oldConfig, newConfig: this.getPipelineConfig() })
  }

  updateConfig(partial) {
    this.updatePipelineConfig(partial)
  }

  getProviderInfo() {
    const c = this.pipelineConfig
    return {
      name: c.providerName || c.name,
      endpoint: c.endpoint,
      supportedModels: c.supportedModels || [],
      defaultModel: c.defaultModel,
      type: c.type || 'pipeline',
    }
  }

  getStatus() {
    return { id: this.info.id, name: this.info.name, type: this.info.type, destroyed: this.destroyed }
  }

  async destroy() {
    this.destroyed = true
    this.removeAllListeners()
  }
}

module.exports = { PipelineBaseModule }
