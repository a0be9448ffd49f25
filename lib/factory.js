'use strict'
// PipelineFactory (the original framework's src/framework/PipelineFactory.ts): builds Pipelines
// from virtual-model configs or explicit configs, with the original's validation texts. Fixed
// against the original: `??` instead of `||` (an explicit 0 is used, or rejected, never replaced),
// providers as a Map or a plain object, ids unique within one millisecond, no console output
// (warnings go to `config.logger` when one is given, and are in the validation result anyway).

const { Pipeline } = require('./pipeline')
const { ValidationError } = require('./errors')

const LOAD_BALANCING_STRATEGIES = ['round-robin', 'weighted', 'least-connections', 'random']
const HEALTH_STATUSES = ['healthy', 'unhealthy', 'unknown']

const FACTORY_DEFAULTS = {
  defaultTimeout: 30000,
  defaultHealthCheckInterval: 60000,
  defaultMaxRetries: 3,
  defaultLoadBalancingStrategy: 'round-robin',
  enableHealthChecks: true,
  metricsEnabled: true,
}

const TEST_DEFAULTS = { loadBalancingStrategy: 'round-robin', healthCheckInterval: 60000, maxRetries: 3, timeout: 30000 }

const MSG = {
  vmIdRequired: 'Virtual model ID is required',
  vmNameRequired: 'Virtual model name is required',
  vmNoTargets: 'Virtual model must have at least one target',
  targetProviderId: (modelId) => `Target '${modelId}' must have a providerId`,
  targetModelId: 'Target must have a modelId',
  singleTarget: 'Single target configuration - load balancing will have no effect',
  noCapabilities: 'No capabilities specified for virtual model',
  providerNotFound: (providerId) => `Provider '${providerId}' not found, skipping target`,
  noProviderFound: 'No target has an available provider',
  pipelineIdRequired: 'Pipeline ID is required',
  pipelineNameRequired: 'Pipeline name is required',
  pipelineNoTargets: 'Pipeline must have at least one target',
  targetIdRequired: 'Target ID is required',
  targetProviderRequired: 'Target provider is required',
  targetProviderChat: 'Target provider must have a chat() method',
  duplicateTarget: (id) => `Duplicate target ID '${id}'`,
  targetWeight: 'Target weight must be non-negative',
  targetHealth: 'Invalid target health status',
  timeoutPositive: 'Pipeline timeout must be positive',
  intervalPositive: 'Health check interval must be positive',
  retriesNonNegative: 'Max retries must be non-negative',
  invalidStrategy: 'Invalid load balancing strategy',
  shortTimeout: 'Pipeline timeout is very short (< 5s)',
  frequentHealthCheck: 'Health check interval is very frequent (< 30s)',
  configFailed: 'Pipeline configuration validation failed: ',
  vmConfigFailed: 'Virtual model configuration validation failed: ',
}

function isObject(v) {
  return v !== null && typeof v === 'object' && !Array.isArray(v)
}

function isPlainObject(v) {
  if (!isObject(v)) return false
  const proto = Object.getPrototypeOf(v)
  return proto === Object.prototype || proto === null
}

function nonEmptyString(v) {
  return typeof v === 'string' && v !== ''
}

function isNumber(v) {
  return typeof v === 'number' && !Number.isNaN(v)
}

// Ids `prefix_<ms>_<n>`: the counter keeps two ids of one millisecond apart.
let idCounter = 0
function uniqueSuffix() {
  idCounter = (idCounter + 1) % Number.MAX_SAFE_INTEGER
  return `${Date.now()}_${idCounter}`
}

/** A provider by id from a `Map` or a plain object (own properties only). */
function lookupProvider(providers, id) {
  if (providers instanceof Map) return providers.get(id)
  if (isObject(providers) && Object.prototype.hasOwnProperty.call(providers, id)) return providers[id]
  return undefined
}

/**
 * Deep copy of plain data (objects, arrays, Maps, Sets, Dates); class instances such as providers
 * and functions are shared.
 */
function deepCopy(v) {
  if (Array.isArray(v)) return v.map(deepCopy)
  if (v instanceof Map) return new Map([...v].map(([k, x]) => [k, deepCopy(x)]))
  if (v instanceof Set) return new Set([...v].map(deepCopy))
  if (v instanceof Date) return new Date(v.getTime())
  if (!isPlainObject(v)) return v
  const out = {}
  for (const [k, x] of Object.entries(v)) out[k] = deepCopy(x)
  return out
}

// ---------------------------------------------------------------------------------------------
// Validation (pure functions: lib/pipeline.js may reuse them)

