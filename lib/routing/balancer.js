'use strict'
// LoadBalancer: picks one of a route's pipelines (the seed's second request step), skipping
// pipelines whose breaker is open while another is available.

const { ValidationError, NoAvailablePipelineError } = require('../errors')

const STRATEGIES = ['round-robin', 'random', 'weighted', 'least-connections']

class LoadBalancer {
  /** `strategy`: round-robin (per route key, the seed's rule), random, weighted or least-connections. */
  constructor(manager, strategy = 'round-robin') {
    if (!STRATEGIES.includes(strategy)) {
      throw new ValidationError(`strategy must be one of ${STRATEGIES.join(', ')}, got ${JSON.stringify(strategy)}`, { field: 'strategy' })
    }
    this.manager = manager
    this.strategy = strategy
    this.counters = new Map()
    this.credits = new Map()
  }

  /** Picks one id; pipelines whose breaker is open are skipped while another is available. */
  selectPipeline(availablePipelines) {
    if (!Array.isArray(availablePipelines) || availablePipelines.length === 0) throw new NoAvailablePipelineError('No available pipelines')
    const open = (id) => this.manager && typeof this.manager.circuitState === 'function' && this.manager.circuitState(id) === 'open'
    const usable = availablePipelines.filter((id) => !open(id))
    const ids = usable.length ? usable : availablePipelines
    if (ids.length === 1) return ids[0]
    switch (this.strategy) {
      case 'random':
        return ids[Math.floor(Math.random() * ids.length)]
      case 'weighted':
        return this._weighted(ids)
      case 'least-connections':
        return this._leastConnections(ids)
      default: {
        const key = [...availablePipelines].sort().join(',')
        const n = this.counters.get(key) || 0
        this.counters.set(key, n + 1)
        return ids[n % ids.length]
      }
    }
  }

  _weight(id) {
    const spec = this.manager && this.manager.table && this.manager.table.pipelines[id]
    if (!spec) return 1
    let w = 0
    for (const entries of Object.values(this.manager.table.routes)) for (const e of entries) if (e.pipelineId === id) w = Math.max(w, e.weight)
    return w || 0
  }

  /** Smooth weighted round-robin (the nginx rule), exact over a cycle. */
  _weighted(ids) {
    let total = 0
    let best
    for (const id of ids) {
      const w = this._weight(id)
      total += w
      const c = (this.credits.get(id) || 0) + w
      this.credits.set(id, c)
      if (best === undefined || c > this.credits.get(best)) best = id
    }
    this.credits.set(best, this.credits.get(best) - total)
    return best
  }

  _leastConnections(ids) {
    const active = (id) => {
      let n = 0
      if (this.manager && this.manager.routeSchedulers) {
        for (const s of this.manager.routeSchedulers.values()) {
          const m = s.getMetrics().pipelines[id]
          if (m) n += m.activeRequests
        }
      }
      return n
    }
    let best = ids[0]
    let bestN = active(best)
    for (const id of ids.slice(1)) {
      const n = active(id)
      if (n < bestN) [best, bestN] = [id, n]
    }
    return best
  }
}

module.exports = { LoadBalancer, STRATEGIES }
