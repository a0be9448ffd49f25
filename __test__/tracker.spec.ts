import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import {
  EnhancedPipelineScheduler,
  OpenAICompatibleProvider,
  Pipeline,
  PipelineBaseModule,
  PipelineScheduler,
  PipelineTracker,
  ValidationError,
} from 'rcc-pipeline'
import { MockUpstream } from 'rcc-pipeline/mock'
import { API_KEY, request } from './helpers'

let mock: MockUpstream

beforeAll(async () => {
  mock = await MockUpstream.start()
})
afterAll(async () => {
  await mock.close()
})

const ENGINE_STAGES = ['request-init', 'queue', 'pipeline-selection', 'authentication', 'api-execution', 'response-processing']

describe('PipelineBaseModule (README quick start)', () => {
  it('is built without a description and tracks operations: value through, error rethrown unchanged', async () => {
    const pipelineModule = new PipelineBaseModule({
      id: 'qwen-pipeline',
      name: 'Qwen AI Pipeline',
      version: '1.0.0',
      type: 'provider',
      providerName: 'qwen',
      maxConcurrentRequests: 5,
      enableTwoPhaseDebug: true,
      enableIOTracking: true,
    })
    const value = await pipelineModule.trackPipelineOperation('op-1', async () => ({ answer: 42 }), { question: 'life', apiKey: 'sk-live-abcdefgh12345' }, 'chat')
    expect(value).toEqual({ answer: 42 })

    const original = new Error('Test error')
    await expect(pipelineModule.trackPipelineOperation('op-2', async () => { throw original })).rejects.toBe(original)

    const entries = pipelineModule.getIOEntries()
    expect(entries).toHaveLength(2)
    expect(entries[0]).toMatchObject({ operationId: 'op-1', operationType: 'chat', success: true, output: { answer: 42 }, moduleId: 'qwen-pipeline' })
    expect(entries[0].input).toEqual({ question: 'life', apiKey: '[REDACTED]' })
    expect(entries[0].duration).toBeGreaterThanOrEqual(0)
    expect(entries[1]).toMatchObject({ operationId: 'op-2', operationType: 'pipeline-operation', success: false, error: 'Test error' })
    expect(pipelineModule.getIOEntries({ success: false }).map((e) => e.operationId)).toEqual(['op-2'])

    const metrics = pipelineModule.getPipelineMetrics()
    expect(metrics.debugEnabled).toBe(true)
    expect(metrics.ioTrackingEnabled).toBe(true)
    expect(metrics.ioEntries).toHaveLength(2)
    expect(pipelineModule.getProviderInfo()).toMatchObject({ name: 'qwen', type: 'provider' })
  })

  it('records stages and handles errors without throwing; getStatus reports them', () => {
    const m = new PipelineBaseModule({ id: 'm', name: 'M', version: '1.0.0', type: 'pipeline' })
    const seen: string[] = []
    m.on('stage', (s) => seen.push(`${s.stage}:${s.status}`))
    m.on('pipelineError', (e) => seen.push(`error:${e.context.operation}`))
    m.recordPipelineStage('validate', { ok: true })
    m.recordPipelineStage('validate', { ok: true }, 'completed')
    expect(() => m.handlePipelineError(new Error('boom'), { operation: 'chat', stage: 'api' })).not.toThrow()
    expect(() => m.handlePipelineError(undefined as unknown as Error, {})).not.toThrow()
    expect(seen).toEqual(['validate:started', 'validate:completed', 'error:chat', 'error:undefined'])
    const status = m.getStatus()
    expect(status).toMatchObject({ id: 'm', type: 'pipeline', destroyed: false, stageRecords: 2, errorCount: 2, ioTrackingEnabled: false })
    expect(status.lastError).toMatchObject({ message: 'undefined' })
    expect(() => m.recordPipelineStage('x', {}, 'done' as never)).toThrow(ValidationError)
    expect(m.getIOEntries()).toEqual([])
  })

  it('validates config updates and emits configUpdated with the old and the new config', () => {
    const m = new PipelineBaseModule({ id: 'm', name: 'M', version: '1.0.0', type: 'provider' })
    const events: Array<{ oldConfig: { name: string }; newConfig: { name: string } }> = []
    m.on('configUpdated', (e) => events.push(e))
    m.updateConfig({ name: 'Renamed' })
    expect(events).toHaveLength(1)
    expect(events[0].oldConfig.name).toBe('M')
    expect(events[0].newConfig.name).toBe('Renamed')
    expect(m.getPipelineConfig().name).toBe('Renamed')
    expect(() => m.updatePipelineConfig({ type: 'nonsense' as never })).toThrow(/type must be one of/)
    expect(() => m.updatePipelineConfig({ enableIOTracking: 'yes' as never })).toThrow(ValidationError)
    expect(m.getPipelineConfig().name).toBe('Renamed')
    expect(events).toHaveLength(1)
    // Turning I/O tracking on at run time starts recording.
    m.updatePipelineConfig({ enableIOTracking: true })
    return m.trackPipelineOperation('later', async () => 1).then(() => expect(m.getIOEntries()).toHaveLength(1))
  })
})