/** The original's checks of an explicit PipelineConfig; `{isValid, errors, warnings}`. */
function validatePipelineConfig(config) {
  const errors = []
  const warnings = []
  const c = isObject(config) ? config : {}
  if (!nonEmptyString(c.id)) errors.push(MSG.pipelineIdRequired)
  if (!nonEmptyString(c.name)) errors.push(MSG.pipelineNameRequired)
  if (!nonEmptyString(c.virtualModelId)) errors.push(MSG.vmIdRequired)

  const targets = Array.isArray(c.targets) ? c.targets : []
  if (targets.length === 0) errors.push(MSG.pipelineNoTargets)
  const seen = new Set()
  for (const t of targets) {
    const target = isObject(t) ? t : {}
    if (!nonEmptyString(target.id)) errors.push(MSG.targetIdRequired)
    else if (seen.has(target.id)) errors.push(MSG.duplicateTarget(target.id))
    else seen.add(target.id)
    if (target.provider === undefined || target.provider === null) errors.push(MSG.targetProviderRequired)
    else if (typeof target.provider.chat !== 'function') errors.push(MSG.targetProviderChat)
    if (target.weight !== undefined && !(isNumber(target.weight) && target.weight >= 0)) errors.push(MSG.targetWeight)
    if (target.healthStatus !== undefined && !HEALTH_STATUSES.includes(target.healthStatus)) errors.push(MSG.targetHealth)
  }

  // Optional in this package (the Pipeline has defaults); checked when given.
  if (c.timeout !== undefined && !(isNumber(c.timeout) && c.timeout > 0)) errors.push(MSG.timeoutPositive)
  if (c.healthCheckInterval !== undefined && !(isNumber(c.healthCheckInterval) && c.healthCheckInterval > 0)) errors.push(MSG.intervalPositive)
  if (c.maxRetries !== undefined && !(isNumber(c.maxRetries) && c.maxRetries >= 0)) errors.push(MSG.retriesNonNegative)
  if (c.loadBalancingStrategy !== undefined && !LOAD_BALANCING_STRATEGIES.includes(c.loadBalancingStrategy)) errors.push(MSG.invalidStrategy)

  if (targets.length === 1) warnings.push(MSG.singleTarget)
  if (isNumber(c.timeout) && c.timeout > 0 && c.timeout < 5000) warnings.push(MSG.shortTimeout)
  if (isNumber(c.healthCheckInterval) && c.healthCheckInterval > 0 && c.healthCheckInterval < 30000) warnings.push(MSG.frequentHealthCheck)

  return { isValid: errors.length === 0, errors, warnings }
}

/** The original's checks of a virtual model (without building anything); `{errors, warnings}`. */
function checkVirtualModel(config) {
  const errors = []
  const warnings = []
  const vm = isObject(config) && isObject(config.virtualModel) ? config.virtualModel : {}
  if (!nonEmptyString(vm.id)) errors.push(MSG.vmIdRequired)
  if (!nonEmptyString(vm.name)) errors.push(MSG.vmNameRequired)
  const targets = Array.isArray(vm.targets) ? vm.targets : []
  if (targets.length === 0) errors.push(MSG.vmNoTargets)
  for (const t of targets) {
    const target = isObject(t) ? t : {}
    if (!nonEmptyString(target.providerId)) errors.push(MSG.targetProviderId(target.modelId))
    if (!nonEmptyString(target.modelId)) errors.push(MSG.targetModelId)
    if (target.weight != null && !(isNumber(target.weight) && target.weight >= 0)) errors.push(MSG.targetWeight)
  }
  if (targets.length === 1) warnings.push(MSG.singleTarget)
  if (!Array.isArray(vm.capabilities) || vm.capabilities.length === 0) warnings.push(MSG.noCapabilities)
  return { errors, warnings }
}

function checkFactoryConfig(config) {
  const check = (field, ok, expected) => {
    const v = config[field]
    if (v !== undefined && !ok(v)) {
      throw new ValidationError(`${field} must be ${expected}, got ${JSON.stringify(v)}`, { field })
    }
  }
  check('defaultTimeout', (v) => isNumber(v) && v > 0, 'a positive number')
  check('defaultHealthCheckInterval', (v) => isNumber(v) && v > 0, 'a positive number')
  check('defaultMaxRetries', (v) => Number.isInteger(v) && v >= 0, 'a non-negative integer')
  check('defaultLoadBalancingStrategy', (v) => LOAD_BALANCING_STRATEGIES.includes(v), `one of ${LOAD_BALANCING_STRATEGIES.join(', ')}`)
  check('enableHealthChecks', (v) => typeof v === 'boolean', 'a boolean')
  check('metricsEnabled', (v) => typeof v === 'boolean', 'a boolean')
  check('logger', (v) => isObject(v) && typeof v.warn === 'function', 'an object with a warn(message) method')
}

