'use strict'
// PipelineDebugSystem: a readable listing of the live pipelines, and the check that every
// pipeline the table expects is live.

const { PipelineError, ValidationError } = require('../errors')
const { plainObject } = require('../scheduler-host')
const { LAYERS } = require('./layers')

class PipelineDebugSystem {
  /** `logger`: `{log(line)}`, console by default. */
  constructor(manager, logger = console) {
    this.manager = manager
    this.logger = logger
  }

  /** Writes and returns a readable listing of every live pipeline. */
  recordLivePipelines() {
    const info = this.manager.getPipelinesDebugInfo()
    const lines = [`Live pipelines (${info.length}):`]
    for (const p of info) {
      lines.push(`  ${p.status === 'runtime' ? 'OK ' : '!! '} ${p.pipelineId}`)
      lines.push(`      route: ${p.routeInfo.virtualModel} -> ${p.routeInfo.provider} / ${p.routeInfo.targetModel} (key #${p.routeInfo.apiKeyIndex})`)
      lines.push(`      status: ${p.status}, circuit: ${p.circuitState}, endpoint: ${p.endpoint}`)
      lines.push(`      layers: ${LAYERS.map((l) => `${l}=${p.layerStatus[l]}`).join(' ')}`)
    }
    const text = lines.join('\n')
    if (this.logger && typeof this.logger.log === 'function') this.logger.log(text)
    return text
  }

  /** Throws (naming them) when a pipeline the table expects is not live; returns the counts. */
  validateAgainstConfig(table) {
    if (!plainObject(table) || !plainObject(table.pipelines)) throw new ValidationError('validateAgainstConfig needs a routing table', { field: 'table' })
    const live = this.manager.getAllPipelines()
    const expected = Object.keys(table.pipelines)
    const missing = expected.filter((id) => !live.has(id) || live.get(id).status !== 'runtime')
    if (missing.length) {
      throw new PipelineError(`Pipeline initialization validation failed: ${missing.length} of ${expected.length} expected pipelines are not live: ${missing.join(', ')}`, {
        code: 'PIPELINE_VALIDATION_FAILED',
      })
    }
    return { expected: expected.length, actual: live.size }
  }
}

module.exports = { PipelineDebugSystem }