describe('PipelineTracker', () => {
  it('follows the README steps: context, stages, completion, statistics', () => {
    const pipelineTracker = new PipelineTracker()
    const context = pipelineTracker.createRequestContext('qwen', 'chat', { userId: 'u1' })
    const requestId = context.getRequestId()
    expect(requestId).toMatch(/^req_/)
    expect(pipelineTracker.generateRequestId()).not.toBe(requestId)
    pipelineTracker.addStage(requestId, 'request-init')
    pipelineTracker.completeStage(requestId, 'request-init', { validated: true })
    pipelineTracker.addStage(requestId, 'api-execution')
    expect(pipelineTracker.getRequestStatistics()).toMatchObject({ activeRequests: 1, totalStages: 2, completedStages: 1, runningStages: 1, failedStages: 0 })
    expect(context.getStageStatus('api-execution')).toBe('running')
    pipelineTracker.failStage(requestId, 'api-execution', 'upstream 500')
    expect(context.getFailedStages().map((s) => s.stage)).toEqual(['api-execution'])
    expect(context.getSummary()).toMatchObject({ requestId, provider: 'qwen', operation: 'chat', totalStages: 2, completedStages: 1, failedStages: 1, status: 'running' })
    expect(context.getMetadata()).toEqual({ userId: 'u1' })

    const done = pipelineTracker.completeRequest(requestId)!
    expect(done.isCompleted()).toBe(true)
    expect(done.isFailed()).toBe(true)
    expect(done.getDuration()).toBeGreaterThanOrEqual(0)
    expect(pipelineTracker.getActiveRequests()).toHaveLength(0)
    expect(pipelineTracker.getRequestContext(requestId)!.getStatus()).toBe('failed')
    expect(pipelineTracker.completeRequest(requestId)).toBeUndefined()
    expect(pipelineTracker.getRequestStatistics()).toMatchObject({ activeRequests: 0, totalRequests: 1, failedRequests: 1 })
    expect(() => pipelineTracker.createRequestContext('qwen', 'talk' as never)).toThrow(/operation must be one of/)
  })

  it('keeps stages per request when requests overlap', async () => {
    const tracker = new PipelineTracker()
    const contexts = Array.from({ length: 50 }, (_, i) => tracker.createRequestContext('p', 'chat', { i }))
    await Promise.all(
      contexts.map(async (c, i) => {
        tracker.addStage(c.getRequestId(), 'api-execution')
        await new Promise((r) => setTimeout(r, (i * 7) % 13))
        if (i % 2) tracker.completeStage(c.getRequestId(), 'api-execution', { i })
        else tracker.failStage(c.getRequestId(), 'api-execution', `failure ${i}`)
      }),
    )
    contexts.forEach((c, i) => {
      const stages = c.getStages()
      expect(stages).toHaveLength(1)
      if (i % 2) expect(stages[0]).toMatchObject({ status: 'completed', data: { i } })
      else expect(stages[0]).toMatchObject({ status: 'failed', error: `failure ${i}` })
    })
  })

  it('bounds what it retains after completion', () => {
    const tracker = new PipelineTracker({ maxRetainedRequests: 3 })
    const ids = Array.from({ length: 10 }, () => tracker.createRequestContext('p', 'chat').getRequestId())
    ids.forEach((id) => tracker.completeRequest(id))
    expect(tracker.getCompletedRequests().map((c) => c.getRequestId())).toEqual(ids.slice(7))
    expect(tracker.getRequestContext(ids[0])).toBeUndefined()
  })

  it('receives every stage of a scheduled request, with durations', async () => {
    const tracker = new PipelineTracker()
    const scheduler = new EnhancedPipelineScheduler({ maxConcurrentRequests: 2 }, tracker)
    await scheduler.registerProvider(new OpenAICompatibleProvider({ name: 'mock', endpoint: mock.openaiBase, apiKey: API_KEY }))
    await scheduler.scheduleRequest('tracked-1', request())
    const ctx = tracker.getRequestContext('tracked-1')!
    expect(ctx.getStages().map((s) => `${s.stage}:${s.status}`)).toEqual(ENGINE_STAGES.map((s) => `${s}:completed`))
    for (const s of ctx.getStages()) expect(typeof s.duration).toBe('number')
    expect(ctx.getProvider()).toBe('mock')
    expect(ctx.getModel()).toBe('gpt-4o-mini')
    expect(ctx.getStatus()).toBe('completed')
    expect(ctx.getStageDuration('api-execution')).toBeGreaterThan(0)
    await scheduler.destroy()
  })

  it('switching I/O tracking on at run time keeps the contexts and the schedulers recording into them', async () => {
    const tracker = new PipelineTracker()
    const scheduler = new EnhancedPipelineScheduler({}, tracker)
    await scheduler.registerProvider(new OpenAICompatibleProvider({ name: 'mock', endpoint: mock.openaiBase, apiKey: API_KEY }))
    await scheduler.scheduleRequest('before', request())
    expect(tracker.getIOEntries()).toEqual([])
    tracker.updateConfig({ enableIOTracking: true })
    const caller = tracker.createRequestContext('caller', 'chat')
    await scheduler.execute(request(), 'chat', { requestContext: caller })
    expect(tracker.getRequestContext('before')!.getStatus()).toBe('completed')
    expect(caller.getStageStatus('api-execution')).toBe('completed')
    expect(tracker.getIOEntries().map((e) => e.requestId)).toEqual([caller.getRequestId()])
    await scheduler.destroy()
  })

  it('PipelineScheduler and Pipeline results carry the stages; a caller context is reused, not completed', async () => {
    const tracker = new PipelineTracker()
    const provider = new OpenAICompatibleProvider({ name: 'mock', endpoint: mock.openaiBase, apiKey: API_KEY })
    const p = new Pipeline(
      { id: 'p1', name: 'P1', virtualModelId: 'vm', loadBalancingStrategy: 'round-robin', timeout: 10000, healthCheckInterval: 60000, maxRetries: 0, targets: [{ id: 't1', provider, weight: 1, enabled: true, healthStatus: 'unknown', lastHealthCheck: 0, requestCount: 0, errorCount: 0 }] },
      tracker,
    )
    const scheduler = new PipelineScheduler('vm', { maxConcurrentRequests: 2 } as never, tracker)
    scheduler.addPipeline(p)
    const result = await scheduler.execute(request(), 'chat')
    expect(result.stages!.map((s) => s.stage)).toEqual(ENGINE_STAGES)
    expect(tracker.getRequestContext(result.requestId!)!.getPipelineId()).toBe('p1')

    const mine = tracker.createRequestContext('caller', 'chat')
    const direct = await p.execute(request(), 'chat', { requestContext: mine })
    expect(direct.success).toBe(true)
    expect(direct.requestId).toBe(mine.getRequestId())
    expect(mine.getStages().map((s) => s.stage)).toEqual(ENGINE_STAGES)
    expect(tracker.getActiveRequests().map((c) => c.getRequestId())).toEqual([mine.getRequestId()])
    scheduler.destroy()
  })
})

