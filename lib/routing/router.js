'use strict'
// PipelineRouter: the pipelines a virtual model routes to (the seed's first request step).

const { ValidationError, NoAvailablePipelineError } = require('../errors')
const { plainObject } = require('../scheduler-host')

class PipelineRouter {
  constructor(table) {
    if (!plainObject(table) || !plainObject(table.routes)) throw new ValidationError('PipelineRouter needs a routing table', { field: 'table' })
    this.table = table
  }

  /** `{virtualModel, availablePipelines}` for a virtual model (the default route when undefined). */
  route(virtualModel) {
    const vm = virtualModel ?? this.table.defaultRoute
    const entries = this.table.routes[vm]
    if (!entries) {
      throw new NoAvailablePipelineError(`No route for virtual model '${vm}' (routes: ${Object.keys(this.table.routes).join(', ')})`)
    }
    const availablePipelines = [...new Set(entries.filter((e) => e.isActive !== false).map((e) => e.pipelineId))]
    return { virtualModel: vm, availablePipelines }
  }
}

module.exports = { PipelineRouter }