function checkCreationOptions(options) {
  if (options === undefined || options === null) return {}
  if (!isObject(options)) throw new ValidationError('pipeline creation options must be an object', { field: 'options' })
  const check = (field, ok, expected) => {
    const v = options[field]
    if (v !== undefined && !ok(v)) {
      throw new ValidationError(`options.${field} must be ${expected}, got ${JSON.stringify(v)}`, { field: `options.${field}` })
    }
  }
  check('overrideTimeout', (v) => isNumber(v) && v > 0, 'a positive number')
  check('overrideHealthCheckInterval', (v) => isNumber(v) && v > 0, 'a positive number')
  check('overrideMaxRetries', (v) => Number.isInteger(v) && v >= 0, 'a non-negative integer')
  check('overrideLoadBalancingStrategy', (v) => LOAD_BALANCING_STRATEGIES.includes(v), `one of ${LOAD_BALANCING_STRATEGIES.join(', ')}`)
  check('customMetadata', isObject, 'an object')
  check('enableHealthChecks', (v) => typeof v === 'boolean', 'a boolean')
  return options
}

function withoutUndefined(obj) {
  const out = {}
  for (const [k, v] of Object.entries(obj || {})) if (v !== undefined) out[k] = v
  return out
}

// ---------------------------------------------------------------------------------------------

class PipelineFactory {
  /**
   * `config`: `{defaultTimeout = 30000, defaultHealthCheckInterval = 60000, defaultMaxRetries = 3,
   * defaultLoadBalancingStrategy = 'round-robin', enableHealthChecks = true, metricsEnabled = true,
   * logger?: {warn(message)}}`. Without a logger the factory is silent.
   */
  constructor(config = {}, pipelineTracker) {
    if (config === null) config = {}
    if (!isObject(config)) throw new ValidationError('factory config must be an object', { field: 'config' })
    checkFactoryConfig(config)
    this.config = { ...FACTORY_DEFAULTS, ...withoutUndefined(config) }
    this.pipelineTracker = pipelineTracker
  }

  _warn(message) {
    const logger = this.config.logger
    if (logger) logger.warn(message)
  }

  /**
   * The PipelineConfig a virtual model yields, or undefined when no target has a provider.
   * A skipped target adds its warning to `skipped`.
   */
  _buildPipelineConfig(vmConfig, options, skipped) {
    const { virtualModel: vm, providers } = vmConfig
    const now = Date.now()
    const targets = []
    const ids = new Set()
    vm.targets.forEach((t, i) => {
      const provider = lookupProvider(providers, t.providerId)
      if (!provider) {
        skipped.push(MSG.providerNotFound(t.providerId))
        return
      }
      let id = `${vm.id}_${t.providerId}_${t.modelId}`
      while (ids.has(id)) id = `${id}_${i}` // same provider and model twice (e.g. two API keys)
      ids.add(id)
      targets.push({
        id,
        provider,
        modelId: t.modelId,
        weight: t.weight ?? 1,
        enabled: t.enabled !== false,
        healthStatus: 'unknown',
        lastHealthCheck: now,
        requestCount: 0,
        errorCount: 0,
        metadata: { keyIndex: t.keyIndex, virtualModelId: vm.id, ...deepCopy(t) },
      })
    })
    if (targets.length === 0) return undefined
    return {
      id: `pipeline_${vm.id}_${uniqueSuffix()}`,
      name: `${vm.name} Pipeline`,
      virtualModelId: vm.id,
      description: vm.name,
      targets,
      loadBalancingStrategy: options.overrideLoadBalancingStrategy ?? this.config.defaultLoadBalancingStrategy,
      healthCheckInterval: options.overrideHealthCheckInterval ?? this.config.defaultHealthCheckInterval,
      maxRetries: options.overrideMaxRetries ?? this.config.defaultMaxRetries,
      timeout: options.overrideTimeout ?? this.config.defaultTimeout,
      metadata: {
        virtualModelName: vm.name,
        virtualModelProvider: vm.provider,
        capabilities: deepCopy(vm.capabilities ?? []),
        ...deepCopy(vmConfig.metadata),
        ...deepCopy(options.customMetadata),
      },
    }
  }

  /**
   * `{isValid, errors, warnings, pipelineConfig?}` for a virtual model; `pipelineConfig` is the
   * config the factory would build (with `options` applied) when valid. A target whose provider
   * is missing is skipped with a warning; when none is left the config is invalid.
   */
  validateVirtualModelConfig(config, options) {
    return this._validateVirtualModel(config, options).result
  }