describe('secrets', () => {
  it('never reach I/O entries or their files, whatever the depth', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rcc-io-'))
    try {
      const tracker = new PipelineTracker({ enableIOTracking: true, debugBaseDirectory: dir })
      const scheduler = new EnhancedPipelineScheduler({ retry: { maxRetries: 0 } }, tracker)
      await scheduler.registerProvider(new OpenAICompatibleProvider({ name: 'mock', endpoint: mock.openaiBase, apiKey: API_KEY }))
      const secretRequest = request('', {
        metadata: { auth: { access_token: 'at-0000-secret', nested: [{ password: 'hunter2-secret' }] }, note: `key ${API_KEY}` },
      } as never)
      await scheduler.scheduleRequest('s-1', secretRequest)
      await expect(scheduler.scheduleRequest('s-2', request('status=500'))).rejects.toThrow()
      await tracker.trackPipelineOperation('manual', async () => ({ refresh_token: 'rt-secret-value' }), { headers: { Authorization: 'Bearer tok-secret-value' } })

      const entries = tracker.getIOEntries()
      expect(entries.map((e) => e.requestId ?? e.operationId)).toEqual(['s-1', 's-2', 'manual'])
      expect(entries[1]).toMatchObject({ success: false, error: { code: 'PROVIDER_ERROR' } })
      const files = tracker.getPipelineMetrics().ioFiles
      expect(files.length).toBeGreaterThan(0)
      const onDisk = files.map((f) => fs.readFileSync(f, 'utf8')).join('')
      expect(onDisk.trim().split('\n')).toHaveLength(3)
      for (const text of [JSON.stringify(entries), onDisk, JSON.stringify(tracker.getRequestContext('s-1')!.toObject())]) {
        for (const secret of [API_KEY, 'at-0000-secret', 'hunter2-secret', 'rt-secret-value', 'tok-secret-value']) {
          expect(text).not.toContain(secret)
        }
      }
      expect(onDisk).toContain('[REDACTED]')
      if (process.platform !== 'win32') for (const f of files) expect(fs.statSync(f).mode & 0o777).toBe(0o600)
      await scheduler.destroy()
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })
})