  _validateVirtualModel(config, options) {
    const opts = checkCreationOptions(options)
    const { errors, warnings } = checkVirtualModel(config)
    const skipped = []
    let pipelineConfig
    if (errors.length === 0) {
      pipelineConfig = this._buildPipelineConfig(config, opts, skipped)
      if (!pipelineConfig) errors.push(MSG.noProviderFound)
    }
    return { result: { isValid: errors.length === 0, errors, warnings: [...warnings, ...skipped], pipelineConfig }, skipped }
  }

  /**
   * A Pipeline for the virtual model, or null when its config is invalid (see
   * validateVirtualModelConfig). Skipped targets and failures are told to `config.logger` if any.
   */
  createPipelineFromVirtualModel(virtualModelConfig, options) {
    const { result, skipped } = this._validateVirtualModel(virtualModelConfig, options)
    for (const w of skipped) this._warn(w)
    if (!result.isValid) {
      this._warn(MSG.vmConfigFailed + result.errors.join(', '))
      return null
    }
    return new Pipeline(result.pipelineConfig, this.pipelineTracker)
  }

  /** Pipelines keyed by virtual model id; invalid virtual models are left out. */
  createPipelinesFromVirtualModels(virtualModelConfigs, options) {
    const pipelines = new Map()
    for (const config of virtualModelConfigs || []) {
      const pipeline = this.createPipelineFromVirtualModel(config, options)
      if (pipeline) pipelines.set(config.virtualModel.id, pipeline)
    }
    return pipelines
  }

  /** Throws `ValidationError('Pipeline configuration validation failed: …')` when invalid. */
  createPipelineFromConfig(config) {
    const result = this.validatePipelineConfig(config)
    if (!result.isValid) {
      throw new ValidationError(MSG.configFailed + result.errors.join(', '), { field: 'config' })
    }
    return new Pipeline(config, this.pipelineTracker)
  }

  validatePipelineConfig(config) {
    return validatePipelineConfig(config)
  }

  /** A copy of `config`, its targets and metadata; the providers are the same objects. */
  clonePipelineConfig(config) {
    const out = deepCopy(config)
    if (Array.isArray(config.targets)) {
      out.targets = config.targets.map((t) => (isObject(t) ? { ...deepCopy(t), provider: t.provider } : t))
    }
    return out
  }

  getFactoryConfig() {
    return { ...this.config }
  }

  /** Validated; applies to pipelines created afterwards. */
  updateFactoryConfig(updates) {
    if (!isObject(updates)) throw new ValidationError('factory config update must be an object', { field: 'config' })
    checkFactoryConfig(updates)
    this.config = { ...this.config, ...withoutUndefined(updates) }
  }

  /**
   * A pipeline over `providers` (an array, a Map or an object of them): targets `test_target_<i>`,
   * healthy, metadata `{test: true}`; round-robin, 60000 ms health checks, 3 retries, 30000 ms
   * timeout unless overridden.
   */
  createTestPipeline(virtualModelId, providers, options) {
    const opts = checkCreationOptions(options)
    const list = Array.isArray(providers)
      ? providers
      : providers instanceof Map
        ? [...providers.values()]
        : isObject(providers)
          ? Object.values(providers)
          : []
    const now = Date.now()
    const targets = list.map((provider, index) => ({
      id: `test_target_${index}`,
      provider,
      weight: 1,
      enabled: true,
      healthStatus: 'healthy',
      lastHealthCheck: now,
      requestCount: 0,
      errorCount: 0,
      metadata: { test: true },
    }))
    const config = {
      id: `test_pipeline_${virtualModelId}_${uniqueSuffix()}`,
      name: `Test Pipeline for ${virtualModelId}`,
      virtualModelId,
      targets,
      loadBalancingStrategy: opts.overrideLoadBalancingStrategy ?? TEST_DEFAULTS.loadBalancingStrategy,
      healthCheckInterval: opts.overrideHealthCheckInterval ?? TEST_DEFAULTS.healthCheckInterval,
      maxRetries: opts.overrideMaxRetries ?? TEST_DEFAULTS.maxRetries,
      timeout: opts.overrideTimeout ?? TEST_DEFAULTS.timeout,
      metadata: { test: true, ...deepCopy(opts.customMetadata) },
    }
    return this.createPipelineFromConfig(config)
  }
}

module.exports = {
  PipelineFactory,
  FACTORY_DEFAULTS,
  LOAD_BALANCING_STRATEGIES,
  validatePipelineConfig,
  checkVirtualModel,
  lookupProvider,
  deepCopy,
}
